//! The coordinator: schedules a run's chunks in dependency order, follows each table's state and
//! reports the run.

mod tables;
mod window;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{info, info_span, Instrument};

use crate::checkpoint::{
    AuditEvent, ChunkStatus, Control, RunRecord, RunStatus, TableRecord, TableStatus,
};
use crate::dag::DependencyGraph;
use crate::error::{Error, ErrorKind, Result};
use crate::executor::chunk_worker::{run_chunk, ChunkOutcome};
use crate::executor::config::Mode;
use crate::executor::context::{Ctx, TableCtx};
use crate::executor::progress::{Phase, TablePhase};
use crate::executor::report::{build_report, ReportInputs};
use crate::executor::verify;
use crate::report::{MigrationReport, TableVerification};
use crate::schema::TableName;

enum Task {
    Chunk(TableName, u32, ChunkOutcome),
    Verified(TableName, Result<TableVerification>),
}

/// How a table's parents stand for its next step (see `Coordinator::parents`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Parents {
    Ready,
    Wait,
    /// A parent failed (or was skipped) and children are skipped: why.
    Blocked(String),
}

/// Where a table is in this execution, as [`TableRun::state`] reads it off the table's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TState {
    Waiting,
    Running,
    Verifying,
    Done(TableStatus),
}

/// A table in this execution. Its state is its record's status (kept once, so that what the
/// store holds and what the scheduler acts on cannot drift apart), changed by
/// [`Coordinator::transition`].
struct TableRun {
    /// Every chunk is done and the table is being verified (its status stays Running).
    verifying: bool,
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

impl TableRun {
    fn state(&self) -> TState {
        match self.record.status {
            TableStatus::Pending => TState::Waiting,
            TableStatus::Running if self.verifying => TState::Verifying,
            TableStatus::Running => TState::Running,
            done => TState::Done(done),
        }
    }
}

/// The run of `name`: every table of the plan has one once it is registered.
fn table_run<'a>(
    runs: &'a mut BTreeMap<TableName, TableRun>,
    name: &TableName,
) -> Result<&'a mut TableRun> {
    runs.get_mut(name)
        .ok_or_else(|| Error::fatal("table run missing"))
}

pub(super) struct Coordinator {
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
    pub(crate) history: BTreeMap<TableName, f64>,
    /// Whose rows the target tables hold (what prepare may do to them).
    owners: crate::executor::existing::Ownership,
    /// This execution follows up a completed run: its completed tables are left alone.
    pub(crate) follow_up: bool,
    /// Tables deferred (by the plan or mid-run), with reasons.
    deferrals: Vec<crate::plan::Deferral>,
    /// Bytes written per table in this execution.
    bytes_by_table: BTreeMap<TableName, u64>,
    started: Instant,
}

impl Coordinator {
    pub(crate) fn new(
        ctx: Arc<Ctx>,
        dag: DependencyGraph,
        tables: BTreeMap<TableName, Arc<TableCtx>>,
        resumed: bool,
        owners: crate::executor::existing::Ownership,
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
    pub(crate) async fn run(&mut self, mut control: watch::Receiver<Control>) -> Result<()> {
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
            // Elapsed time and estimates move on even while a long index build or comparison
            // reports nothing: front ends get a fresh snapshot every poll.
            ctx.tracker.publish(false);
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
            .all(|r| matches!(r.state(), TState::Done(_)))
    }

    fn any_elsewhere(&self) -> bool {
        self.runs.values().any(|r| !r.elsewhere.is_empty())
    }

    fn any_dispatchable(&self) -> bool {
        self.runs.values().any(|r| {
            matches!(
                r.state(),
                TState::Running | TState::Verifying | TState::Waiting
            ) && (!r.pending.is_empty() || r.state() == TState::Waiting)
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
                if run.state() != TState::Running {
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

    /// Starts the finalize and verification of each table whose chunks are all done and whose
    /// parents completed (a child's foreign keys and outcome wait for its parents').
    fn start_verifications(&mut self, tasks: &mut JoinSet<Task>) {
        let names: Vec<TableName> = self.runs.keys().cloned().collect();
        for name in &names {
            let parents_done = self.parents(name, false) == Parents::Ready;
            let Some(run) = self.runs.get_mut(name) else {
                continue;
            };
            if run.state() == TState::Running && run.outstanding.is_empty() && run.in_flight == 0 {
                run.verifying = true;
                // Copied: until its post-data starts it waits (for its parents' outcome).
                self.ctx.tracker.table_phase(name, TablePhase::Waiting);
            }
            if run.state() == TState::Verifying && run.in_flight == 0 && parents_done {
                run.in_flight = 1;
                let (ctx, t) = (self.ctx.clone(), self.tables[name].clone());
                let span = info_span!(parent: &self.tables[name].span, "verify");
                tasks.spawn(
                    async move {
                        let r = after_copy(&ctx, &t).await;
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
                let run = table_run(&mut self.runs, &name)?;
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
                        let open = !matches!(run.state(), TState::Done(_));
                        if open && !stats.rejected.is_empty() {
                            let total = ctx.store.rejected_count(&ctx.run, &name).await?;
                            if let Some(why) = ctx.cfg.reject_limits(&name).broken(total, 0, false)
                            {
                                let e = Error::validation(format!("rejected rows: {why}"))
                                    .table(&name)
                                    .chunk(index);
                                self.fail_table(&name, &e).await?;
                            }
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
                let run = table_run(&mut self.runs, &name)?;
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
                        let rows = format!("{} rows", run.record.rows);
                        let limits = ctx.cfg.reject_limits(&name);
                        // Judged only where limits are set: the rows every execution and worker
                        // wrote, as the store has them, against the rows rejected.
                        let limited = limits.max_rows.is_some() || limits.max_ratio.is_some();
                        let broken = match limited {
                            false => None,
                            true => {
                                let written: u64 = ctx
                                    .store
                                    .chunks(&ctx.run)
                                    .await?
                                    .iter()
                                    .filter(|c| {
                                        c.table == name && c.status == ChunkStatus::Completed
                                    })
                                    .map(|c| c.rows)
                                    .sum();
                                let rejected = ctx.store.rejected_count(&ctx.run, &name).await?;
                                limits.broken(rejected, written + rejected, true)
                            }
                        };
                        if let Some(why) = broken {
                            let e = Error::validation(format!("rejected rows: {why}")).table(&name);
                            self.fail_table(&name, &e).await?;
                        } else if passed {
                            let event = AuditEvent::new("table.completed", rows).on(&name, None);
                            let status = TableStatus::Completed;
                            self.transition(&name, status, None, Some(event), None)
                                .await?;
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

    pub(crate) fn final_status(&self, outcome: &Result<()>) -> RunStatus {
        if self.cancelled {
            RunStatus::Cancelled
        } else if outcome.is_err()
            || self.runs.values().any(|r| {
                !matches!(
                    r.state(),
                    TState::Done(TableStatus::Completed | TableStatus::Deferred)
                )
            })
        {
            RunStatus::Failed
        } else {
            RunStatus::Completed
        }
    }

    pub(crate) async fn report(
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
                    // The stop error may wrap one listed already (stop_on_first_error).
                    .any(|(_, _, x)| e.to_string().contains(&x.to_string()))
            {
                let table = e.context().table.as_deref().map(TableName::parse);
                self.errors.push((table, e.context().chunk, e));
            }
        }
        let inputs = ReportInputs {
            run,
            plan_hash: plan_hash.to_string(),
            mode: self.ctx.cfg.mode.name().to_string(),
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
        build_report(&self.ctx, inputs).await
    }
}

/// What follows a table's copy, each step a phase of its own on the progress and in the
/// audit trail (which `migrate status` reads): finalize, then verification. Runs while other
/// tables' chunks are still copying.
async fn after_copy(ctx: &Ctx, t: &TableCtx) -> Result<TableVerification> {
    let name = &t.info.name;
    let finalizing = "building indexes, constraints and foreign keys";
    enter(
        ctx,
        name,
        TablePhase::Finalizing,
        "table.finalizing",
        finalizing,
    )
    .await;
    verify::finalize(ctx, t).await?;
    let verifying = "comparing key ranges and the sample";
    enter(
        ctx,
        name,
        TablePhase::Verifying,
        "table.verifying",
        verifying,
    )
    .await;
    verify::table(ctx, t).await
}

async fn enter(ctx: &Ctx, table: &TableName, phase: TablePhase, action: &str, detail: &str) {
    ctx.tracker.table_phase(table, phase);
    ctx.audit(AuditEvent::new(action, detail).on(table, None))
        .await;
}
