//! Each table's way through a run: registered, reconciled, prepared, started, and settled.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::Ordering;

use chrono::Utc;
use tracing::{info, warn};

use super::{table_run, Coordinator, Parents, TState, TableRun};
use crate::checkpoint::{AuditEvent, ChunkRecord, ChunkStatus, TableRecord, TableStatus};
use crate::chunk::{ChunkSpec, KeyRange};
use crate::error::{Error, ErrorKind, Result};
use crate::executor::config::OnParentFailure;
use crate::executor::progress::{PhaseSeconds, TablePhase, TableProgress};
use crate::executor::report::record_objects;
use crate::schema::{TableInfo, TableName};

impl Coordinator {
    /// Views over the migrated tables, once every table (or view) each one reads is complete
    /// (the others are recorded as not created, with the reason), then what must not act on
    /// the load (triggers, policies, grants, owners) on the completed tables.
    pub(super) async fn after_data(&mut self) -> Result<()> {
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
                        .is_some_and(|r| r.state() == TState::Done(TableStatus::Completed));
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
                    .is_some_and(|r| r.state() == TState::Done(TableStatus::Completed))
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
        record_objects(&ctx, None, &outcomes).await;
        Ok(())
    }

    pub(super) async fn register(&mut self) -> Result<()> {
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
                    // Another worker of the run may have planned the table first (its plan
                    // can differ: estimates move): the stored plan is the one everyone runs.
                    ctx.call();
                    let stored: Vec<ChunkRecord> = ctx
                        .store
                        .chunks(&ctx.run)
                        .await?
                        .into_iter()
                        .filter(|c| c.table == name)
                        .collect();
                    stored
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
                verifying: false,
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
            // A completed table stays so (its state is its status); any other starts over.
            let completed =
                run.record.status == TableStatus::Completed && run.outstanding.is_empty();
            if !completed && run.record.status != TableStatus::Pending {
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
    pub(super) async fn reconcile(&mut self) -> Result<()> {
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
                    (run.state() == TState::Done(TableStatus::Completed)
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
                let run = table_run(&mut self.runs, &name)?;
                let all: Vec<u32> = chunks
                    .iter()
                    .filter(|c| c.table == name)
                    .map(|c| c.index)
                    .collect();
                run.pending = all.iter().copied().collect();
                run.outstanding = all.into_iter().collect();
                run.verifying = false;
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

    pub(super) fn publish_tables(&self) {
        let tables = self
            .dag
            .order()
            .iter()
            .map(|n| {
                let r = &self.runs[n];
                TableProgress {
                    table: n.clone(),
                    status: r.record.status,
                    phase: match r.state() {
                        TState::Done(_) => TablePhase::Done,
                        _ => TablePhase::Waiting,
                    },
                    phase_seconds: PhaseSeconds::default(),
                    rows_done: r.done_before.1,
                    rows_total: self.tables[n].info.estimated_rows.max(r.done_before.1),
                    bytes_done: r.done_before.2,
                    chunks_done: r.done_before.0,
                    chunks_total: r.chunks_total,
                }
            })
            .collect();
        let verify = &self.ctx.cfg.verify;
        let verifying = verify.checksums || verify.sample_size > 0;
        let lanes = self.ctx.cfg.parallelism;
        self.ctx.tracker.set_tables(tables, verifying, lanes);
        self.ctx
            .tracker
            .set_bytes_total(self.tables.values().map(|t| t.info.estimated_bytes).sum());
    }

    pub(super) async fn prepare(&mut self) -> Result<()> {
        let ctx = self.ctx.clone();
        for name in self.dag.order().to_vec() {
            let run = &self.runs[&name];
            let t = self.tables[&name].clone();
            if let Some(p) = &run.record.prepared {
                t.merge.store(p.merge, Ordering::Relaxed);
                continue;
            }
            if run.state() == TState::Done(TableStatus::Completed) {
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
            ctx.tracker.table_phase(&name, TablePhase::Preparing);
            let prepared = ctx.sink.prepare(&t.target, &options, &ctx.run).await;
            ctx.tracker.table_phase(&name, TablePhase::Waiting);
            match prepared {
                Ok(p) => {
                    t.merge.store(p.merge, Ordering::Relaxed);
                    let run = table_run(&mut self.runs, &name)?;
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
                    record_objects(&ctx, Some(&name), &p.objects).await;
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

    /// Records a change of `name`'s status once: in the store, then in the tracker and, with
    /// `event`, the audit log; `reason`, when given, replaces the record's.
    ///
    /// With `race`, the record is written only if the store holds no Completed for the table:
    /// another worker sharing the run may have completed it meanwhile (this one lost a race to
    /// it, or got here late), and written over with Running, Failed, Deferred or Skipped, the
    /// store (and every worker's report) would call it unfinished. That Completed is adopted
    /// instead, noted with `race`, and `false` returned. Without `race` (this worker's own
    /// Completed) the record is written whatever the store holds.
    pub(super) async fn transition(
        &mut self,
        name: &TableName,
        status: TableStatus,
        reason: Option<String>,
        event: Option<AuditEvent>,
        race: Option<String>,
    ) -> Result<bool> {
        let ctx = self.ctx.clone();
        let mut record = table_run(&mut self.runs, name)?.record.clone();
        record.status = status;
        if reason.is_some() {
            record.reason = reason;
        }
        match status {
            TableStatus::Running => {
                record.started_at.get_or_insert_with(Utc::now);
                // Started again (resumed, or reset and redone): not finished.
                record.finished_at = None;
            }
            TableStatus::Completed | TableStatus::Failed => record.finished_at = Some(Utc::now()),
            _ => {}
        }
        match race {
            Some(note) => {
                let stored = ctx
                    .store
                    .put_table_unless_completed(&ctx.run, &record)
                    .await?;
                if let Some(done) = stored {
                    self.adopt_completed(done, note).await?;
                    return Ok(false);
                }
            }
            None => ctx.store.put_table(&ctx.run, &record).await?,
        }
        self.settle(record, event).await?;
        Ok(true)
    }

    /// Takes `record`, which the store holds, as the table's state in this execution.
    async fn settle(&mut self, record: TableRecord, event: Option<AuditEvent>) -> Result<()> {
        let (name, status) = (record.table.clone(), record.status);
        let run = table_run(&mut self.runs, &name)?;
        run.record = record;
        if let TState::Done(_) = run.state() {
            run.pending.clear();
        }
        let done = matches!(run.state(), TState::Done(_));
        self.ctx.tracker.table_status(&name, status);
        if done {
            self.ctx.tracker.table_phase(&name, TablePhase::Done);
        }
        if let Some(event) = event {
            self.ctx.audit(event).await;
        }
        Ok(())
    }

    pub(super) async fn fail_table(&mut self, name: &TableName, e: &Error) -> Result<()> {
        // A table already settled keeps its status; the error is still reported.
        let open = !matches!(table_run(&mut self.runs, name)?.state(), TState::Done(_));
        if open {
            let race =
                format!("another worker completed the table; this worker's failure set aside: {e}");
            let event = AuditEvent::new("table.failed", e.to_string()).on(name, e.context().chunk);
            let reason = Some(e.to_string());
            let failed =
                self.transition(name, TableStatus::Failed, reason, Some(event), Some(race));
            if !failed.await? {
                return Ok(());
            }
        }
        self.errors
            .push((Some(name.clone()), e.context().chunk, e.clone()));
        if open && self.ctx.cfg.stop_on_first_error && self.stop.is_none() {
            self.stop = Some(Error::with_source(
                e.kind(),
                "stop_on_first_error",
                e.clone(),
            ));
        }
        Ok(())
    }

    /// Takes `record`, the Completed another worker sharing the run stored for its table, as
    /// this worker's outcome for the table: no work, failure or skip of this worker's stands
    /// over it.
    pub(super) async fn adopt_completed(
        &mut self,
        record: TableRecord,
        note: String,
    ) -> Result<()> {
        let name = record.table.clone();
        table_run(&mut self.runs, &name)?.outstanding.clear();
        info!(table = %name, "{note}");
        let event = AuditEvent::new("table.completed_elsewhere", note).on(&name, None);
        self.settle(record, Some(event)).await
    }

    pub(super) async fn defer_table(&mut self, name: &TableName, reason: String) -> Result<()> {
        if self.set_aside(name, TableStatus::Deferred, &reason).await? {
            warn!(table = %name, "deferred: {reason}");
            self.deferrals.push(crate::plan::Deferral {
                table: name.to_string(),
                reason,
            });
        }
        Ok(())
    }

    pub(super) async fn skip_table(&mut self, name: &TableName, reason: String) -> Result<()> {
        self.set_aside(name, TableStatus::Skipped, &reason)
            .await
            .map(drop)
    }

    /// Leaves `name` for a later run (Deferred) or out of this one (Skipped, a parent failed),
    /// its chunks not yet started marked skipped; `false` if another worker completed it.
    async fn set_aside(
        &mut self,
        name: &TableName,
        status: TableStatus,
        reason: &str,
    ) -> Result<bool> {
        let (action, why, not) = match status {
            TableStatus::Deferred => ("table.deferred", format!("deferred: {reason}"), "deferred"),
            _ => ("table.skipped", reason.to_string(), "skipped"),
        };
        let ctx = self.ctx.clone();
        let run = table_run(&mut self.runs, name)?;
        for i in std::mem::take(&mut run.pending) {
            ctx.store.skip_chunk(&ctx.run, name, i, &why).await?;
        }
        let event = AuditEvent::new(action, reason).on(name, None);
        let race = format!("another worker completed the table; not {not}");
        self.transition(
            name,
            status,
            Some(reason.to_string()),
            Some(event),
            Some(race),
        )
        .await
    }

    /// How `name`'s parents stand. With `copied`, a parent whose rows are all written counts
    /// as ready: a child's rows may follow while the parent's indexes are built and its ranges
    /// compared; the child's own finalize and verification wait for its parents to complete.
    pub(super) fn parents(&self, name: &TableName, copied: bool) -> Parents {
        let mut state = Parents::Ready;
        for p in self.dag.parents(name) {
            match self.runs.get(&p).map(TableRun::state) {
                Some(TState::Done(TableStatus::Completed)) | None => {}
                Some(TState::Verifying) if copied => {}
                Some(TState::Done(_))
                    if self.ctx.cfg.on_parent_failure == OnParentFailure::Continue => {}
                Some(TState::Done(s)) => {
                    return Parents::Blocked(format!("parent table {p} {}", s.as_str()))
                }
                Some(_) => state = Parents::Wait,
            }
        }
        state
    }

    /// Starts the tables whose parents are ready (completed or copied; or failed, when
    /// children continue anyway). A table whose parent failed is skipped under the default
    /// policy — also one already copied whose finalize was waiting for that parent.
    pub(super) async fn promote(&mut self) -> Result<()> {
        for name in self.dag.order().to_vec() {
            let run = &self.runs[&name];
            let waiting_post_data = run.state() == TState::Verifying && run.in_flight == 0;
            if waiting_post_data {
                if let Parents::Blocked(reason) = self.parents(&name, false) {
                    let why = format!(
                        "{reason}; its rows were written, its keys, foreign keys and verification were not done"
                    );
                    self.skip_table(&name, why).await?;
                }
                continue;
            }
            if run.state() != TState::Waiting {
                continue;
            }
            match self.parents(&name, true) {
                Parents::Blocked(reason) => self.skip_table(&name, reason).await?,
                Parents::Wait => {}
                Parents::Ready => {
                    let race = "another worker completed the table before this one started it";
                    let started =
                        self.transition(&name, TableStatus::Running, None, None, Some(race.into()));
                    if started.await? {
                        let run = table_run(&mut self.runs, &name)?;
                        run.verifying = run.outstanding.is_empty();
                    }
                }
            }
        }
        Ok(())
    }
}
