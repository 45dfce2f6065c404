//! Post-load verification: count and canonical checksum per chunk range, source vs target, and
//! a field-by-field sample.

use std::collections::BTreeMap;

use super::config::Mode;
use super::context::{Ctx, TableCtx};
use super::report::record_objects;
use crate::batch::Batch;
use crate::checkpoint::ChunkStatus;
use crate::checksum::canonical_text;
use crate::error::{ErrorKind, Result};
use crate::report::{ChunkMismatch, SampleMismatch, SampleVerification, TableVerification};
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
