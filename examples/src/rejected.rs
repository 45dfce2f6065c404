//! `migrate rejected list|replay`: the rows the latest run's transforms rejected, by key, and
//! their replay once the data or the rules are fixed — only those keys read again from the
//! source, through the table's current transforms, written by key (upsert: idempotent), and
//! the entries that now pass marked resolved. Batch by batch: a replay stopped midway is
//! continued by running it again, and a second replay of a finished one changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use migrate_core::checkpoint::AuditEvent;
use migrate_core::value::{parse_key, KeyDisplay};
use migrate_core::{
    Batch, CheckpointStore, Error, RejectedRecord, Result, RunRecord, TableFilter, TableInfo,
    TableName, Transform, VecBatchReader,
};
use serde_json::json;

use crate::{backends, config, transforms};

/// Keys read and written at a time.
const BATCH: usize = 500;

async fn latest(s: &config::Settings) -> Result<(Arc<dyn CheckpointStore>, Option<RunRecord>)> {
    let (store, _) = backends::store(&s.checkpoint_url, &s.checkpoint_schema).await?;
    let run = store.latest_run(&s.executor.migration).await?;
    Ok((store, run))
}

/// `rejected list`: every unresolved rejected row of the latest run (key, rule, reason, kind,
/// chunk; values only where they were kept), and a count per table and rule.
pub async fn list(s: &config::Settings, table: Option<&str>, json_out: bool) -> Result<u8> {
    let (store, run) = latest(s).await?;
    let Some(run) = run else {
        println!("migration {:?} has no run yet", s.executor.migration);
        return Ok(0);
    };
    let rows: Vec<RejectedRecord> = store
        .rejected(&run.id)
        .await?
        .into_iter()
        .filter(|r| table.is_none_or(|t| r.table.to_string() == t || r.table.name == t))
        .collect();
    let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
    for r in &rows {
        *counts
            .entry((r.table.to_string(), r.rule.clone()))
            .or_insert(0) += 1;
    }
    if json_out {
        for r in &rows {
            println!(
                "{}",
                json!({"table": r.table.to_string(), "key": r.key, "rule": r.rule, "reason": r.reason,
                       "kind": r.kind.map(|k| k.as_str()), "chunk": r.chunk, "at": r.at.to_rfc3339(),
                       "values": r.values})
            );
        }
        return Ok(0);
    }
    println!("run {}: {} rejected rows not resolved", run.id, rows.len());
    for ((t, rule), n) in &counts {
        println!("  {t}: {n} by {rule}");
    }
    for r in &rows {
        println!(
            "{} {} [{}] {}{}",
            r.table,
            r.key,
            r.rule,
            r.reason,
            r.values
                .as_ref()
                .map(|v| format!(" values={v}"))
                .unwrap_or_default()
        );
    }
    Ok(0)
}

/// What a replay did to one table.
#[derive(Debug, Default)]
struct Replayed {
    read: u64,
    written: u64,
    still_rejected: u64,
    left_out: u64,
    gone: u64,
    unreadable_keys: u64,
}

/// `rejected replay`: the rejected keys read again and written if they pass now.
pub async fn replay(s: &config::Settings, json_out: bool) -> Result<u8> {
    let (store, run) = latest(s).await?;
    let Some(run) = run else {
        println!("migration {:?} has no run yet", s.executor.migration);
        return Ok(0);
    };
    let source = backends::source(&s.source_url)?;
    let sink = backends::sink(&s.target_url, &s.pg_sink)?;
    // Each table's rejected keys, with the chunk each came from.
    let mut by_table: BTreeMap<TableName, BTreeMap<String, u32>> = BTreeMap::new();
    for r in store.rejected(&run.id).await? {
        by_table.entry(r.table).or_default().insert(r.key, r.chunk);
    }
    let mut failed = false;
    for (table, keys) in by_table {
        let filter = TableFilter {
            include: vec![table.to_string()],
            exclude: Vec::new(),
            allow_unmatched: true,
        };
        let Some(info) = source
            .discover(&filter)
            .await?
            .into_iter()
            .find(|t| t.name == table)
        else {
            eprintln!(
                "{table}: not in the source any more; its rejected rows are left as they are"
            );
            failed = true;
            continue;
        };
        let steps = s
            .transforms
            .iter()
            .find(|(t, _)| *t == table)
            .map(|(_, steps)| steps.as_slice())
            .unwrap_or_default();
        let chain = transforms::chain(&*source, steps).await?;
        let target = TableInfo {
            schema: chain.output_schema(&info.schema)?,
            ..info.clone()
        };
        let ctx = Replay {
            store: &*store,
            run: &run,
            source: &*source,
            sink: &*sink,
            keep_values: s.executor.keep_rejected_values,
        };
        let done = replay_table(&ctx, &info, &target, &chain, &keys)
            .await
            .map_err(|e| e.table(&table).operation("replay"))?;
        failed |= done.unreadable_keys > 0;
        let line = json!({
            "event": "rejected.replayed", "table": table.to_string(), "read": done.read,
            "written": done.written, "still_rejected": done.still_rejected,
            "left_out_by_filter": done.left_out, "gone_from_source": done.gone,
            "unreadable_keys": done.unreadable_keys,
        });
        match json_out {
            true => println!("{line}"),
            false => println!(
                "{table}: {} rejected rows read again, {} written, {} still rejected, {} left out by a filter, {} no longer in the source{}",
                done.read,
                done.written,
                done.still_rejected,
                done.left_out,
                done.gone,
                match done.unreadable_keys {
                    0 => String::new(),
                    n => format!(", {n} keys that could not be read back (left as they are)"),
                }
            ),
        }
    }
    Ok(if failed { 1 } else { 0 })
}

/// What a replay works with.
struct Replay<'a> {
    store: &'a dyn CheckpointStore,
    run: &'a RunRecord,
    source: &'a dyn migrate_core::Source,
    sink: &'a dyn migrate_core::Sink,
    keep_values: bool,
}

async fn replay_table(
    ctx: &Replay<'_>,
    info: &TableInfo,
    target: &TableInfo,
    chain: &dyn Transform,
    chunks: &BTreeMap<String, u32>,
) -> Result<Replayed> {
    let Replay {
        store,
        run,
        source,
        sink,
        keep_values,
    } = *ctx;
    let mut done = Replayed::default();
    let types: Vec<_> = info
        .schema
        .primary_key
        .iter()
        .map(|&i| info.schema.columns[i].data_type.clone())
        .collect();
    if types.is_empty() {
        return Err(Error::config(
            "a table without a primary key has no keys to replay by",
        ));
    }
    let keys: Vec<&String> = chunks.keys().collect();
    for batch in keys.chunks(BATCH) {
        let mut parsed = Vec::new();
        for &k in batch {
            match parse_key(k, &types) {
                Some(v) => parsed.push((k.clone(), v)),
                None => done.unreadable_keys += 1,
            }
        }
        let values: Vec<_> = parsed.iter().map(|(_, v)| v.clone()).collect();
        let rows = source.fetch_rows(info, &values).await?;
        done.read += rows.len() as u64;
        let found: BTreeSet<String> = rows
            .iter()
            .map(|r| KeyDisplay(&info.schema.key_of(r)).to_string())
            .collect();
        let out = chain.apply(Batch::new(info.schema.clone(), rows))?;
        let rejected: BTreeSet<String> = out
            .rejected
            .iter()
            .map(|r| KeyDisplay(&r.key).to_string())
            .collect();
        done.still_rejected += rejected.len() as u64;
        done.left_out += out.filtered;
        let written_now = out.batch.len() as u64;
        done.written += written_now;
        if !out.batch.is_empty() {
            let schema = out.batch.schema().clone();
            let mut reader = VecBatchReader::new(schema, vec![out.batch]);
            sink.upsert(target, &mut reader).await?;
        }
        // What the still-rejected rows break now.
        let again: Vec<RejectedRecord> = out
            .rejected
            .iter()
            .map(|r| {
                let chunk = chunks
                    .get(&KeyDisplay(&r.key).to_string())
                    .copied()
                    .unwrap_or(0);
                RejectedRecord::of(&info.name, chunk, r, keep_values)
            })
            .collect();
        // Every key read again (written, left out by the current rules, still rejected, or
        // gone from the source) has its earlier records resolved and what it breaks now
        // recorded — as one change: a row fixed for one rule that breaks another is listed
        // under the new one only.
        let checked: Vec<String> = parsed.iter().map(|(k, _)| k.clone()).collect();
        done.gone += parsed.iter().filter(|(k, _)| !found.contains(k)).count() as u64;
        store
            .recheck_rejected(&run.id, &info.name, &checked, &again)
            .await?;
        // Each batch's figures as it is resolved: an interrupted replay's committed batches
        // are accounted for (ROW_COUNT adds the rows replays wrote).
        let detail = json!({
            "keys": checked.len(),
            "written": written_now,
            "still_rejected": again.len(),
        });
        store
            .append_event(
                &run.id,
                &AuditEvent::new("rejected.replayed", detail.to_string()).on(&info.name, None),
            )
            .await?;
    }
    Ok(done)
}
