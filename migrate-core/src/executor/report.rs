//! The report: assembled from the store and an execution's figures (a run's, or one rebuilt
//! from the store alone), or from a dry run's findings, on one skeleton; and what the audit log
//! keeps for it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::budget::MemoryBudget;
use super::context::Ctx;
use super::progress::Progress;
use crate::checkpoint::{ChunkStatus, RunRecord, RunStatus};
use crate::error::{Error, ErrorKind, Result};
use crate::objects::ObjectOutcome;
use crate::report::{self, MigrationReport, TableVerification};
use crate::schema::TableName;

/// A report that names the execution and its timing and has nothing else to say yet: the run's
/// report and the dry run's fill in what each knows, so that every report is built on one
/// skeleton.
pub(crate) fn skeleton(
    execution_id: String,
    migration: String,
    status: RunStatus,
    execution_type: String,
    plan_hash: String,
    timing: report::Timing,
) -> MigrationReport {
    MigrationReport {
        execution_id,
        migration,
        status,
        execution_type,
        resumed: false,
        plan_hash,
        timing,
        progress: report::ProgressSummary::default(),
        results: vec![],
        verification: report::Verification::default(),
        errors: report::ErrorSummary::default(),
        reconciliation: vec![],
        preflight: vec![],
        audit_summary: report::AuditSummary::default(),
        drift: vec![],
        deferred: vec![],
        plan_vs_actual: vec![],
        later_verification: None,
        schema_objects: vec![],
    }
}

/// What an execution knows that the store does not.
pub(crate) struct ReportInputs {
    pub(crate) run: RunRecord,
    pub(crate) plan_hash: String,
    /// The execution type the report names (`full`, `incremental`, `stored`, …).
    pub(crate) mode: String,
    pub(crate) resumed: bool,
    /// Chunks completed by earlier executions of a resumed run.
    pub(crate) already_done: u64,
    /// Tables in dependency order, as the report lists them.
    pub(crate) order: Vec<TableName>,
    /// Rows the source estimated per table.
    pub(crate) estimated: BTreeMap<TableName, u64>,
    pub(crate) verifications: Vec<TableVerification>,
    /// Errors by table and chunk.
    pub(crate) errors: Vec<(Option<TableName>, Option<u32>, Error)>,
    pub(crate) reconciliation: Vec<String>,
    pub(crate) duration: Duration,
    /// Time spent paused.
    pub(crate) paused: Duration,
    /// Rows and bytes this execution wrote.
    pub(crate) rows_written: u64,
    pub(crate) bytes_written: u64,
    pub(crate) progress: Progress,
    pub(crate) budget: Arc<MemoryBudget>,
    pub(crate) deferred: Vec<crate::plan::Deferral>,
    /// The plan made against a window, for planned against actual.
    pub(crate) plan: Option<crate::plan::Plan>,
}

/// Assembles the report from the store (the durable truth) and this execution's figures.
pub(crate) async fn build_report(ctx: &Ctx, i: ReportInputs) -> Result<MigrationReport> {
    assemble(&*ctx.store, &ctx.run, i).await
}

/// The audit action under which an execution keeps its whole report (JSON).
pub(crate) const REPORT_EVENT: &str = "run.report";

/// The audit action under which a later whole-table verification keeps its outcome (JSON, see
/// [`LaterVerification`]).
pub const VERIFY_EVENT: &str = "verify.completed";

/// A whole-table verification run after the migration (`migrate verify`), recorded in the run's
/// audit log so that the stored report shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LaterVerification {
    /// When it ran.
    pub at: chrono::DateTime<Utc>,
    /// Every table matched.
    pub passed: bool,
    /// Tables that did not match or were missing, with what differed (counts, never values).
    pub failures: Vec<String>,
}

/// The latest run's report: the one its last execution stored, with any later verification
/// (`migrate verify`) attached; rebuilt from the store, with what it cannot know left out, for
/// a run whose executions never finished.
pub async fn stored_report(
    store: &dyn crate::checkpoint::CheckpointStore,
    migration: &str,
) -> Result<Option<MigrationReport>> {
    let Some(run) = store.latest_run(migration).await? else {
        return Ok(None);
    };
    let events = store.events(&run.id).await?;
    // What happened to the target since an event: another execution started, or a rollback.
    let superseded = |from: usize| {
        events[from..].iter().any(|e| {
            matches!(
                e.action.as_str(),
                "run.started" | "run.resumed" | "run.follow_up" | "rollback.started"
            )
        })
    };
    let stored = events
        .iter()
        .rposition(|e| e.action == REPORT_EVENT)
        .filter(|&i| !superseded(i + 1))
        .and_then(|i| {
            let r: MigrationReport = serde_json::from_str(&events[i].detail).ok()?;
            Some((i, r))
        });
    let (since, mut report) = match stored {
        // The last execution's own report, while nothing has run or been undone since.
        Some((i, r)) if r.status == run.status => (i, r),
        _ => {
            let since = events
                .iter()
                .rposition(|e| e.action == "rollback.started")
                .unwrap_or(0);
            (since, stored_rebuilt(store, run).await?)
        }
    };
    report.later_verification = events[since..]
        .iter()
        .rev()
        .find(|e| e.action == VERIFY_EVENT)
        .and_then(|e| serde_json::from_str(&e.detail).ok());
    Ok(Some(report))
}

/// The report of a run rebuilt from the checkpoint store alone: what the chunk and table states
/// say; what only an execution measures is marked not known.
async fn stored_rebuilt(
    store: &dyn crate::checkpoint::CheckpointStore,
    run: RunRecord,
) -> Result<MigrationReport> {
    let tables = store.tables(&run.id).await?;
    let chunks = store.chunks(&run.id).await?;
    let errors = chunks
        .iter()
        .filter(|c| c.status == ChunkStatus::Failed)
        .map(|c| {
            let kind = c.error_kind.unwrap_or(ErrorKind::Fatal);
            // The stored text is the whole error as the execution printed it; one that ran out
            // of retries says so, and is not retriable now either.
            let text = c.error.clone().unwrap_or_default();
            let mut e = Error::new(kind, text.as_str());
            if text.contains("(gave up after ") {
                let elapsed = c.duration_ms.map_or(Duration::ZERO, Duration::from_millis);
                e = e.exhausted(c.attempts, elapsed);
            }
            (Some(c.table.clone()), Some(c.index), e)
        })
        .collect();
    let end = run.finished_at.unwrap_or_else(Utc::now);
    let i = ReportInputs {
        plan_hash: run.plan_hash.clone(),
        mode: "stored".into(),
        resumed: false,
        already_done: 0,
        order: tables.iter().map(|t| t.table.clone()).collect(),
        estimated: tables
            .iter()
            .map(|t| (t.table.clone(), t.total_rows))
            .collect(),
        verifications: Vec::new(),
        errors,
        reconciliation: Vec::new(),
        duration: (end - run.started_at).to_std().unwrap_or_default(),
        paused: Duration::ZERO,
        rows_written: 0,
        bytes_written: 0,
        progress: Progress::default(),
        budget: MemoryBudget::new(0),
        deferred: tables
            .iter()
            .filter(|t| t.status == crate::checkpoint::TableStatus::Deferred)
            .map(|t| crate::plan::Deferral {
                table: t.table.to_string(),
                reason: t.reason.clone().unwrap_or_default(),
            })
            .collect(),
        plan: None,
        run: run.clone(),
    };
    let mut r = assemble(store, &run.id, i).await?;
    r.timing.completed_at = run.finished_at.unwrap_or(r.timing.completed_at);
    Ok(r)
}

async fn assemble(
    store: &dyn crate::checkpoint::CheckpointStore,
    run_id: &crate::checkpoint::RunId,
    i: ReportInputs,
) -> Result<MigrationReport> {
    let chunks = store.chunks(run_id).await?;
    let tables: BTreeMap<TableName, crate::checkpoint::TableRecord> = store
        .tables(run_id)
        .await?
        .into_iter()
        .map(|t| (t.table.clone(), t))
        .collect();
    let events = store.events(run_id).await?;
    let rejected = store.rejected(run_id).await?;
    let run = store.run(run_id).await?.unwrap_or(i.run);

    let mut results = Vec::new();
    for name in &i.order {
        let mine: Vec<_> = chunks.iter().filter(|c| &c.table == name).collect();
        let done: Vec<_> = mine
            .iter()
            .filter(|c| c.status == ChunkStatus::Completed)
            .collect();
        let rec = tables.get(name);
        let first = mine.iter().filter_map(|c| c.started_at).min();
        let last = done.iter().filter_map(|c| c.finished_at).max();
        results.push(report::TableResult {
            table: name.clone(),
            status: rec.map_or(crate::checkpoint::TableStatus::Pending, |r| r.status),
            rows: done.iter().map(|c| c.rows).sum(),
            total_rows: i.estimated.get(name).copied().unwrap_or(0),
            bytes: done.iter().map(|c| c.bytes).sum(),
            chunks_completed: done.len() as u64,
            chunks_total: mine.len() as u64,
            attempts: mine.iter().map(|c| u64::from(c.attempts)).sum(),
            duration_seconds: first
                .zip(last)
                .map(|(a, b)| (b - a).num_milliseconds().max(0) as f64 / 1000.0),
            phase_seconds: (i.mode != "stored")
                .then(|| i.progress.tables.iter().find(|t| &t.table == name))
                .flatten()
                .map(|t| t.phase_seconds),
            reason: rec.and_then(|r| r.reason.clone()),
        });
    }
    let mut errors = report::ErrorSummary::default();
    let rebuilt = i.mode == "stored";
    for (table, chunk, e) in &i.errors {
        errors.total += 1;
        *errors
            .by_type
            .entry(e.kind().as_str().to_string())
            .or_insert(0) += 1;
        if errors.sample_errors.len() < 20 {
            errors.sample_errors.push(report::ErrorSample {
                table: table.clone(),
                batch_number: *chunk,
                error_type: e.kind().as_str().to_string(),
                // The whole error (context, source, attempts), not just its own message; a
                // rebuilt report's errors are that text already.
                message: if rebuilt {
                    e.message().to_string()
                } else {
                    e.to_string()
                },
                retriable: e.is_retryable(),
                record_id: None,
            });
        }
    }
    // Rejected rows: counted by kind, sampled by key (never by value).
    for r in &rejected {
        errors.total += 1;
        let kind = r.kind.unwrap_or(ErrorKind::Validation).as_str().to_string();
        *errors.by_type.entry(kind.clone()).or_insert(0) += 1;
        if errors.sample_errors.len() < 20 {
            errors.sample_errors.push(report::ErrorSample {
                table: Some(r.table.clone()),
                batch_number: Some(r.chunk),
                error_type: kind,
                message: format!("rejected by {}: {}", r.rule, r.reason),
                retriable: false,
                record_id: Some(r.key.clone()),
            });
        }
    }
    let rejected_rows = rejected
        .iter()
        .map(|r| (&r.table, &r.key))
        .collect::<std::collections::BTreeSet<_>>()
        .len() as u64;
    let mut audit = report::AuditSummary {
        total_audit_entries: events.len() as u64,
        ..Default::default()
    };
    for e in &events {
        *audit.by_action.entry(e.action.clone()).or_insert(0) += 1;
    }
    let total_records: u64 = results.iter().map(|r| r.total_rows.max(r.rows)).sum();
    let processed: u64 = results.iter().map(|r| r.rows).sum();
    let skipped: u64 = chunks
        .iter()
        .filter(|c| c.status == ChunkStatus::Skipped)
        .map(|c| c.estimated_rows)
        .sum();
    let secs = i.duration.as_secs_f64();
    // Deferred tables were left out on purpose; they are listed, not failed.
    let all_completed = results.iter().all(|r| {
        matches!(
            r.status,
            crate::checkpoint::TableStatus::Completed | crate::checkpoint::TableStatus::Deferred
        )
    });
    let all_matched = i.verifications.iter().all(TableVerification::passed);
    // Completed tables this report holds no check for (verified by an earlier execution or
    // another worker, or not at all) are "not verified here", never counted as passed.
    let not_verified = results
        .iter()
        .filter(|r| r.status == crate::checkpoint::TableStatus::Completed)
        .filter(|r| {
            i.verifications
                .iter()
                .find(|v| v.table == r.table)
                .is_none_or(|v| !v.checked())
        })
        .map(|r| r.table.clone())
        .collect();
    let verification = report::Verification {
        passed: all_completed && all_matched,
        not_verified,
        tables: i.verifications,
    };
    let plan_vs_actual = i
        .plan
        .as_ref()
        .map(|p| {
            p.phases
                .iter()
                .map(|ph| {
                    let mine: Vec<_> = chunks
                        .iter()
                        .filter(|c| {
                            c.status == ChunkStatus::Completed
                                && ph.tables.iter().any(|t| *t == c.table.to_string())
                        })
                        .collect();
                    let first = mine.iter().filter_map(|c| c.started_at).min();
                    let last = mine.iter().filter_map(|c| c.finished_at).max();
                    report::PhaseActual {
                        phase: ph.number,
                        tables: ph.tables.clone(),
                        planned_secs: ph.planned_secs,
                        actual_secs: first
                            .zip(last)
                            .map(|(a, b)| (b - a).num_milliseconds().max(0) as f64 / 1000.0),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let timing = report::Timing {
        started_at: run.started_at,
        completed_at: Utc::now(),
        duration_seconds: secs,
        paused_duration_seconds: i.paused.as_secs_f64(),
    };
    let (id, migration) = (run.id.to_string(), run.migration.clone());
    let skeleton = skeleton(id, migration, run.status, i.mode, i.plan_hash, timing);
    Ok(MigrationReport {
        resumed: i.resumed,
        progress: report::ProgressSummary {
            total_records,
            processed_records: processed,
            failed_records: rejected_rows,
            skipped_records: skipped,
            records_this_execution: i.rows_written,
            total_batches: chunks.len() as u64,
            completed_batches: chunks
                .iter()
                .filter(|c| c.status == ChunkStatus::Completed)
                .count() as u64,
            batches_already_done: i.already_done,
            bytes_this_execution: i.bytes_written,
            records_per_second: if secs > 0.0 {
                i.rows_written as f64 / secs
            } else {
                0.0
            },
            retries: i.progress.retries,
            api_calls: i.progress.api_calls,
            peak_in_flight_bytes: i.budget.peak(),
            memory_budget_bytes: i.budget.total(),
            percent_complete: if total_records > 0 {
                processed as f64 * 100.0 / total_records as f64
            } else {
                100.0
            },
        },
        results,
        verification,
        errors,
        reconciliation: i.reconciliation,
        audit_summary: audit,
        deferred: i.deferred,
        plan_vs_actual,
        schema_objects: objects_recorded(&events),
        ..skeleton
    })
}

/// The audit action under which schema-object outcomes are recorded (detail: a JSON list).
pub(crate) const OBJECTS_EVENT: &str = "schema.objects";

/// The schema objects recorded in `events`, the latest word on each.
fn objects_recorded(events: &[crate::checkpoint::AuditEvent]) -> Vec<ObjectOutcome> {
    let mut out: Vec<ObjectOutcome> = Vec::new();
    for e in events.iter().filter(|e| e.action == OBJECTS_EVENT) {
        let Ok(list) = serde_json::from_str::<Vec<ObjectOutcome>>(&e.detail) else {
            continue;
        };
        for o in list {
            let same =
                |x: &ObjectOutcome| x.kind == o.kind && x.name == o.name && x.table == o.table;
            match out.iter_mut().find(|x| same(x)) {
                Some(x) => *x = o,
                None => out.push(o),
            }
        }
    }
    out
}

/// Records what a step did with schema objects, for the report.
pub(crate) async fn record_objects(
    ctx: &Ctx,
    table: Option<&TableName>,
    outcomes: &[ObjectOutcome],
) {
    if outcomes.is_empty() {
        return;
    }
    let detail = serde_json::to_string(outcomes).unwrap_or_default();
    let mut event = crate::checkpoint::AuditEvent::new(OBJECTS_EVENT, detail);
    if let Some(t) = table {
        event = event.on(t, None);
    }
    ctx.audit(event).await;
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::checkpoint::CheckpointStore;
    use crate::chunk::ChunkSpec;
    use crate::testing::MemoryCheckpointStore;

    #[tokio::test]
    async fn a_rebuilt_report_shows_the_stored_error_as_it_was_and_not_retriable_once_exhausted(
    ) -> Result<()> {
        let store = MemoryCheckpointStore::new();
        let run = RunRecord::new("rebuilt", "hash");
        store.create_run(&run).await?;
        let table = TableName::new("public", "t");
        store
            .add_chunks(&run.id, &[ChunkSpec::whole_table(table.clone(), 10)])
            .await?;
        let text = "transient on table public.t chunk 0: connection reset (gave up after 3 attempts over 1.5 s)";
        store
            .fail_chunk(&run.id, &table, 0, text, ErrorKind::Transient)
            .await?;
        // No execution stored its report: it is rebuilt from the chunk states.
        let r = stored_report(&store, "rebuilt")
            .await?
            .ok_or_else(|| Error::fatal("no report"))?;
        let sample = &r.errors.sample_errors[0];
        assert_eq!(sample.message, text);
        assert!(!sample.retriable, "{sample:?}");
        Ok(())
    }
}
