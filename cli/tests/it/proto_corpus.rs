//! The proto check corpus (`proto_corpus/`): before/after pairs for `breaking`, modules for
//! `lint`, each with the rule IDs buf 1.75 reports. plat's own engine must give those verdicts
//! everywhere, and the same findings as buf at the same file, line and column, so the two engines
//! cannot drift apart. `errors/` holds modules that are wrong input: `plat proto lint` and
//! `breaking` must fail on them the same way with either engine. The tests that run buf fail (not
//! skip) when it is missing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use plat::proto::{Finding, breaking, lint, load};

use crate::context::TestContext;
use crate::proto_checks::run;
use crate::proto_gen::buf_dir;

const CATEGORIES: [&str; 4] = ["FILE", "PACKAGE", "WIRE_JSON", "WIRE"];

/// Messages plat words differently from buf, on purpose: buf 1.75 prints a stray `q` in
/// FIELD_SAME_ONEOF (`on message "M"q moved from oneof`); plat does not copy the typo.
const MESSAGE_DIFFERS: &[&str] = &["FIELD_SAME_ONEOF"];

fn corpus(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/proto_corpus").join(kind)
}

fn cases(kind: &str) -> Vec<(String, PathBuf)> {
    let mut cases: Vec<(String, PathBuf)> = std::fs::read_dir(corpus(kind))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .map(|path| (path.file_name().unwrap().to_string_lossy().into_owned(), path))
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no {kind} cases");
    cases
}

fn expected(case: &Path) -> toml::Table {
    toml::from_str(&std::fs::read_to_string(case.join("expected.toml")).unwrap()).unwrap()
}

fn rule_set(value: &toml::Value) -> BTreeSet<String> {
    value.as_array().unwrap().iter().map(|rule| rule.as_str().unwrap().to_owned()).collect()
}

fn rules_of(findings: &[Finding]) -> BTreeSet<String> {
    findings.iter().map(|finding| finding.rule.clone()).collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// A copy of `case/after` with a buf.yaml that uses `category` (plus the case's `[config]`).
fn breaking_dir(case: &Path, category: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&case.join("after"), dir.path());
    let mut yaml = format!("version: v2\nbreaking:\n  use: [{category}]\n");
    if let Some(config) = expected(case).get("config").and_then(|config| config.as_table()) {
        for (key, values) in config {
            let values: Vec<&str> = values.as_array().unwrap().iter().map(|value| value.as_str().unwrap()).collect();
            yaml.push_str(&format!("  {key}: [{}]\n", values.join(", ")));
        }
    }
    std::fs::write(dir.path().join("buf.yaml"), yaml).unwrap();
    dir
}

fn breaking_findings(case: &Path, category: &str, buf: Option<&Path>) -> Vec<Finding> {
    let dir = breaking_dir(case, category);
    let old = load::read_dir_allow_empty(&case.join("before")).unwrap();
    breaking::check_sources(dir.path(), &old, buf, "before")
        .unwrap_or_else(|error| panic!("{}: {category}: {error}", case.display()))
        .findings
}

fn lint_findings(case: &Path, buf: Option<&Path>) -> Vec<Finding> {
    lint::check_with(case, buf).unwrap_or_else(|error| panic!("{}: {error}", case.display())).findings
}

/// Where the two engines disagree: on the findings' places and rules, or on a message.
fn disagreements(what: &str, buf: &[Finding], builtin: &[Finding]) -> Vec<String> {
    let key = |finding: &Finding| (finding.path.clone(), finding.line, finding.column, finding.rule.clone());
    let buf_keys: BTreeSet<_> = buf.iter().map(key).collect();
    let builtin_keys: BTreeSet<_> = builtin.iter().map(key).collect();
    let mut out = Vec::new();
    for missing in buf_keys.difference(&builtin_keys) {
        out.push(format!("{what}: only buf reports {missing:?}"));
    }
    for extra in builtin_keys.difference(&buf_keys) {
        out.push(format!("{what}: only plat reports {extra:?}"));
    }
    for (a, b) in buf.iter().zip(builtin) {
        if key(a) == key(b) && a.message != b.message && !MESSAGE_DIFFERS.contains(&a.rule.as_str()) {
            out.push(format!("{what}: {} words differ:\n  buf:  {}\n  plat: {}", a.rule, a.message, b.message));
        }
    }
    out
}

#[test]
fn builtin_breaking_verdicts_match_the_corpus() {
    let mut wrong = Vec::new();
    let mut checked_rules = BTreeSet::new();
    for (name, case) in cases("breaking") {
        let expected = expected(&case);
        for category in CATEGORIES {
            let want = rule_set(&expected[category]);
            let got = rules_of(&breaking_findings(&case, category, None));
            if got != want {
                wrong.push(format!("{name} under {category}: plat reports {got:?}, expected {want:?}"));
            }
            checked_rules.extend(want);
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Every rule the issue names is exercised by at least one breaking change.
    for rule in [
        "FIELD_NO_DELETE",
        "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED",
        "FIELD_NO_DELETE_UNLESS_NAME_RESERVED",
        "FIELD_SAME_TYPE",
        "FIELD_WIRE_COMPATIBLE_TYPE",
        "FIELD_WIRE_JSON_COMPATIBLE_TYPE",
        "FIELD_SAME_CARDINALITY",
        "FIELD_WIRE_COMPATIBLE_CARDINALITY",
        "FIELD_WIRE_JSON_COMPATIBLE_CARDINALITY",
        "FIELD_SAME_NAME",
        "FIELD_SAME_JSON_NAME",
        "MESSAGE_NO_DELETE",
        "ENUM_NO_DELETE",
        "SERVICE_NO_DELETE",
        "RPC_NO_DELETE",
        "PACKAGE_MESSAGE_NO_DELETE",
        "PACKAGE_ENUM_NO_DELETE",
        "PACKAGE_SERVICE_NO_DELETE",
        "ENUM_VALUE_NO_DELETE",
        "ENUM_VALUE_NO_DELETE_UNLESS_NUMBER_RESERVED",
        "ENUM_VALUE_NO_DELETE_UNLESS_NAME_RESERVED",
        "ENUM_VALUE_SAME_NAME",
        "RPC_SAME_REQUEST_TYPE",
        "RPC_SAME_RESPONSE_TYPE",
        "RPC_SAME_CLIENT_STREAMING",
        "RPC_SAME_SERVER_STREAMING",
        "FILE_NO_DELETE",
        "PACKAGE_NO_DELETE",
        "FILE_SAME_PACKAGE",
    ] {
        assert!(checked_rules.contains(rule), "no corpus case breaks {rule}");
    }
}

#[test]
fn builtin_lint_verdicts_match_the_corpus() {
    let mut wrong = Vec::new();
    for (name, case) in cases("lint") {
        let want = rule_set(&expected(&case)["rules"]);
        let got = rules_of(&lint_findings(&case, None));
        if got != want {
            wrong.push(format!("{name}: plat reports {got:?}, expected {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn buf_and_plat_agree_on_every_breaking_case() {
    let buf = buf_dir().join("buf");
    let mut problems = Vec::new();
    let mut compared = 0;
    for (name, case) in cases("breaking") {
        let expected = expected(&case);
        for category in CATEGORIES {
            let with_buf = breaking_findings(&case, category, Some(&buf));
            let builtin = breaking_findings(&case, category, None);
            let want = rule_set(&expected[category]);
            if rules_of(&with_buf) != want {
                problems.push(format!(
                    "{name} under {category}: buf reports {:?}, the corpus expects {want:?}",
                    rules_of(&with_buf)
                ));
            }
            problems.extend(disagreements(&format!("{name} under {category}"), &with_buf, &builtin));
            compared += with_buf.len();
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(compared > 100, "the corpus should exercise many findings, got {compared}");
}

#[test]
fn buf_and_plat_agree_on_every_lint_case() {
    let buf = buf_dir().join("buf");
    let mut problems = Vec::new();
    for (name, case) in cases("lint") {
        let with_buf = lint_findings(&case, Some(&buf));
        let builtin = lint_findings(&case, None);
        let want = rule_set(&expected(&case)["rules"]);
        if rules_of(&with_buf) != want {
            problems.push(format!("{name}: buf reports {:?}, the corpus expects {want:?}", rules_of(&with_buf)));
        }
        problems.extend(disagreements(&name, &with_buf, &builtin));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The file every `errors/` case is compared against: committed, valid, kept in the working tree
/// beside the case's files (unless the case has no `.proto` file at all).
const BASE_PROTO: &str = "syntax = \"proto3\";\n\npackage shop.v1;\n\nmessage Base {}\n";

fn has_proto_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().path()).any(|path| {
        if path.is_dir() { has_proto_files(&path) } else { path.extension().is_some_and(|ext| ext == "proto") }
    })
}

/// A workspace whose HEAD holds `proto/shop/v1/base.proto` and whose working tree holds the case.
fn error_workspace(case: &Path) -> TestContext {
    let context = TestContext::new();
    context.manifest("[workspace]\nname = \"corpus\"\n");
    let proto = context.workspace.join("proto");
    std::fs::create_dir_all(proto.join("shop/v1")).unwrap();
    std::fs::write(proto.join("shop/v1/base.proto"), BASE_PROTO).unwrap();
    context.git(&context.workspace, &["init", "--quiet", "--initial-branch=main"]);
    context.git(&context.workspace, &["add", "."]);
    context.git(&context.workspace, &["commit", "--quiet", "-m", "base"]);
    if !has_proto_files(case) {
        std::fs::remove_file(proto.join("shop/v1/base.proto")).unwrap();
    }
    copy_dir(case, &proto);
    std::fs::remove_file(proto.join("expected.toml")).unwrap();
    context
}

#[test]
fn both_engines_fail_alike_on_wrong_input() {
    let mut problems = Vec::new();
    for (name, case) in cases("errors") {
        let expected = expected(&case);
        let integer = |key: &str| expected.get(key).and_then(|value| value.as_integer()).map(|code| code as i32);
        let text = |key: &str| expected.get(key).and_then(|value| value.as_str()).map(str::to_owned);
        let context = error_workspace(&case);
        for command in [&["proto", "lint"][..], &["proto", "breaking", "--against", "HEAD"][..]] {
            for engine in ["buf", "builtin"] {
                let what = format!("{name}: `plat {} --engine {engine}`", command.join(" "));
                let args: Vec<&str> = command.iter().copied().chain(["--engine", engine]).collect();
                let run = run(&context, &args, engine == "buf");
                let builtin = engine == "builtin";
                let want = integer(if builtin && integer("builtin_exit").is_some() { "builtin_exit" } else { "exit" })
                    .expect("expected.toml says `exit`");
                if run.code != want {
                    problems.push(format!("{what} exits {}, expected {want}:\n{}", run.code, run.stderr));
                    continue;
                }
                let says = if builtin { text("builtin_says").or_else(|| text("says")) } else { text("says") };
                if let Some(says) = says
                    && !run.stderr.contains(&says)
                {
                    problems.push(format!("{what} does not say {says:?}:\n{}", run.stderr));
                }
                if let Some(locations) = expected.get("locations").and_then(|value| value.as_array()) {
                    let places: Vec<&str> = locations.iter().map(|place| place.as_str().unwrap()).collect();
                    if !places.iter().any(|place| run.stderr.contains(&format!("error: {place}: "))) {
                        problems.push(format!("{what} points at none of {places:?}:\n{}", run.stderr));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// What `plat proto lint` and `breaking` exit with for a corpus case whose findings are `rules`.
fn verdict(rules: &BTreeSet<String>) -> i32 {
    if rules.is_empty() { 0 } else { 1 }
}

#[test]
fn both_engines_exit_alike_on_every_case_through_the_cli() {
    let mut problems = Vec::new();
    for (name, case) in cases("lint") {
        let context = TestContext::new();
        context.manifest("[workspace]\nname = \"corpus\"\n");
        copy_dir(&case, &context.workspace.join("proto"));
        std::fs::remove_file(context.workspace.join("proto/expected.toml")).unwrap();
        let want = verdict(&rule_set(&expected(&case)["rules"]));
        for engine in ["buf", "builtin"] {
            let run = run(&context, &["proto", "lint", "--engine", engine], engine == "buf");
            if run.code != want {
                problems
                    .push(format!("lint {name} --engine {engine}: exit {}, expected {want}\n{}", run.code, run.stderr));
            }
        }
    }
    for (name, case) in cases("breaking") {
        let context = TestContext::new();
        context.manifest("[workspace]\nname = \"corpus\"\n");
        let proto = context.workspace.join("proto");
        copy_dir(&case.join("before"), &proto);
        context.git(&context.workspace, &["init", "--quiet", "--initial-branch=main"]);
        context.git(&context.workspace, &["add", "."]);
        context.git(&context.workspace, &["commit", "--quiet", "-m", "before"]);
        std::fs::remove_dir_all(&proto).unwrap();
        for category in CATEGORIES {
            // The case's `after`, with the buf.yaml of this category.
            let _ = std::fs::remove_dir_all(&proto);
            copy_dir(breaking_dir(&case, category).path(), &proto);
            let want = verdict(&rule_set(&expected(&case)[category]));
            for engine in ["buf", "builtin"] {
                let run =
                    run(&context, &["proto", "breaking", "--against", "HEAD", "--engine", engine], engine == "buf");
                if run.code != want {
                    problems.push(format!(
                        "breaking {name} under {category} --engine {engine}: exit {}, expected {want}\n{}",
                        run.code, run.stderr
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_rule_plat_implements_is_one_buf_knows() {
    // The catalogues are copied from `buf config ls-*-rules --version v2`; check them against buf.
    let buf = buf_dir().join("buf");
    for (command, rules) in [("ls-breaking-rules", breaking::RULES), ("ls-lint-rules", lint::RULES)] {
        let output = std::process::Command::new(&buf)
            .args(["config", command, "--version", "v2", "--format", "json"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let listed: BTreeMap<String, BTreeSet<String>> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| {
                let rule: serde_json::Value = serde_json::from_str(line).unwrap();
                let categories =
                    rule["categories"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
                (rule["id"].as_str().unwrap().to_owned(), categories)
            })
            .collect();
        let ours: BTreeMap<String, BTreeSet<String>> = rules
            .iter()
            .map(|rule| {
                (
                    rule.id.to_owned(),
                    rule.categories.iter().filter(|c| **c != "DEFAULT").map(|c| (*c).to_owned()).collect(),
                )
            })
            .collect();
        assert_eq!(ours, listed, "`buf config {command}` and plat's catalogue differ");
    }
}
