//! Starting an execution: discovery, table contexts and the capability checks, then the dry
//! run, or a run opened (or continued) and handed to the coordinator.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, warn, Instrument};

use super::budget::MemoryBudget;
use super::config::{ExecutorConfig, Mode};
use super::context::{Ctx, TableCtx};
use super::coordinator::Coordinator;
use super::dry_run::dry_run;
use super::opening::{incremental_mode, open_run, opening, plan_hash, Opened};
use super::pipe::KeySample;
use super::progress::{Phase, Tracker};
use super::report::{stored_report, REPORT_EVENT};
use super::Migration;
use crate::checkpoint::{AuditEvent, Control, RunStatus};
use crate::dag::DependencyGraph;
use crate::error::{Error, Result};
use crate::report::MigrationReport;
use crate::schema::{Column, DataType, Schema, TableInfo, TableName};
use crate::transform::Transform;

pub(crate) async fn execute(
    m: Migration,
    tracker: Tracker,
    control: watch::Receiver<Control>,
    budget: Arc<MemoryBudget>,
) -> Result<MigrationReport> {
    match &m.config.mode {
        Mode::Stream {
            incremental,
            interval,
        } => {
            // Incremental runs back to back until cancelled; the last run's report is returned.
            let mut control = control;
            let tracker = Arc::new(tracker);
            loop {
                let mut once = m.clone();
                once.config.mode = Mode::Incremental(incremental.clone());
                let report =
                    execute_once(once, tracker.clone(), control.clone(), budget.clone()).await?;
                if report.status != RunStatus::Completed || *control.borrow() == Control::Cancel {
                    return Ok(report);
                }
                tokio::select! {
                    _ = tokio::time::sleep(*interval) => {}
                    _ = control.wait_for(|c| *c == Control::Cancel) => return Ok(report),
                }
            }
        }
        _ => execute_once(m, Arc::new(tracker), control, budget).await,
    }
}

async fn execute_once(
    m: Migration,
    tracker: Arc<Tracker>,
    control: watch::Receiver<Control>,
    budget: Arc<MemoryBudget>,
) -> Result<MigrationReport> {
    let started = Instant::now();
    let cfg = m.config.clone();
    let span = info_span!("migration", migration = %cfg.migration, mode = cfg.mode.name());
    async move {
        tracker.phase(Phase::Discovery);
        let tables = m.discover_tables().await?;
        tracker.phase(Phase::Planning);
        let dag = DependencyGraph::build(&tables, &cfg.extra_dependencies)?;
        check_capabilities(&m, &cfg)?;
        if let Some(inc) = cfg.mode.incremental() {
            // Every table lacking a cursor column or a key, named in one error.
            inc.check_tables(&tables)?;
        }
        let by_name: BTreeMap<TableName, TableInfo> =
            tables.into_iter().map(|t| (t.name.clone(), t)).collect();
        // Limits for a table the run does not copy: a misspelt name would silently fall back
        // to the defaults.
        if let Some(t) = cfg.reject_limits.keys().find(|k| {
            k.as_str() != "*"
                && !by_name
                    .keys()
                    .any(|n| n.to_string() == **k || n.name == **k)
        }) {
            return Err(Error::config(format!(
                "reject limits are set for table {t}, which the run does not copy (not in the source, or left out by the table filter)"
            )));
        }
        // A transform for a table the run does not copy is a mistake, not a no-op.
        if let Some((Some(t), tr)) = m
            .transforms
            .iter()
            .find(|(t, _)| t.as_ref().is_some_and(|t| !by_name.contains_key(t)))
        {
            return Err(Error::config(format!(
                "transform {} is for table {t}, which the run does not copy (not in the source, or left out by the table filter)",
                tr.name()
            )));
        }
        let mut ctxs = BTreeMap::new();
        for name in dag.order() {
            let info = by_name[name].clone();
            ctxs.insert(name.clone(), Arc::new(table_ctx(&m, &cfg, info).await?));
        }
        let plan_hash = plan_hash(&cfg, &ctxs);
        if cfg.mode == Mode::DryRun {
            return dry_run(&m, &cfg, &dag, &ctxs, &plan_hash, started).await;
        }

        // Continue a stopped run of the same migration, follow up a completed one that left
        // tables behind, or start a new one.
        // Throughput measured by the previous run of this migration refines the plan; read it
        // before this run becomes the latest.
        let history = match cfg.window {
            Some(_) => crate::plan::measured_rates(&*m.store, &cfg.migration).await?,
            None => BTreeMap::new(),
        };
        let (opening, owners) =
            opening(&m, &cfg, &plan_hash, &ctxs, incremental_mode(&cfg)).await?;
        let (run, resumed, follow_up) = match open_run(&m, &cfg, &plan_hash, &ctxs, opening, &owners).await? {
            Opened::Run { run, resumed, follow_up } => (run, resumed, follow_up),
            Opened::AlreadyDone(r) => {
                let mut report = stored_report(&*m.store, &cfg.migration)
                    .await?
                    .ok_or_else(|| Error::fatal("the completed run vanished from the store"))?;
                report.reconciliation.push(format!(
                    "run {} already completed every table of this plan: nothing to do (run with refresh to copy everything again)",
                    r.id
                ));
                info!(run = %r.id, "already completed; nothing to do");
                tracker.phase(Phase::Done);
                return Ok(report);
            }
        };
        let batch_rows = batch_rows(&cfg, &ctxs);
        let ctx = Arc::new(Ctx {
            source: m.source.clone(),
            sink: m.sink.clone(),
            store: m.store.clone(),
            cfg: cfg.clone(),
            tracker: tracker.clone(),
            budget,
            cancel: CancellationToken::new(),
            run: run.id.clone(),
            api_calls: AtomicU64::new(0),
            batch_rows,
            throttle: cfg.throttle_rate().map(crate::executor::throttle::Throttle::new),
        });
        m.store.set_run_status(&run.id, RunStatus::Running).await?;
        m.store.set_control(&run.id, Control::Run).await?;
        ctx.audit(AuditEvent::new(
            if follow_up {
                "run.follow_up"
            } else if resumed {
                "run.resumed"
            } else {
                "run.started"
            },
            format!("worker {} ({} mode)", cfg.worker_id, cfg.mode.name()),
        ))
        .await;
        info!(run = %run.id, resumed, "run started");

        let mut coordinator = Coordinator::new(ctx.clone(), dag, ctxs, resumed, owners);
        coordinator.follow_up = follow_up;
        coordinator.history = history;
        let outcome = coordinator.run(control).await;
        let status = coordinator.final_status(&outcome);
        m.store.set_run_status(&run.id, status).await?;
        let action = match status {
            RunStatus::Completed => "run.completed",
            RunStatus::Cancelled => "run.cancelled",
            _ => "run.failed",
        };
        ctx.audit(AuditEvent::new(
            action,
            outcome
                .as_ref()
                .err()
                .map_or(String::new(), |e| e.to_string()),
        ))
        .await;
        tracker.phase(Phase::Done);
        let run_id = run.id.clone();
        let report = coordinator
            .report(run, &plan_hash, started, outcome.err())
            .await?;
        // Kept whole, so that `stored_report` shows what this execution measured rather than
        // what can be rebuilt from chunk states.
        match serde_json::to_string(&report) {
            Ok(json) => {
                if let Err(e) = m
                    .store
                    .append_event(&run_id, &AuditEvent::new(REPORT_EVENT, json))
                    .await
                {
                    warn!(error = %e, "could not store the run's report");
                }
            }
            Err(e) => warn!(error = %e, "could not encode the run's report"),
        }
        Ok(report)
    }
    .instrument(span)
    .await
}

fn check_capabilities(m: &Migration, cfg: &ExecutorConfig) -> Result<()> {
    let caps = m.sink.capabilities();
    let kind = m.sink.kind();
    if cfg.prepare.backup && !caps.backup {
        return Err(Error::config(format!(
            "prepare.backup = true needs a sink that can back up a table before writing it; the {kind} sink cannot (set backup = false)"
        )));
    }
    if matches!(cfg.mode, Mode::Incremental(_) | Mode::Stream { .. }) && !caps.upsert {
        return Err(Error::config(format!(
            "incremental mode upserts into the target; the {kind} sink cannot upsert"
        )));
    }
    if cfg.prepare.existing_rows == crate::sink::ExistingRows::Merge && !caps.upsert {
        return Err(Error::config(format!(
            "prepare.existing_rows = merge upserts into the target; the {kind} sink cannot upsert"
        )));
    }
    if let (Some(t), Some(c)) = (cfg.bandwidth_target, cfg.bandwidth_cap) {
        if t > c {
            return Err(Error::config(format!(
                "bandwidth target {t} B/s exceeds the hard cap {c} B/s"
            )));
        }
    }
    if cfg.parallelism == 0 {
        return Err(Error::config("parallelism must be at least 1"));
    }
    if cfg.chunk_rows == 0 {
        return Err(Error::config("chunk_rows must be at least 1"));
    }
    Ok(())
}

async fn table_ctx(m: &Migration, cfg: &ExecutorConfig, info: TableInfo) -> Result<TableCtx> {
    let transforms: Vec<Arc<dyn Transform>> = m
        .transforms
        .iter()
        .filter(|(t, _)| t.as_ref().is_none_or(|t| *t == info.name))
        .map(|(_, t)| t.clone())
        .collect();
    let mut schema = info.schema.clone();
    for t in &transforms {
        schema = t.output_schema(&schema).map_err(|e| {
            e.table(&info.name)
                .operation(format!("transform {}", t.name()))
        })?;
    }
    let schema = bound_decimals(m, &info, schema).await?;
    let target = TableInfo {
        schema,
        ..info.clone()
    };
    let cursor = match cfg.mode.incremental() {
        Some(inc) => {
            // IncrementalConfig::check_tables has vetted every table before this.
            let col = inc.column_for(&info.name).ok_or_else(|| {
                Error::config(format!(
                    "incremental mode needs a cursor column for table {}",
                    info.name
                ))
            })?;
            let idx = info.schema.index_of(col).ok_or_else(|| {
                Error::config(format!(
                    "cursor column {col:?} is not a column of table {}",
                    info.name
                ))
            })?;
            let upper = m.source.max_cursor(&info, col).await?;
            Some((col.to_string(), idx, upper))
        }
        None => None,
    };
    let span = info_span!("table", table = %info.name);
    Ok(TableCtx {
        info,
        target,
        transforms,
        sample: Mutex::new(KeySample::default()),
        cursor,
        span,
        merge: std::sync::atomic::AtomicBool::new(false),
    })
}

/// `schema` with each decimal column the source declares without precision given the
/// precision and scale its values need, where the sink needs one ([`Sink::bounded_decimals`]);
/// a column the source cannot size, or that holds no value, is left as it is (the sink then
/// refuses it, naming it).
async fn bound_decimals(
    m: &Migration,
    info: &TableInfo,
    schema: Arc<Schema>,
) -> Result<Arc<Schema>> {
    let unbounded = |c: &Column| {
        matches!(
            c.data_type,
            DataType::Decimal {
                precision: None,
                ..
            }
        ) && info.schema.index_of(&c.name).is_some()
    };
    if !m.sink.bounded_decimals() || !schema.columns.iter().any(unbounded) {
        return Ok(schema);
    }
    let mut sized = (*schema).clone();
    for c in sized.columns.iter_mut().filter(|c| unbounded(c)) {
        if let Some((digits, scale)) = m.source.decimal_extent(info, &c.name).await? {
            let precision = (digits + scale).max(1);
            info!(table = %info.name, column = %c.name, precision, scale, "an unconstrained decimal sized from its data");
            c.data_type = DataType::Decimal {
                precision: Some(precision),
                scale: Some(scale),
            };
        }
    }
    Ok(Arc::new(sized))
}

/// Rows per batch: the configured figure, lowered so that two batches per worker fit the budget.
fn batch_rows(cfg: &ExecutorConfig, ctxs: &BTreeMap<TableName, Arc<TableCtx>>) -> usize {
    let widest = ctxs
        .values()
        .map(|t| {
            t.info
                .estimated_bytes
                .checked_div(t.info.estimated_rows)
                .unwrap_or(0)
        })
        .max()
        .unwrap_or(0)
        .max(64);
    let per_batch = cfg.memory_budget / (2 * cfg.parallelism.max(1) as u64);
    (per_batch / widest).clamp(1, cfg.batch_rows.max(1) as u64) as usize
}
