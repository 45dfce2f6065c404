//! The planning manifest: table names, rows, sizes in MB, dependencies, and an optional priority
//! per table.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{PlanTable, Priority};
use crate::error::{Error, Result};
use crate::schema::TableName;

/// One manifest table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestTable {
    /// Table name.
    pub name: String,
    /// Rows.
    pub rows: u64,
    /// Size in MB (10^6 bytes).
    pub size_mb: f64,
    /// CRITICAL, IMPORTANT (default) or DEFERRABLE.
    #[serde(default)]
    pub priority: Option<Priority>,
}

/// The manifest file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Manifest {
    /// Where from (informational).
    #[serde(default)]
    pub source: Option<String>,
    /// Where to (informational).
    #[serde(default)]
    pub destination: Option<String>,
    /// The tables.
    pub tables: Vec<ManifestTable>,
    /// Total size (informational; recomputed).
    #[serde(default)]
    pub total_size_mb: Option<f64>,
    /// Table → tables it depends on.
    #[serde(default)]
    pub dependencies: BTreeMap<String, Vec<String>>,
}

impl Manifest {
    /// Parses a manifest; `origin` (a file name) is named in errors.
    pub fn parse(json: &str, origin: &str) -> Result<Self> {
        let m: Manifest = serde_json::from_str(json).map_err(|e| {
            Error::with_source(crate::ErrorKind::Config, format!("manifest {origin}"), e)
        })?;
        for (table, deps) in &m.dependencies {
            for name in std::iter::once(table).chain(deps) {
                if !m.tables.iter().any(|t| &t.name == name) {
                    return Err(Error::config(format!("manifest {origin}: dependencies name table {name:?}, which is not in \"tables\"")));
                }
            }
        }
        Ok(m)
    }

    /// The planner's view, with `priorities` (e.g. from a constraints file) overriding the
    /// manifest's own.
    pub fn tables(&self, priorities: &BTreeMap<String, Priority>) -> Vec<PlanTable> {
        self.tables
            .iter()
            .map(|t| PlanTable {
                name: TableName::parse(&t.name),
                rows: t.rows,
                bytes: (t.size_mb * 1e6).round() as u64,
                depends_on: self
                    .dependencies
                    .get(&t.name)
                    .into_iter()
                    .flatten()
                    .map(|d| TableName::parse(d))
                    .collect(),
                priority: priorities
                    .get(&t.name)
                    .copied()
                    .or(t.priority)
                    .unwrap_or_default(),
                measured_bytes_per_sec: None,
            })
            .collect()
    }
}
