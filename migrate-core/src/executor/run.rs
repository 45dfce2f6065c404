//! One execution of a migration.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use chrono::Utc;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, warn, Instrument};

use super::budget::MemoryBudget;
use super::config::{ExecutorConfig, Mode, OnParentFailure};
use super::pipe::{ChunkPipe, KeySample, PipeStats};
use super::progress::{Phase, TableProgress, Tracker};
use super::{verify, Migration};
use crate::checkpoint::{
    AuditEvent, CheckpointStore, ChunkRecord, ChunkResult, ChunkStatus, Control, RejectedRecord,
    RunId, RunRecord, RunStatus, TableRecord, TableStatus,
};
use crate::chunk::{ChunkSpec, KeyRange};
use crate::dag::DependencyGraph;
use crate::error::{Error, ErrorKind, Result};
use crate::report::{self, MigrationReport, PreflightResult, TableVerification};
use crate::retry::{RetryDecision, RetryState};
use crate::schema::{TableInfo, TableName};
use crate::sink::Sink;
use crate::source::{ChangeRequest, Source};
use crate::transform::Transform;
use crate::value::{KeyDisplay, Value};

/// A table as the executor carries it.
pub(crate) struct TableCtx {
    pub(crate) info: TableInfo,
    /// The table as the sink sees it (schema after transforms).
    pub(crate) target: TableInfo,
    pub(crate) transforms: Vec<Arc<dyn Transform>>,
    pub(crate) sample: Mutex<KeySample>,
    /// Incremental: cursor column and the upper bound fixed at the start.
    pub(crate) cursor: Option<(String, usize, Option<Value>)>,
    /// Parent span of the table's chunk and verification spans.
    pub(crate) span: tracing::Span,
    /// Chunks are upserted by key rather than replacing their range (`Prepared::merge`).
    pub(crate) merge: std::sync::atomic::AtomicBool,
}

/// Shared by the coordinator and the chunk tasks.
pub(crate) struct Ctx {
    pub(crate) source: Arc<dyn Source>,
    pub(crate) sink: Arc<dyn Sink>,
    pub(crate) store: Arc<dyn CheckpointStore>,
    pub(crate) cfg: ExecutorConfig,
    pub(crate) tracker: Arc<Tracker>,
    pub(crate) budget: Arc<MemoryBudget>,
    pub(crate) cancel: CancellationToken,
    pub(crate) run: RunId,
    pub(crate) api_calls: AtomicU64,
    pub(crate) batch_rows: usize,
    pub(crate) throttle: Option<super::throttle::Throttle>,
}

impl Ctx {
    pub(crate) fn call(&self) {
        self.api_calls.fetch_add(1, Ordering::Relaxed);
        self.tracker.api_calls(1);
    }

    pub(crate) async fn audit(&self, event: AuditEvent) {
        self.call();
        let event = AuditEvent {
            actor: Some(self.cfg.worker_id.clone()),
            ..event
        };
        if let Err(e) = self.store.append_event(&self.run, &event).await {
            warn!(error = %e, "could not record audit event {}", event.action);
        }
    }
}

enum ChunkOutcome {
    Completed(PipeStats),
    /// Another worker holds or completed it.
    NotClaimed,
    Failed(Error),
    StopRun(Error),
    Cancelled,
}

enum Task {
    Chunk(TableName, u32, ChunkOutcome),
    Verified(TableName, Result<TableVerification>),
}

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

fn mode_name(mode: &Mode) -> &'static str {
    match mode {
        Mode::DryRun => "dry-run",
        Mode::Full => "full",
        Mode::Incremental(_) => "incremental",
        Mode::Stream { .. } => "stream",
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
    let span = info_span!("migration", migration = %cfg.migration, mode = mode_name(&cfg.mode));
    async move {
        tracker.phase(Phase::Discovery);
        let tables = m
            .source
            .discover(&cfg.tables)
            .await
            .map_err(|e| e.operation("discover"))?;
        if tables.is_empty() {
            return Err(Error::config(format!(
                "no source table matches include {:?} / exclude {:?}",
                cfg.tables.include, cfg.tables.exclude
            )));
        }
        cfg.tables.check_matched(&tables)?;
        tracker.phase(Phase::Planning);
        let dag = DependencyGraph::build(&tables, &cfg.extra_dependencies)?;
        check_capabilities(&m, &cfg)?;
        if let Some(inc) = cfg.mode.incremental() {
            // Every table lacking a cursor column or a key, named in one error.
            inc.check_tables(&tables)?;
        }
        let by_name: BTreeMap<TableName, TableInfo> =
            tables.into_iter().map(|t| (t.name.clone(), t)).collect();
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
                let mut report = verify::stored_report(&*m.store, &cfg.migration)
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
            throttle: cfg.throttle_rate().map(super::throttle::Throttle::new),
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
            format!("worker {} ({} mode)", cfg.worker_id, mode_name(&cfg.mode)),
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
                    .append_event(&run_id, &AuditEvent::new(verify::REPORT_EVENT, json))
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

/// How this execution relates to the migration's earlier runs.
enum Opening {
    /// Continue `run`: stopped, or completed with tables deferred or failed (a follow-up).
    Continue { run: RunRecord, follow_up: bool },
    /// The latest run completed every table under this plan.
    Done(RunRecord),
    /// Start a new run, first marking `supersede` (a stopped run) superseded.
    New { supersede: Option<RunRecord> },
}

enum Opened {
    Run {
        run: RunRecord,
        resumed: bool,
        follow_up: bool,
    },
    AlreadyDone(RunRecord),
}

fn incremental_mode(cfg: &ExecutorConfig) -> bool {
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
/// own rows (see [`super::existing::Ownership`]).
async fn opening(
    m: &Migration,
    cfg: &ExecutorConfig,
    plan_hash: &str,
    ctxs: &BTreeMap<TableName, Arc<TableCtx>>,
    incremental: bool,
) -> Result<(Opening, super::existing::Ownership)> {
    let mut owners = super::existing::Ownership {
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
fn own(owners: &mut super::existing::Ownership, records: &[TableRecord]) {
    for r in records {
        if let Some(p) = &r.prepared {
            owners.add(r.table.clone(), p);
        }
    }
}

/// Opens the run `opening` decided on, after refusing — before anything is written — to touch
/// target tables that hold rows the configuration says to keep. Two processes starting at once
/// both try to create; the store lets one win and the other continues its run.
async fn open_run(
    m: &Migration,
    cfg: &ExecutorConfig,
    plan_hash: &str,
    ctxs: &BTreeMap<TableName, Arc<TableCtx>>,
    mut opening: Opening,
    owners: &super::existing::Ownership,
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
        super::existing::check(
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

/// What identifies a plan: tables, their schemas and keys, chunking and transforms. A stopped
/// run is continued only under the same plan.
fn plan_hash(cfg: &ExecutorConfig, ctxs: &BTreeMap<TableName, Arc<TableCtx>>) -> String {
    // A dry run describes the full run it stands for.
    let mode = match cfg.mode {
        Mode::DryRun => "full",
        ref m => mode_name(m),
    };
    plan_hash_as(mode, cfg, ctxs)
}

/// The plan hash of a run of mode `mode` over these tables.
fn plan_hash_as(
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

async fn dry_run(
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
            super::existing::Ownership::default(),
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
                let (action, problem) = super::existing::action(&p, &t.target, policy, cfg);
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
    Ok(MigrationReport {
        execution_id: "dry-run".into(),
        migration: cfg.migration.clone(),
        status: if ok {
            RunStatus::Completed
        } else {
            RunStatus::Failed
        },
        execution_type: "dry-run".into(),
        resumed: false,
        plan_hash: plan_hash.to_string(),
        timing: report::Timing {
            started_at: now,
            completed_at: now,
            duration_seconds: started.elapsed().as_secs_f64(),
            paused_duration_seconds: 0.0,
        },
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
        errors: report::ErrorSummary::default(),
        reconciliation: refused.into_iter().collect(),
        preflight,
        audit_summary: report::AuditSummary::default(),
        drift,
        deferred: vec![],
        plan_vs_actual: vec![],
        later_verification: None,
        schema_objects: objects,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TState {
    Waiting,
    Running,
    Verifying,
    Done(TableStatus),
}

struct TableRun {
    state: TState,
    pending: VecDeque<u32>,
    /// Chunks not yet completed (or skipped).
    outstanding: BTreeSet<u32>,
    in_flight: usize,
    /// Chunks another worker holds; re-checked every poll.
    elsewhere: BTreeSet<u32>,
    record: TableRecord,
    chunks_total: u64,
    /// Chunks and rows completed before this execution started.
    done_before: (u64, u64, u64),
}

struct Coordinator {
    ctx: Arc<Ctx>,
    dag: DependencyGraph,
    tables: BTreeMap<TableName, Arc<TableCtx>>,
    runs: BTreeMap<TableName, TableRun>,
    resumed: bool,
    already_done: u64,
    reconciliation: Vec<String>,
    verifications: Vec<TableVerification>,
    errors: Vec<(Option<TableName>, Option<u32>, Error)>,
    stop: Option<Error>,
    cancelled: bool,
    control: Control,
    paused_since: Option<Instant>,
    paused_total: Duration,
    rows_written: u64,
    bytes_written: u64,
    /// The plan made before the run (when a window was given).
    plan: Option<crate::plan::Plan>,
    /// Throughput measured by the migration's previous run, per table (refines the plan).
    history: BTreeMap<TableName, f64>,
    /// Whose rows the target tables hold (what prepare may do to them).
    owners: super::existing::Ownership,
    /// This execution follows up a completed run: its completed tables are left alone.
    follow_up: bool,
    /// Tables deferred (by the plan or mid-run), with reasons.
    deferrals: Vec<crate::plan::Deferral>,
    /// Bytes written per table in this execution.
    bytes_by_table: BTreeMap<TableName, u64>,
    started: Instant,
}

impl Coordinator {
    fn new(
        ctx: Arc<Ctx>,
        dag: DependencyGraph,
        tables: BTreeMap<TableName, Arc<TableCtx>>,
        resumed: bool,
        owners: super::existing::Ownership,
    ) -> Self {
        Coordinator {
            ctx,
            dag,
            tables,
            runs: BTreeMap::new(),
            resumed,
            already_done: 0,
            reconciliation: Vec::new(),
            verifications: Vec::new(),
            errors: Vec::new(),
            stop: None,
            cancelled: false,
            control: Control::Run,
            paused_since: None,
            paused_total: Duration::ZERO,
            rows_written: 0,
            bytes_written: 0,
            plan: None,
            history: BTreeMap::new(),
            owners,
            follow_up: false,
            deferrals: Vec::new(),
            bytes_by_table: BTreeMap::new(),
            started: Instant::now(),
        }
    }

    fn incremental(&self) -> bool {
        matches!(
            self.ctx.cfg.mode,
            Mode::Incremental(_) | Mode::Stream { .. }
        )
    }

    /// Registers chunks (new tables only), reconciles with the target on resume, prepares
    /// target tables, then schedules until everything is final, cancelled or stopped.
    async fn run(&mut self, mut control: watch::Receiver<Control>) -> Result<()> {
        self.register().await?;
        // A follow-up leaves the completed tables alone: whatever the application wrote into
        // them since is not the run's to undo.
        if self.resumed && !self.follow_up {
            self.reconcile().await?;
        }
        self.publish_tables();
        self.plan = self.make_plan()?;
        self.apply_plan().await?;
        self.ctx.tracker.phase(Phase::Preparing);
        self.prepare().await?;
        self.ctx.tracker.phase(Phase::Loading);
        self.schedule(&mut control).await?;
        if !self.cancelled && self.all_done() {
            self.after_data().await?;
        }
        Ok(())
    }

    /// Views over the migrated tables, once every table (or view) each one reads is complete
    /// (the others are recorded as not created, with the reason), then what must not act on
    /// the load (triggers, policies, grants, owners) on the completed tables.
    async fn after_data(&mut self) -> Result<()> {
        let ctx = self.ctx.clone();
        let infos: Vec<TableInfo> = self.tables.values().map(|t| t.info.clone()).collect();
        ctx.call();
        let found = ctx
            .source
            .views(&infos)
            .await
            .map_err(|e| e.operation("read views"))?;
        let mut outcomes = found.left_out;
        let mut ready: Vec<crate::objects::View> = Vec::new();
        for v in found.over_tables {
            let missing: Vec<String> = v
                .depends_on
                .iter()
                .filter(|d| {
                    let table_done = self
                        .runs
                        .get(*d)
                        .is_some_and(|r| r.state == TState::Done(TableStatus::Completed));
                    !table_done && !ready.iter().any(|r| &r.name == *d)
                })
                .map(ToString::to_string)
                .collect();
            if missing.is_empty() {
                ready.push(v);
            } else {
                let why = format!("{} did not complete", missing.join(", "));
                outcomes.push(v.outcome(Some(&why)));
            }
        }
        let completed: Vec<TableInfo> = self
            .tables
            .iter()
            .filter(|(n, _)| {
                self.runs
                    .get(*n)
                    .is_some_and(|r| r.state == TState::Done(TableStatus::Completed))
            })
            .map(|(_, t)| t.target.clone())
            .collect();
        ctx.call();
        outcomes.extend(
            ctx.sink
                .after_data(&completed, &ready, false)
                .await
                .map_err(|e| e.operation("after the data"))?,
        );
        verify::record_objects(&ctx, None, &outcomes).await;
        Ok(())
    }

    async fn register(&mut self) -> Result<()> {
        let ctx = self.ctx.clone();
        let existing = ctx.store.chunks(&ctx.run).await?;
        let records: BTreeMap<TableName, TableRecord> = ctx
            .store
            .tables(&ctx.run)
            .await?
            .into_iter()
            .map(|t| (t.table.clone(), t))
            .collect();
        let mut by_table: BTreeMap<TableName, Vec<ChunkRecord>> = BTreeMap::new();
        for c in existing {
            by_table.entry(c.table.clone()).or_default().push(c);
        }
        for name in self.dag.order().to_vec() {
            let t = self.tables[&name].clone();
            let chunks = match by_table.remove(&name) {
                Some(c) => c,
                None => {
                    let specs = if self.incremental() {
                        vec![ChunkSpec::whole_table(name.clone(), t.info.estimated_rows)]
                    } else {
                        ctx.call();
                        ctx.source
                            .chunks(&t.info, ctx.cfg.chunk_rows)
                            .await
                            .map_err(|e| e.table(&name).operation("chunks"))?
                    };
                    ctx.call();
                    ctx.store.add_chunks(&ctx.run, &specs).await?;
                    specs.iter().map(ChunkRecord::pending).collect()
                }
            };
            let record = match records.get(&name) {
                Some(r) => r.clone(),
                None => {
                    let r = TableRecord::pending(name.clone(), t.info.estimated_rows);
                    ctx.store.put_table(&ctx.run, &r).await?;
                    r
                }
            };
            let mut run = TableRun {
                state: TState::Waiting,
                pending: VecDeque::new(),
                outstanding: BTreeSet::new(),
                in_flight: 0,
                elsewhere: BTreeSet::new(),
                record,
                chunks_total: chunks.len() as u64,
                done_before: (0, 0, 0),
            };
            for c in &chunks {
                match c.status {
                    ChunkStatus::Completed => {
                        self.already_done += u64::from(self.resumed);
                        run.done_before.0 += 1;
                        run.done_before.1 += c.rows;
                        run.done_before.2 += c.bytes;
                    }
                    // Skipped on an earlier execution because a parent failed: retry now.
                    _ => {
                        run.pending.push_back(c.index);
                        run.outstanding.insert(c.index);
                    }
                }
            }
            if run.record.status == TableStatus::Completed && run.outstanding.is_empty() {
                run.state = TState::Done(TableStatus::Completed);
            } else if run.record.status != TableStatus::Pending {
                run.record.status = TableStatus::Pending;
                run.record.reason = None;
            }
            self.runs.insert(name, run);
        }
        Ok(())
    }

    /// On resume, trust the store only as far as the target agrees: a completed table that is
    /// gone or holds a different row count is reset and redone; a partly loaded table whose
    /// target is gone has its completed chunks redone.
    async fn reconcile(&mut self) -> Result<()> {
        let ctx = self.ctx.clone();
        let chunks = ctx.store.chunks(&ctx.run).await?;
        for name in self.dag.order().to_vec() {
            let done: Vec<&ChunkRecord> = chunks
                .iter()
                .filter(|c| c.table == name && c.status == ChunkStatus::Completed)
                .collect();
            if done.is_empty() {
                continue;
            }
            let t = self.tables[&name].clone();
            ctx.call();
            let reason = match ctx.sink.checksum(&t.target, &KeyRange::all()).await {
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    Some("the target table no longer exists".to_string())
                }
                Err(e) => return Err(e.operation("reconcile")),
                Ok(sum) => {
                    let recorded: u64 = done.iter().map(|c| c.rows).sum();
                    let run = &self.runs[&name];
                    // A merged table also holds the rows only the target had.
                    let merged = run.record.prepared.as_ref().is_some_and(|p| p.merge);
                    (run.state == TState::Done(TableStatus::Completed)
                        && !self.incremental()
                        && !merged
                        && sum.count != recorded)
                        .then(|| {
                            format!(
                                "the target holds {} rows where the run recorded {recorded}",
                                sum.count
                            )
                        })
                }
            };
            if let Some(reason) = reason {
                let note = format!(
                    "{name}: {reason}; its {} completed chunks were reset and redone",
                    done.len()
                );
                warn!("{note}");
                ctx.store.reset_table_chunks(&ctx.run, &name).await?;
                ctx.audit(AuditEvent::new("table.reset", reason).on(&name, None))
                    .await;
                let run = self
                    .runs
                    .get_mut(&name)
                    .ok_or_else(|| Error::fatal("table run missing"))?;
                let all: Vec<u32> = chunks
                    .iter()
                    .filter(|c| c.table == name)
                    .map(|c| c.index)
                    .collect();
                run.pending = all.iter().copied().collect();
                run.outstanding = all.into_iter().collect();
                run.state = TState::Waiting;
                run.record.status = TableStatus::Pending;
                run.record.prepared = None;
                run.record.rows = 0;
                run.done_before = (0, 0, 0);
                // Its Completed no longer holds (workers adopt a stored Completed).
                ctx.store.put_table(&ctx.run, &run.record).await?;
                self.already_done -= done.len() as u64;
                self.reconciliation.push(note);
            }
        }
        Ok(())
    }

    fn publish_tables(&self) {
        let tables = self
            .dag
            .order()
            .iter()
            .map(|n| {
                let r = &self.runs[n];
                TableProgress {
                    table: n.clone(),
                    status: r.record.status,
                    rows_done: r.done_before.1,
                    rows_total: self.tables[n].info.estimated_rows.max(r.done_before.1),
                    bytes_done: r.done_before.2,
                    chunks_done: r.done_before.0,
                    chunks_total: r.chunks_total,
                }
            })
            .collect();
        self.ctx.tracker.set_tables(tables);
        self.ctx
            .tracker
            .set_bytes_total(self.tables.values().map(|t| t.info.estimated_bytes).sum());
    }

    async fn prepare(&mut self) -> Result<()> {
        let ctx = self.ctx.clone();
        for name in self.dag.order().to_vec() {
            let run = &self.runs[&name];
            let t = self.tables[&name].clone();
            if let Some(p) = &run.record.prepared {
                t.merge.store(p.merge, Ordering::Relaxed);
                continue;
            }
            if run.state == TState::Done(TableStatus::Completed) {
                continue;
            }
            let options = crate::sink::PrepareOptions {
                existing_rows: self.owners.policy(&ctx.cfg, &name),
                // Incremental runs upsert into the migration's own tables every cycle: a backup
                // is for rows the configuration decided about.
                backup: ctx.cfg.prepare.backup
                    && !(self.owners.incremental && self.owners.owns(&name)),
                ..ctx.cfg.prepare.clone()
            };
            ctx.call();
            match ctx.sink.prepare(&t.target, &options, &ctx.run).await {
                Ok(p) => {
                    t.merge.store(p.merge, Ordering::Relaxed);
                    let run = self
                        .runs
                        .get_mut(&name)
                        .ok_or_else(|| Error::fatal("table run missing"))?;
                    run.record.prepared = Some(p.clone());
                    let stored = ctx
                        .store
                        .put_table_unless_completed(&ctx.run, &run.record)
                        .await?;
                    if let Some(done) = stored {
                        let note = "another worker completed the table while this one prepared it";
                        self.adopt_completed(done, note.into()).await?;
                        continue;
                    }
                    let what = match (p.created, p.existing_rows, p.merge) {
                        (true, _, _) => "created".to_string(),
                        (false, Some(0) | None, _) => "existing empty table".to_string(),
                        (false, Some(n), true) => format!("merging into {n} existing rows"),
                        (false, Some(n), false) => format!("replacing {n} existing rows"),
                    };
                    let what = match &p.backup {
                        Some(b) => format!("{what}; backed up to {b}"),
                        None => what,
                    };
                    ctx.audit(AuditEvent::new("table.prepared", what).on(&name, None))
                        .await;
                    verify::record_objects(&ctx, Some(&name), &p.objects).await;
                }
                Err(e) if e.kind().stops_run() => return Err(e.table(&name).operation("prepare")),
                Err(e) => {
                    let e = e.table(&name).operation("prepare");
                    self.fail_table(&name, &e).await?;
                }
            }
        }
        Ok(())
    }

    async fn fail_table(&mut self, name: &TableName, e: &Error) -> Result<()> {
        let ctx = self.ctx.clone();
        let run = self
            .runs
            .get_mut(name)
            .ok_or_else(|| Error::fatal("table run missing"))?;
        let open = !matches!(run.state, TState::Done(_));
        let mut failed = run.record.clone();
        failed.status = TableStatus::Failed;
        failed.reason = Some(e.to_string());
        failed.finished_at = Some(Utc::now());
        if open {
            // Another worker sharing the run may have completed the table meanwhile (this one
            // lost a race to it, say): that stands, and the table's children go on.
            let stored = ctx
                .store
                .put_table_unless_completed(&ctx.run, &failed)
                .await?;
            if let Some(done) = stored {
                let note = format!(
                    "another worker completed the table; this worker's failure set aside: {e}"
                );
                return self.adopt_completed(done, note).await;
            }
        }
        self.errors
            .push((Some(name.clone()), e.context().chunk, e.clone()));
        let run = self
            .runs
            .get_mut(name)
            .ok_or_else(|| Error::fatal("table run missing"))?;
        if !open {
            return Ok(());
        }
        run.state = TState::Done(TableStatus::Failed);
        run.record = failed;
        run.pending.clear();
        ctx.tracker.table_status(name, TableStatus::Failed);
        ctx.audit(AuditEvent::new("table.failed", e.to_string()).on(name, e.context().chunk))
            .await;
        if ctx.cfg.stop_on_first_error && self.stop.is_none() {
            self.stop = Some(Error::with_source(
                e.kind(),
                "stop_on_first_error",
                e.clone(),
            ));
        }
        Ok(())
    }

    /// With a window, plans the tables this run still has to load (a follow-up run plans only
    /// what is left) against the constraints.
    fn make_plan(&self) -> Result<Option<crate::plan::Plan>> {
        let cfg = &self.ctx.cfg;
        // Without a window there is nothing to defer: the run loads everything.
        if cfg.window.is_none() {
            return Ok(None);
        }
        let pending = self
            .tables
            .values()
            .filter(|t| self.runs[&t.info.name].state != TState::Done(TableStatus::Completed))
            .map(|t| &t.info);
        Ok(Some(super::planning::resource_plan(
            pending,
            cfg,
            &self.history,
        )?))
    }

    /// Takes `record`, the Completed another worker sharing the run stored for its table, as
    /// this worker's outcome for the table: no work, failure or skip of this worker's stands
    /// over it.
    async fn adopt_completed(&mut self, record: TableRecord, note: String) -> Result<()> {
        let ctx = self.ctx.clone();
        let name = record.table.clone();
        let run = self
            .runs
            .get_mut(&name)
            .ok_or_else(|| Error::fatal("table run missing"))?;
        run.state = TState::Done(TableStatus::Completed);
        run.record = record;
        run.pending.clear();
        run.outstanding.clear();
        ctx.tracker.table_status(&name, TableStatus::Completed);
        info!(table = %name, "{note}");
        ctx.audit(AuditEvent::new("table.completed_elsewhere", note).on(&name, None))
            .await;
        Ok(())
    }

    /// Defers the tables the plan could not fit (only those with nothing loaded yet: a table
    /// half-loaded by an earlier execution is finished rather than abandoned).
    async fn apply_plan(&mut self) -> Result<()> {
        let Some(plan) = self.plan.clone() else {
            return Ok(());
        };
        for d in &plan.deferred {
            let name = TableName::parse(&d.table);
            let Some(name) = self
                .runs
                .keys()
                .find(|n| n.to_string() == d.table || **n == name)
                .cloned()
            else {
                continue;
            };
            if self.runs[&name].done_before.0 == 0 {
                self.defer_table(&name, format!("planned: {}", d.reason))
                    .await?;
            }
        }
        Ok(())
    }

    async fn defer_table(&mut self, name: &TableName, reason: String) -> Result<()> {
        let ctx = self.ctx.clone();
        let run = self
            .runs
            .get_mut(name)
            .ok_or_else(|| Error::fatal("table run missing"))?;
        run.state = TState::Done(TableStatus::Deferred);
        run.record.status = TableStatus::Deferred;
        run.record.reason = Some(reason.clone());
        for i in std::mem::take(&mut run.pending) {
            ctx.store
                .skip_chunk(&ctx.run, name, i, &format!("deferred: {reason}"))
                .await?;
        }
        let stored = ctx
            .store
            .put_table_unless_completed(&ctx.run, &run.record)
            .await?;
        if let Some(done) = stored {
            let note = "another worker completed the table; not deferred";
            return self.adopt_completed(done, note.into()).await;
        }
        ctx.tracker.table_status(name, TableStatus::Deferred);
        ctx.audit(AuditEvent::new("table.deferred", reason.clone()).on(name, None))
            .await;
        warn!(table = %name, "deferred: {reason}");
        self.deferrals.push(crate::plan::Deferral {
            table: name.to_string(),
            reason,
        });
        Ok(())
    }

    /// Re-estimates the finish from measured throughput; while it passes the window, defers a
    /// table that has not started, by the plan's policy: deferrable before important, larger
    /// first, never critical, never one a kept table depends on.
    async fn reestimate(&mut self) -> Result<()> {
        let Some(window) = self.ctx.cfg.window else {
            return Ok(());
        };
        let elapsed = self
            .started
            .elapsed()
            .saturating_sub(self.paused_total)
            .as_secs_f64();
        if elapsed < 0.2 || self.bytes_written == 0 {
            return Ok(());
        }
        loop {
            let rate = self.bytes_written as f64 / elapsed;
            let remaining: u64 = self
                .runs
                .iter()
                .filter(|(_, r)| !matches!(r.state, TState::Done(_)))
                .map(|(n, r)| {
                    let est = self.tables[n].info.estimated_bytes.max(r.done_before.2);
                    est.saturating_sub(
                        r.done_before.2 + self.bytes_by_table.get(n).copied().unwrap_or(0),
                    )
                })
                .sum();
            let projected = elapsed + remaining as f64 / rate.max(1.0);
            if projected <= window.as_secs_f64() {
                return Ok(());
            }
            let candidate = self
                .runs
                .iter()
                .filter(|(n, r)| {
                    let untouched = r.in_flight == 0
                        && r.done_before.0 == 0
                        && !self.bytes_by_table.contains_key(*n);
                    matches!(r.state, TState::Waiting | TState::Running) && untouched
                })
                .filter(|(n, _)| self.ctx.cfg.priority(n) != crate::plan::Priority::Critical)
                .filter(|(n, _)| {
                    self.dag.children(n).iter().all(|c| {
                        matches!(
                            self.runs[c].state,
                            TState::Done(TableStatus::Deferred | TableStatus::Skipped)
                        )
                    })
                })
                .min_by_key(|(n, _)| {
                    (
                        self.ctx.cfg.priority(n),
                        std::cmp::Reverse(self.tables[*n].info.estimated_bytes),
                    )
                })
                .map(|(n, _)| n.clone());
            let Some(name) = candidate else { return Ok(()) };
            let reason = format!(
                "measured {:.2} MB/s projects the finish at {:.1} s, past the {:.1} s window",
                rate / 1e6,
                projected,
                window.as_secs_f64()
            );
            self.defer_table(&name, reason).await?;
        }
    }

    async fn skip_table(&mut self, name: &TableName, reason: String) -> Result<()> {
        let ctx = self.ctx.clone();
        let run = self
            .runs
            .get_mut(name)
            .ok_or_else(|| Error::fatal("table run missing"))?;
        run.state = TState::Done(TableStatus::Skipped);
        run.record.status = TableStatus::Skipped;
        run.record.reason = Some(reason.clone());
        for i in std::mem::take(&mut run.pending) {
            ctx.store.skip_chunk(&ctx.run, name, i, &reason).await?;
        }
        let stored = ctx
            .store
            .put_table_unless_completed(&ctx.run, &run.record)
            .await?;
        if let Some(done) = stored {
            let note = "another worker completed the table; not skipped";
            return self.adopt_completed(done, note.into()).await;
        }
        ctx.tracker.table_status(name, TableStatus::Skipped);
        ctx.audit(AuditEvent::new("table.skipped", reason).on(name, None))
            .await;
        Ok(())
    }

    /// Ready: waiting, and every parent completed (or failed, when children continue anyway).
    /// A table whose parent failed is skipped under the default policy.
    async fn promote(&mut self) -> Result<()> {
        for name in self.dag.order().to_vec() {
            if self.runs[&name].state != TState::Waiting {
                continue;
            }
            let mut ready = true;
            let mut blocked = None;
            for p in self.dag.parents(&name) {
                match self.runs[&p].state {
                    TState::Done(TableStatus::Completed) => {}
                    TState::Done(_)
                        if self.ctx.cfg.on_parent_failure == OnParentFailure::Continue => {}
                    TState::Done(s) => blocked = Some(format!("parent table {p} {}", s.as_str())),
                    _ => ready = false,
                }
            }
            if let Some(reason) = blocked {
                self.skip_table(&name, reason).await?;
            } else if ready {
                let run = self
                    .runs
                    .get_mut(&name)
                    .ok_or_else(|| Error::fatal("table run missing"))?;
                let mut running = run.record.clone();
                running.status = TableStatus::Running;
                running.started_at.get_or_insert_with(Utc::now);
                // A worker that got here late may find the table completed by another one:
                // written over with Running, the store (and every worker's report) would call
                // it unfinished.
                let stored = self
                    .ctx
                    .store
                    .put_table_unless_completed(&self.ctx.run, &running)
                    .await?;
                if let Some(done) = stored {
                    let note = "another worker completed the table before this one started it";
                    self.adopt_completed(done, note.into()).await?;
                    continue;
                }
                let run = self
                    .runs
                    .get_mut(&name)
                    .ok_or_else(|| Error::fatal("table run missing"))?;
                run.state = TState::Running;
                run.record = running;
                self.ctx.tracker.table_status(&name, TableStatus::Running);
                if run.outstanding.is_empty() {
                    run.state = TState::Verifying;
                }
            }
        }
        Ok(())
    }

    async fn apply_control(&mut self, c: Control) {
        if c == self.control {
            return;
        }
        let ctx = self.ctx.clone();
        match c {
            Control::Pause => {
                self.paused_since = Some(Instant::now());
                let _ = ctx.store.set_run_status(&ctx.run, RunStatus::Paused).await;
                ctx.tracker.paused(true);
                ctx.audit(AuditEvent::new(
                    "run.paused",
                    "no new chunks start; in-flight chunks finish",
                ))
                .await;
                info!("paused");
            }
            Control::Run => {
                if let Some(s) = self.paused_since.take() {
                    self.paused_total += s.elapsed();
                }
                let _ = ctx.store.set_run_status(&ctx.run, RunStatus::Running).await;
                ctx.tracker.paused(false);
                ctx.audit(AuditEvent::new("run.resumed", "continuing"))
                    .await;
                info!("resumed");
            }
            Control::Cancel => {
                if let Some(s) = self.paused_since.take() {
                    self.paused_total += s.elapsed();
                }
                self.cancelled = true;
                ctx.cancel.cancel();
                info!("cancel requested");
            }
        }
        self.control = c;
    }

    async fn schedule(&mut self, control: &mut watch::Receiver<Control>) -> Result<()> {
        let ctx = self.ctx.clone();
        let mut tasks: JoinSet<Task> = JoinSet::new();
        let mut in_flight = 0usize;
        let mut last_poll = Instant::now();
        let mut handle_gone = false;
        let mut last_local = *control.borrow_and_update();
        loop {
            // A request through the handle is written through to the store, so other processes
            // see it too. Only a *new* request counts: the handle's unchanged value must not
            // undo a pause or cancel that arrived through the store.
            let local = *control.borrow_and_update();
            if local != last_local {
                last_local = local;
                let _ = ctx.store.set_control(&ctx.run, local).await;
                self.apply_control(local).await;
            }
            if last_poll.elapsed() >= ctx.cfg.control_poll {
                last_poll = Instant::now();
                ctx.call();
                if let Ok(c) = ctx.store.control(&ctx.run).await {
                    self.apply_control(c).await;
                }
                self.recheck_elsewhere().await?;
            }
            let stopping = self.cancelled || self.stop.is_some();
            if !stopping {
                self.promote().await?;
                self.start_verifications(&mut tasks);
                if self.control == Control::Run {
                    in_flight += self.dispatch(&mut tasks, in_flight);
                }
            }
            if tasks.is_empty() {
                if stopping || self.all_done() {
                    break;
                }
                if self.control == Control::Run && !self.any_elsewhere() && !self.any_dispatchable()
                {
                    // Nothing can make progress: tables wait on parents that never finish.
                    return Err(Error::fatal("scheduler stalled with tables still waiting"));
                }
            }
            tokio::select! {
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    let task = done.map_err(|e| Error::with_source(ErrorKind::Fatal, "chunk task panicked", e))?;
                    if matches!(task, Task::Chunk(..)) {
                        in_flight -= 1;
                    }
                    self.handle(task).await?;
                    self.reestimate().await?;
                }
                changed = control.changed(), if !handle_gone => {
                    // A dropped handle cannot send again: keep running to the end, and keep
                    // polling the store's flag.
                    handle_gone = changed.is_err();
                }
                _ = tokio::time::sleep(ctx.cfg.control_poll) => {}
            }
        }
        if let Some(e) = self.stop.take() {
            return Err(e);
        }
        Ok(())
    }

    fn all_done(&self) -> bool {
        self.runs
            .values()
            .all(|r| matches!(r.state, TState::Done(_)))
    }

    fn any_elsewhere(&self) -> bool {
        self.runs.values().any(|r| !r.elsewhere.is_empty())
    }

    fn any_dispatchable(&self) -> bool {
        self.runs.values().any(|r| {
            matches!(
                r.state,
                TState::Running | TState::Verifying | TState::Waiting
            ) && (!r.pending.is_empty() || r.state == TState::Waiting)
        })
    }

    /// Tables in the order chunks are started: critical work first, then important, then
    /// deferrable (so deferrable tables are the last to start and the first to defer), each in
    /// dependency order.
    fn dispatch_order(&self) -> Vec<TableName> {
        let mut order: Vec<(usize, TableName)> =
            self.dag.order().iter().cloned().enumerate().collect();
        order.sort_by_key(|(i, n)| (std::cmp::Reverse(self.ctx.cfg.priority(n)), *i));
        order.into_iter().map(|(_, n)| n).collect()
    }

    fn dispatch(&mut self, tasks: &mut JoinSet<Task>, in_flight: usize) -> usize {
        let mut started = 0;
        for name in self.dispatch_order() {
            while in_flight + started < self.ctx.cfg.parallelism {
                let Some(run) = self.runs.get_mut(&name) else {
                    break;
                };
                if run.state != TState::Running {
                    break;
                }
                let Some(index) = run.pending.pop_front() else {
                    break;
                };
                run.in_flight += 1;
                let (ctx, t) = (self.ctx.clone(), self.tables[&name].clone());
                let span = info_span!(parent: &self.tables[&name].span, "chunk", chunk = index);
                tasks.spawn(
                    async move {
                        let outcome = run_chunk(&ctx, &t, index).await;
                        Task::Chunk(t.info.name.clone(), index, outcome)
                    }
                    .instrument(span),
                );
                started += 1;
            }
        }
        started
    }

    fn start_verifications(&mut self, tasks: &mut JoinSet<Task>) {
        for (name, run) in self.runs.iter_mut() {
            if run.state == TState::Running && run.outstanding.is_empty() && run.in_flight == 0 {
                run.state = TState::Verifying;
            }
            if run.state == TState::Verifying && run.in_flight == 0 {
                run.in_flight = 1;
                let (ctx, t) = (self.ctx.clone(), self.tables[name].clone());
                self.ctx.tracker.phase(Phase::Verifying);
                let span = info_span!(parent: &self.tables[name].span, "verify");
                tasks.spawn(
                    async move {
                        let r = verify::table(&ctx, &t).await;
                        Task::Verified(t.info.name.clone(), r)
                    }
                    .instrument(span),
                );
            }
        }
    }

    async fn recheck_elsewhere(&mut self) -> Result<()> {
        if !self.any_elsewhere() {
            return Ok(());
        }
        let ctx = self.ctx.clone();
        let chunks = ctx.store.chunks(&ctx.run).await?;
        let now = Utc::now();
        for c in chunks {
            let Some(run) = self.runs.get_mut(&c.table) else {
                continue;
            };
            if !run.elsewhere.contains(&c.index) {
                continue;
            }
            if c.status == ChunkStatus::Completed {
                run.elsewhere.remove(&c.index);
                run.outstanding.remove(&c.index);
            } else if c.claimable_by(&ctx.cfg.worker_id, now) {
                run.elsewhere.remove(&c.index);
                run.pending.push_back(c.index);
            }
        }
        Ok(())
    }

    async fn handle(&mut self, task: Task) -> Result<()> {
        let ctx = self.ctx.clone();
        match task {
            Task::Chunk(name, index, outcome) => {
                let run = self
                    .runs
                    .get_mut(&name)
                    .ok_or_else(|| Error::fatal("table run missing"))?;
                run.in_flight -= 1;
                match outcome {
                    ChunkOutcome::Completed(stats) => {
                        run.outstanding.remove(&index);
                        run.record.rows += stats.rows;
                        self.rows_written += stats.rows;
                        self.bytes_written += stats.bytes;
                        *self.bytes_by_table.entry(name.clone()).or_insert(0) += stats.bytes;
                        let t = &self.tables[&name];
                        let cap = ctx.cfg.verify.sample_size;
                        t.sample
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .merge(stats.sample, cap);
                        if !stats.rejected.is_empty() {
                            let recs: Vec<RejectedRecord> = stats
                                .rejected
                                .iter()
                                .map(|r| RejectedRecord {
                                    table: name.clone(),
                                    chunk: index,
                                    key: KeyDisplay(&r.key).to_string(),
                                    reason: r.reason.clone(),
                                    at: Utc::now(),
                                })
                                .collect();
                            ctx.store.add_rejected(&ctx.run, &recs).await?;
                        }
                    }
                    ChunkOutcome::NotClaimed => {
                        run.elsewhere.insert(index);
                    }
                    ChunkOutcome::Failed(e) => {
                        let e = e.table(&name).chunk(index);
                        self.fail_table(&name, &e).await?;
                    }
                    ChunkOutcome::StopRun(e) => {
                        let e = e.table(&name).chunk(index);
                        self.errors
                            .push((Some(name.clone()), Some(index), e.clone()));
                        run.pending.push_front(index);
                        if self.stop.is_none() {
                            self.stop = Some(e);
                        }
                        ctx.cancel.cancel();
                    }
                    ChunkOutcome::Cancelled => {
                        run.pending.push_front(index);
                    }
                }
            }
            Task::Verified(name, result) => {
                let run = self
                    .runs
                    .get_mut(&name)
                    .ok_or_else(|| Error::fatal("table run missing"))?;
                run.in_flight = 0;
                match result {
                    Ok(v) => {
                        let passed = v.passed();
                        let detail = v
                            .mismatches
                            .iter()
                            .map(|m| format!("chunk {}: {}", m.chunk, m.detail))
                            .collect::<Vec<_>>()
                            .join("; ");
                        self.verifications.push(v);
                        if passed {
                            run.state = TState::Done(TableStatus::Completed);
                            run.record.status = TableStatus::Completed;
                            run.record.finished_at = Some(Utc::now());
                            ctx.store.put_table(&ctx.run, &run.record).await?;
                            ctx.tracker.table_status(&name, TableStatus::Completed);
                            ctx.audit(
                                AuditEvent::new(
                                    "table.completed",
                                    format!("{} rows", run.record.rows),
                                )
                                .on(&name, None),
                            )
                            .await;
                        } else {
                            let e = Error::validation(format!(
                                "verification failed: {}",
                                if detail.is_empty() {
                                    "sampled rows differ".into()
                                } else {
                                    detail
                                }
                            ))
                            .table(&name);
                            self.fail_table(&name, &e).await?;
                        }
                    }
                    Err(e) if e.kind().stops_run() => {
                        // Unless another worker sharing the run completed the table.
                        let stored = ctx
                            .store
                            .tables(&ctx.run)
                            .await?
                            .into_iter()
                            .find(|r| r.table == name && r.status == TableStatus::Completed);
                        match stored {
                            Some(done) => {
                                let note = format!("another worker completed the table; this worker's failure set aside: {e}");
                                self.adopt_completed(done, note).await?;
                            }
                            None => {
                                self.stop.get_or_insert(e);
                            }
                        }
                    }
                    Err(e) => {
                        let e = e.table(&name).operation("verify");
                        self.fail_table(&name, &e).await?;
                    }
                }
            }
        }
        Ok(())
    }

    fn final_status(&self, outcome: &Result<()>) -> RunStatus {
        if self.cancelled {
            RunStatus::Cancelled
        } else if outcome.is_err()
            || self.runs.values().any(|r| {
                !matches!(
                    r.state,
                    TState::Done(TableStatus::Completed | TableStatus::Deferred)
                )
            })
        {
            RunStatus::Failed
        } else {
            RunStatus::Completed
        }
    }

    async fn report(
        &mut self,
        run: RunRecord,
        plan_hash: &str,
        started: Instant,
        stop: Option<Error>,
    ) -> Result<MigrationReport> {
        if let Some(e) = stop {
            if e.kind() != ErrorKind::Cancelled
                && !self
                    .errors
                    .iter()
                    .any(|(_, _, x)| x.to_string() == e.to_string())
            {
                let table = e.context().table.as_deref().map(TableName::parse);
                self.errors.push((table, e.context().chunk, e));
            }
        }
        let inputs = verify::ReportInputs {
            run,
            plan_hash: plan_hash.to_string(),
            mode: mode_name(&self.ctx.cfg.mode).to_string(),
            resumed: self.resumed,
            already_done: self.already_done,
            order: self.dag.order().to_vec(),
            estimated: self
                .tables
                .iter()
                .map(|(n, t)| (n.clone(), t.info.estimated_rows))
                .collect(),
            verifications: std::mem::take(&mut self.verifications),
            errors: std::mem::take(&mut self.errors),
            reconciliation: std::mem::take(&mut self.reconciliation),
            duration: started.elapsed(),
            paused: self.paused_total + self.paused_since.map_or(Duration::ZERO, |s| s.elapsed()),
            rows_written: self.rows_written,
            bytes_written: self.bytes_written,
            progress: self.ctx.tracker.snapshot(),
            budget: self.ctx.budget.clone(),
            deferred: std::mem::take(&mut self.deferrals),
            plan: self.plan.clone(),
        };
        verify::build_report(&self.ctx, inputs).await
    }
}

async fn run_chunk(ctx: &Ctx, t: &TableCtx, index: u32) -> ChunkOutcome {
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
                    checksum: ctx.cfg.verify.checksums.then_some(stats.checksum),
                    duration_ms: started.elapsed().as_millis() as u64,
                };
                ctx.call();
                // The checkpoint follows the sink's Ok, never precedes it.
                match ctx
                    .store
                    .complete_chunk(&ctx.run, name, index, &ctx.cfg.worker_id, &res)
                    .await
                {
                    Ok(true) => {
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
    if let Some(mark) = &stats.last_position {
        // Saved after the upsert returned Ok: a crash before this re-reads rows that were
        // already upserted, which is harmless; the reverse would lose them.
        ctx.store
            .save_cursor(&ctx.cfg.migration, &t.info.name, mark)
            .await?;
    }
    Ok(())
}
