//! After a table's data: its finalize (indexes, constraints, sequences), then verification —
//! count and canonical checksum per chunk range, target against the rows as copied (or the
//! source re-read), and a field-by-field sample.

use std::collections::BTreeMap;

use super::config::Mode;
use super::context::{Ctx, TableCtx};
use super::report::record_objects;
use crate::batch::Batch;
use crate::checkpoint::{ChunkRecord, ChunkStatus};
use crate::checksum::{canonical_text, one_per_range, RowChecksum};
use crate::chunk::KeyRange;
use crate::error::{ErrorKind, Result};
use crate::report::{
    ChunkMismatch, ComparedWith, SampleMismatch, SampleVerification, TableVerification,
};
use crate::value::{KeyDisplay, Value};

/// Builds what waits for a table's data: indexes, constraints, foreign keys (the sink's
/// finalize), then sequences set to the source's values read now, after the data.
pub(crate) async fn finalize(ctx: &Ctx, t: &TableCtx) -> Result<()> {
    ctx.call();
    let mut objects = ctx
        .sink
        .finalize(&t.target)
        .await
        .map_err(|e| e.operation("finalize"))?;
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
    Ok(())
}

/// Verifies one table once all its chunks completed: each chunk's key range in the target
/// against the rows the run copied into it (or the source read again), then a sample field
/// by field.
pub(crate) async fn table(ctx: &Ctx, t: &TableCtx) -> Result<TableVerification> {
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
        compare_ranges(ctx, t, &mut v).await?;
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

/// Compares every completed chunk's range: the target read once (the sink sorts its rows into
/// the ranges) against the checksum each chunk's rows had as they were copied. The source is
/// read again only when asked (`recheck_source`) or for chunks copied without a checksum
/// (completed while verification was off) — and never for transformed rows, which the source
/// does not hold.
async fn compare_ranges(ctx: &Ctx, t: &TableCtx, v: &mut TableVerification) -> Result<()> {
    let mut chunks: Vec<ChunkRecord> = ctx
        .store
        .chunks(&ctx.run)
        .await?
        .into_iter()
        .filter(|c| c.table == t.info.name && c.status == ChunkStatus::Completed)
        .collect();
    chunks.sort_by_key(|c| c.index);
    let ranges: Vec<KeyRange> = chunks.iter().map(|c| c.range.clone()).collect();
    ctx.call();
    let mut targets = ctx
        .sink
        .checksum_ranges(&t.target, &ranges)
        .await
        .and_then(|s| one_per_range(s, &ranges, "sink"))
        .map_err(|e| e.operation("verify target"))?;
    let untransformed = t.transforms.is_empty();
    let recheck = ctx.cfg.verify.recheck_source && untransformed;
    let mut sources: Vec<Option<RowChecksum>> = vec![None; chunks.len()];
    if recheck {
        ctx.call();
        let all = ctx
            .source
            .checksum_ranges(&t.info, &ranges)
            .await
            .and_then(|s| one_per_range(s, &ranges, "source"))
            .map_err(|e| e.operation("verify source"))?;
        sources = all.into_iter().map(Some).collect();
    } else if untransformed {
        for (i, c) in chunks
            .iter()
            .enumerate()
            .filter(|(_, c)| c.checksum.is_none())
        {
            ctx.call();
            let s = ctx
                .source
                .checksum(&t.info, &c.range)
                .await
                .map_err(|e| e.chunk(c.index).operation("verify source"))?;
            sources[i] = Some(s);
        }
    }
    let together = !ranges_compare_alike(ctx.source.kind(), ctx.sink.kind(), &t.info.schema);
    if together && chunks.len() > 1 {
        // The target sorted its rows into the ranges in its own order of the key, which is
        // not the order the chunks were cut in: a range can differ where the table agrees,
        // so the ranges are compared together, as one.
        let total = |sums: Vec<Option<RowChecksum>>| {
            sums.into_iter().try_fold(RowChecksum::new(), |mut all, c| {
                all.merge(&c?);
                Some(all)
            })
        };
        let source = match sources.iter().any(Option::is_some) {
            true => total(
                sources
                    .iter()
                    .zip(&chunks)
                    .map(|(s, c)| s.or(c.checksum))
                    .collect(),
            ),
            false => None,
        };
        let mut whole = chunks[0].clone();
        whole.range = KeyRange::all();
        whole.checksum = total(chunks.iter().map(|c| c.checksum).collect());
        targets = vec![total(targets.into_iter().map(Some).collect()).unwrap_or_default()];
        sources = vec![source];
        chunks = vec![whole];
    }
    let (mut source_total, mut target_total) = (0u64, 0u64);
    let (mut counts_match, mut sums_match) = (true, true);
    for ((c, target), source) in chunks.iter().zip(&targets).zip(&sources) {
        target_total += target.count;
        let mut differ = |detail: String, counts: bool| {
            sums_match = false;
            counts_match &= counts;
            v.mismatches.push(ChunkMismatch {
                chunk: c.index,
                detail,
            });
        };
        match (c.checksum, source) {
            (Some(written), _) if *target != written => differ(
                format!("target holds {target}, the run wrote {written}"),
                target.count == written.count,
            ),
            (None, None) => differ(
                "written without a checksum (verification was off) and transformed: cannot be verified".into(),
                true,
            ),
            _ => {}
        }
        if let Some(source) = source {
            if source != target {
                differ(
                    format!("source holds {source}, target holds {target}"),
                    source.count == target.count,
                );
            }
        }
        // The rows read from the source: counted again when re-read, else as they streamed.
        source_total += source.or(c.checksum).map_or(0, |s| s.count);
    }
    if together {
        for m in &mut v.mismatches {
            m.detail = format!(
                "all chunks together (the key orders differently in the source and the target, so its ranges are compared as one): {}",
                m.detail
            );
        }
    }
    v.source_count = untransformed.then_some(source_total);
    v.target_count = Some(target_total);
    v.count_match = Some(counts_match);
    v.checksum_match = Some(sums_match);
    // Chunks copied without a checksum (verification off then, or copied inside the target's
    // engine) were compared with the source read again.
    v.compared_with = Some(if recheck || sources.iter().any(Option::is_some) {
        ComparedWith::SourceReread
    } else {
        ComparedWith::RowsAsCopied
    });
    Ok(())
}

/// Whether key ranges select the same rows in the source and the target: the same engine, or
/// a key that orders alike in every engine ([`crate::chunk::key_orders_alike`]). Otherwise
/// each side sorts rows into the ranges in its own order, and only whole tables compare.
pub(crate) fn ranges_compare_alike(
    source: &str,
    sink: &str,
    schema: &crate::schema::Schema,
) -> bool {
    source == sink || crate::chunk::key_orders_alike(schema)
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
        Err(e) if e.kind() == ErrorKind::Unsupported => {
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
        Err(e) if e.kind() == ErrorKind::Unsupported => {
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
