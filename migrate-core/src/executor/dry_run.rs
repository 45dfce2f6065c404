//! The dry run: what a run would do to each table, with no writes anywhere.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use tokio::time::Instant;

use super::config::ExecutorConfig;
use super::context::TableCtx;
use super::opening::{opening, plan_hash_as, Opening};
use super::report::skeleton;
use super::Migration;
use crate::checkpoint::{RunStatus, TableStatus};
use crate::dag::DependencyGraph;
use crate::error::{ErrorKind, Result};
use crate::report::{self, MigrationReport, PreflightResult};
use crate::schema::{TableInfo, TableName};

pub(super) async fn dry_run(
    m: &Migration,
    cfg: &ExecutorConfig,
    dag: &DependencyGraph,
    ctxs: &BTreeMap<TableName, Arc<TableCtx>>,
    plan_hash: &str,
    started: Instant,
) -> Result<MigrationReport> {
    let mut preflight = Vec::new();
    let mut results = Vec::new();
    let mut objects = Vec::new();
    // A dry run stands for a full run, or for the next incremental run when the migration's
    // latest run was incremental under the same tables.
    let incremental_hash = plan_hash_as("incremental", cfg, ctxs);
    let incremental = m
        .store
        .latest_run(&cfg.migration)
        .await?
        .is_some_and(|r| r.plan_hash == incremental_hash);
    let plan_hash = if incremental {
        incremental_hash.as_str()
    } else {
        plan_hash
    };
    // A run the store would refuse (a changed plan) is reported, not raised: the dry run still
    // describes the target.
    let (opening, owners, refused) = match opening(m, cfg, plan_hash, ctxs, incremental).await {
        Ok((o, w)) => (o, w, None),
        Err(e) if e.kind() == ErrorKind::Config => (
            Opening::New { supersede: None },
            crate::executor::existing::Ownership::default(),
            Some(e.to_string()),
        ),
        Err(e) => return Err(e),
    };
    // Tables the run to be continued (or the completed one) has already settled.
    let settled: BTreeMap<TableName, String> = match &opening {
        Opening::New { .. } => BTreeMap::new(),
        Opening::Continue { run, .. } | Opening::Done(run) => m
            .store
            .tables(&run.id)
            .await?
            .into_iter()
            .filter_map(|r| {
                let what = match (r.status, &r.prepared) {
                    (TableStatus::Completed, _) => format!("nothing: completed by run {}", run.id),
                    (_, Some(_)) => format!("continue loading it (run {})", run.id),
                    _ => return None,
                };
                Some((r.table, what))
            })
            .collect(),
    };
    for name in dag.order() {
        let t = &ctxs[name];
        let chunks = m.source.chunks(&t.info, cfg.chunk_rows).await?.len() as u64;
        let mut p = match m.sink.preflight(&t.target).await {
            Ok(p) => p,
            Err(e)
                if e.kind() == ErrorKind::Permission
                    || e.kind() == ErrorKind::Auth
                    || e.kind() == ErrorKind::NotFound =>
            {
                crate::sink::Preflight {
                    reachable: true,
                    problems: vec![e.to_string()],
                    ..Default::default()
                }
            }
            Err(e) => crate::sink::Preflight {
                problems: vec![e.to_string()],
                ..Default::default()
            },
        };
        let action = match settled.get(name) {
            Some(what) => what.clone(),
            None => {
                let policy = owners.policy(cfg, name);
                let (action, problem) =
                    crate::executor::existing::action(&p, &t.target, policy, cfg);
                p.problems.extend(problem);
                action
            }
        };
        results.push(report::TableResult {
            table: name.clone(),
            status: TableStatus::Pending,
            rows: 0,
            total_rows: t.info.estimated_rows,
            bytes: 0,
            chunks_completed: 0,
            chunks_total: chunks,
            attempts: 0,
            duration_seconds: None,
            phase_seconds: None,
            reason: (!p.problems.is_empty()).then(|| p.problems.join("; ")),
        });
        let recreate = cfg.prepare.mode == crate::sink::PrepareMode::Recreate;
        for o in m.sink.plan_objects(&t.target) {
            let kept = p.exists && !recreate && o.kind.made_with_table();
            objects.push(match (kept, &o.not_created) {
                (true, None) => crate::objects::ObjectOutcome {
                    not_created: Some(
                        "the target table exists: its definition is left as it is".into(),
                    ),
                    ..o
                },
                _ => o,
            });
        }
        preflight.push(PreflightResult {
            table: name.clone(),
            chunks,
            estimated_rows: t.info.estimated_rows,
            reachable: p.reachable,
            exists: p.exists,
            target_rows: p.rows,
            action,
            problems: p.problems,
        });
    }
    let mut pairs = Vec::new();
    for name in dag.order() {
        let t = &ctxs[name];
        match m.sink.describe(&t.target).await {
            Ok(existing) => pairs.push((t.target.clone(), existing)),
            Err(e) if e.kind() == ErrorKind::Unsupported => {} // the sink cannot describe tables
            Err(e) => return Err(e.operation("describe")),
        }
    }
    let infos: Vec<TableInfo> = dag.order().iter().map(|n| ctxs[n].info.clone()).collect();
    let views = m
        .source
        .views(&infos)
        .await
        .map_err(|e| e.operation("read views"))?;
    objects.extend(m.sink.after_data(&[], &views.over_tables, true).await?);
    objects.extend(views.left_out);
    let drift = crate::plan::drift_with(&pairs, &|t, c| {
        m.sink
            .ddl_type(t, c)
            .unwrap_or_else(|| c.data_type.to_string())
    });
    let ok = preflight
        .iter()
        .all(|p| p.reachable && p.problems.is_empty())
        && !drift.iter().any(|d| d.blocking)
        && refused.is_none();
    let now = Utc::now();
    let timing = report::Timing {
        started_at: now,
        completed_at: now,
        duration_seconds: started.elapsed().as_secs_f64(),
        paused_duration_seconds: 0.0,
    };
    let status = if ok {
        RunStatus::Completed
    } else {
        RunStatus::Failed
    };
    let (id, kind) = ("dry-run".to_string(), "dry-run".to_string());
    let migration = cfg.migration.clone();
    let skeleton = skeleton(id, migration, status, kind, plan_hash.to_string(), timing);
    Ok(MigrationReport {
        progress: report::ProgressSummary {
            total_records: results.iter().map(|r| r.total_rows).sum(),
            total_batches: results.iter().map(|r| r.chunks_total).sum(),
            memory_budget_bytes: cfg.memory_budget,
            ..Default::default()
        },
        results,
        verification: report::Verification {
            passed: ok,
            not_verified: vec![],
            tables: vec![],
        },
        reconciliation: refused.into_iter().collect(),
        preflight,
        drift,
        schema_objects: objects,
        ..skeleton
    })
}
