//! The run report: a serde struct whose JSON field names are the stable output format tools
//! read, and a Markdown rendering for people. Keys and counts only, never row values.
//!
//! Longer than 600 lines because the report's types and their Markdown rendering are kept
//! together: a field and the way it is shown change in one place.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{RunStatus, TableStatus};
use crate::schema::TableName;

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationReport {
    /// Execution id (the run id; kept across resumes).
    pub execution_id: String,
    /// Migration name.
    pub migration: String,
    /// Final status.
    pub status: RunStatus,
    /// `dry-run`, `full`, `incremental`, `stream`.
    pub execution_type: String,
    /// Whether this execution continued a stopped run.
    pub resumed: bool,
    /// Hash of the plan the run executed.
    pub plan_hash: String,
    /// Timing.
    pub timing: Timing,
    /// Progress totals.
    pub progress: ProgressSummary,
    /// Results by table, in dependency order.
    pub results: Vec<TableResult>,
    /// Verification outcome.
    pub verification: Verification,
    /// Errors by type, with samples.
    pub errors: ErrorSummary,
    /// What resume reconciliation found and redid.
    pub reconciliation: Vec<String>,
    /// Dry run findings (empty unless dry run).
    pub preflight: Vec<PreflightResult>,
    /// Audit events by action.
    pub audit_summary: AuditSummary,
    /// How existing target tables differ from the source (dry runs).
    #[serde(default)]
    pub drift: Vec<crate::plan::Drift>,
    /// Tables left for a later run, by the plan or mid-run, with reasons.
    #[serde(default)]
    pub deferred: Vec<crate::plan::Deferral>,
    /// Planned against actual seconds per phase (when the run was planned against a window).
    #[serde(default)]
    pub plan_vs_actual: Vec<PhaseActual>,
    /// A whole-table verification run after the migration (`migrate verify`), when there was
    /// one since the report was stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub later_verification: Option<crate::executor::LaterVerification>,
    /// Schema objects the run created in the target (types, sequences, constraints, views, …)
    /// and the ones it did not, with the reason; as recorded when each was handled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema_objects: Vec<crate::objects::ObjectOutcome>,
}

/// One phase of the plan, planned and as it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseActual {
    /// Phase number.
    pub phase: usize,
    /// Tables in it.
    pub tables: Vec<String>,
    /// Planned seconds.
    pub planned_secs: f64,
    /// Seconds from its first chunk start to its last chunk end, if it ran.
    pub actual_secs: Option<f64>,
}

/// When it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// When the run was first started (before any resume).
    pub started_at: DateTime<Utc>,
    /// When this execution ended.
    pub completed_at: DateTime<Utc>,
    /// Wall seconds of this execution.
    pub duration_seconds: f64,
    /// Seconds spent paused in this execution.
    pub paused_duration_seconds: f64,
}

/// Totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgressSummary {
    /// Rows the plan expected.
    pub total_records: u64,
    /// Rows written by completed chunks (all executions of the run).
    pub processed_records: u64,
    /// Rows rejected by transforms.
    pub failed_records: u64,
    /// Rows in chunks skipped.
    pub skipped_records: u64,
    /// Rows written by this execution.
    pub records_this_execution: u64,
    /// Chunks in the plan.
    pub total_batches: u64,
    /// Chunks completed.
    pub completed_batches: u64,
    /// Chunks found completed at start and neither re-read nor re-written.
    pub batches_already_done: u64,
    /// Bytes written by this execution.
    pub bytes_this_execution: u64,
    /// Rows per second in this execution.
    pub records_per_second: f64,
    /// Retries taken.
    pub retries: u64,
    /// Calls to source, sink and store.
    pub api_calls: u64,
    /// Peak bytes in flight under the memory budget.
    pub peak_in_flight_bytes: u64,
    /// The memory budget.
    pub memory_budget_bytes: u64,
    /// Percentage of expected rows done.
    pub percent_complete: f64,
}

/// One table's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableResult {
    /// The table.
    pub table: TableName,
    /// Final status.
    pub status: TableStatus,
    /// Rows written (completed chunks).
    pub rows: u64,
    /// Rows expected.
    pub total_rows: u64,
    /// Bytes written: batches' in-memory size, or their wire size where rows went through
    /// undecoded (see [`crate::encoded`]).
    pub bytes: u64,
    /// Chunks completed / in the plan.
    pub chunks_completed: u64,
    /// Chunks in the plan.
    pub chunks_total: u64,
    /// Attempts over all chunks.
    pub attempts: u64,
    /// Seconds from first chunk start to last chunk end.
    pub duration_seconds: Option<f64>,
    /// Seconds per phase in the execution that made the report (not in a report rebuilt from
    /// the store, which keeps no phase timings).
    #[serde(default)]
    pub phase_seconds: Option<crate::executor::PhaseSeconds>,
    /// Why it failed, was skipped or deferred.
    pub reason: Option<String>,
}

/// Verification outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// Every table completed and no check that ran found a difference.
    pub passed: bool,
    /// Completed tables no check ran on (verification off, nothing to compare): their result
    /// is "not verified", not "passed".
    #[serde(default)]
    pub not_verified: Vec<TableName>,
    /// Per table.
    pub tables: Vec<TableVerification>,
}

/// One table's verification.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableVerification {
    /// The table.
    pub table: TableName,
    /// Rows in the source over the migrated ranges (when compared).
    pub source_count: Option<u64>,
    /// Rows in the target over the migrated ranges (when counted).
    pub target_count: Option<u64>,
    /// Counts matched for every chunk; `None` when they were not compared.
    pub count_match: Option<bool>,
    /// Checksums matched for every chunk; `None` when they were not compared.
    pub checksum_match: Option<bool>,
    /// Why the range counts and checksums were not compared, when they were not.
    #[serde(default)]
    pub not_compared: Option<String>,
    /// What the target's ranges were compared with, when they were.
    #[serde(default)]
    pub compared_with: Option<ComparedWith>,
    /// Chunks that did not match, with what differed.
    pub mismatches: Vec<ChunkMismatch>,
    /// Field-by-field comparison of sampled keys.
    pub sample: Option<SampleVerification>,
}

impl TableVerification {
    /// No check that ran found a difference.
    pub fn passed(&self) -> bool {
        self.count_match != Some(false)
            && self.checksum_match != Some(false)
            && self
                .sample
                .as_ref()
                .is_none_or(|s| s.mismatched_records == 0)
    }

    /// Some check ran: ranges compared, or a sample of rows compared field by field.
    pub fn checked(&self) -> bool {
        self.checksum_match.is_some()
            || self
                .sample
                .as_ref()
                .is_some_and(|s| s.skipped.is_none() && s.sample_size > 0)
    }
}

/// What the target's key ranges were compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComparedWith {
    /// The rows as the run read them from the source and wrote them, hashed in flight: proves
    /// the target holds exactly what the source's snapshot held for each range when it was
    /// copied (chunks written before verification was on are compared with a re-read).
    RowsAsCopied,
    /// The source read again after the load (`verify.recheck_source`): also proves the source
    /// still holds what the target holds.
    SourceReread,
}

impl ComparedWith {
    /// As the report's text says it.
    pub fn describe(self) -> &'static str {
        match self {
            ComparedWith::RowsAsCopied => "the rows as copied",
            ComparedWith::SourceReread => "the source re-read after the load",
        }
    }
}

/// A chunk whose target differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkMismatch {
    /// Chunk index.
    pub chunk: u32,
    /// What differed (counts and checksums, never values).
    pub detail: String,
}

/// Sample verification: keys compared field by field, source against target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SampleVerification {
    /// Keys compared.
    pub sample_size: u64,
    /// Rows equal in every field.
    pub matched_records: u64,
    /// Rows that differ or are missing.
    pub mismatched_records: u64,
    /// Which key and field differed.
    pub mismatches: Vec<SampleMismatch>,
    /// Why sampling was not done, if it was not.
    pub skipped: Option<String>,
}

/// One differing sampled row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleMismatch {
    /// The row's key.
    pub record_id: String,
    /// The differing column, or `(missing in target)`.
    pub field: String,
}

/// Errors by type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorSummary {
    /// Failed chunks plus run-stopping errors.
    pub total: u64,
    /// Counts by error kind.
    pub by_type: BTreeMap<String, u64>,
    /// Up to 20 samples.
    pub sample_errors: Vec<ErrorSample>,
}

/// One error sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorSample {
    /// Table, if any.
    pub table: Option<TableName>,
    /// Chunk (named `batch_number` in the report format), if any.
    pub batch_number: Option<u32>,
    /// Error kind.
    pub error_type: String,
    /// Message (names keys, never values).
    pub message: String,
    /// Whether a retry could succeed.
    pub retriable: bool,
    /// The key of the row, for a rejected row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
}

/// Dry-run result for one table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreflightResult {
    /// The table.
    pub table: TableName,
    /// Chunks the run would process.
    pub chunks: u64,
    /// Rows estimated.
    pub estimated_rows: u64,
    /// The target answered.
    pub reachable: bool,
    /// The target table exists.
    pub exists: bool,
    /// Rows the existing target table holds, counted.
    #[serde(default)]
    pub target_rows: Option<u64>,
    /// What the run will do to the target table, in words ("create", "replace its 3 rows", …).
    #[serde(default)]
    pub action: String,
    /// Reasons it could not be written.
    pub problems: Vec<String>,
}

/// Audit events counted by action.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditSummary {
    /// Total events.
    pub total_audit_entries: u64,
    /// By action.
    pub by_action: BTreeMap<String, u64>,
}

impl MigrationReport {
    /// Whether the run fully succeeded (completed and verified).
    pub fn succeeded(&self) -> bool {
        self.status == RunStatus::Completed
            && self.verification.passed
            && !self.nothing_migrated()
            && self.later_verification.as_ref().is_none_or(|v| v.passed)
    }

    /// Whether the report's execution figures (throughput, memory, retries, API calls) were
    /// measured: not for a dry run, nor for a report rebuilt from the checkpoint store.
    fn measured(&self) -> bool {
        self.execution_type != "stored" && self.execution_type != "dry-run"
    }

    /// Every table of the run was deferred: nothing it was asked to move has moved.
    pub fn nothing_migrated(&self) -> bool {
        !self.results.is_empty()
            && self
                .results
                .iter()
                .all(|r| r.status == TableStatus::Deferred)
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The report as Markdown, for people.
    pub fn to_markdown(&self) -> String {
        let mut m = String::new();
        let status = match (self.status, self.succeeded()) {
            (RunStatus::Completed, _) if self.nothing_migrated() => {
                "NOTHING MIGRATED (every table deferred)"
            }
            (RunStatus::Completed, true) if !self.deferred.is_empty() => "PARTIAL (work deferred)",
            (RunStatus::Completed, true) => "COMPLETE",
            (RunStatus::Completed, false) => "FAILED VERIFICATION",
            (RunStatus::Failed, _)
                if self
                    .results
                    .iter()
                    .any(|t| t.status == TableStatus::Completed) =>
            {
                "PARTIAL"
            }
            (RunStatus::Failed, _) => "FAILED",
            (RunStatus::Cancelled, _) => "STOPPED, resumable (run it again to continue)",
            (RunStatus::Paused, _) => "PAUSED, resumable",
            (RunStatus::Running, _) => "IN PROGRESS",
            (RunStatus::Superseded, _) => "SUPERSEDED",
        };
        let done = self
            .results
            .iter()
            .filter(|t| t.status == TableStatus::Completed)
            .count();
        let _ = writeln!(m, "# Migration Report\n");
        let _ = writeln!(m, "## Summary");
        let _ = writeln!(m, "- Status: {status}");
        let _ = writeln!(
            m,
            "- Execution: `{}` ({}{})",
            self.execution_id,
            self.execution_type,
            if self.resumed { ", resumed" } else { "" }
        );
        let _ = if self.measured() {
            writeln!(
                m,
                "- Duration: {:.1} s (paused {:.1} s)",
                self.timing.duration_seconds, self.timing.paused_duration_seconds
            )
        } else {
            writeln!(m, "- Duration: {:.1} s", self.timing.duration_seconds)
        };
        let _ = writeln!(m, "- Tables migrated: {done} of {}", self.results.len());
        let _ = writeln!(
            m,
            "- Rows migrated: {} of {}",
            self.progress.processed_records, self.progress.total_records
        );
        if self.measured() {
            let _ = writeln!(
                m,
                "- Data transferred this execution: {:.1} MB",
                self.progress.bytes_this_execution as f64 / 1e6
            );
            let _ = writeln!(
                m,
                "- Chunks: {} of {} completed ({} already done before this execution)",
                self.progress.completed_batches,
                self.progress.total_batches,
                self.progress.batches_already_done
            );
        } else {
            let _ = writeln!(
                m,
                "- Chunks: {} of {} completed",
                self.progress.completed_batches, self.progress.total_batches
            );
        }
        if self.execution_type == "stored" {
            let _ = writeln!(
                m,
                "- Retries, API calls, throughput and memory: not known (rebuilt from the checkpoint store; no execution of this run stored its report)"
            );
        } else if self.measured() {
            let _ = writeln!(
                m,
                "- Retries: {}, API calls: {}",
                self.progress.retries, self.progress.api_calls
            );
        }
        let _ = writeln!(m, "\n## Results by Table\n");
        let _ = writeln!(m, "| Table | Status | Rows | Chunks | Time | Notes |");
        let _ = writeln!(m, "|-------|--------|------|--------|------|-------|");
        for t in &self.results {
            let mark = match t.status {
                TableStatus::Completed => "✓".to_string(),
                other => other.as_str().to_uppercase(),
            };
            let time = t
                .duration_seconds
                .map_or("-".into(), |s| format!("{s:.1}s"));
            let _ = writeln!(
                m,
                "| {} | {mark} | {} | {}/{} | {time} | {} |",
                t.table,
                t.rows,
                t.chunks_completed,
                t.chunks_total,
                t.reason.as_deref().unwrap_or("").replace('|', "\\|")
            );
        }
        let _ = writeln!(m, "\n## Resource Usage\n");
        if self.measured() {
            let _ = writeln!(
                m,
                "- Peak memory in flight: {:.1} MB of {:.1} MB budget",
                self.progress.peak_in_flight_bytes as f64 / 1e6,
                self.progress.memory_budget_bytes as f64 / 1e6
            );
        }
        if self.measured() {
            let _ = writeln!(
                m,
                "- Average throughput: {:.0} rows/s",
                self.progress.records_per_second
            );
        }
        let _ = writeln!(m, "\n## Verification\n");
        let checked = self
            .verification
            .tables
            .iter()
            .filter(|v| v.checked())
            .count();
        let mismatched = self.verification.tables.iter().any(|v| !v.passed());
        let _ = writeln!(
            m,
            "- Result: {}",
            match (self.verification.passed, checked) {
                _ if mismatched => "FAILED".to_string(),
                (false, _) if self.status == RunStatus::Completed => "FAILED".to_string(),
                (false, _) => "NOT COMPLETE (tables left unfinished are not verified)".to_string(),
                (true, 0) if self.verification.tables.is_empty() => {
                    "NONE IN THIS REPORT (no table was verified here)".to_string()
                }
                (true, 0) => "NOT RUN (no table was compared)".to_string(),
                (true, _) if !self.verification.not_verified.is_empty() => format!(
                    "PASSED for {checked} tables; not verified in this report: {}",
                    self.verification
                        .not_verified
                        .iter()
                        .map(|t| t.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                (true, _) => "PASSED".to_string(),
            }
        );
        if let Some(later) = &self.later_verification {
            let _ = writeln!(
                m,
                "- Later, `migrate verify` at {}: {}",
                later.at.to_rfc3339(),
                if later.passed { "PASSED" } else { "FAILED" }
            );
            for f in &later.failures {
                let _ = writeln!(m, "  - {f}");
            }
        }
        for v in &self.verification.tables {
            let sample = match &v.sample {
                None => "; no sample compared".to_string(),
                Some(s) => match &s.skipped {
                    Some(why) => format!("; sample skipped: {why}"),
                    None => format!("; sample {}/{} matched", s.matched_records, s.sample_size),
                },
            };
            let _ = match &v.not_compared {
                Some(why) => writeln!(
                    m,
                    "- {}: counts and checksums not compared ({why}){sample}",
                    v.table
                ),
                None => writeln!(
                    m,
                    "- {}: target {} rows{}; checksum {}{}{sample}",
                    v.table,
                    v.target_count
                        .map_or("not counted".to_string(), |n| n.to_string()),
                    v.source_count
                        .map_or(String::new(), |s| format!(", source {s}")),
                    match v.checksum_match {
                        Some(true) => "match",
                        Some(false) => "MISMATCH",
                        None => "not compared",
                    },
                    v.compared_with
                        .map_or(String::new(), |c| format!(" against {}", c.describe())),
                ),
            };
            for c in &v.mismatches {
                let _ = writeln!(m, "  - chunk {}: {}", c.chunk, c.detail);
            }
        }
        if !self.plan_vs_actual.is_empty() {
            let _ = writeln!(m, "\n## Plan vs Actual\n");
            let _ = writeln!(m, "| Phase | Tables | Planned | Actual | Variance |");
            let _ = writeln!(m, "|-------|--------|---------|--------|----------|");
            for p in &self.plan_vs_actual {
                let (actual, variance) = match p.actual_secs {
                    Some(a) => (format!("{a:.1}s"), format!("{:+.1}s", a - p.planned_secs)),
                    None => ("-".into(), "-".into()),
                };
                let _ = writeln!(
                    m,
                    "| Phase {} | {} | {:.1}s | {actual} | {variance} |",
                    p.phase,
                    p.tables.join(", "),
                    p.planned_secs
                );
            }
        }
        if !self.deferred.is_empty() {
            let _ = writeln!(m, "\n## Deferred\n");
            for d in &self.deferred {
                let _ = writeln!(m, "- {}: {}", d.table, d.reason);
            }
        }
        if !self.reconciliation.is_empty() {
            let _ = writeln!(m, "\n## Resume Reconciliation\n");
            for r in &self.reconciliation {
                let _ = writeln!(m, "- {r}");
            }
        }
        if !self.drift.is_empty() {
            let _ = writeln!(m, "\n## Schema Drift\n");
            let _ = writeln!(m, "| Table | Column | Change | Action |");
            let _ = writeln!(m, "|-------|--------|--------|--------|");
            for d in &self.drift {
                let _ = writeln!(
                    m,
                    "| {} | {} | {} | {}{} |",
                    d.table,
                    d.column.as_deref().unwrap_or("-"),
                    d.change,
                    if d.blocking { "BLOCKING: " } else { "" },
                    d.action
                );
            }
        }
        if !self.preflight.is_empty() {
            let _ = writeln!(m, "\n## Dry Run\n");
            let _ = writeln!(
                m,
                "| Table | Chunks | Est. rows | Target rows | Run will | Problems |"
            );
            let _ = writeln!(
                m,
                "|-------|--------|-----------|-------------|----------|----------|"
            );
            for p in &self.preflight {
                let _ = writeln!(
                    m,
                    "| {} | {} | {} | {} | {} | {} |",
                    p.table,
                    p.chunks,
                    p.estimated_rows,
                    match (p.exists, p.target_rows) {
                        (false, _) => "no table".to_string(),
                        (true, Some(n)) => n.to_string(),
                        (true, None) => "exists, not counted".to_string(),
                    },
                    p.action,
                    if p.problems.is_empty() {
                        "none".into()
                    } else {
                        p.problems.join("; ")
                    }
                );
            }
        }
        if !self.schema_objects.is_empty() {
            let dry = self.execution_type == "dry-run";
            let _ = writeln!(m, "\n## Schema Objects\n");
            let (made, not): (Vec<_>, Vec<_>) = self
                .schema_objects
                .iter()
                .partition(|o| o.not_created.is_none());
            let _ = writeln!(
                m,
                "{} ({}):\n",
                if dry {
                    "Will create"
                } else {
                    "Created or already there"
                },
                made.len()
            );
            let mut by_table: Vec<(String, Vec<String>)> = Vec::new();
            for o in &made {
                let t = o
                    .table
                    .as_ref()
                    .map_or("views".to_string(), ToString::to_string);
                let item = format!("{} {}", o.kind, o.name);
                match by_table.iter_mut().find(|(x, _)| *x == t) {
                    Some((_, items)) => items.push(item),
                    None => by_table.push((t, vec![item])),
                }
            }
            for (t, items) in by_table {
                let _ = writeln!(m, "- {t}: {}", items.join(", "));
            }
            if !not.is_empty() {
                let _ = writeln!(
                    m,
                    "\n{} ({}):\n",
                    if dry {
                        "Will not create"
                    } else {
                        "Not created"
                    },
                    not.len()
                );
                for o in not {
                    let on = o
                        .table
                        .as_ref()
                        .map_or(String::new(), |t| format!(" on {t}"));
                    let why = o.not_created.as_deref().unwrap_or_default();
                    let _ = writeln!(m, "- {} {}{on}: {why}", o.kind, o.name);
                }
            }
        }
        if self.errors.total > 0 {
            let _ = writeln!(m, "\n## Errors\n");
            for (k, n) in &self.errors.by_type {
                let _ = writeln!(m, "- {k}: {n}");
            }
            for e in &self.errors.sample_errors {
                let loc = match (&e.table, e.batch_number) {
                    (Some(t), Some(c)) => format!("{t} chunk {c}"),
                    (Some(t), None) => t.to_string(),
                    _ => "run".into(),
                };
                let _ = writeln!(m, "  - {loc} ({}): {}", e.error_type, e.message);
            }
        }
        let follow: Vec<&TableResult> = self
            .results
            .iter()
            .filter(|t| t.status != TableStatus::Completed)
            .collect();
        // A dry run moved nothing on purpose: there is nothing to follow up.
        if !follow.is_empty() && self.execution_type != "dry-run" {
            let _ = writeln!(m, "\n## Follow-up Required\n");
            for t in follow {
                let _ = writeln!(
                    m,
                    "- [ ] {} ({}): {}",
                    t.table,
                    t.status.as_str(),
                    t.reason.as_deref().unwrap_or("resume the run to finish it")
                );
            }
        }
        m
    }
}
