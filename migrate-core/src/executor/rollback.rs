//! Undoing a run: drop the tables it created, restore the tables it backed up. Feasibility is
//! reported before anything is done; every step is recorded in the audit log.

use serde::{Deserialize, Serialize};

use super::Migration;
use crate::checkpoint::{AuditEvent, RunId};
use crate::dag::DependencyGraph;
use crate::error::{Error, Result};
use crate::schema::TableName;

/// One step of a rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RollbackAction {
    /// The run created the table: drop it.
    Drop {
        /// The table.
        table: TableName,
    },
    /// The table existed empty: delete the rows the run wrote.
    Empty {
        /// The table.
        table: TableName,
    },
    /// The table existed and was backed up: put the backup's rows back.
    Restore {
        /// The table.
        table: TableName,
        /// The backup's name.
        backup: String,
    },
    /// The table existed before the run and no backup was taken: rows the run wrote cannot be
    /// told apart from earlier ones, so it cannot be rolled back.
    Impossible {
        /// The table.
        table: TableName,
        /// Why.
        reason: String,
    },
}

/// What a rollback will do (or did), children before parents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackPlan {
    /// The run rolled back.
    pub run: RunId,
    /// Steps, children before parents.
    pub actions: Vec<RollbackAction>,
    /// Every step can be done.
    pub feasible: bool,
    /// Whether the steps were carried out.
    pub executed: bool,
}

async fn target_run(m: &Migration, run: Option<&RunId>) -> Result<RunId> {
    match run {
        Some(r) => m
            .store
            .run(r)
            .await?
            .map(|r| r.id)
            .ok_or_else(|| Error::not_found(format!("no run {r} in the checkpoint store"))),
        None => m
            .store
            .latest_run(&m.config.migration)
            .await?
            .map(|r| r.id)
            .ok_or_else(|| {
                Error::not_found(format!(
                    "migration {:?} has no run to roll back",
                    m.config.migration
                ))
            }),
    }
}

pub(crate) async fn plan(m: &Migration, run: Option<&RunId>) -> Result<RollbackPlan> {
    let run = target_run(m, run).await?;
    let records = m.store.tables(&run).await?;
    let infos = m.source.discover(&m.config.tables).await?;
    // Children first, so foreign keys never block a drop.
    let order: Vec<TableName> = match DependencyGraph::build(&infos, &m.config.extra_dependencies) {
        Ok(g) => g.order().iter().rev().cloned().collect(),
        Err(_) => records.iter().map(|r| r.table.clone()).collect(),
    };
    let mut actions = Vec::new();
    for name in order {
        let Some(rec) = records.iter().find(|r| r.table == name) else {
            continue;
        };
        let Some(p) = &rec.prepared else { continue };
        actions.push(match (&p.backup, p.created, p.existing_rows) {
            (Some(b), _, _) => RollbackAction::Restore {
                table: name.clone(),
                backup: b.clone(),
            },
            (None, true, _) => RollbackAction::Drop {
                table: name.clone(),
            },
            (None, false, Some(0)) => RollbackAction::Empty {
                table: name.clone(),
            },
            (None, false, rows) => RollbackAction::Impossible {
                table: name.clone(),
                reason: format!(
                    "the table held {} before the run and no backup was taken (set prepare.backup = true before a run that writes into existing rows)",
                    rows.map_or("rows".to_string(), |n| format!("{n} rows"))
                ),
            },
        });
    }
    let feasible = !actions
        .iter()
        .any(|a| matches!(a, RollbackAction::Impossible { .. }));
    Ok(RollbackPlan {
        run,
        actions,
        feasible,
        executed: false,
    })
}

pub(crate) async fn execute(
    m: &Migration,
    run: Option<&RunId>,
    partial: bool,
) -> Result<RollbackPlan> {
    let mut p = plan(m, run).await?;
    if !p.feasible && !partial {
        let blocked: Vec<String> = p
            .actions
            .iter()
            .filter_map(|a| match a {
                RollbackAction::Impossible { table, reason } => Some(format!("{table}: {reason}")),
                _ => None,
            })
            .collect();
        return Err(Error::config(format!(
            "rollback of run {} is not fully possible: {}",
            p.run,
            blocked.join("; ")
        )));
    }
    let infos = m.source.discover(&m.config.tables).await?;
    let mut records = m.store.tables(&p.run).await?;
    m.store
        .append_event(
            &p.run,
            &AuditEvent::new("rollback.started", format!("{} steps", p.actions.len())),
        )
        .await?;
    // One call for every table (children first), so the sink can keep foreign keys between
    // them satisfied and, where it can, undo everything in one transaction.
    let mut steps = Vec::new();
    let before = records.clone();
    for a in &p.actions {
        let (table, what) = match a {
            RollbackAction::Drop { table } => (table, "dropped"),
            RollbackAction::Empty { table } => (table, "emptied"),
            RollbackAction::Restore { table, .. } => (table, "restored from backup"),
            RollbackAction::Impossible { .. } => continue,
        };
        let info = infos.iter().find(|t| &t.name == table).ok_or_else(|| {
            Error::not_found(format!(
                "table {table} is no longer in the source; cannot describe it to the sink"
            ))
        })?;
        let rec = records
            .iter_mut()
            .find(|r| &r.table == table)
            .ok_or_else(|| Error::fatal(format!("the record of table {table} vanished")))?;
        steps.push((info.clone(), rec.prepared.take().unwrap_or_default(), what));
        // Forgotten before the sink undoes anything: if this process dies after the sink
        // committed, the next run prepares the table again (and finds what is really there)
        // instead of writing on under the old preparation.
        rec.status = crate::checkpoint::TableStatus::Pending;
        rec.rows = 0;
        m.store.put_table(&p.run, rec).await?;
        m.store.reset_table_chunks(&p.run, table).await?;
    }
    let tables: Vec<_> = steps
        .iter()
        .map(|(i, p, _)| (i.clone(), p.clone()))
        .collect();
    if let Err(e) = m.sink.rollback(&tables).await {
        // Nothing was undone (the sink's rollback is one transaction where it can be): the
        // records go back as they were, so the rollback can be tried again.
        for r in before
            .iter()
            .filter(|r| steps.iter().any(|(i, _, _)| i.name == r.table))
        {
            m.store.put_table(&p.run, r).await?;
        }
        return Err(e.operation("rollback"));
    }
    for (info, _, what) in &steps {
        m.store
            .append_event(
                &p.run,
                &AuditEvent::new("rollback.table", *what).on(&info.name, None),
            )
            .await?;
    }
    m.store
        .set_run_status(&p.run, crate::checkpoint::RunStatus::Cancelled)
        .await?;
    m.store
        .append_event(&p.run, &AuditEvent::new("rollback.completed", ""))
        .await?;
    p.executed = true;
    Ok(p)
}
