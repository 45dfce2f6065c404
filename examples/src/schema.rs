//! `migrate schema apply|status`: the tables of a folder of ordered DDL files created in a
//! target one at a time, checkpointed, resumable (see the `migrate-ddl` crate).

use std::path::Path;

use migrate_backend_postgres::PgSinkOptions;
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
    /// How long one attempt at one table may take.
    pub table_timeout: std::time::Duration,
    /// How long a claim on a table holds unrenewed.
    pub lease: std::time::Duration,
    /// JSON lines instead of text.
    pub json: bool,
}

/// The store key of a folder's schema migration to a target: the folder's name (so a folder
/// moved with a deploy keeps its run) and where it goes (so one folder applied to two targets
/// is two migrations), the target without its credentials or options.
fn migration_name(dir: &Path, target: &str) -> String {
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string());
    format!("schema:{name}->{}", target_place(target))
}

/// `scheme://host/path` of a target URL: no user, password, query or fragment (which may
/// carry keys); a URL that does not parse is named by its scheme alone.
fn target_place(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => format!(
            "{}://(unparsed)",
            url.split_once("://").map_or("target", |(s, _)| s)
        ),
    }
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
    let left_out = migrate_ddl::dropped(&conv, &*sink);
    if a.dry_run {
        print_conversion(&conv, &*sink, a.dir, a.json);
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
        migration: migration_name(a.dir, a.target),
        replace_drifted: a.replace,
        table_timeout: a.table_timeout,
        lease: a.lease,
        ..Default::default()
    };
    let json = a.json;
    // The progress block on the terminal every 10 tables or 30 seconds (each table's line
    // says the rest); in JSON every progress event.
    let mut last_block: Option<(std::time::Instant, usize)> = None;
    let mut on = |e: &Event| {
        if let Event::Progress {
            report,
            current_file,
        } = e
        {
            let done = report.completed.len() + report.failed.len();
            let due =
                last_block.is_none_or(|(at, n)| at.elapsed().as_secs() >= 30 || done >= n + 10);
            if json || !due {
                if json {
                    print_event(e, json);
                }
                return;
            }
            last_block = Some((std::time::Instant::now(), done));
            eprint!("{}", progress_text(report, Some(current_file)));
            return;
        }
        print_event(e, json)
    };
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
pub async fn status_cmd(
    dir: &Path,
    target: &str,
    checkpoint: &str,
    json: bool,
) -> Result<u8, Error> {
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
    let Some(run) = store.latest_run(&migration_name(dir, target)).await? else {
        eprintln!(
            "no schema migration of {} to {} in {} (is --target as given to apply?)",
            dir.display(),
            target_place(target),
            migrate_backend_postgres::redact(checkpoint)
        );
        return Ok(1);
    };
    {
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
            let keys_failed = part(1).is_some_and(|c| c.status == ChunkStatus::Failed);
            match part(0) {
                Some(_) if keys_failed => {}
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

fn print_conversion(conv: &Converted, sink: &dyn Sink, dir: &Path, json: bool) {
    if !json {
        print!("{}", migrate_ddl::target_ddl(conv, sink, dir));
        return;
    }
    let left_out = migrate_ddl::dropped(conv, sink);
    for t in &conv.tables {
        let columns = migrate_ddl::target_columns(sink, &t.info);
        let dropped = left_out
            .iter()
            .filter(|o| o.table.as_ref() == Some(&t.info.name));
        let line = json!({
            "event": "table",
            "table": t.info.name.to_string(),
            "file": t.file.display().to_string(),
            "line": t.line,
            "columns": columns.iter().map(|(n, ty, not_null)| json!({"name": n, "type": ty, "not_null": not_null})).collect::<Vec<_>>(),
            "primary_key": t.info.primary_key(),
            "dropped": dropped.map(|o| json!({"kind": o.kind.to_string(), "name": o.name, "reason": o.not_created})).collect::<Vec<_>>(),
        });
        println!("{line}");
    }
    for s in &conv.skipped {
        println!(
            "{}",
            json!({"event": "skipped", "at": s.at, "what": s.what, "why": s.why})
        );
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
        Event::Progress {
            report,
            current_file,
        } => json!({
            "event": "progress",
            "completed": report.completed.len(),
            "failed": report.failed.len(),
            "total": report.total,
            "current_file": current_file,
            "api_calls": report.calls,
            "elapsed_ms": report.elapsed.as_millis() as u64,
        }),
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
            Event::Progress {
                report,
                current_file,
            } => eprint!("{}", progress_text(report, Some(current_file))),
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
