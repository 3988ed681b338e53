//! The service dependency graph: start waves, build and migration order, cycles; and what a
//! dependency edge means ([`Condition`]). It knows services only by [`ServiceId`]: the manifest,
//! above it, maps ids to services.
//!
//! Architecture invariant: every command that walks services in order asks this graph;
//! nothing else sorts services by their dependencies.

use std::collections::VecDeque;
use std::fmt;

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What a dependent waits for before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// The dependency's container is running.
    Started,
    /// The dependency passes its health check.
    Healthy,
    /// The dependency ran to completion with exit code 0 (a one-off job).
    Completed,
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Condition::Started => "started",
            Condition::Healthy => "healthy",
            Condition::Completed => "completed",
        })
    }
}

/// A service, by its place in the manifest: what the graph's nodes, waves and edges name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId(usize);

impl ServiceId {
    /// The `index`th service of the manifest.
    pub fn new(index: usize) -> ServiceId {
        ServiceId(index)
    }

    /// Its place in the manifest's list of services.
    pub fn index(self) -> usize {
        self.0
    }
}

/// Services as nodes, an edge from each dependency to its dependent.
#[derive(Debug, Clone)]
pub struct ServiceGraph {
    graph: DiGraph<usize, Condition>,
    waves: Vec<Vec<ServiceId>>,
}

/// A dependency edge: `dependent` waits for `dependency` to reach `condition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    /// The service that waits.
    pub dependent: ServiceId,
    /// The service waited for.
    pub dependency: ServiceId,
    /// What it waits for.
    pub condition: Condition,
}

impl ServiceGraph {
    /// Builds the graph of `names.len()` services; fails with every cycle, each as the list of
    /// services where each depends on the next and the last on the first.
    pub fn new(names: &[&str], edges: &[Edge]) -> Result<ServiceGraph, Vec<Vec<ServiceId>>> {
        let mut graph = DiGraph::with_capacity(names.len(), edges.len());
        for index in 0..names.len() {
            graph.add_node(index);
        }
        for edge in edges {
            graph.add_edge(NodeIndex::new(edge.dependency.0), NodeIndex::new(edge.dependent.0), edge.condition);
        }
        let cycles = find_cycles(&graph, names);
        if !cycles.is_empty() {
            return Err(cycles.into_iter().map(|cycle| cycle.into_iter().map(ServiceId).collect()).collect());
        }
        let waves = layer(&graph, names).into_iter().map(|wave| wave.into_iter().map(ServiceId).collect()).collect();
        Ok(ServiceGraph { graph, waves })
    }

    /// Services grouped in waves: each wave depends only on earlier waves; names sorted within one.
    pub fn waves(&self) -> &[Vec<ServiceId>] {
        &self.waves
    }

    /// What `service` depends on, with conditions, in manifest order.
    pub fn dependencies(&self, service: ServiceId) -> Vec<(ServiceId, Condition)> {
        let mut deps: Vec<_> = self
            .graph
            .edges_directed(NodeIndex::new(service.0), Direction::Incoming)
            .map(|edge| (ServiceId(edge.source().index()), *edge.weight()))
            .collect();
        deps.sort_by_key(|(id, _)| *id);
        deps
    }

    /// Services nothing else depends on: the tops of the tree.
    pub fn roots(&self) -> Vec<ServiceId> {
        self.graph
            .node_indices()
            .filter(|node| self.graph.neighbors_directed(*node, Direction::Outgoing).next().is_none())
            .map(|node| ServiceId(node.index()))
            .collect()
    }
}

use petgraph::visit::EdgeRef;

/// Kahn's algorithm, one layer at a time.
fn layer(graph: &DiGraph<usize, Condition>, names: &[&str]) -> Vec<Vec<usize>> {
    let mut remaining: Vec<usize> =
        graph.node_indices().map(|node| graph.neighbors_directed(node, Direction::Incoming).count()).collect();
    let mut wave: Vec<usize> = (0..remaining.len()).filter(|&i| remaining[i] == 0).collect();
    let mut waves = Vec::new();
    while !wave.is_empty() {
        wave.sort_by_key(|&index| names[index]);
        let mut next = Vec::new();
        for &index in &wave {
            for dependent in graph.neighbors_directed(NodeIndex::new(index), Direction::Outgoing) {
                remaining[dependent.index()] -= 1;
                if remaining[dependent.index()] == 0 {
                    next.push(dependent.index());
                }
            }
        }
        waves.push(std::mem::replace(&mut wave, next));
    }
    waves
}

/// One cycle per strongly connected component that has one, starting at its first name.
fn find_cycles(graph: &DiGraph<usize, Condition>, names: &[&str]) -> Vec<Vec<usize>> {
    let mut cycles = Vec::new();
    for component in petgraph::algo::tarjan_scc(graph) {
        let start = *component.iter().min_by_key(|node| names[node.index()]).expect("non-empty");
        let self_loop = graph.contains_edge(start, start);
        if component.len() == 1 && !self_loop {
            continue;
        }
        if self_loop {
            cycles.push(vec![start.index()]);
            continue;
        }
        // Breadth-first along "depends on" (edges reversed) inside the component, back to start.
        let mut came_from = vec![None; graph.node_count()];
        let mut queue = VecDeque::from([start]);
        'search: while let Some(node) = queue.pop_front() {
            let mut deps: Vec<NodeIndex> =
                graph.neighbors_directed(node, Direction::Incoming).filter(|n| component.contains(n)).collect();
            deps.sort_by_key(|n| names[n.index()]);
            for dep in deps {
                if dep == start {
                    came_from[start.index()] = Some(node);
                    break 'search;
                }
                if came_from[dep.index()].is_none() {
                    came_from[dep.index()] = Some(node);
                    queue.push_back(dep);
                }
            }
        }
        let mut cycle = Vec::new();
        let mut node = came_from[start.index()].expect("a component with an edge has a cycle");
        while node != start {
            cycle.push(node.index());
            node = came_from[node.index()].expect("every visited node has a predecessor");
        }
        cycle.push(start.index());
        cycle.reverse();
        cycles.push(cycle);
    }
    cycles.sort();
    cycles
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(dependent: usize, dependency: usize) -> Edge {
        Edge { dependent: ServiceId(dependent), dependency: ServiceId(dependency), condition: Condition::Healthy }
    }

    fn ids(indices: &[usize]) -> Vec<ServiceId> {
        indices.iter().copied().map(ServiceId).collect()
    }

    #[test]
    fn waves_put_dependencies_first() {
        // 0 gateway -> 1 orders -> 2 users; gateway -> users; 3 stands alone.
        let names = ["gateway", "orders", "users", "audit"];
        let graph = ServiceGraph::new(&names, &[edge(0, 1), edge(1, 2), edge(0, 2)]).unwrap();
        assert_eq!(graph.waves(), [ids(&[3, 2]), ids(&[1]), ids(&[0])]);
        assert_eq!(graph.roots(), ids(&[0, 3]));
        assert_eq!(
            graph.dependencies(ServiceId(0)),
            [(ServiceId(1), Condition::Healthy), (ServiceId(2), Condition::Healthy)]
        );
    }

    #[test]
    fn cycles_are_reported_whole() {
        let names = ["a", "b", "c", "d"];
        // a -> b -> c -> a, and d -> d.
        let cycles = ServiceGraph::new(&names, &[edge(0, 1), edge(1, 2), edge(2, 0), edge(3, 3)]).unwrap_err();
        assert_eq!(cycles, [ids(&[0, 1, 2]), ids(&[3])]);
    }
}
