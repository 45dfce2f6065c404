//! One chunk: claim, lease heartbeat, attempt, retry and checkpoint.

use std::sync::atomic::Ordering;

use tokio::time::Instant;
use tracing::warn;

use super::context::{Ctx, TableCtx};
use super::pipe::{ChunkPipe, PipeStats};
use crate::checkpoint::{AuditEvent, ChunkResult, RejectedRecord};
use crate::chunk::ChunkSpec;
use crate::error::{Error, ErrorKind, Result};
use crate::retry::{RetryDecision, RetryState};
use crate::schema::TableName;
use crate::source::ChangeRequest;

pub(super) enum ChunkOutcome {
    Completed(PipeStats),
    /// Another worker holds or completed it.
    NotClaimed,
    Failed(Error),
    StopRun(Error),
    Cancelled,
}

pub(super) async fn run_chunk(ctx: &Ctx, t: &TableCtx, index: u32) -> ChunkOutcome {
    let name = &t.info.name;
    let lease = ctx.cfg.lease;
    ctx.call();
    let claimed = match ctx
        .store
        .claim_chunk(&ctx.run, name, index, &ctx.cfg.worker_id, lease)
        .await
    {
        Ok(Some(c)) => c,
        Ok(None) => return ChunkOutcome::NotClaimed,
        Err(e) => return ChunkOutcome::StopRun(e.operation("claim_chunk")),
    };
    let spec = claimed.spec();
    let mut retry = RetryState::default();
    let (first_started, mut attempts) = (Instant::now(), 0u32);
    loop {
        ctx.tracker.chunk_started(name);
        let started = Instant::now();
        attempts += 1;
        let mut stats = PipeStats::default();
        let attempt = attempt_chunk(ctx, t, &spec, &mut stats);
        let heartbeat = async {
            loop {
                tokio::time::sleep(lease / 3).await;
                match ctx
                    .store
                    .renew_lease(&ctx.run, name, index, &ctx.cfg.worker_id, lease)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        return Error::transient("lost the chunk's lease to another worker")
                    }
                    Err(e) => return e.operation("renew_lease"),
                }
            }
        };
        let result = tokio::select! {
            e = heartbeat => Err(e),
            r = tokio::time::timeout(ctx.cfg.chunk_timeout, attempt) => match r {
                Ok(r) => r,
                Err(_) => Err(Error::new(ErrorKind::Timeout, format!("chunk attempt exceeded {:?}", ctx.cfg.chunk_timeout))),
            },
            _ = ctx.cancel.cancelled() => Err(Error::cancelled("run cancelled")),
        };
        match result {
            Ok(()) => {
                let res = ChunkResult {
                    rows: stats.rows,
                    bytes: stats.bytes,
                    // Rows copied inside the target's engine were never hashed here:
                    // verification reads the source's range instead.
                    checksum: (ctx.cfg.verify.checksums && !stats.in_engine)
                        .then_some(stats.checksum),
                    duration_ms: started.elapsed().as_millis() as u64,
                };
                // A transformed chunk's rejected rows replace what an earlier attempt at it
                // recorded (a row that passes now is no longer listed), before the chunk is
                // checkpointed: a crash between the two redoes the chunk, which records them
                // again, once. Only while the chunk is still this worker's: a worker whose
                // lease lapsed leaves the records to the one that took the chunk over.
                if !t.transforms.is_empty() {
                    ctx.call();
                    match ctx
                        .store
                        .renew_lease(&ctx.run, name, index, &ctx.cfg.worker_id, ctx.cfg.lease)
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => {
                            ctx.tracker
                                .rows(name, -(stats.rows as i64), -(stats.bytes as i64));
                            ctx.tracker.chunk_ended(name, false);
                            return ChunkOutcome::NotClaimed;
                        }
                        Err(e) => {
                            ctx.tracker.chunk_ended(name, false);
                            return ChunkOutcome::StopRun(e.operation("renew_lease"));
                        }
                    }
                    ctx.call();
                    let recs = rejected_records(ctx, name, index, &stats.rejected);
                    if let Err(e) = ctx
                        .store
                        .replace_chunk_rejected(&ctx.run, name, index, &recs)
                        .await
                    {
                        ctx.tracker.chunk_ended(name, false);
                        return ChunkOutcome::StopRun(e.operation("replace_chunk_rejected"));
                    }
                }
                ctx.call();
                // The checkpoint follows the sink's Ok, never precedes it.
                match ctx
                    .store
                    .complete_chunk(&ctx.run, name, index, &ctx.cfg.worker_id, &res)
                    .await
                {
                    Ok(true) => {
                        // The incremental cursor moves only once the chunk (and its rejected
                        // rows) are checkpointed: a crash before re-reads rows already
                        // upserted, which is harmless; the reverse would lose them.
                        if let Some(mark) = &stats.last_position {
                            if let Err(e) = ctx
                                .store
                                .save_cursor(&ctx.cfg.migration, &t.info.name, mark)
                                .await
                            {
                                ctx.tracker.chunk_ended(name, false);
                                return ChunkOutcome::StopRun(e.operation("save_cursor"));
                            }
                        }
                        ctx.tracker.chunk_ended(name, true);
                        return ChunkOutcome::Completed(stats);
                    }
                    Ok(false) => {
                        // Our lease lapsed and another worker took the chunk; its write of the
                        // same range converges on the same rows.
                        ctx.tracker
                            .rows(name, -(stats.rows as i64), -(stats.bytes as i64));
                        ctx.tracker.chunk_ended(name, false);
                        return ChunkOutcome::NotClaimed;
                    }
                    Err(e) => {
                        ctx.tracker.chunk_ended(name, false);
                        return ChunkOutcome::StopRun(e.operation("complete_chunk"));
                    }
                }
            }
            Err(e) => {
                ctx.tracker
                    .rows(name, -(stats.rows as i64), -(stats.bytes as i64));
                ctx.tracker.chunk_ended(name, false);
                let e = e.table(name).chunk(index);
                if e.kind() == ErrorKind::Cancelled || ctx.cancel.is_cancelled() {
                    let _ = ctx
                        .store
                        .fail_chunk(&ctx.run, name, index, "cancelled", ErrorKind::Cancelled)
                        .await;
                    return ChunkOutcome::Cancelled;
                }
                // If our lease lapsed, another worker owns the chunk now (or finished it):
                // hand it over instead of retrying or failing the table over its writes.
                if let Ok(false) = ctx
                    .store
                    .renew_lease(&ctx.run, name, index, &ctx.cfg.worker_id, lease)
                    .await
                {
                    warn!(error = %e, "lost the chunk's lease; another worker has it");
                    return ChunkOutcome::NotClaimed;
                }
                let decision = ctx.cfg.retry.decide(&e, &mut retry);
                warn!(error = %e, ?decision, "chunk attempt failed");
                match decision {
                    RetryDecision::RetryAfter(delay) => {
                        ctx.tracker.retry();
                        ctx.audit(
                            AuditEvent::new(
                                "chunk.retry",
                                format!("{} error; retrying in {} ms", e.kind(), delay.as_millis()),
                            )
                            .on(name, Some(index)),
                        )
                        .await;
                        let _ = ctx
                            .store
                            .renew_lease(&ctx.run, name, index, &ctx.cfg.worker_id, lease + delay)
                            .await;
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = ctx.cancel.cancelled() => {
                                let _ = ctx.store.fail_chunk(&ctx.run, name, index, "cancelled", ErrorKind::Cancelled).await;
                                return ChunkOutcome::Cancelled;
                            }
                        }
                    }
                    RetryDecision::GiveUp | RetryDecision::StopRun => {
                        // A kind worth retrying that gets here has spent its retry budget.
                        let e = if e.is_retryable() {
                            e.exhausted(attempts, first_started.elapsed())
                        } else {
                            e
                        };
                        ctx.call();
                        let _ = ctx
                            .store
                            .fail_chunk(&ctx.run, name, index, &e.to_string(), e.kind())
                            .await;
                        ctx.audit(
                            AuditEvent::new("chunk.failed", e.to_string()).on(name, Some(index)),
                        )
                        .await;
                        return if decision == RetryDecision::StopRun {
                            ChunkOutcome::StopRun(e)
                        } else {
                            ChunkOutcome::Failed(e)
                        };
                    }
                }
            }
        }
    }
}

async fn attempt_chunk(
    ctx: &Ctx,
    t: &TableCtx,
    spec: &ChunkSpec,
    stats: &mut PipeStats,
) -> Result<()> {
    if t.cursor.is_none() && !t.merge.load(Ordering::Relaxed) && t.transforms.is_empty() {
        // The target's engine may read the source's range itself (same engine and place).
        if let Some(query) = ctx.source.chunk_query(&t.info, &spec.range).await? {
            ctx.call();
            if let Some(w) = ctx.sink.write_chunk_from(&t.target, spec, &query).await? {
                *stats = PipeStats {
                    rows: w.rows,
                    bytes: w.bytes,
                    in_engine: true,
                    ..Default::default()
                };
                ctx.tracker
                    .rows(&t.info.name, w.rows as i64, w.bytes as i64);
                return Ok(());
            }
        }
    }
    ctx.call();
    let (reader, cursor_index) = match &t.cursor {
        Some((col, idx, upper)) => {
            let Some(upper) = upper.clone() else {
                return Ok(()); // empty table: nothing changed
            };
            // Read again from the watermark's cursor value (minus the lookback), not past it:
            // rows sharing that value or committed late with an older one would be lost
            // otherwise; the upsert makes the rows read twice harmless.
            let lookback = ctx.cfg.mode.incremental().and_then(|inc| inc.lookback);
            let from = match ctx.store.cursor(&ctx.cfg.migration, &t.info.name).await? {
                Some(mark) => mark
                    .read_from(lookback)
                    .map_err(|e| e.table(&t.info.name))?,
                None => None,
            };
            let req = ChangeRequest {
                cursor_column: col.clone(),
                from,
                upper,
            };
            (
                ctx.source
                    .read_changes(&t.info, &req, ctx.batch_rows)
                    .await?,
                Some(*idx),
            )
        }
        None => (
            ctx.source.read_chunk(&t.info, spec, ctx.batch_rows).await?,
            None,
        ),
    };
    let mut pipe = ChunkPipe {
        inner: reader,
        out_schema: t.target.schema.clone(),
        transforms: &t.transforms,
        budget: &ctx.budget,
        held: None,
        tracker: &ctx.tracker,
        table: &t.info.name,
        cancel: &ctx.cancel,
        sample_cap: ctx.cfg.verify.sample_size,
        checksums: ctx.cfg.verify.checksums,
        throttle: ctx.throttle.as_ref(),
        cursor_index,
        stats: PipeStats::default(),
    };
    ctx.call();
    let result = if t.cursor.is_some() || t.merge.load(Ordering::Relaxed) {
        ctx.sink.upsert(&t.target, &mut pipe).await
    } else {
        ctx.sink.write_chunk(&t.target, spec, &mut pipe).await
    };
    pipe.held = None;
    *stats = std::mem::take(&mut pipe.stats);
    result?;
    if !stats.rejected.is_empty() && t.info.schema.primary_key.is_empty() {
        return Err(Error::validation(format!(
            "table {} has no primary key: the {} rows its transforms rejected could not be named or replayed, so the table fails rather than lose them",
            t.info.name,
            stats.rejected.len()
        )));
    }
    Ok(())
}

/// A chunk's rejected rows as store records: values only where the operator opted in.
fn rejected_records(
    ctx: &Ctx,
    table: &TableName,
    chunk: u32,
    rejected: &[crate::transform::Rejected],
) -> Vec<RejectedRecord> {
    rejected
        .iter()
        .map(|r| RejectedRecord::of(table, chunk, r, ctx.cfg.keep_rejected_values))
        .collect()
}
