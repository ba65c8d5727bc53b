//! The dependency graph of a resource graph, as KRO orders it.
//!
//! Nodes are resources by declaration index; an edge runs from a resource to each resource it
//! depends on. Every ordering breaks ties by declaration index, as KRO's `dag` package does,
//! so results are deterministic and equal to KRO's.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, VecDeque},
};

use foldhash::{HashSet, HashSetExt};
use petgraph::{
    Direction,
    algo::tarjan_scc,
    graph::{DiGraph, NodeIndex},
};

/// A directed graph of resources by declaration index; edges point at dependencies.
#[derive(Debug, Clone, Default)]
pub(crate) struct Dag {
    graph: DiGraph<(), (), u32>,
    edges: HashSet<(u32, u32)>,
}

impl Dag {
    /// A graph of `nodes` resources and no edges.
    pub(crate) fn with_nodes(nodes: usize) -> Self {
        let mut graph = DiGraph::with_capacity(nodes, nodes * 2);
        for _ in 0..nodes {
            graph.add_node(());
        }
        Self {
            graph,
            edges: HashSet::with_capacity(nodes * 2),
        }
    }

    /// The number of resources.
    pub(crate) fn len(&self) -> usize {
        self.graph.node_count()
    }

    /// The number of distinct dependencies.
    pub(crate) fn edge_count(&self) -> usize {
        self.graph.edge_count()
    }

    /// Records that `dependent` depends on `dependency`; repeated edges are kept once.
    pub(crate) fn depend(&mut self, dependent: usize, dependency: usize) {
        let key = (index(dependent), index(dependency));
        if self.edges.insert(key) {
            self.graph
                .add_edge(NodeIndex::new(dependent), NodeIndex::new(dependency), ());
        }
    }

    /// What `node` depends on, in declaration order.
    pub(crate) fn dependencies(&self, node: usize) -> Vec<usize> {
        self.neighbours(node, Direction::Outgoing)
    }

    /// What depends on `node`, in declaration order.
    pub(crate) fn dependents(&self, node: usize) -> Vec<usize> {
        self.neighbours(node, Direction::Incoming)
    }

    fn neighbours(&self, node: usize, direction: Direction) -> Vec<usize> {
        let mut found: Vec<usize> = self
            .graph
            .neighbors_directed(NodeIndex::new(node), direction)
            .map(NodeIndex::index)
            .collect();
        found.sort_unstable();
        found
    }

    /// How many dependencies each resource has.
    pub(crate) fn dependency_counts(&self) -> Vec<usize> {
        self.degrees(Direction::Outgoing)
    }

    /// How many resources depend on each resource.
    pub(crate) fn dependent_counts(&self) -> Vec<usize> {
        self.degrees(Direction::Incoming)
    }

    fn degrees(&self, direction: Direction) -> Vec<usize> {
        let mut degrees = vec![0; self.len()];
        for edge in self.graph.raw_edges() {
            let node = match direction {
                Direction::Outgoing => edge.source(),
                Direction::Incoming => edge.target(),
            };
            degrees[node.index()] += 1;
        }
        degrees
    }

    /// KRO's topological order: Kahn's algorithm taking, among the resources whose
    /// dependencies are all placed, the one declared first. `None` when there is a cycle.
    pub(crate) fn order(&self) -> Option<Vec<usize>> {
        let mut remaining = self.degrees(Direction::Outgoing);
        let mut ready: BinaryHeap<Reverse<usize>> = remaining
            .iter()
            .enumerate()
            .filter(|(_, n)| **n == 0)
            .map(|(node, _)| Reverse(node))
            .collect();
        let mut order = Vec::with_capacity(self.len());
        while let Some(Reverse(node)) = ready.pop() {
            order.push(node);
            for dependent in self
                .graph
                .neighbors_directed(NodeIndex::new(node), Direction::Incoming)
            {
                let left = &mut remaining[dependent.index()];
                *left -= 1;
                if *left == 0 {
                    ready.push(Reverse(dependent.index()));
                }
            }
        }
        (order.len() == self.len()).then_some(order)
    }

    /// Layers peeled off one whole layer at a time, each layer unlocking its neighbours in
    /// `direction`: with `Outgoing` (towards dependencies), the resources nothing depends on
    /// come first (KRO's reverse topological layers); with `Incoming` (towards dependents),
    /// the resources that depend on nothing come first (earliest-start levels). Each layer in declaration order; `None` when
    /// there is a cycle.
    fn layers(&self, direction: Direction) -> Option<Vec<Vec<usize>>> {
        let mut remaining = self.degrees(direction.opposite());
        let mut layer: Vec<usize> = (0..self.len()).filter(|n| remaining[*n] == 0).collect();
        let mut layers = Vec::new();
        let mut placed = 0;
        while !layer.is_empty() {
            placed += layer.len();
            let mut next = Vec::new();
            for node in &layer {
                for unlocked in self
                    .graph
                    .neighbors_directed(NodeIndex::new(*node), direction)
                {
                    let left = &mut remaining[unlocked.index()];
                    *left -= 1;
                    if *left == 0 {
                        next.push(unlocked.index());
                    }
                }
            }
            next.sort_unstable();
            layers.push(std::mem::replace(&mut layer, next));
        }
        (placed == self.len()).then_some(layers)
    }

    /// KRO's apply waves: the reverse topological layers (peeled from the resources nothing
    /// depends on) in apply order, so each resource is applied as late as its dependents
    /// allow. Deletion runs them last wave first.
    pub(crate) fn waves(&self) -> Option<Vec<Vec<usize>>> {
        let mut layers = self.layers(Direction::Outgoing)?;
        layers.reverse();
        Some(layers)
    }

    /// Earliest-start levels: level 0 depends on nothing; a resource sits one level after its
    /// latest dependency.
    pub(crate) fn levels(&self) -> Option<Vec<Vec<usize>>> {
        self.layers(Direction::Incoming)
    }

    /// One cycle per strongly connected component, as a path that starts and ends at the
    /// component's first-declared resource and follows dependencies (`a -> b` means `a`
    /// depends on `b`): the shortest such cycle. Components in declaration order.
    pub(crate) fn cycles(&self) -> Vec<Vec<usize>> {
        let mut cycles: Vec<Vec<usize>> = Vec::new();
        for component in tarjan_scc(&self.graph) {
            let looped =
                component.len() == 1 && self.graph.contains_edge(component[0], component[0]);
            if component.len() < 2 && !looped {
                continue;
            }
            let members: HashSet<usize> = component.iter().map(|n| n.index()).collect();
            let start = component
                .iter()
                .map(|n| n.index())
                .min()
                .unwrap_or_default();
            cycles.push(self.shortest_cycle(start, &members));
        }
        cycles.sort_unstable_by_key(|cycle| cycle[0]);
        cycles
    }

    /// Breadth-first from `start` along dependencies inside `members` back to `start`.
    fn shortest_cycle(&self, start: usize, members: &HashSet<usize>) -> Vec<usize> {
        let mut came_from: Vec<Option<usize>> = vec![None; self.len()];
        let mut queue = VecDeque::from([start]);
        while let Some(node) = queue.pop_front() {
            for next in self.dependencies(node) {
                if next == start {
                    let mut walk = Vec::new();
                    let mut at = node;
                    while at != start {
                        walk.push(at);
                        at = came_from[at].unwrap_or(start);
                    }
                    walk.reverse();
                    let mut path = Vec::with_capacity(walk.len() + 2);
                    path.push(start);
                    path.extend(walk);
                    path.push(start);
                    return path;
                }
                if members.contains(&next) && came_from[next].is_none() && next != start {
                    came_from[next] = Some(node);
                    queue.push_back(next);
                }
            }
        }
        vec![start, start]
    }

    /// The longest chain of dependencies, root first: the resources that bound how long an
    /// apply must take. Ties go to the chain whose resources were declared first. `None` when
    /// there is a cycle.
    pub(crate) fn critical_path(&self) -> Option<Vec<usize>> {
        let order = self.order()?;
        let mut length = vec![0_usize; self.len()];
        let mut via: Vec<Option<usize>> = vec![None; self.len()];
        for node in order {
            for dependency in self.dependencies(node) {
                if length[dependency] + 1 > length[node] {
                    length[node] = length[dependency] + 1;
                    via[node] = Some(dependency);
                }
            }
        }
        let Some(mut end) = (0..self.len()).max_by_key(|n| (length[*n], Reverse(*n))) else {
            return Some(Vec::new());
        };
        let mut path = vec![end];
        while let Some(previous) = via[end] {
            path.push(previous);
            end = previous;
        }
        path.reverse();
        Some(path)
    }
}

fn index(node: usize) -> u32 {
    u32::try_from(node).expect("resource graphs hold fewer than 2^32 resources")
}

#[cfg(test)]
mod tests {
    use super::Dag;

    fn dag(nodes: usize, edges: &[(usize, usize)]) -> Dag {
        let mut dag = Dag::with_nodes(nodes);
        for (dependent, dependency) in edges {
            dag.depend(*dependent, *dependency);
        }
        dag
    }

    #[test]
    fn order_prefers_declaration_order_among_ready_resources() {
        // 0 depends on 2; 1 is free; 3 depends on 0 and 1.
        let graph = dag(4, &[(0, 2), (3, 0), (3, 1)]);
        assert_eq!(graph.order(), Some(vec![1, 2, 0, 3]));
        assert_eq!(graph.edge_count(), 3);
    }

    #[test]
    fn repeated_edges_count_once() {
        let graph = dag(2, &[(1, 0), (1, 0)]);
        assert_eq!(graph.edge_count(), 1);
        assert_eq!(graph.dependencies(1), vec![0]);
        assert_eq!(graph.dependents(0), vec![1]);
    }

    #[test]
    fn waves_apply_each_resource_as_late_as_its_dependents_allow() {
        // 0 <- 1 <- 2, and 3 depends on 0 only: 3 is a leaf, so it waits for the last wave.
        let graph = dag(4, &[(1, 0), (2, 1), (3, 0)]);
        assert_eq!(graph.waves(), Some(vec![vec![0], vec![1], vec![2, 3]]));
        assert_eq!(graph.levels(), Some(vec![vec![0], vec![1, 3], vec![2]]));
    }

    #[test]
    fn independent_resources_share_one_wave() {
        let graph = dag(3, &[]);
        assert_eq!(graph.waves(), Some(vec![vec![0, 1, 2]]));
        assert_eq!(graph.levels(), Some(vec![vec![0, 1, 2]]));
        assert_eq!(graph.critical_path(), Some(vec![0]));
    }

    #[test]
    fn cycles_are_reported_per_component_from_the_first_declared_resource() {
        // 1 -> 2 -> 3 -> 1 and a separate 4 <-> 5, plus 0 hanging off the first.
        let graph = dag(6, &[(0, 1), (1, 2), (2, 3), (3, 1), (4, 5), (5, 4)]);
        assert_eq!(graph.order(), None);
        assert_eq!(graph.waves(), None);
        assert_eq!(graph.levels(), None);
        assert_eq!(graph.critical_path(), None);
        assert_eq!(graph.cycles(), vec![vec![1, 2, 3, 1], vec![4, 5, 4]]);
    }

    #[test]
    fn the_shortest_cycle_through_the_first_resource_is_chosen() {
        // 0 -> 1 -> 2 -> 0 and the shortcut 0 -> 2.
        let graph = dag(3, &[(0, 1), (1, 2), (2, 0), (0, 2)]);
        assert_eq!(graph.cycles(), vec![vec![0, 2, 0]]);
    }

    #[test]
    fn a_self_loop_is_a_cycle() {
        let graph = dag(2, &[(1, 1)]);
        assert_eq!(graph.cycles(), vec![vec![1, 1]]);
    }

    #[test]
    fn critical_path_is_the_longest_chain() {
        // 0 <- 1 <- 3 and 2 <- 3; the longest chain is 0, 1, 3.
        let graph = dag(4, &[(1, 0), (3, 1), (3, 2)]);
        assert_eq!(graph.critical_path(), Some(vec![0, 1, 3]));
        assert_eq!(dag(0, &[]).critical_path(), Some(vec![]));
    }
}
