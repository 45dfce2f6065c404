//! Whether an execution continues a run, follows one up, has nothing to do or starts a new
//! one, decided from the store; the plan hash that identifies a plan.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::config::{ExecutorConfig, Mode};
use super::context::TableCtx;
use super::Migration;
use crate::checkpoint::{AuditEvent, RunRecord, RunStatus, TableRecord, TableStatus};
use crate::error::{Error, ErrorKind, Result};
use crate::schema::TableName;

/// How this execution relates to the migration's earlier runs.
pub(super) enum Opening {
    /// Continue `run`: stopped, or completed with tables deferred or failed (a follow-up).
    Continue { run: RunRecord, follow_up: bool },
    /// The latest run completed every table under this plan.
    Done(RunRecord),
    /// Start a new run, first marking `supersede` (a stopped run) superseded.
    New { supersede: Option<RunRecord> },
}

pub(super) enum Opened {
    Run {
        run: RunRecord,
        resumed: bool,
        follow_up: bool,
    },
    AlreadyDone(RunRecord),
}

pub(super) fn incremental_mode(cfg: &ExecutorConfig) -> bool {
    matches!(cfg.mode, Mode::Incremental(_) | Mode::Stream { .. })
}

/// The tables a run prepared (its rows in them are the migration's own).
fn prepared_tables(records: &[TableRecord]) -> BTreeSet<TableName> {
    records
        .iter()
        .filter(|r| r.prepared.is_some())
        .map(|r| r.table.clone())
        .collect()
}

/// Decides, from the store alone, whether this execution continues a run, has nothing to do, or
/// starts a new run — and whose rows the target tables hold.
///
/// - a stopped run under the same plan is continued (a different plan needs `force`);
/// - after a completed full run, the same plan is "nothing to do" unless tables were deferred
///   or failed, which a follow-up run of the same run migrates; completed tables are left
///   alone. A different plan needs `refresh`;
/// - `refresh`, and every incremental run (`incremental`), start a new run.
///
/// Starting a new run, the latest run's preparations say which tables hold the migration's
/// own rows (see [`crate::executor::existing::Ownership`]).
pub(super) async fn opening(
    m: &Migration,
    cfg: &ExecutorConfig,
    plan_hash: &str,
    ctxs: &BTreeMap<TableName, Arc<TableCtx>>,
    incremental: bool,
) -> Result<(Opening, crate::executor::existing::Ownership)> {
    let mut owners = crate::executor::existing::Ownership {
        incremental,
        ..Default::default()
    };
    if incremental {
        // A table with a watermark was loaded by this migration's incremental runs.
        for name in ctxs.keys() {
            if m.store.cursor(&cfg.migration, name).await?.is_some() {
                owners
                    .tables
                    .insert(name.clone(), crate::sink::ExistingRows::Merge);
            }
        }
    }
    let Some(latest) = m.store.latest_run(&cfg.migration).await? else {
        return Ok((Opening::New { supersede: None }, owners));
    };
    let records = m.store.tables(&latest.id).await?;
    let same_plan = latest.plan_hash == plan_hash;
    let opening = if latest.status.is_resumable() {
        if same_plan {
            Opening::Continue {
                run: latest,
                follow_up: false,
            }
        } else if cfg.force {
            own(&mut owners, &records);
            Opening::New {
                supersede: Some(latest),
            }
        } else {
            return Err(Error::config(format!(
                "the plan of migration {:?} changed since run {} stopped (tables, schemas, chunking or transforms differ), so its chunk progress cannot be reused; finish it with the old settings, or force a new run",
                cfg.migration, latest.id
            )));
        }
    } else if latest.status == RunStatus::Completed && !incremental && !cfg.refresh {
        if !same_plan {
            return Err(Error::config(format!(
                "migration {:?} completed run {} under another plan (tables, schemas, chunking or transforms differ); run it with refresh to copy everything again under this plan, or give the migration a new name",
                cfg.migration, latest.id
            )));
        }
        if records.iter().any(|r| r.status != TableStatus::Completed) {
            Opening::Continue {
                run: latest,
                follow_up: true,
            }
        } else {
            Opening::Done(latest)
        }
    } else {
        own(&mut owners, &records);
        Opening::New { supersede: None }
    };
    Ok((opening, owners))
}

/// Adds the tables `records` (an earlier run's) prepared to `owners`.
fn own(owners: &mut crate::executor::existing::Ownership, records: &[TableRecord]) {
    for r in records {
        if let Some(p) = &r.prepared {
            owners.add(r.table.clone(), p);
        }
    }
}

/// Opens the run `opening` decided on, after refusing — before anything is written — to touch
/// target tables that hold rows the configuration says to keep. Two processes starting at once
/// both try to create; the store lets one win and the other continues its run.
pub(super) async fn open_run(
    m: &Migration,
    cfg: &ExecutorConfig,
    plan_hash: &str,
    ctxs: &BTreeMap<TableName, Arc<TableCtx>>,
    mut opening: Opening,
    owners: &crate::executor::existing::Ownership,
) -> Result<Opened> {
    for _ in 0..3 {
        // Tables this run has yet to prepare.
        let unprepared: BTreeSet<TableName> = match &opening {
            Opening::Done(r) => return Ok(Opened::AlreadyDone(r.clone())),
            Opening::Continue { run, .. } => {
                let done = prepared_tables(&m.store.tables(&run.id).await?);
                ctxs.keys()
                    .filter(|n| !done.contains(*n))
                    .cloned()
                    .collect()
            }
            Opening::New { .. } => ctxs.keys().cloned().collect(),
        };
        let settled = || async {
            // Another worker of the same run prepares a table before writing it.
            match m.store.latest_run(&cfg.migration).await? {
                Some(r) if r.plan_hash == plan_hash && r.status.is_resumable() => {
                    Ok(prepared_tables(&m.store.tables(&r.id).await?))
                }
                _ => Ok(BTreeSet::new()),
            }
        };
        crate::executor::existing::check(
            &*m.sink,
            cfg,
            owners,
            unprepared.iter().map(|n| &ctxs[n].target),
            settled,
        )
        .await?;
        match opening {
            Opening::Done(r) => return Ok(Opened::AlreadyDone(r)),
            Opening::Continue { run, follow_up } => {
                return Ok(Opened::Run {
                    run,
                    resumed: true,
                    follow_up,
                })
            }
            Opening::New { supersede } => {
                if let Some(r) = supersede {
                    m.store.set_run_status(&r.id, RunStatus::Superseded).await?;
                    m.store
                        .append_event(
                            &r.id,
                            &AuditEvent::new("run.superseded", "a new plan was forced"),
                        )
                        .await?;
                }
                let r = RunRecord::new(cfg.migration.clone(), plan_hash.to_string());
                match m.store.create_run(&r).await {
                    Ok(()) => {
                        return Ok(Opened::Run {
                            run: r,
                            resumed: false,
                            follow_up: false,
                        })
                    }
                    // Another process won: continue its run.
                    Err(e) if e.kind() == ErrorKind::Constraint => {
                        opening = self::opening(m, cfg, plan_hash, ctxs, owners.incremental)
                            .await?
                            .0;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Err(Error::transient(format!(
        "could not open a run of migration {:?}: other processes keep creating runs",
        cfg.migration
    )))
}

/// What identifies a plan: tables, their schemas and keys, chunking and transforms. A stopped
/// run is continued only under the same plan.
pub(super) fn plan_hash(cfg: &ExecutorConfig, ctxs: &BTreeMap<TableName, Arc<TableCtx>>) -> String {
    // A dry run describes the full run it stands for.
    let mode = match cfg.mode {
        Mode::DryRun => "full",
        ref m => m.name(),
    };
    plan_hash_as(mode, cfg, ctxs)
}

/// The plan hash of a run of mode `mode` over these tables.
pub(super) fn plan_hash_as(
    mode: &str,
    cfg: &ExecutorConfig,
    ctxs: &BTreeMap<TableName, Arc<TableCtx>>,
) -> String {
    let tables: Vec<_> = ctxs
        .values()
        .map(|t| {
            (
                t.info.name.to_string(),
                &t.info.schema.columns,
                &t.info.schema.primary_key,
                t.transforms
                    .iter()
                    .map(|x| x.name().to_string())
                    .collect::<Vec<_>>(),
                &t.target.schema.columns,
            )
        })
        .collect();
    let doc = serde_json::json!({ "mode": mode, "chunk_rows": cfg.chunk_rows, "tables": tables });
    let digest = md5_many::md5(doc.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
