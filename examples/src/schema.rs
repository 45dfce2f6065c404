//! `migrate schema apply|status`: the tables of a folder of ordered DDL files created in a
//! target one at a time, checkpointed, resumable (see the `migrate-ddl` crate).

use std::path::Path;

use migrate_backend_postgres::PgSinkOptions;
use migrate_core::objects::ObjectOutcome;
use migrate_core::{ChunkStatus, Error, Sink};
use migrate_ddl::{
    apply, progress_text, read_dir, ApplyConfig, ApplyReport, Converted, Event, Options,
};
use serde_json::json;

use crate::backends;

/// What `schema apply` was asked.
#[derive(Debug, Clone)]
pub struct ApplyArgs<'a> {
    /// The DDL folder.
    pub dir: &'a Path,
    /// The target URL (as the configuration's `[target] url`).
    pub target: &'a str,
    /// The checkpoint store URL.
    pub checkpoint: &'a str,
    /// Print the conversion and touch nothing.
    pub dry_run: bool,
    /// Refuse a table any of whose objects the target cannot carry.
    pub strict: bool,
    /// List statements the parser cannot read (never a CREATE TABLE) instead of stopping.
    pub skip_unreadable: bool,
    /// Recreate a table the target has with other columns.
    pub replace: bool,
    /// JSON lines instead of text.
    pub json: bool,
}

/// The store key of a folder's schema migration.
fn migration_name(dir: &Path) -> String {
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string());
    format!("schema:{name}")
}

/// What a target leaves out of each table: `(table, outcome)` for every object not created.
fn dropped(conv: &Converted, sink: &dyn Sink) -> Vec<ObjectOutcome> {
    conv.tables
        .iter()
        .flat_map(|t| sink.plan_objects(&t.info))
        .filter(|o| o.not_created.is_some())
        .collect()
}

/// Runs `schema apply`; the exit code.
pub async fn apply_cmd(a: &ApplyArgs<'_>) -> Result<u8, Error> {
    let conv = read_dir(
        a.dir,
        &Options {
            skip_unreadable: a.skip_unreadable,
        },
    )?;
    let sink = backends::sink(a.target, &PgSinkOptions::default())?;
    let left_out = dropped(&conv, &*sink);
    if a.dry_run {
        print_conversion(&conv, &*sink, &left_out, a.json);
    }
    if a.strict && !left_out.is_empty() {
        let first = &left_out[0];
        return Err(Error::config(format!(
            "--strict: the target cannot carry {} of {} ({}){}",
            first.name,
            first
                .table
                .as_ref()
                .map(|t| t.to_string())
                .unwrap_or_default(),
            first.not_created.as_deref().unwrap_or_default(),
            match left_out.len() {
                1 => String::new(),
                n => format!(", and {} more", n - 1),
            }
        )));
    }
    if a.dry_run {
        return Ok(0);
    }
    let (store, _) = backends::store(a.checkpoint, "migrate").await?;
    let cfg = ApplyConfig {
        migration: migration_name(a.dir),
        replace_drifted: a.replace,
        ..Default::default()
    };
    let json = a.json;
    let mut on = |e: &Event| print_event(e, json);
    let report = apply(&conv, &*sink, &*store, &cfg, &mut on).await?;
    if json {
        println!("{}", report_json(&report));
    } else {
        print!("{}", progress_text(&report, None));
    }
    Ok(match report.succeeded() {
        true => 0,
        false => 1,
    })
}

/// Runs `schema status`: the store's view of the folder's schema migration.
pub async fn status_cmd(dir: &Path, checkpoint: &str, json: bool) -> Result<u8, Error> {
    let conv = read_dir(
        dir,
        &Options {
            skip_unreadable: true,
        },
    )?;
    let (store, _) = backends::store(checkpoint, "migrate").await?;
    let mut report = ApplyReport {
        total: conv.tables.len(),
        ..Default::default()
    };
    let mut current = None;
    if let Some(run) = store.latest_run(&migration_name(dir)).await? {
        let chunks = store.chunks(&run.id).await?;
        for t in &conv.tables {
            // Chunk 0 is the table's creation, 1 its keys and indexes.
            let part = |i: u32| {
                chunks
                    .iter()
                    .find(|c| c.table == t.info.name && c.index == i)
            };
            if let Some(keys) = part(1).filter(|c| c.status == ChunkStatus::Failed) {
                report
                    .failed
                    .push((t.info.name.clone(), keys.error.clone().unwrap_or_default()));
            }
            match part(0) {
                Some(c) if c.status == ChunkStatus::Completed => report.completed.push((
                    t.info.name.clone(),
                    c.finished_at.unwrap_or(run.updated_at),
                    migrate_ddl::apply::EARLIER.into(),
                )),
                Some(c) if c.status == ChunkStatus::Failed => report
                    .failed
                    .push((t.info.name.clone(), c.error.clone().unwrap_or_default())),
                _ => {
                    current.get_or_insert_with(|| {
                        t.file
                            .file_name()
                            .map(|f| f.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    });
                }
            }
        }
    }
    match json {
        true => println!("{}", report_json(&report)),
        false => print!("{}", progress_text(&report, current.as_deref())),
    }
    Ok(0)
}

fn print_conversion(conv: &Converted, sink: &dyn Sink, left_out: &[ObjectOutcome], json: bool) {
    for t in &conv.tables {
        let columns: Vec<(String, String)> = t
            .info
            .schema
            .columns
            .iter()
            .map(|c| {
                let ty = sink
                    .ddl_type(&t.info, c)
                    .unwrap_or_else(|| c.data_type.to_string());
                (c.name.clone(), ty)
            })
            .collect();
        let dropped: Vec<&ObjectOutcome> = left_out
            .iter()
            .filter(|o| o.table.as_ref() == Some(&t.info.name))
            .collect();
        if json {
            let line = json!({
                "event": "table",
                "table": t.info.name.to_string(),
                "file": t.file.display().to_string(),
                "line": t.line,
                "columns": columns.iter().map(|(n, ty)| json!({"name": n, "type": ty})).collect::<Vec<_>>(),
                "primary_key": t.info.primary_key(),
                "dropped": dropped.iter().map(|o| json!({"kind": o.kind.to_string(), "name": o.name, "reason": o.not_created})).collect::<Vec<_>>(),
            });
            println!("{line}");
            continue;
        }
        println!("{} ({}:{})", t.info.name, t.file.display(), t.line);
        for (n, ty) in &columns {
            println!("  {n} {ty}");
        }
        if !t.info.primary_key().is_empty() {
            println!("  primary key ({})", t.info.primary_key().join(", "));
        }
        for o in dropped {
            println!(
                "  dropped {} {}: {}",
                o.kind,
                o.name,
                o.not_created.as_deref().unwrap_or_default()
            );
        }
    }
    for s in &conv.skipped {
        match json {
            true => println!(
                "{}",
                json!({"event": "skipped", "at": s.at, "what": s.what, "why": s.why})
            ),
            false => println!("skipped {} ({}): {}", s.what, s.at, s.why),
        }
    }
}

fn print_event(e: &Event, json: bool) {
    let line = match e {
        Event::Reconciled(note) => json!({"event": "reconciled", "note": note}),
        Event::Started {
            table,
            index,
            total,
            file,
        } => {
            json!({"event": "table.started", "table": table.to_string(), "index": index, "total": total, "file": file})
        }
        Event::Retrying {
            table,
            delay,
            error,
        } => {
            json!({"event": "table.retry", "table": table.to_string(), "delay_ms": delay.as_millis() as u64, "error": error})
        }
        Event::Completed { table, at, how } => {
            json!({"event": "table.completed", "table": table.to_string(), "at": at.to_rfc3339(), "how": how})
        }
        Event::Failed { table, error } => {
            json!({"event": "table.failed", "table": table.to_string(), "error": error})
        }
    };
    match json {
        true => println!("{line}"),
        false => match e {
            Event::Reconciled(note) => eprintln!("reconciled: {note}"),
            Event::Started {
                table,
                index,
                total,
                file,
            } => eprintln!("[{index}/{total}] {table} ({file})"),
            Event::Retrying {
                table,
                delay,
                error,
            } => eprintln!("  {table}: retrying in {} ms: {error}", delay.as_millis()),
            Event::Completed { table, how, .. } => eprintln!("  {table}: {how}"),
            Event::Failed { table, error } => eprintln!("  {table}: FAILED: {error}"),
        },
    }
}

fn report_json(r: &ApplyReport) -> serde_json::Value {
    json!({
        "event": "schema.report",
        "completed": r.completed.len(),
        "total": r.total,
        "tables": r.completed.iter().map(|(t, at, how)| json!({"table": t.to_string(), "at": at.to_rfc3339(), "how": how})).collect::<Vec<_>>(),
        "failed": r.failed.iter().map(|(t, e)| json!({"table": t.to_string(), "error": e})).collect::<Vec<_>>(),
        "reconciled": r.reconciled,
        "api_calls": r.calls,
        "quota_usage": serde_json::Value::Null,
        "stopped": r.stopped,
        "elapsed_ms": r.elapsed.as_millis() as u64,
    })
}
