//! Table dependency order from foreign keys plus user-declared dependencies.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::error::{Error, Result};
use crate::schema::{TableInfo, TableName};

/// Parent → child edges between the tables of one migration. Self-references are ignored (they
/// are satisfied within one table); edges to tables outside the migration are ignored too (the
/// parent is assumed present in the target already).
#[derive(Debug, Clone)]
pub struct DependencyGraph {
    graph: DiGraph<TableName, ()>,
    index: BTreeMap<TableName, NodeIndex>,
    order: Vec<TableName>,
}

impl DependencyGraph {
    /// Builds the graph. `extra` holds user-declared (child, parent) pairs. A cycle is an error
    /// of kind `Schema` naming the tables in it and the edge to defer to break it.
    pub fn build(tables: &[TableInfo], extra: &[(TableName, TableName)]) -> Result<Self> {
        let mut graph = DiGraph::new();
        let mut index = BTreeMap::new();
        for t in tables {
            index
                .entry(t.name.clone())
                .or_insert_with(|| graph.add_node(t.name.clone()));
        }
        let mut edges = BTreeSet::new();
        for t in tables {
            for p in t.parents() {
                edges.insert((p.clone(), t.name.clone()));
            }
        }
        for (child, parent) in extra {
            for n in [child, parent] {
                if !index.contains_key(n) {
                    return Err(Error::config(format!(
                        "declared dependency names table {n}, which is not part of the migration"
                    )));
                }
            }
            if child != parent {
                edges.insert((parent.clone(), child.clone()));
            }
        }
        for (p, c) in &edges {
            if let (Some(&a), Some(&b)) = (index.get(p), index.get(c)) {
                graph.add_edge(a, b, ());
            }
        }
        if let Some(cycle) = tarjan_scc(&graph).into_iter().find(|scc| scc.len() > 1) {
            let mut names: Vec<TableName> = cycle.iter().map(|&n| graph[n].clone()).collect();
            names.sort();
            let in_cycle: BTreeSet<&TableName> = names.iter().collect();
            // Suggest deferring one edge inside the cycle: the first in name order.
            let edge = edges
                .iter()
                .find(|(p, c)| in_cycle.contains(p) && in_cycle.contains(c));
            let list = names
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let hint = edge.map_or(String::new(), |(p, c)| {
                format!("; defer the foreign key from {c} to {p} (load {c} without it and add it after the data)")
            });
            return Err(Error::schema(format!(
                "foreign-key cycle among tables {list}{hint}"
            )));
        }
        // Deterministic topological order: Kahn's algorithm taking ready tables by name.
        let mut indegree: BTreeMap<NodeIndex, usize> = graph
            .node_indices()
            .map(|n| (n, graph.neighbors_directed(n, petgraph::Incoming).count()))
            .collect();
        let mut ready: BTreeSet<(TableName, NodeIndex)> = indegree
            .iter()
            .filter(|(_, d)| **d == 0)
            .map(|(n, _)| (graph[*n].clone(), *n))
            .collect();
        let mut order = Vec::with_capacity(graph.node_count());
        while let Some((name, n)) = ready.pop_first() {
            order.push(name);
            for c in graph.neighbors_directed(n, petgraph::Outgoing) {
                if let Some(d) = indegree.get_mut(&c) {
                    *d -= 1;
                    if *d == 0 {
                        ready.insert((graph[c].clone(), c));
                    }
                }
            }
        }
        Ok(DependencyGraph {
            graph,
            index,
            order,
        })
    }

    /// Every table, parents before children.
    pub fn order(&self) -> &[TableName] {
        &self.order
    }

    /// The direct parents of a table within the migration.
    pub fn parents(&self, table: &TableName) -> Vec<TableName> {
        self.neighbors(table, petgraph::Incoming)
    }

    /// The direct children of a table within the migration.
    pub fn children(&self, table: &TableName) -> Vec<TableName> {
        self.neighbors(table, petgraph::Outgoing)
    }

    fn neighbors(&self, table: &TableName, dir: petgraph::Direction) -> Vec<TableName> {
        let mut v: Vec<TableName> = self
            .index
            .get(table)
            .map(|&n| {
                self.graph
                    .neighbors_directed(n, dir)
                    .map(|m| self.graph[m].clone())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v.dedup();
        v
    }

    /// All tables that depend on `table`, directly or not.
    pub fn descendants(&self, table: &TableName) -> BTreeSet<TableName> {
        let mut out = BTreeSet::new();
        let mut stack = self.children(table);
        while let Some(t) = stack.pop() {
            if out.insert(t.clone()) {
                stack.extend(self.children(&t));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Column, DataType, ForeignKey, Schema};

    fn table(name: &str, parents: &[&str]) -> TableInfo {
        let schema = Schema::new(vec![Column::new("id", DataType::Int64)], &["id"]).unwrap();
        let mut t = TableInfo::new(TableName::bare(name), schema);
        t.foreign_keys = parents
            .iter()
            .map(|p| ForeignKey {
                definition: None,
                name: None,
                columns: vec!["id".into()],
                referenced_table: TableName::bare(*p),
                referenced_columns: vec!["id".into()],
            })
            .collect();
        t
    }

    #[test]
    fn sample_order() {
        let tables = vec![
            table("transactions", &["orders", "customers"]),
            table("orders", &["customers", "products"]),
            table("inventory", &["products"]),
            table("preferences", &["customers"]),
            table("customers", &[]),
            table("products", &[]),
            table("audit_logs", &[]),
            table("employees", &["employees"]),
        ];
        let g = DependencyGraph::build(&tables, &[]).unwrap();
        let pos = |n: &str| g.order().iter().position(|t| t.name == n).unwrap();
        assert!(pos("customers") < pos("orders"));
        assert!(pos("products") < pos("orders"));
        assert!(pos("orders") < pos("transactions"));
        assert!(pos("products") < pos("inventory"));
        assert_eq!(g.order().len(), 8, "self-reference is not a cycle");
        assert_eq!(g.parents(&TableName::bare("orders")).len(), 2);
        let d: Vec<String> = g
            .descendants(&TableName::bare("customers"))
            .iter()
            .map(|t| t.to_string())
            .collect();
        assert_eq!(d, ["orders", "preferences", "transactions"]);
    }

    #[test]
    fn cycles_name_tables_and_suggest_an_edge() {
        let tables = vec![
            table("a", &["c"]),
            table("b", &["a"]),
            table("c", &["b"]),
            table("d", &[]),
        ];
        let e = DependencyGraph::build(&tables, &[]).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("a, b, c"), "{msg}");
        assert!(msg.contains("defer the foreign key"), "{msg}");
        assert!(!msg.contains("d,"), "{msg}");
    }

    #[test]
    fn declared_dependencies_count() {
        let tables = vec![table("a", &[]), table("b", &[])];
        let g = DependencyGraph::build(&tables, &[(TableName::bare("a"), TableName::bare("b"))])
            .unwrap();
        assert_eq!(g.order(), &[TableName::bare("b"), TableName::bare("a")]);
        let e = DependencyGraph::build(&tables, &[(TableName::bare("a"), TableName::bare("zz"))])
            .unwrap_err();
        assert!(e.to_string().contains("zz"));
    }
}
