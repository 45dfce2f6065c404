//! The executor: plan → (dry run stops here) → prepare sinks → schedule chunks in dependency
//! order with bounded memory, retries and checkpoints → verify → report.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use migrate_core::executor::{Migration, ExecutorConfig};
//! # async fn demo(source: Arc<dyn migrate_core::Source>, sink: Arc<dyn migrate_core::Sink>,
//! #               store: Arc<dyn migrate_core::CheckpointStore>) -> migrate_core::Result<()> {
//! let config = ExecutorConfig { migration: "legacy-to-new".into(), ..Default::default() };
//! let handle = Migration::new(source, sink, store).with_config(config).start();
//! // handle.pause(), handle.resume(), handle.cancel(), handle.progress() from anywhere…
//! let report = handle.wait().await?;
//! println!("{}", report.to_markdown());
//! # Ok(()) }
//! ```

mod budget;
mod chunk_worker;
mod config;
mod context;
mod coordinator;
mod dry_run;
mod existing;
mod opening;
mod pipe;
mod planning;
mod progress;
mod report;
mod reverify;
mod rollback;
mod start;
mod throttle;
mod verify;

use std::sync::Arc;

use tokio::sync::watch;

pub use budget::MemoryBudget;
pub use config::{
    ExecutorConfig, IncrementalConfig, Mode, OnParentFailure, RejectLimits, VerifyConfig,
};
pub use planning::{PlanReport, ASSUMED_BANDWIDTH};
pub use progress::{Phase, PhaseSeconds, Progress, TablePhase, TableProgress};
pub use report::{stored_report, LaterVerification, VERIFY_EVENT};
pub use reverify::{CheckOutcome, TableCheck, VerifyReport};
pub use rollback::{RollbackAction, RollbackPlan};
pub use throttle::Throttle;

use crate::checkpoint::{CheckpointStore, Control, RunId};
use crate::error::{Error, Result};
use crate::report::MigrationReport;
use crate::schema::TableName;
use crate::sink::Sink;
use crate::source::Source;
use crate::transform::Transform;

/// A migration to run: backends, transforms and settings.
#[cfg_attr(
    feature = "testing",
    doc = r#"
Plan, run, verify and roll back — the calls the `migrate` CLI makes — here on the in-memory
backends of the `testing` feature, so the example runs as it is:

```
use std::sync::Arc;
use migrate_core::executor::{CheckOutcome, ExecutorConfig, Migration};
use migrate_core::testing::{
    fixture_tables, Faults, MemoryCheckpointStore, MemorySink, MemorySource,
};

# tokio::runtime::Runtime::new().unwrap().block_on(async {
let fixtures = fixture_tables(Some("public"), 200);
let source = Arc::new(MemorySource::with_fixtures(&fixtures, Arc::new(Faults::new())));
let sink = Arc::new(MemorySink::new(Arc::new(Faults::new())));
let store = Arc::new(MemoryCheckpointStore::new());
let config = ExecutorConfig { migration: "docs".into(), ..Default::default() };
let migration = Migration::new(source, sink.clone(), store).with_config(config);

let planned = migration.plan().await?;             // nothing written yet
assert!(planned.ready && planned.plan.assumed.no_window);

let report = migration.clone().run().await?;       // or start() for a handle
assert!(report.succeeded(), "{}", report.to_markdown());

let checked = migration.verify().await?;           // recorded in the run's audit log
assert!(checked.tables.iter().all(|t| t.result == CheckOutcome::Match));

let undo = migration.rollback_plan(None).await?;   // what rollback would do, first
assert!(undo.feasible);
migration.rollback(None, false).await?;            // drops the tables the run created
assert!(fixtures.iter().all(|f| sink.rows(&f.table.name).is_none()));
# Ok::<(), migrate_core::Error>(())
# }).unwrap();
```
"#
)]
#[derive(Clone)]
pub struct Migration {
    source: Arc<dyn Source>,
    sink: Arc<dyn Sink>,
    store: Arc<dyn CheckpointStore>,
    transforms: Vec<(Option<TableName>, Arc<dyn Transform>)>,
    config: ExecutorConfig,
}

impl Migration {
    /// A migration with default settings.
    pub fn new(
        source: Arc<dyn Source>,
        sink: Arc<dyn Sink>,
        store: Arc<dyn CheckpointStore>,
    ) -> Self {
        Migration {
            source,
            sink,
            store,
            transforms: Vec::new(),
            config: ExecutorConfig::default(),
        }
    }

    /// Replaces the settings.
    pub fn with_config(mut self, config: ExecutorConfig) -> Self {
        self.config = config;
        self
    }

    /// The settings.
    pub fn config(&self) -> &ExecutorConfig {
        &self.config
    }

    /// Adds a transform for one table, or for every table when `table` is `None`. Transforms
    /// run in the order added.
    pub fn with_transform(mut self, table: Option<TableName>, t: Arc<dyn Transform>) -> Self {
        self.transforms.push((table, t));
        self
    }

    /// The source tables the configuration selects: an error when none does, or when an
    /// include pattern matches nothing (unless allowed).
    pub(crate) async fn discover_tables(&self) -> Result<Vec<crate::schema::TableInfo>> {
        let filter = &self.config.tables;
        let tables = self
            .source
            .discover(filter)
            .await
            .map_err(|e| e.operation("discover"))?;
        if tables.is_empty() {
            return Err(Error::config(format!(
                "no source table matches include {:?} / exclude {:?}",
                filter.include, filter.exclude
            )));
        }
        filter.check_matched(&tables)?;
        Ok(tables)
    }

    /// Starts the run on the current tokio runtime and returns its handle.
    pub fn start(self) -> MigrationHandle {
        let (control_tx, control_rx) = watch::channel(Control::Run);
        let (tracker, progress) = progress::Tracker::new();
        let budget = MemoryBudget::new(self.config.memory_budget);
        let job = start::execute(self, tracker, control_rx, budget.clone());
        MigrationHandle {
            control: Arc::new(control_tx),
            progress,
            budget,
            join: tokio::spawn(job),
        }
    }

    /// Runs to the end and returns the report.
    pub async fn run(self) -> Result<MigrationReport> {
        self.start().wait().await
    }

    /// Plans the migration without writing anything: discovers the source tables, builds the
    /// resource-aware plan (order, phases, what a window defers, estimates from measured
    /// throughput) with the same rules a run uses, and dry-runs the target (reachability,
    /// privileges, rows already there, schema drift, schema objects).
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// # use migrate_core::executor::{ExecutorConfig, Migration};
    /// # async fn demo(source: Arc<dyn migrate_core::Source>, sink: Arc<dyn migrate_core::Sink>,
    /// #               store: Arc<dyn migrate_core::CheckpointStore>) -> migrate_core::Result<()> {
    /// let config = ExecutorConfig {
    ///     migration: "legacy-to-new".into(),
    ///     window: Some(std::time::Duration::from_secs(4 * 3600)),
    ///     ..Default::default()
    /// };
    /// let planned = Migration::new(source, sink, store).with_config(config).plan().await?;
    /// println!("{}", planned.to_markdown());
    /// if !planned.ready {
    ///     eprintln!("the run would not fit the window, or the target refuses it");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn plan(&self) -> Result<PlanReport> {
        planning::plan(self).await
    }

    /// Compares every table's rows in the source and the target (count and canonical
    /// checksum, over the key ranges of the migration's latest run), and records the outcome
    /// in that run's audit log, where its stored report shows it. Writes nothing else.
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// # use migrate_core::executor::Migration;
    /// # async fn demo(m: Migration) -> migrate_core::Result<()> {
    /// let checked = m.verify().await?;
    /// print!("{}", checked.to_markdown());
    /// assert!(checked.passed, "rows differ between source and target");
    /// # Ok(()) }
    /// ```
    pub async fn verify(&self) -> Result<VerifyReport> {
        reverify::verify(self).await
    }

    /// What rolling back `run` (default: the migration's latest run) would do, and whether it
    /// can be done completely — reported before doing anything.
    pub async fn rollback_plan(&self, run: Option<&RunId>) -> Result<RollbackPlan> {
        rollback::plan(self, run).await
    }

    /// Rolls `run` back (drops tables it created, restores backups it took), recording each
    /// step in the audit log. Refuses when the plan is not feasible unless `partial` is set.
    ///
    /// ```no_run
    /// # use migrate_core::executor::Migration;
    /// # async fn demo(m: Migration) -> migrate_core::Result<()> {
    /// let plan = m.rollback_plan(None).await?;
    /// for action in &plan.actions {
    ///     println!("{action:?}");
    /// }
    /// if plan.feasible {
    ///     m.rollback(None, false).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn rollback(&self, run: Option<&RunId>, partial: bool) -> Result<RollbackPlan> {
        rollback::execute(self, run, partial).await
    }
}

/// Controls a running migration from anywhere in the process. Another process controls it
/// through the checkpoint store's flag (`CheckpointStore::set_control`), which the executor
/// polls.
pub struct MigrationHandle {
    control: Arc<watch::Sender<Control>>,
    progress: watch::Receiver<Progress>,
    budget: Arc<MemoryBudget>,
    join: tokio::task::JoinHandle<Result<MigrationReport>>,
}

impl MigrationHandle {
    /// No new chunks start; in-flight chunks finish; the run's state becomes paused.
    pub fn pause(&self) {
        self.control.send_replace(Control::Pause);
    }

    /// Continues a paused run.
    pub fn resume(&self) {
        self.control.send_replace(Control::Run);
    }

    /// Aborts in-flight chunks (they are redone on resume) and stops; the run is resumable.
    pub fn cancel(&self) {
        self.control.send_replace(Control::Cancel);
    }

    /// Pause/resume/cancel that can be moved elsewhere (a signal handler, a UI) while this
    /// handle waits.
    pub fn controls(&self) -> MigrationControls {
        MigrationControls(self.control.clone())
    }

    /// A receiver of progress snapshots.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.clone()
    }

    /// The memory budget's accounting (bytes in flight now and at peak).
    pub fn budget(&self) -> &Arc<MemoryBudget> {
        &self.budget
    }

    /// Stops the executor task at once, with no cleanup at all — what a crash or `kill -9`
    /// does. The run stays "running" in the store; chunks in flight keep their leases until
    /// they expire, then a resumed run takes them over. Tests use it to prove resume.
    pub fn abort(self) {
        self.join.abort();
    }

    /// Waits for the run to end.
    pub async fn wait(self) -> Result<MigrationReport> {
        self.join
            .await
            .map_err(|e| Error::with_source(crate::ErrorKind::Fatal, "executor task failed", e))?
    }
}

/// A cloneable remote for a running migration (see [`MigrationHandle::controls`]).
#[derive(Clone)]
pub struct MigrationControls(Arc<watch::Sender<Control>>);

impl MigrationControls {
    /// See [`MigrationHandle::pause`].
    pub fn pause(&self) {
        self.0.send_replace(Control::Pause);
    }

    /// See [`MigrationHandle::resume`].
    pub fn resume(&self) {
        self.0.send_replace(Control::Run);
    }

    /// See [`MigrationHandle::cancel`].
    pub fn cancel(&self) {
        self.0.send_replace(Control::Cancel);
    }
}
