//! Executor settings, with the defaults documented on each field.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::retry::RetryConfig;
use crate::schema::{DataType, TableInfo, TableName};
use crate::sink::PrepareOptions;
use crate::source::TableFilter;

/// What kind of execution: a full copy, incremental or streamed changes, or a dry run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Mode {
    /// Discovery, chunk plan and sink preflight (reachability, permissions, schema
    /// compatibility), with no writes anywhere.
    DryRun,
    /// Every row, chunk by chunk (batch strategy; parallel when `parallelism > 1`). A stopped
    /// run of the same migration is continued, not restarted.
    Full,
    /// Rows changed since the stored watermark, by cursor column and key, with the upper bound
    /// fixed at the start; upserted into the target.
    Incremental(IncrementalConfig),
    /// Incremental runs repeated every `interval` until cancelled.
    Stream {
        /// Which cursor columns to follow.
        incremental: IncrementalConfig,
        /// Pause between runs.
        #[serde(with = "crate::config_serde::duration")]
        interval: Duration,
    },
}

impl Mode {
    /// Stable lowercase name, as the report and the audit log show it.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Mode::DryRun => "dry-run",
            Mode::Full => "full",
            Mode::Incremental(_) => "incremental",
            Mode::Stream { .. } => "stream",
        }
    }

    /// The incremental settings of an incremental or stream mode.
    pub fn incremental(&self) -> Option<&IncrementalConfig> {
        match self {
            Mode::Incremental(inc)
            | Mode::Stream {
                incremental: inc, ..
            } => Some(inc),
            Mode::DryRun | Mode::Full => None,
        }
    }
}

/// Which column is each table's change cursor, and how far before the watermark each run
/// starts reading again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IncrementalConfig {
    /// Cursor column for tables not listed in `per_table` (e.g. `updated_at`).
    pub cursor_column: Option<String>,
    /// Per-table cursor columns.
    #[serde(default)]
    pub per_table: BTreeMap<String, String>,
    /// How far before the previous run's watermark each run reads again (default none: from
    /// the watermark's cursor value itself, inclusive). Rows committed late with a cursor older
    /// than the watermark by more than this are never read, so set it above the longest
    /// transaction that writes the tables. Only date, timestamp and timestamptz cursors take a
    /// lookback ([`IncrementalConfig::check_tables`] refuses it on any other cursor type).
    #[serde(default, with = "crate::config_serde::opt_duration")]
    pub lookback: Option<Duration>,
}

impl IncrementalConfig {
    /// The cursor column for `table`, if any.
    pub fn column_for(&self, table: &TableName) -> Option<&str> {
        self.per_table
            .get(&table.to_string())
            .or(self.cursor_column.as_ref())
            .map(String::as_str)
    }

    /// Checks that every table can be read incrementally: it has a cursor column configured,
    /// that column exists, the table has a primary key, and the cursor's type takes the
    /// lookback when one is set. Every problem of every table is named in one error of kind
    /// `Config` (the executor calls this before an incremental run, the CLI's `plan` too).
    pub fn check_tables(&self, tables: &[TableInfo]) -> Result<()> {
        let mut lines = Vec::new();
        for t in tables {
            let mut problems = Vec::new();
            match self.column_for(&t.name) {
                None => problems
                    .push("no cursor column configured (set cursor_column or per_table)".into()),
                Some(col) => match t.schema.index_of(col) {
                    None => problems.push(format!("no column {col:?} (the cursor column)")),
                    Some(i) => {
                        let ty = &t.schema.columns[i].data_type;
                        let timed = matches!(
                            ty,
                            DataType::Date | DataType::Timestamp | DataType::TimestampTz
                        );
                        if self.lookback.is_some_and(|d| !d.is_zero()) && !timed {
                            problems.push(format!(
                                "cursor column {col:?} is {ty}, and a lookback applies to date, timestamp and timestamptz cursors only"
                            ));
                        }
                    }
                },
            }
            if t.schema.primary_key.is_empty() {
                problems.push("no primary key (incremental mode upserts by key)".into());
            }
            if !problems.is_empty() {
                lines.push(format!("{}: {}", t.name, problems.join("; ")));
            }
        }
        if lines.is_empty() {
            return Ok(());
        }
        Err(Error::config(format!(
            "incremental mode cannot read {} of the {} tables:\n  - {}",
            lines.len(),
            tables.len(),
            lines.join("\n  - ")
        )))
    }
}

/// What happens to a table whose parent failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnParentFailure {
    /// Skip it, with the parent's failure as the reason (the default).
    #[default]
    Skip,
    /// Load it anyway (the target may then hold orphans).
    Continue,
}

/// Post-load verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VerifyConfig {
    /// Compare count and canonical checksum per chunk range, source vs target (default true).
    pub checksums: bool,
    /// Keys per table compared field by field, source vs target (default 100; 0 turns it off).
    pub sample_size: usize,
    /// Also re-read the source after the load and compare it with the target range by range
    /// (default false). Without it the target is compared with the rows as they were read
    /// from the source and written (hashed in flight), which proves the copy; with it the
    /// comparison also proves the source still holds what was copied.
    pub recheck_source: bool,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            checksums: true,
            sample_size: 100,
            recheck_source: false,
        }
    }
}

/// Everything the executor needs to know besides the backends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExecutorConfig {
    /// Stable name of the migration: a later run with the same name continues a stopped one.
    pub migration: String,
    /// Execution type.
    pub mode: Mode,
    /// Which tables.
    pub tables: TableFilter,
    /// Chunks in flight at once across all tables (default 2).
    pub parallelism: usize,
    /// Target rows per chunk (default 100 000).
    pub chunk_rows: u64,
    /// Rows per batch streamed from source to sink (default 10 000; lowered automatically so
    /// that `parallelism` batches fit in the memory budget).
    pub batch_rows: usize,
    /// Bytes of rows in flight across all workers (default 512 MiB).
    pub memory_budget: u64,
    /// Longest one chunk attempt may take (default 5 min); past it the attempt is abandoned and
    /// retried as a timeout.
    #[serde(with = "crate::config_serde::duration")]
    pub chunk_timeout: Duration,
    /// Stop the run at the first chunk that fails for good (default false: other tables go on).
    pub stop_on_first_error: bool,
    /// What to do with children of a failed table.
    pub on_parent_failure: OnParentFailure,
    /// Retry policy.
    pub retry: RetryConfig,
    /// Verification.
    pub verify: VerifyConfig,
    /// How target tables are prepared.
    pub prepare: PrepareOptions,
    /// Extra (child, parent) dependencies beyond foreign keys.
    pub extra_dependencies: Vec<(TableName, TableName)>,
    /// Start a new run even when a stopped run of this migration exists with a different plan.
    pub force: bool,
    /// Copy everything again although the migration's latest run completed: a new run in which
    /// tables earlier runs created, found empty or replaced are replaced again (their foreign
    /// keys set aside and put back), and tables they merged into are merged again. A stopped
    /// run is continued, with or without it. Without it, running a completed migration again
    /// does nothing, and a run after deferrals migrates only the tables deferred or failed.
    pub refresh: bool,
    /// This worker's id in chunk leases (default: host-pid-random).
    pub worker_id: String,
    /// How long a worker's claim on a chunk lasts without renewal (default 30 s). A heartbeat
    /// renews it every third of that while the chunk runs, so a live worker keeps its chunk and
    /// a crashed worker's chunk is taken over by a resumed run soon after.
    #[serde(with = "crate::config_serde::duration")]
    pub lease: Duration,
    /// Average bandwidth to hold the run to, bytes per second (a token bucket shared by all
    /// workers); `None` runs unthrottled.
    pub bandwidth_target: Option<u64>,
    /// Never exceed this, bytes per second; the throttle runs at the target, which must not be
    /// above the cap (and at the cap when only a cap is given).
    pub bandwidth_cap: Option<u64>,
    /// The time window: with one, the run is planned before it starts (tables that do not fit
    /// are deferred by priority), and re-estimated as it goes.
    #[serde(default, with = "crate::config_serde::opt_duration")]
    pub window: Option<Duration>,
    /// Priority per table (`schema.table`), default IMPORTANT.
    pub priorities: BTreeMap<String, crate::plan::Priority>,
    /// How often the store's pause/cancel flag is polled (default 1 s).
    #[serde(with = "crate::config_serde::duration")]
    pub control_poll: Duration,
    /// Keep rejected rows' values in the checkpoint store (default false: their keys, the rule
    /// and the reason only).
    pub keep_rejected_values: bool,
    /// Limits on rejected rows per table (`schema.table` or `table`; `*` for every table not
    /// named), beyond which the table fails.
    pub reject_limits: BTreeMap<String, RejectLimits>,
}

/// How many rejected rows a table may have before it fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RejectLimits {
    /// At most this many (0: the first rejected row fails the table).
    pub max_rows: Option<u64>,
    /// At most this share of the table's rows written plus rejected (0.01 = 1 %), judged once
    /// every chunk is written.
    pub max_ratio: Option<f64>,
}

impl RejectLimits {
    /// Why `rejected` rows out of `read` break the limits, if they do (`done`: every chunk
    /// is written, so the ratio is final).
    pub fn broken(&self, rejected: u64, read: u64, done: bool) -> Option<String> {
        if let Some(max) = self.max_rows {
            if rejected > max {
                return Some(format!(
                    "{rejected} rejected rows exceed max_rejected_rows = {max}"
                ));
            }
        }
        match self.max_ratio {
            Some(max) if done && read > 0 && rejected as f64 / read as f64 > max => Some(format!(
                "{rejected} of {read} rows rejected ({:.3} %) exceed max_rejected_ratio = {:.3} %",
                100.0 * rejected as f64 / read as f64,
                100.0 * max
            )),
            _ => None,
        }
    }
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            migration: "migration".into(),
            mode: Mode::Full,
            tables: TableFilter::default(),
            parallelism: 2,
            chunk_rows: 100_000,
            batch_rows: 10_000,
            memory_budget: 512 << 20,
            chunk_timeout: Duration::from_secs(300),
            stop_on_first_error: false,
            on_parent_failure: OnParentFailure::Skip,
            retry: RetryConfig::default(),
            verify: VerifyConfig::default(),
            prepare: PrepareOptions::default(),
            extra_dependencies: Vec::new(),
            force: false,
            refresh: false,
            worker_id: default_worker_id(),
            lease: Duration::from_secs(30),
            bandwidth_target: None,
            bandwidth_cap: None,
            window: None,
            priorities: BTreeMap::new(),
            control_poll: Duration::from_secs(1),
            keep_rejected_values: false,
            reject_limits: BTreeMap::new(),
        }
    }
}

impl ExecutorConfig {
    /// The priority of a table.
    pub fn priority(&self, t: &TableName) -> crate::plan::Priority {
        self.priorities
            .get(&t.to_string())
            .or_else(|| self.priorities.get(&t.name))
            .copied()
            .unwrap_or_default()
    }

    /// The rejected-row limits of a table: its own, else `*`'s, else none.
    pub fn reject_limits(&self, t: &TableName) -> RejectLimits {
        self.reject_limits
            .get(&t.to_string())
            .or_else(|| self.reject_limits.get(&t.name))
            .or_else(|| self.reject_limits.get("*"))
            .copied()
            .unwrap_or_default()
    }

    /// The throttle rate, if any: the target, else the cap.
    pub fn throttle_rate(&self) -> Option<u64> {
        self.bandwidth_target.or(self.bandwidth_cap)
    }
}

fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
    format!("{host}-{}-{:04x}", std::process::id(), fastrand::u16(..))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Column, Schema};

    fn table(name: &str, columns: &[(&str, DataType)], key: &[&str]) -> TableInfo {
        let cols = columns
            .iter()
            .map(|(n, t)| Column::new(*n, t.clone()))
            .collect();
        TableInfo::new(
            TableName::new("public", name),
            Schema::new(cols, key).unwrap(),
        )
    }

    #[test]
    fn check_tables_names_every_table_it_cannot_read() {
        let tables = [
            table(
                "good",
                &[
                    ("id", DataType::Int64),
                    ("updated_at", DataType::TimestampTz),
                ],
                &["id"],
            ),
            table("no_cursor_a", &[("id", DataType::Int64)], &["id"]),
            table("no_cursor_b", &[("id", DataType::Int64)], &["id"]),
            table(
                "keyless",
                &[("id", DataType::Int64), ("updated_at", DataType::Date)],
                &[],
            ),
            table(
                "versioned",
                &[("id", DataType::Int64), ("version", DataType::Int64)],
                &["id"],
            ),
        ];
        let mut inc = IncrementalConfig {
            cursor_column: Some("updated_at".into()),
            ..Default::default()
        };
        inc.per_table
            .insert("public.versioned".into(), "version".into());
        let e = inc.check_tables(&tables).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Config);
        let msg = e.to_string();
        for want in [
            "3 of the 5 tables",
            "public.no_cursor_a: no column \"updated_at\" (the cursor column)",
            "public.no_cursor_b: no column \"updated_at\" (the cursor column)",
            "public.keyless: no primary key",
        ] {
            assert!(msg.contains(want), "{want:?} missing from: {msg}");
        }
        assert!(
            !msg.contains("public.good") && !msg.contains("public.versioned"),
            "{msg}"
        );
        // An integer cursor takes no lookback: refused, naming table and column.
        inc.lookback = Some(Duration::from_secs(300));
        let msg = inc.check_tables(&tables).unwrap_err().to_string();
        assert!(
            msg.contains("4 of the 5 tables")
                && msg.contains("public.versioned: cursor column \"version\" is int64")
                && msg.contains("lookback"),
            "{msg}"
        );
        assert!(inc.check_tables(&tables[..1]).is_ok());
        // No cursor column at all.
        let msg = IncrementalConfig::default()
            .check_tables(&tables[..1])
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("public.good: no cursor column configured"),
            "{msg}"
        );
    }
}
