//! `plat graph`: the dependency graph as a tree, as JSON waves, or as Graphviz dot.

use std::collections::HashSet;
use std::fmt::Write as _;

use indexmap::IndexMap;
use plat::manifest::{Condition, ServiceId, Workspace};
use serde::Serialize;

use super::print_json;
use crate::args::GraphArgs;
use crate::ui::{self, CliError, ExitStatus, paint, style};

/// The `--json` answer.
#[derive(Serialize)]
struct GraphJson<'a> {
    services: Vec<ServiceJson<'a>>,
    waves: Vec<Vec<&'a str>>,
}

#[derive(Serialize)]
struct ServiceJson<'a> {
    name: &'a str,
    depends_on: IndexMap<&'a str, Condition>,
}

pub fn run(workspace: &Workspace, args: &GraphArgs) -> Result<ExitStatus, CliError> {
    let waves: Vec<Vec<&str>> = workspace
        .graph
        .waves()
        .iter()
        .map(|wave| wave.iter().map(|&id| workspace.service_by_id(id).name.as_str()).collect())
        .collect();
    if args.json {
        let services = workspace
            .services
            .iter()
            .map(|service| ServiceJson {
                name: &service.name,
                depends_on: service.depends_on.iter().map(|(name, condition)| (name.as_str(), *condition)).collect(),
            })
            .collect();
        return print_json(&GraphJson { services, waves });
    }
    let text = if args.dot { dot(workspace) } else { tree(workspace, &waves) };
    ui::write_stdout(&text)?;
    Ok(ExitStatus::Success)
}

/// Each service nothing depends on, with what it depends on below it, like `cargo tree`.
/// A subtree already drawn is marked `(*)` instead of drawn again.
fn tree(workspace: &Workspace, waves: &[Vec<&str>]) -> String {
    let mut out = String::new();
    if workspace.services.is_empty() {
        return "no services in this workspace\n".to_owned();
    }
    let mut roots = workspace.graph.roots();
    roots.sort_by_key(|&id| &workspace.service_by_id(id).name);
    let mut drawn = HashSet::new();
    for root in roots {
        let _ = writeln!(out, "{}", paint(style::BOLD, &workspace.service_by_id(root).name));
        drawn.insert(root);
        branches(workspace, root, "", &mut drawn, &mut out);
    }
    let _ = writeln!(out, "\nstart order:");
    for (number, wave) in waves.iter().enumerate() {
        let _ = writeln!(out, "  {}  {}", number + 1, wave.join(", "));
    }
    out
}

fn branches(workspace: &Workspace, service: ServiceId, prefix: &str, drawn: &mut HashSet<ServiceId>, out: &mut String) {
    let dependencies = workspace.graph.dependencies(service);
    for (position, (dependency, condition)) in dependencies.iter().enumerate() {
        let last = position + 1 == dependencies.len();
        let name = &workspace.service_by_id(*dependency).name;
        let seen = !drawn.insert(*dependency);
        let _ = writeln!(
            out,
            "{prefix}{}{name} {}{}",
            if last { "└── " } else { "├── " },
            paint(style::DIM, format!("({condition})")),
            if seen && !workspace.graph.dependencies(*dependency).is_empty() { " (*)" } else { "" },
        );
        if !seen {
            let prefix = format!("{prefix}{}", if last { "    " } else { "│   " });
            branches(workspace, *dependency, &prefix, drawn, out);
        }
    }
}

/// Graphviz: an edge from each service to each of its dependencies, labelled with the condition.
fn dot(workspace: &Workspace) -> String {
    let mut out = format!("digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box];\n", workspace.name);
    for service in &workspace.services {
        let _ = writeln!(out, "  \"{}\";", service.name);
    }
    for service in &workspace.services {
        for (dependency, condition) in &service.depends_on {
            let _ = writeln!(out, "  \"{}\" -> \"{dependency}\" [label=\"{condition}\"];", service.name);
        }
    }
    out.push_str("}\n");
    out
}
