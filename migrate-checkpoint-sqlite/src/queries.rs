//! The operator queries on `migration_control` (progress by phase, table status, error and
//! performance analysis, what a resume redoes), as methods (the CLI's `status` uses them), and retention.

use std::time::Duration;

use chrono::Utc;
use migrate_core::{Result, RunId};
use rusqlite::params;
use serde::Serialize;

use crate::codec::{sql_error, time};
use crate::store::SqliteCheckpointStore;

/// Overall progress by phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseProgress {
    /// Phase (`execution` holds the chunks).
    pub phase: String,
    /// Operations recorded.
    pub operations: u64,
    /// Completed.
    pub completed: u64,
    /// Failed.
    pub failed: u64,
    /// Running.
    pub in_progress: u64,
    /// Records processed.
    pub total_records_processed: u64,
    /// First start.
    pub phase_started: Option<String>,
    /// Last completion.
    pub phase_completed: Option<String>,
}

/// Table-level status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableStatusRow {
    /// Table.
    pub table_name: String,
    /// Chunk status this row aggregates.
    pub status: String,
    /// Records processed.
    pub records_processed: u64,
    /// Records expected.
    pub total_records: u64,
    /// Percentage of expected records processed.
    pub completion_percentage: Option<f64>,
    /// First chunk start.
    pub started_at: Option<String>,
    /// Last chunk completion.
    pub completed_at: Option<String>,
    /// Longest chunk, in seconds.
    pub duration_seconds: Option<f64>,
}

/// A failed operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorRow {
    /// Phase.
    pub phase: String,
    /// Table.
    pub table_name: String,
    /// Operation (`chunk N`).
    pub operation: String,
    /// Message.
    pub error_message: Option<String>,
    /// When the failed attempt started.
    pub started_at: Option<String>,
    /// Records processed.
    pub records_processed: Option<u64>,
    /// Records expected.
    pub total_records: Option<u64>,
    /// Worker.
    pub worker_id: Option<String>,
}

/// Throughput per table and chunk size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerformanceRow {
    /// Table.
    pub table_name: String,
    /// Chunk size (rows planned per chunk).
    pub batch_size: Option<u64>,
    /// Average records per second over completed chunks.
    pub records_per_second: Option<f64>,
    /// Average chunk duration in seconds.
    pub avg_batch_duration: Option<f64>,
    /// Completed chunks.
    pub batch_count: u64,
}

/// An operation a resume will (re)do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncompleteRow {
    /// Table.
    pub table_name: String,
    /// Chunk index.
    pub chunk_index: Option<u32>,
    /// Status (pending, running, failed, paused).
    pub status: String,
    /// Worker holding or last holding it.
    pub worker_id: Option<String>,
    /// Lease expiry for running chunks.
    pub lease_until: Option<String>,
    /// Attempts so far.
    pub attempts: u32,
    /// Last error.
    pub error_message: Option<String>,
}

/// What [`SqliteCheckpointStore::apply_retention`] removes: detail of finished runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Completed runs per migration whose detail is kept (default 10).
    pub keep_last: usize,
    /// Detail of completed runs that finished longer ago than this is removed (default 24 h).
    pub expire_after: Duration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            keep_last: 10,
            expire_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// What retention removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RetentionOutcome {
    /// Runs whose detail was removed.
    pub runs_pruned: u64,
    /// Rows deleted across the detail tables.
    pub rows_deleted: u64,
}

fn run_filter(run: &Option<RunId>) -> String {
    run.as_ref().map_or(String::new(), |r| r.0.clone())
}

impl SqliteCheckpointStore {
    /// Overall progress by phase ("Overall Migration Progress"); all runs when `run` is
    /// `None`.
    pub async fn progress_by_phase(&self, run: Option<RunId>) -> Result<Vec<PhaseProgress>> {
        let r = run_filter(&run);
        self.with(move |c| {
            let mut st = c
                .prepare(
                    "SELECT phase, COUNT(*),
                            COUNT(*) FILTER (WHERE status = 'completed'),
                            COUNT(*) FILTER (WHERE status = 'failed'),
                            COUNT(*) FILTER (WHERE status = 'running'),
                            COALESCE(SUM(records_processed), 0), MIN(started_at), MAX(completed_at)
                       FROM migration_control WHERE (?1 = '' OR run_id = ?1)
                      GROUP BY phase
                      ORDER BY CASE phase WHEN 'discovery' THEN 1 WHEN 'planning' THEN 2 WHEN 'mapping' THEN 3
                                          WHEN 'execution' THEN 4 WHEN 'validation' THEN 5 WHEN 'rollback' THEN 6 END",
                )
                .map_err(sql_error)?;
            let rows = st
                .query_map([r], |r| {
                    Ok(PhaseProgress {
                        phase: r.get(0)?,
                        operations: r.get::<_, i64>(1)? as u64,
                        completed: r.get::<_, i64>(2)? as u64,
                        failed: r.get::<_, i64>(3)? as u64,
                        in_progress: r.get::<_, i64>(4)? as u64,
                        total_records_processed: r.get::<_, i64>(5)? as u64,
                        phase_started: r.get(6)?,
                        phase_completed: r.get(7)?,
                    })
                })
                .map_err(sql_error)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql_error)
        })
        .await
    }

    /// Table-level status with completion percentage and duration.
    pub async fn table_status(&self, run: Option<RunId>) -> Result<Vec<TableStatusRow>> {
        let r = run_filter(&run);
        self.with(move |c| {
            let mut st = c
                .prepare(
                    "SELECT table_name, status, COALESCE(SUM(records_processed), 0), COALESCE(SUM(total_records), 0),
                            ROUND((SUM(records_processed) * 100.0) / NULLIF(SUM(total_records), 0), 2),
                            MIN(started_at), MAX(completed_at),
                            MAX((julianday(completed_at) - julianday(started_at)) * 86400.0)
                       FROM migration_control
                      WHERE phase = 'execution' AND (?1 = '' OR run_id = ?1)
                      GROUP BY table_name, status
                      ORDER BY table_name, status",
                )
                .map_err(sql_error)?;
            let rows = st
                .query_map([r], |r| {
                    Ok(TableStatusRow {
                        table_name: r.get(0)?,
                        status: r.get(1)?,
                        records_processed: r.get::<_, i64>(2)? as u64,
                        total_records: r.get::<_, i64>(3)? as u64,
                        completion_percentage: r.get(4)?,
                        started_at: r.get(5)?,
                        completed_at: r.get(6)?,
                        duration_seconds: r.get(7)?,
                    })
                })
                .map_err(sql_error)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql_error)
        })
        .await
    }

    /// Failed operations, newest first ("Error Analysis").
    pub async fn error_analysis(&self, run: Option<RunId>) -> Result<Vec<ErrorRow>> {
        let r = run_filter(&run);
        self.with(move |c| {
            let mut st = c
                .prepare(
                    "SELECT phase, table_name, operation || COALESCE(' ' || chunk_index, ''), error_message, started_at,
                            records_processed, total_records, worker_id
                       FROM migration_control WHERE status = 'failed' AND (?1 = '' OR run_id = ?1)
                      ORDER BY started_at DESC",
                )
                .map_err(sql_error)?;
            let rows = st
                .query_map([r], |r| {
                    Ok(ErrorRow {
                        phase: r.get(0)?,
                        table_name: r.get(1)?,
                        operation: r.get(2)?,
                        error_message: r.get(3)?,
                        started_at: r.get(4)?,
                        records_processed: r.get::<_, Option<i64>>(5)?.map(|v| v as u64),
                        total_records: r.get::<_, Option<i64>>(6)?.map(|v| v as u64),
                        worker_id: r.get(7)?,
                    })
                })
                .map_err(sql_error)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql_error)
        })
        .await
    }

    /// Records per second per table and chunk size over completed chunks ("Performance
    /// Analysis"), fastest first.
    pub async fn performance(&self, run: Option<RunId>) -> Result<Vec<PerformanceRow>> {
        let r = run_filter(&run);
        self.with(move |c| {
            let mut st = c
                .prepare(
                    "SELECT table_name, batch_size,
                            AVG(records_processed / MAX(COALESCE(duration_ms / 1000.0, (julianday(completed_at) - julianday(started_at)) * 86400.0), 0.000001)),
                            AVG(COALESCE(duration_ms / 1000.0, (julianday(completed_at) - julianday(started_at)) * 86400.0)),
                            COUNT(*)
                       FROM migration_control
                      WHERE phase = 'execution' AND status = 'completed' AND completed_at IS NOT NULL
                        AND started_at IS NOT NULL AND (?1 = '' OR run_id = ?1)
                      GROUP BY table_name, batch_size
                      ORDER BY 3 DESC",
                )
                .map_err(sql_error)?;
            let rows = st
                .query_map([r], |r| {
                    Ok(PerformanceRow {
                        table_name: r.get(0)?,
                        batch_size: r.get::<_, Option<i64>>(1)?.map(|v| v as u64),
                        records_per_second: r.get(2)?,
                        avg_batch_duration: r.get(3)?,
                        batch_count: r.get::<_, i64>(4)? as u64,
                    })
                })
                .map_err(sql_error)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql_error)
        })
        .await
    }

    /// What a resume will redo: chunks not completed or skipped ("Resume Capability";
    /// pending and failed included, since migrate redoes those too).
    pub async fn incomplete_operations(&self, run: RunId) -> Result<Vec<IncompleteRow>> {
        self.with(move |c| {
            let mut st = c
                .prepare(
                    "SELECT table_name, chunk_index, status, worker_id, lease_until, attempts, error_message
                       FROM migration_control
                      WHERE run_id = ?1 AND status IN ('pending', 'running', 'failed', 'paused')
                      ORDER BY started_at IS NULL, started_at, table_name, chunk_index",
                )
                .map_err(sql_error)?;
            let rows = st
                .query_map([run.0], |r| {
                    Ok(IncompleteRow {
                        table_name: r.get(0)?,
                        chunk_index: r.get(1)?,
                        status: r.get(2)?,
                        worker_id: r.get(3)?,
                        lease_until: r.get(4)?,
                        attempts: r.get(5)?,
                        error_message: r.get(6)?,
                    })
                })
                .map_err(sql_error)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sql_error)
        })
        .await
    }

    /// Removes the detail (chunks, tables, events, rejected records, control flags) of completed
    /// runs outside the newest `keep_last` of their migration or finished before `expire_after`.
    /// Run records themselves stay, and so do incremental cursors. Runs that can still be resumed
    /// (running, paused, failed, cancelled) are never touched.
    pub async fn apply_retention(&self, policy: RetentionPolicy) -> Result<RetentionOutcome> {
        let cutoff = time(
            Utc::now()
                - chrono::Duration::from_std(policy.expire_after).unwrap_or(chrono::Duration::MAX),
        );
        self.with(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sql_error)?;
            let doomed: Vec<String> = {
                let mut st = tx
                    .prepare(
                        "SELECT id FROM (
                            SELECT id, finished_at,
                                   ROW_NUMBER() OVER (PARTITION BY migration ORDER BY started_at DESC) AS rank
                              FROM migrate_runs WHERE status IN ('completed', 'superseded'))
                          WHERE rank > ?1 OR finished_at < ?2",
                    )
                    .map_err(sql_error)?;
                let ids = st
                    .query_map(params![policy.keep_last as i64, cutoff], |r| r.get(0))
                    .map_err(sql_error)?;
                ids.collect::<rusqlite::Result<Vec<_>>>().map_err(sql_error)?
            };
            let mut out = RetentionOutcome::default();
            for id in &doomed {
                let mut deleted = 0;
                for table in ["migration_control", "migrate_tables", "migrate_events", "migrate_rejected", "migrate_control"] {
                    deleted += tx.execute(&format!("DELETE FROM {table} WHERE run_id = ?1"), [id]).map_err(sql_error)?;
                }
                if deleted > 0 {
                    out.runs_pruned += 1;
                    out.rows_deleted += deleted as u64;
                }
            }
            tx.commit().map_err(sql_error)?;
            Ok(out)
        })
        .await
    }
}
