//! Applying converted tables to a target, one table at a time in file order, each a
//! checkpointed operation of the run in the [`CheckpointStore`] (a one-chunk "table" of a run
//! named for the schema migration), so a second run starts at the first table not completed.
//!
//! Each table: the target is asked whether it has it ([`Sink::describe`]) — with the same
//! columns it is adopted unchanged, with others it is a drift error unless replacing was asked
//! for — else the sink creates it ([`Sink::prepare`]); then the target is asked again, and
//! only a table there with the expected columns is marked complete. Failures take the
//! executor's retry policy and error kinds: rate limits and quotas wait and retry (1 s
//! doubling, 3 attempts; quotas 30 s, 60 s, 120 s; `Retry-After` honoured), a schema error
//! fails the table and the run goes on, a permission or configuration error stops the run at
//! once; each attempt has a timeout (5 minutes by default) and prepares under an id of its
//! own (a sink answers a repeated id with its first decision). Rows found in a table are never
//! cleared, and a table replaced for drift is backed up first where the sink can. Keys,
//! indexes and constraints the sink builds after the data are a second checkpointed operation
//! per table, run once every table exists (a foreign key may name a table of a later file) —
//! also for tables an earlier, stopped run created.
//!
//! Before applying, the store is reconciled with the target: a table the store calls complete
//! but the target lacks is redone, one whose columns no longer match the files (edited since)
//! is taken again — a drift error unless replacing was asked for —, and a table the target
//! already has is checked and adopted when its turn comes — each reconciliation said.
//!
//! In the store each table is two chunks of the run: chunk 0 its creation (operation
//! `create_table`), chunk 1 its keys, indexes and constraints (`finalize_table`).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use migrate_core::plan::compatible;
use migrate_core::retry::{RetryConfig, RetryDecision, RetryState};
use migrate_core::{
    CheckpointStore, ChunkRecord, ChunkResult, ChunkSpec, ChunkStatus, Error, ErrorKind,
    ExistingRows, ObjectOutcome, Operation, PrepareMode, PrepareOptions, Result, RunId, RunRecord,
    RunStatus, Sink, TableInfo, TableName,
};

use crate::convert::Converted;

/// How the report calls a table an earlier run completed.
pub const EARLIER: &str = "completed by an earlier run";

/// How a schema migration runs.
#[derive(Debug, Clone)]
pub struct ApplyConfig {
    /// Its name in the checkpoint store (one run per name, resumed until complete).
    pub migration: String,
    /// This process's id in the store's leases.
    pub worker_id: String,
    /// Retries of a failed table.
    pub retry: RetryConfig,
    /// How long one attempt at one table may take.
    pub table_timeout: Duration,
    /// How long a claim on a table holds without renewal (renewed every third of it while the
    /// table is worked on); a run resumed after a crash waits this long at most for the dead
    /// process's claim.
    pub lease: Duration,
    /// Recreate a table the target has with other columns (else: a drift error).
    pub replace_drifted: bool,
}

impl Default for ApplyConfig {
    fn default() -> Self {
        ApplyConfig {
            migration: "schema".into(),
            // Unique even where every process is pid 1 (containers).
            worker_id: format!("schema-{}-{:08x}", std::process::id(), fastrand::u32(..)),
            retry: RetryConfig::default(),
            table_timeout: Duration::from_secs(300),
            lease: Duration::from_secs(30),
            replace_drifted: false,
        }
    }
}

/// What the run is doing, as it happens.
#[derive(Debug, Clone)]
pub enum Event {
    /// The store and the target disagreed; what was done about it.
    Reconciled(String),
    /// The progress so far, before each table's turn (the operator's regular update), with
    /// the file being processed.
    Progress {
        /// Tables completed and failed so far, calls made, time spent.
        report: Box<ApplyReport>,
        /// The file of the table about to start.
        current_file: String,
    },
    /// A table's turn: its place (from 1) among `total`, and its file.
    Started {
        /// The table.
        table: TableName,
        /// Its place in the order, from 1.
        index: usize,
        /// Tables in all.
        total: usize,
        /// The file it is defined in.
        file: String,
    },
    /// An attempt failed and is retried after `delay`.
    Retrying {
        /// The table.
        table: TableName,
        /// The wait before the next attempt.
        delay: Duration,
        /// The failure.
        error: String,
    },
    /// A table is complete.
    Completed {
        /// The table.
        table: TableName,
        /// When.
        at: DateTime<Utc>,
        /// `created`, or why nothing had to be done.
        how: String,
    },
    /// A table failed for good (the run goes on).
    Failed {
        /// The table.
        table: TableName,
        /// The failure.
        error: String,
    },
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct ApplyReport {
    /// Tables the files define.
    pub total: usize,
    /// Completed tables with when and how, this run's and earlier runs', in file order.
    pub completed: Vec<(TableName, DateTime<Utc>, String)>,
    /// Tables that failed, with the error.
    pub failed: Vec<(TableName, String)>,
    /// What reconciliation with the target changed.
    pub reconciled: Vec<String>,
    /// Keys, indexes and constraints built once the tables existed, and those left out.
    pub objects: Vec<ObjectOutcome>,
    /// Requests made to the target.
    pub calls: u64,
    /// Wall time of this run.
    pub elapsed: Duration,
    /// The error that stopped the run early (a permission error), if one did.
    pub stopped: Option<String>,
}

impl ApplyReport {
    /// Whether every table is complete.
    pub fn succeeded(&self) -> bool {
        self.stopped.is_none() && self.failed.is_empty() && self.completed.len() == self.total
    }
}

/// Applies `conv`'s tables to `sink`, checkpointed in `store`; `on` hears each event.
pub async fn apply(
    conv: &Converted,
    sink: &dyn Sink,
    store: &dyn CheckpointStore,
    cfg: &ApplyConfig,
    on: &mut (dyn FnMut(&Event) + Send),
) -> Result<ApplyReport> {
    let started = Instant::now();
    let mut report = ApplyReport {
        total: conv.tables.len(),
        ..Default::default()
    };
    let run = open_run(conv, store, cfg).await?;
    let ctx = Ctx {
        conv,
        sink,
        store,
        cfg,
        run: &run,
        started,
    };
    let result = run_tables(ctx, on, &mut report).await;
    let status = match (
        &result,
        report.failed.is_empty() && report.stopped.is_none(),
    ) {
        (Ok(()), true) => RunStatus::Completed,
        _ => RunStatus::Failed,
    };
    // The run's status says how it ended, whatever ended it.
    store.set_run_status(&run.id, status).await?;
    report.elapsed = started.elapsed();
    result.map(|()| report)
}

/// The store's chunks of a table: 0 is its creation, 1 its keys, indexes and constraints
/// (built once every table exists: a foreign key may name a table of a later file).
const CREATE: u32 = 0;
const KEYS: u32 = 1;

/// What every step of one apply shares.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    conv: &'a Converted,
    sink: &'a dyn Sink,
    store: &'a dyn CheckpointStore,
    cfg: &'a ApplyConfig,
    run: &'a RunRecord,
    started: Instant,
}

async fn run_tables(
    ctx: Ctx<'_>,
    on: &mut (dyn FnMut(&Event) + Send),
    report: &mut ApplyReport,
) -> Result<()> {
    let Ctx {
        conv,
        sink,
        store,
        run,
        started,
        ..
    } = ctx;
    // Reconcile: a table the store completed must still be in the target, as the files say.
    let chunks = store.chunks(&run.id).await?;
    for t in &conv.tables {
        if done(&chunks, &t.info.name, CREATE).is_none() {
            continue;
        }
        report.calls += 1;
        // The files may have changed since too: a table whose columns now differ is taken
        // again (a drift error, or recreated when replacing was asked for).
        let note = match sink.describe(&t.info).await? {
            None => "the store called it complete but the target lacks it; it is created again"
                .to_string(),
            Some(got) => match differences(sink, &t.info, &got) {
                None => continue,
                Some(diff) => format!(
                    "the store called it complete but the target's columns differ from the files ({diff}); it is taken again"
                ),
            },
        };
        let note = format!("{}: {note}", t.info.name);
        store.reset_table_chunks(&run.id, &t.info.name).await?;
        on(&Event::Reconciled(note.clone()));
        report.reconciled.push(note);
    }
    let chunks = store.chunks(&run.id).await?;
    let total = conv.tables.len();
    for (i, t) in conv.tables.iter().enumerate() {
        let name = &t.info.name;
        if let Some(c) = done(&chunks, name, CREATE) {
            let at = c.finished_at.unwrap_or_else(Utc::now);
            report.completed.push((name.clone(), at, EARLIER.into()));
            continue;
        }
        let file = t
            .file
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        report.elapsed = started.elapsed();
        on(&Event::Progress {
            report: Box::new(report.clone()),
            current_file: file.clone(),
        });
        on(&Event::Started {
            table: name.clone(),
            index: i + 1,
            total,
            file,
        });
        match create_table(ctx, &t.info, on, report).await? {
            Ok(()) => {}
            Err(e) => {
                on(&Event::Failed {
                    table: name.clone(),
                    error: e.to_string(),
                });
                report.failed.push((name.clone(), e.to_string()));
                if e.kind().stops_run() {
                    // The next run starts here; keys come once every table exists.
                    report.stopped = Some(e.to_string());
                    return Ok(());
                }
            }
        }
    }
    // Keys, indexes and constraints of every created table not yet given them (this run's,
    // an earlier stopped run's, an adopted table's); a failure is the table's, said.
    let chunks = store.chunks(&run.id).await?;
    for t in &conv.tables {
        let name = &t.info.name;
        if done(&chunks, name, CREATE).is_none() || done(&chunks, name, KEYS).is_some() {
            continue;
        }
        if let Err(e) = finalize_table(ctx, &t.info, on, report).await? {
            // Created but not finished: failed, not completed.
            report.completed.retain(|(c, ..)| c != name);
            let error = format!("keys, indexes and constraints: {e}");
            on(&Event::Failed {
                table: name.clone(),
                error: error.clone(),
            });
            report.failed.push((name.clone(), error));
        }
    }
    Ok(())
}

/// `table`'s chunk `index` if the store has it completed.
fn done(chunks: &[ChunkRecord], table: &TableName, index: u32) -> Option<ChunkRecord> {
    chunks
        .iter()
        .find(|c| &c.table == table && c.index == index && c.status == ChunkStatus::Completed)
        .cloned()
}

/// A table's creation, its retries included: `Ok(Err(e))` when the table failed (the caller
/// says so; `e.kind()` tells whether the run stops), `Err` when the store failed.
async fn create_table(
    ctx: Ctx<'_>,
    table: &TableInfo,
    on: &mut (dyn FnMut(&Event) + Send),
    report: &mut ApplyReport,
) -> Result<std::result::Result<(), Error>> {
    let Ctx {
        sink,
        store,
        cfg,
        run,
        ..
    } = ctx;
    let name = &table.name;
    let claimed = match claim(ctx, name, CREATE, on).await {
        Err(e) if e.kind() == ErrorKind::Timeout => return Ok(Err(e)),
        other => other?,
    };
    let Some(claim) = claimed else {
        // Another worker completed it meanwhile.
        report.completed.push((
            name.clone(),
            Utc::now(),
            "completed by another worker".into(),
        ));
        return Ok(Ok(()));
    };
    let mut retry = RetryState::default();
    // Whether an attempt's `prepare` went through: a later attempt that finds the table
    // found this run's own, not someone else's.
    let mut prepared = false;
    loop {
        // Each attempt prepares under an id of its own: a sink answers a second `prepare` of
        // the same id with its first decision, and a redo must act again.
        let attempt_id = RunId(format!(
            "{}/{}/{}",
            run.id.0, claim.attempts, retry.failures
        ));
        let mut calls = 0;
        let attempt = held(
            ctx,
            name,
            CREATE,
            create_one(table, sink, &attempt_id, cfg, &mut prepared, &mut calls),
        )
        .await;
        report.calls += calls;
        match attempt {
            Ok(how) => {
                if !store
                    .complete_chunk(&run.id, name, CREATE, &cfg.worker_id, &nothing())
                    .await?
                {
                    return Ok(Err(lost_lease()));
                }
                if how.starts_with("already") {
                    let note = format!("{name}: in the target but not in the store: adopted");
                    on(&Event::Reconciled(note.clone()));
                    report.reconciled.push(note);
                }
                let at = Utc::now();
                on(&Event::Completed {
                    table: name.clone(),
                    at,
                    how: how.clone(),
                });
                report.completed.push((name.clone(), at, how));
                return Ok(Ok(()));
            }
            Err(e) => match cfg.retry.decide(&e, &mut retry) {
                RetryDecision::RetryAfter(delay) => {
                    on(&Event::Retrying {
                        table: name.clone(),
                        delay,
                        error: e.to_string(),
                    });
                    let kept = store
                        .renew_lease(&run.id, name, CREATE, &cfg.worker_id, cfg.lease + delay)
                        .await?;
                    if kept {
                        tokio::time::sleep(delay).await;
                    }
                    if !kept
                        || !store
                            .renew_lease(&run.id, name, CREATE, &cfg.worker_id, cfg.lease)
                            .await?
                    {
                        return Ok(Err(lost_lease()));
                    }
                }
                _ => {
                    fail_if_held(ctx, name, CREATE, &e.to_string(), &e).await?;
                    return Ok(Err(e));
                }
            },
        }
    }
}

/// A table's keys, indexes and constraints (`Ok(Err(e))`: the table's failure).
async fn finalize_table(
    ctx: Ctx<'_>,
    table: &TableInfo,
    on: &mut (dyn FnMut(&Event) + Send),
    report: &mut ApplyReport,
) -> Result<std::result::Result<(), Error>> {
    let Ctx {
        sink,
        store,
        cfg,
        run,
        ..
    } = ctx;
    let name = &table.name;
    match claim(ctx, name, KEYS, on).await {
        Err(e) if e.kind() == ErrorKind::Timeout => return Ok(Err(e)),
        Ok(None) => return Ok(Ok(())),
        other => other?,
    };
    report.calls += 1;
    match held(ctx, name, KEYS, sink.finalize(table)).await {
        Ok(objects) => {
            report.objects.extend(objects);
            match store
                .complete_chunk(&run.id, name, KEYS, &cfg.worker_id, &nothing())
                .await?
            {
                true => Ok(Ok(())),
                false => Ok(Err(lost_lease())),
            }
        }
        Err(e) => {
            let error = format!("keys, indexes and constraints: {e}");
            fail_if_held(ctx, name, KEYS, &error, &e).await?;
            Ok(Err(e))
        }
    }
}

fn lost_lease() -> Error {
    Error::transient("lost the table's lease to another worker")
}

/// Records a step's failure — unless another worker has taken the step over meanwhile (its
/// claim is not this worker's to overwrite).
async fn fail_if_held(
    ctx: Ctx<'_>,
    table: &TableName,
    index: u32,
    error: &str,
    e: &Error,
) -> Result<()> {
    let Ctx {
        store, cfg, run, ..
    } = ctx;
    if store
        .renew_lease(&run.id, table, index, &cfg.worker_id, cfg.lease)
        .await?
    {
        store
            .fail_chunk(&run.id, table, index, error, e.kind())
            .await?;
    }
    Ok(())
}

/// Claims a table's chunk; when another worker holds it, waits for its lease to end (a
/// process killed mid-table holds it until then) and takes it over — up to a table timeout
/// of waiting, said as a retry. `None`: another worker completed it.
async fn claim(
    ctx: Ctx<'_>,
    table: &TableName,
    index: u32,
    on: &mut (dyn FnMut(&Event) + Send),
) -> Result<Option<ChunkRecord>> {
    let Ctx {
        store, cfg, run, ..
    } = ctx;
    let waiting_since = tokio::time::Instant::now();
    loop {
        if let Some(c) = store
            .claim_chunk(&run.id, table, index, &cfg.worker_id, cfg.lease)
            .await?
        {
            return Ok(Some(c));
        }
        let chunks = store.chunks(&run.id).await?;
        let Some(c) = chunks
            .iter()
            .find(|c| &c.table == table && c.index == index)
        else {
            return Err(Error::fatal(format!(
                "table {table}: the store lost its step {index}"
            )));
        };
        if c.status == ChunkStatus::Completed {
            return Ok(None);
        }
        let holder = c.worker.clone().unwrap_or_default();
        if waiting_since.elapsed() > cfg.table_timeout {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "table {table}: waited {:?} for worker {holder} to finish it or let it go",
                    cfg.table_timeout
                ),
            ));
        }
        let left = c
            .lease_until
            .and_then(|u| (u - Utc::now()).to_std().ok())
            .unwrap_or_default();
        let delay = (left + Duration::from_millis(200)).min(cfg.lease);
        on(&Event::Retrying {
            table: table.clone(),
            delay,
            error: format!("worker {holder} holds it: waiting for its lease to end"),
        });
        tokio::time::sleep(delay).await;
    }
}

/// Runs `work` on a claimed chunk within the table timeout, renewing the lease every third of
/// it; a lease lost to another worker ends the work as a transient failure.
async fn held<T>(
    ctx: Ctx<'_>,
    table: &TableName,
    index: u32,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let Ctx {
        store, cfg, run, ..
    } = ctx;
    let beat = async {
        loop {
            tokio::time::sleep(cfg.lease / 3).await;
            // A renewal the store does not answer in time counts as lost: past the lease,
            // another worker may take the table over.
            let renew = store.renew_lease(&run.id, table, index, &cfg.worker_id, cfg.lease);
            match tokio::time::timeout(cfg.lease / 2, renew).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) | Err(_) => return lost_lease(),
                Ok(Err(e)) => return e,
            }
        }
    };
    let timed = tokio::time::timeout(cfg.table_timeout, work);
    tokio::select! {
        r = timed => r.unwrap_or_else(|_| Err(Error::new(
            ErrorKind::Timeout,
            format!("table {table}: no answer within {:?}", cfg.table_timeout),
        ))),
        e = beat => Err(e),
    }
}

/// A table operation's result: no rows.
fn nothing() -> ChunkResult {
    ChunkResult {
        rows: 0,
        bytes: 0,
        checksum: None,
        duration_ms: 0,
    }
}

/// The migration's run: the latest one, continued (tables added to the files since are
/// registered), or a new one.
async fn open_run(
    conv: &Converted,
    store: &dyn CheckpointStore,
    cfg: &ApplyConfig,
) -> Result<RunRecord> {
    let run = match store.latest_run(&cfg.migration).await? {
        Some(r) => {
            store.set_run_status(&r.id, RunStatus::Running).await?;
            r
        }
        None => {
            let r = RunRecord::new(cfg.migration.clone(), plan_hash(conv));
            store.create_run(&r).await?;
            r
        }
    };
    let specs: Vec<ChunkSpec> = conv
        .tables
        .iter()
        .flat_map(|t| {
            [
                (CREATE, Operation::CreateTable),
                (KEYS, Operation::FinalizeTable),
            ]
            .map(|(index, operation)| ChunkSpec {
                index,
                operation,
                ..ChunkSpec::whole_table(t.info.name.clone(), 0)
            })
        })
        .collect();
    store.add_chunks(&run.id, &specs).await?;
    Ok(run)
}

/// The tables in order, hashed (FNV-1a): which files the run was opened for.
fn plan_hash(conv: &Converted) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for t in &conv.tables {
        for b in t.info.name.to_string().bytes().chain([b'\n']) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// One attempt at one table; how it became complete.
async fn create_one(
    table: &TableInfo,
    sink: &dyn Sink,
    run: &RunId,
    cfg: &ApplyConfig,
    prepared: &mut bool,
    calls: &mut u64,
) -> Result<String> {
    *calls += 1;
    let how = match sink.describe(table).await? {
        Some(existing) => match differences(sink, table, &existing) {
            None if *prepared => return Ok("created".into()),
            None => return Ok("already in the target with the same columns: adopted".into()),
            Some(diff) if !cfg.replace_drifted => {
                return Err(Error::schema(format!(
                    "table {} is in the target with other columns ({diff}): replace it to recreate it from the files",
                    table.name
                )))
            }
            Some(_) => PrepareMode::Recreate,
        },
        None => PrepareMode::CreateIfMissing,
    };
    // Rows found in a table are never this step's to clear; a table replaced for drift is
    // backed up first where the sink can.
    let options = PrepareOptions {
        mode: how,
        existing_rows: ExistingRows::Fail,
        backup: how == PrepareMode::Recreate && sink.capabilities().backup,
    };
    *calls += 1;
    // Set first: an attempt cut off while the target creates the table leaves it this run's.
    *prepared = true;
    sink.prepare(table, &options, run).await?;
    *calls += 1;
    match sink.describe(table).await? {
        Some(created) => match differences(sink, table, &created) {
            None => Ok(match how {
                PrepareMode::Recreate => "recreated (its columns had drifted)".into(),
                _ => "created".into(),
            }),
            // What the target made of the conversion is not what it reports: the table's
            // failure (the mapping's, not the run's).
            Some(diff) => Err(Error::schema(format!(
                "table {} was created, but the target reports other columns ({diff})",
                table.name
            ))),
        },
        // A listing that lags a creation: asked again on the next attempt.
        None => Err(Error::transient(format!(
            "table {} was created, but the target does not report it yet",
            table.name
        ))),
    }
}

/// How `got`'s columns differ from `want`'s, or `None`: names compared without case
/// (warehouses fold them), types as the target names the data model's type
/// ([`Sink::ddl_type`]: a warehouse reports what it made of the conversion's type — `NUMBER(10,0)`
/// for an `int4` —, so both sides are read the same way), and nullability.
fn differences(sink: &dyn Sink, want: &TableInfo, got: &TableInfo) -> Option<String> {
    let generated: Vec<String> = want
        .objects
        .generated
        .iter()
        .map(|g| g.column.name.to_lowercase())
        .collect();
    let find = |t: &TableInfo, name: &str| {
        t.schema
            .columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
            .cloned()
    };
    // From the type alone: a source's own spelling (`timestamp with time zone`, a domain's
    // name) is not what the target reports back (`timestamptz`, the base type).
    let type_of = |t: &TableInfo, c: &migrate_core::Column| {
        let bare = migrate_core::Column {
            source_type: None,
            ..c.clone()
        };
        sink.ddl_type(t, &bare)
            .unwrap_or_else(|| c.data_type.to_string())
            .to_uppercase()
    };
    let mut diffs = Vec::new();
    for w in &want.schema.columns {
        let Some(g) = find(got, &w.name) else {
            diffs.push(format!("{} missing", w.name));
            continue;
        };
        let (tw, tg) = (type_of(want, w), type_of(got, &g));
        // A wider column holds every value (a NUMERIC a service reports without the
        // parameters it was declared with): the drift rule the data path uses.
        if tw != tg && !compatible(&w.data_type, &g.data_type) {
            diffs.push(format!("{}: {tw} in the files, {tg} in the target", w.name));
        }
        // BigQuery's arrays are REPEATED, which has no NULL and no NOT NULL: reported nullable.
        let repeated = matches!(w.data_type, migrate_core::DataType::Array(_)) && g.nullable;
        if w.nullable != g.nullable && !repeated {
            let says = |nullable: bool| if nullable { "nullable" } else { "NOT NULL" };
            diffs.push(format!(
                "{}: {} in the files, {} in the target",
                w.name,
                says(w.nullable),
                says(g.nullable)
            ));
        }
    }
    for g in &got.schema.columns {
        let name = g.name.to_lowercase();
        if find(want, &g.name).is_none() && !generated.contains(&name) {
            diffs.push(format!("{} not in the files", g.name));
        }
    }
    (!diffs.is_empty()).then(|| diffs.join("; "))
}

/// The migration progress report (`MIGRATION PROGRESS`), from a run's report (or the store's state).
pub fn progress_text(report: &ApplyReport, current_file: Option<&str>) -> String {
    let mut out = String::from("MIGRATION PROGRESS\n==================\n");
    out.push_str(&format!(
        "Current Status: {} of {} tables completed\n",
        report.completed.len(),
        report.total
    ));
    out.push_str(&format!(
        "Current File Being Processed: {}\n",
        current_file.unwrap_or("none")
    ));
    out.push_str("Tables Successfully Uploaded:\n");
    for (t, at, _) in &report.completed {
        out.push_str(&format!("  - {t} ({})\n", at.to_rfc3339()));
    }
    out.push_str("Failed Tables:\n");
    for (t, e) in &report.failed {
        out.push_str(&format!("  - {t}: {e}\n"));
    }
    let done_now = report
        .completed
        .iter()
        .filter(|(_, _, how)| how != EARLIER)
        .count();
    let left = report
        .total
        .saturating_sub(report.completed.len() + report.failed.len());
    let eta = match done_now {
        0 => "unknown (no table completed in this run yet)".to_string(),
        n => {
            let per = report.elapsed.as_secs_f64() / n as f64;
            format!(
                "{:.0} s ({left} tables at {per:.2} s each)",
                per * left as f64
            )
        }
    };
    out.push_str(&format!("Estimated Time Remaining: {eta}\n"));
    out.push_str(&format!("API Calls Made: {}\n", report.calls));
    out.push_str("Quota Usage: not reported by the target\n");
    out
}
