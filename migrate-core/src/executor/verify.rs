//! Post-load verification (count and canonical checksum per chunk range, source vs target, and
//! a field-by-field sample) and report assembly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::budget::MemoryBudget;
use super::config::Mode;
use super::context::{Ctx, TableCtx};
use super::progress::Progress;
use crate::batch::Batch;
use crate::checkpoint::{ChunkStatus, RunRecord};
use crate::checksum::canonical_text;
use crate::error::{Error, ErrorKind, Result};
use crate::objects::ObjectOutcome;
use crate::report::{
    self, ChunkMismatch, MigrationReport, SampleMismatch, SampleVerification, TableVerification,
};
use crate::schema::TableName;
use crate::value::{KeyDisplay, Value};

/// Verifies one table after all its chunks completed.
pub(crate) async fn table(ctx: &Ctx, t: &TableCtx) -> Result<TableVerification> {
    ctx.call();
    let mut objects = ctx
        .sink
        .finalize(&t.target)
        .await
        .map_err(|e| e.operation("finalize"))?;
    // Sequences continue after the rows copied: read from the source now, after the data.
    if !t.info.objects.sequences.is_empty() {
        ctx.call();
        let values = ctx
            .source
            .sequence_values(&t.info)
            .await
            .map_err(|e| e.operation("read sequence values"))?;
        ctx.call();
        objects.extend(
            ctx.sink
                .set_sequences(&t.target, &values)
                .await
                .map_err(|e| e.operation("set sequence values"))?,
        );
    }
    record_objects(ctx, Some(&t.info.name), &objects).await;
    let mut v = TableVerification {
        table: t.info.name.clone(),
        ..Default::default()
    };
    let full = ctx.cfg.mode == Mode::Full;
    let merged = t.merge.load(std::sync::atomic::Ordering::Relaxed);
    if ctx.cfg.verify.checksums && !full {
        v.not_compared = Some(
            "an incremental run reads only changed rows, so key ranges are not compared; `migrate verify` compares whole tables".into(),
        );
    } else if ctx.cfg.verify.checksums && merged {
        v.not_compared = Some(
            "merged by key into a table that held rows: rows only the target has stay, so key ranges cannot match; the sample compares rows by key".into(),
        );
    } else if !ctx.cfg.verify.checksums {
        v.not_compared = Some("checksums are off ([verify] checksums = false)".into());
    } else {
        let chunks = ctx.store.chunks(&ctx.run).await?;
        let mut source_total = 0u64;
        let (mut target_total, mut counts_match, mut sums_match) = (0u64, true, true);
        let compare_source = t.transforms.is_empty();
        for c in chunks
            .iter()
            .filter(|c| c.table == t.info.name && c.status == ChunkStatus::Completed)
        {
            ctx.call();
            let target = ctx
                .sink
                .checksum(&t.target, &c.range)
                .await
                .map_err(|e| e.chunk(c.index).operation("verify target"))?;
            target_total += target.count;
            // A chunk completed while checksums were off has no written figure: the source
            // comparison alone proves it, and without one (transformed rows) nothing does.
            match c.checksum {
                Some(written) if target != written => {
                    sums_match = false;
                    counts_match &= target.count == written.count;
                    v.mismatches.push(ChunkMismatch {
                        chunk: c.index,
                        detail: format!("target holds {target}, the run wrote {written}"),
                    });
                }
                None if !compare_source => {
                    sums_match = false;
                    v.mismatches.push(ChunkMismatch {
                        chunk: c.index,
                        detail: "written without a checksum (verification was off) and transformed: cannot be verified".into(),
                    });
                }
                _ => {}
            }
            if compare_source {
                ctx.call();
                let source = ctx
                    .source
                    .checksum(&t.info, &c.range)
                    .await
                    .map_err(|e| e.chunk(c.index).operation("verify source"))?;
                source_total += source.count;
                if source != target {
                    sums_match = false;
                    counts_match &= source.count == target.count;
                    v.mismatches.push(ChunkMismatch {
                        chunk: c.index,
                        detail: format!("source holds {source}, target holds {target}"),
                    });
                }
            }
        }
        v.source_count = compare_source.then_some(source_total);
        v.target_count = Some(target_total);
        v.count_match = Some(counts_match);
        v.checksum_match = Some(sums_match);
    }
    if ctx.cfg.verify.sample_size > 0 && !t.info.schema.primary_key.is_empty() {
        let keys = t
            .sample
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys
            .clone();
        v.sample = Some(sample(ctx, t, keys).await?);
    }
    Ok(v)
}

/// Compares sampled rows field by field: the source row (through the transforms) against the
/// target row with the same key. Names keys and fields, never values.
async fn sample(ctx: &Ctx, t: &TableCtx, keys: Vec<Vec<Value>>) -> Result<SampleVerification> {
    let mut s = SampleVerification {
        sample_size: keys.len() as u64,
        ..Default::default()
    };
    if keys.is_empty() {
        return Ok(s);
    }
    ctx.call();
    let source_rows = match ctx.source.fetch_rows(&t.info, &keys).await {
        Ok(r) => r,
        Err(e) if e.kind() == ErrorKind::Config => {
            s.skipped = Some(e.message().to_string());
            return Ok(s);
        }
        Err(e) => return Err(e.operation("sample source")),
    };
    let mut batch = Batch::new(t.info.schema.clone(), source_rows);
    for tr in &t.transforms {
        batch = tr.apply(batch)?.batch;
    }
    let schema = &t.target.schema;
    let expected: BTreeMap<String, Vec<Value>> = batch
        .into_rows()
        .into_iter()
        .map(|r| (KeyDisplay(&schema.key_of(&r)).to_string(), r))
        .collect();
    let target_keys: Vec<Vec<Value>> = expected.values().map(|r| schema.key_of(r)).collect();
    ctx.call();
    let target_rows = match ctx.sink.fetch_rows(&t.target, &target_keys).await {
        Ok(r) => r,
        Err(e) if e.kind() == ErrorKind::Config => {
            s.skipped = Some(e.message().to_string());
            return Ok(s);
        }
        Err(e) => return Err(e.operation("sample target")),
    };
    let actual: BTreeMap<String, Vec<Value>> = target_rows
        .into_iter()
        .map(|r| (KeyDisplay(&schema.key_of(&r)).to_string(), r))
        .collect();
    s.sample_size = expected.len() as u64;
    for (key, want) in &expected {
        match actual.get(key) {
            None => s.mismatches.push(SampleMismatch {
                record_id: key.clone(),
                field: "(missing in target)".into(),
            }),
            Some(got) => {
                let bad: Vec<&str> = schema
                    .columns
                    .iter()
                    .zip(want.iter().zip(got))
                    .filter(|(_, (a, b))| {
                        a.is_null() != b.is_null() || canonical_text(a) != canonical_text(b)
                    })
                    .map(|(c, _)| c.name.as_str())
                    .collect();
                if bad.is_empty() {
                    s.matched_records += 1;
                } else {
                    for f in bad {
                        s.mismatches.push(SampleMismatch {
                            record_id: key.clone(),
                            field: f.to_string(),
                        });
                    }
                }
            }
        }
    }
    s.mismatched_records = s.sample_size - s.matched_records;
    s.mismatches.truncate(50);
    Ok(s)
}

pub(crate) struct ReportInputs {
    pub(crate) run: RunRecord,
    pub(crate) plan_hash: String,
    pub(crate) mode: String,
    pub(crate) resumed: bool,
    pub(crate) already_done: u64,
    pub(crate) order: Vec<TableName>,
    pub(crate) estimated: BTreeMap<TableName, u64>,
    pub(crate) verifications: Vec<TableVerification>,
    pub(crate) errors: Vec<(Option<TableName>, Option<u32>, Error)>,
    pub(crate) reconciliation: Vec<String>,
    pub(crate) duration: Duration,
    pub(crate) paused: Duration,
    pub(crate) rows_written: u64,
    pub(crate) bytes_written: u64,
    pub(crate) progress: Progress,
    pub(crate) budget: Arc<MemoryBudget>,
    pub(crate) deferred: Vec<crate::plan::Deferral>,
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
            (
                Some(c.table.clone()),
                Some(c.index),
                Error::new(kind, c.error.clone().unwrap_or_default()),
            )
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
            reason: rec.and_then(|r| r.reason.clone()),
        });
    }
    let mut errors = report::ErrorSummary::default();
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
                message: e.message().to_string(),
                retriable: e.is_retryable(),
            });
        }
    }
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
    Ok(MigrationReport {
        execution_id: run.id.to_string(),
        migration: run.migration.clone(),
        status: run.status,
        execution_type: i.mode,
        resumed: i.resumed,
        plan_hash: i.plan_hash,
        timing: report::Timing {
            started_at: run.started_at,
            completed_at: Utc::now(),
            duration_seconds: secs,
            paused_duration_seconds: i.paused.as_secs_f64(),
        },
        progress: report::ProgressSummary {
            total_records,
            processed_records: processed,
            failed_records: rejected.len() as u64,
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
        preflight: vec![],
        audit_summary: audit,
        drift: vec![],
        deferred: i.deferred,
        plan_vs_actual,
        later_verification: None,
        schema_objects: objects_recorded(&events),
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
