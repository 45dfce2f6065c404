//! Resume after failure, crash and cancel; pause/resume; control through the store;
//! reconciliation; plan changes; incremental runs; rollback.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{cfg, t, Rig};
use migrate_core::executor::{IncrementalConfig, Mode, RollbackAction};
use migrate_core::testing::{fixture_tables, Op};
use migrate_core::{
    CheckpointStore, ChunkStatus, Control, ErrorKind, ExistingRows, KeyRange, PrepareMode,
    RowChecksum, RunId, RunStatus, Source, TableName, TableStatus, Value,
};

async fn completed_chunks(rig: &Rig, run: &str) -> BTreeSet<(TableName, u32)> {
    rig.store
        .chunks(&RunId(run.into()))
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.status == ChunkStatus::Completed)
        .map(|c| (c.table, c.index))
        .collect()
}

#[tokio::test]
async fn resume_after_a_fatal_error_continues_where_it_stopped() {
    let rig = Rig::sample(0.001);
    rig.sink_faults.fail_nth(Op::Write, 40, ErrorKind::Fatal);
    let first = rig.migration(cfg("resume")).run().await.unwrap();
    assert_eq!(first.status, RunStatus::Failed);
    let done = completed_chunks(&rig, &first.execution_id).await;
    assert!(
        done.len() >= 30,
        "progress was made before the failure: {}",
        done.len()
    );
    let reads_before = rig.source.reads().len();
    let writes_before = rig.sink.write_log().len();

    let second = rig.migration(cfg("resume")).run().await.unwrap();
    assert!(second.succeeded(), "{}", second.to_markdown());
    assert_eq!(
        second.execution_id, first.execution_id,
        "the same run continues"
    );
    assert!(second.resumed);
    assert_eq!(second.progress.batches_already_done, done.len() as u64);
    // Completed chunks were neither re-read nor re-written.
    let reads: Vec<_> = rig.source.reads()[reads_before..].to_vec();
    let writes: Vec<_> = rig.sink.write_log()[writes_before..].to_vec();
    for (table, idx) in &done {
        assert!(
            !reads.iter().any(|(t, i)| t == table && i == idx),
            "completed chunk {table}#{idx} re-read"
        );
        assert!(
            !writes.iter().any(|w| &w.table == table && w.chunk == *idx),
            "completed chunk {table}#{idx} re-written"
        );
    }
    rig.assert_target_equals_source();
    assert!(second.audit_summary.by_action.contains_key("run.resumed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_a_crash_takes_over_the_dead_workers_chunks() {
    let rig = Rig::sample(0.001);
    rig.sink_faults.set_latency(Duration::from_millis(3));
    let handle = rig.migration(cfg("crash")).start();
    let mut progress = handle.progress();
    progress.wait_for(|p| p.chunks_done >= 20).await.unwrap();
    handle.abort(); // no cleanup: chunks stay "running" under the dead worker's lease
    tokio::time::sleep(Duration::from_millis(50)).await;
    let run = rig.store.latest_run("crash").await.unwrap().unwrap();
    assert_eq!(
        run.status,
        RunStatus::Running,
        "a crash leaves the run marked running"
    );
    let done = completed_chunks(&rig, &run.id.0).await;

    let writes_before = rig.sink.write_log().len();
    let report = rig.migration(cfg("crash")).run().await.unwrap(); // a new worker id
    assert!(report.succeeded(), "{}", report.to_markdown());
    assert_eq!(report.execution_id, run.id.0);
    let writes: Vec<_> = rig.sink.write_log()[writes_before..].to_vec();
    for (table, idx) in &done {
        assert!(
            !writes.iter().any(|w| &w.table == table && w.chunk == *idx),
            "completed chunk {table}#{idx} re-written"
        );
    }
    rig.assert_target_equals_source();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_safely_and_a_later_run_finishes() {
    let rig = Rig::sample(0.001);
    rig.sink_faults.set_latency(Duration::from_millis(3));
    let handle = rig.migration(cfg("cancel")).start();
    handle
        .progress()
        .wait_for(|p| p.chunks_done >= 10)
        .await
        .unwrap();
    handle.cancel();
    let report = handle.wait().await.unwrap();
    assert_eq!(report.status, RunStatus::Cancelled);
    assert!(!report.succeeded());
    assert!(report.audit_summary.by_action.contains_key("run.cancelled"));
    let again = rig.migration(cfg("cancel")).run().await.unwrap();
    assert!(again.succeeded());
    assert_eq!(again.execution_id, report.execution_id);
    rig.assert_target_equals_source();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_lets_in_flight_chunks_finish_and_starts_no_new_ones() {
    let rig = Rig::sample(0.001);
    rig.sink_faults.set_latency(Duration::from_millis(3));
    let handle = rig.migration(cfg("pause")).start();
    let mut progress = handle.progress();
    progress.wait_for(|p| p.chunks_done >= 5).await.unwrap();
    handle.pause();
    progress
        .wait_for(|p| p.paused && p.active_tables.is_empty())
        .await
        .unwrap();
    let run = rig.store.latest_run("pause").await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Paused);
    let writes = rig.sink.write_log().len();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        rig.sink.write_log().len(),
        writes,
        "no chunk starts while paused"
    );
    handle.resume();
    let report = handle.wait().await.unwrap();
    assert!(report.succeeded());
    assert!(report.timing.paused_duration_seconds >= 0.2);
    assert!(report.audit_summary.by_action.contains_key("run.paused"));
    rig.assert_target_equals_source();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_pauses_and_cancels_through_the_store() {
    let rig = Rig::sample(0.001);
    rig.sink_faults.set_latency(Duration::from_millis(15));
    let handle = rig.migration(cfg("remote")).start();
    let mut progress = handle.progress();
    progress.wait_for(|p| p.chunks_done >= 5).await.unwrap();
    let run = rig.store.latest_run("remote").await.unwrap().unwrap();
    // What `migrate pause` in another terminal does.
    rig.store
        .set_control(&run.id, Control::Pause)
        .await
        .unwrap();
    progress.wait_for(|p| p.paused).await.unwrap();
    // It stays paused: nothing moves until someone resumes it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(progress.borrow().paused, "a pause from the store holds");
    let writes = rig.sink.write_log().len();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        rig.sink.write_log().len(),
        writes,
        "no chunk starts while paused by another process"
    );
    rig.store.set_control(&run.id, Control::Run).await.unwrap();
    progress.wait_for(|p| !p.paused).await.unwrap();
    rig.store
        .set_control(&run.id, Control::Cancel)
        .await
        .unwrap();
    let report = handle.wait().await.unwrap();
    assert_eq!(report.status, RunStatus::Cancelled);
}

#[tokio::test]
async fn resume_reconciles_with_the_target_and_redoes_what_is_gone() {
    let rig = Rig::sample(0.001);
    let mut c = cfg("reconcile");
    c.parallelism = 1;
    c.chunk_rows = 500; // 31 chunks; the 28th write is the first of transactions
    rig.sink_faults.fail_nth(Op::Write, 28, ErrorKind::Fatal);
    let first = rig.migration(c.clone()).run().await.unwrap();
    assert_eq!(first.status, RunStatus::Failed);
    let completed: Vec<_> = first
        .results
        .iter()
        .filter(|r| r.status == TableStatus::Completed)
        .map(|r| r.table.clone())
        .collect();
    assert!(completed.contains(&t("customers")), "{completed:?}");
    // Someone drops a completed table, and deletes a row from another, behind our back.
    rig.sink.drop_table(&t("customers"));
    let victim = completed
        .iter()
        .find(|n| n.name != "customers")
        .unwrap()
        .clone();
    let key = rig.sink.rows(&victim).unwrap()[0].clone();
    let f = rig
        .fixtures
        .iter()
        .find(|f| f.table.name == victim)
        .unwrap();
    rig.sink.delete_row(&victim, &f.table.schema.key_of(&key));
    let second = rig.migration(c).run().await.unwrap();
    assert!(second.succeeded(), "{}", second.to_markdown());
    let notes = second.reconciliation.join("\n");
    assert!(
        notes.contains("public.customers: the target table no longer exists"),
        "{notes}"
    );
    assert!(
        notes.contains(&format!("{victim}: the target holds")),
        "{notes}"
    );
    rig.assert_target_equals_source();
    assert!(second.to_markdown().contains("## Resume Reconciliation"));
}

#[tokio::test]
async fn a_changed_plan_is_refused_unless_forced() {
    let rig = Rig::sample(0.001);
    rig.sink_faults.fail_nth(Op::Write, 20, ErrorKind::Fatal);
    let first = rig.migration(cfg("plan")).run().await.unwrap();
    assert_eq!(first.status, RunStatus::Failed);
    let mut changed = cfg("plan");
    changed.chunk_rows = 77;
    let e = rig.migration(changed.clone()).run().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("changed since run"), "{e}");
    changed.force = true;
    changed.prepare.mode = PrepareMode::Recreate;
    let forced = rig.migration(changed).run().await.unwrap();
    assert!(forced.succeeded());
    assert_ne!(
        forced.execution_id, first.execution_id,
        "forcing starts a new run"
    );
    rig.assert_target_equals_source();
}

#[tokio::test]
async fn a_completed_migration_run_again_does_nothing_and_a_refresh_copies_it_again() {
    let rig = Rig::sample(0.0005);
    let a = rig.migration(cfg("twice")).run().await.unwrap();
    let b = rig.migration(cfg("twice")).run().await.unwrap();
    assert!(a.succeeded() && b.succeeded(), "{}", b.to_markdown());
    assert_eq!(a.execution_id, b.execution_id, "nothing new was started");
    assert!(
        b.reconciliation.join(" ").contains("nothing to do"),
        "{:?}",
        b.reconciliation
    );
    let writes = rig.sink.write_log().len();
    // A source row changes; a refresh copies everything again and converges on it.
    let f = &rig.fixtures[0];
    let mut changed = f.rows[0].clone();
    changed[1] = Value::Text("refreshed".into());
    rig.source
        .upsert_rows(&f.table.name, vec![changed])
        .unwrap();
    let mut refresh = cfg("twice");
    refresh.refresh = true;
    let c = rig.migration(refresh).run().await.unwrap();
    assert!(c.succeeded(), "{}", c.to_markdown());
    assert_ne!(c.execution_id, a.execution_id, "a refresh is a new run");
    assert!(rig.sink.write_log().len() > writes);
    let rows = rig.sink.rows(&f.table.name).unwrap();
    assert_eq!(rows.len(), f.rows.len());
    assert!(
        rows.iter().any(|r| r[1] == Value::Text("refreshed".into())),
        "the refresh carried the changed row"
    );
}

#[tokio::test]
async fn a_follow_up_run_loads_exactly_the_deferred_tables() {
    let rig = Rig::sample(0.0005);
    let mut c = cfg("follow");
    // About 0.4 MB of tables and a 1 MB audit log at 1 MB/s in a 1 s window: the audit log
    // (deferrable) does not fit; customers and products (critical) are never deferred.
    c.window = Some(std::time::Duration::from_secs(1));
    c.bandwidth_target = Some(1_000_000);
    c.priorities.insert(
        "public.audit_logs".into(),
        migrate_core::plan::Priority::Deferrable,
    );
    for t in ["public.customers", "public.products"] {
        c.priorities
            .insert(t.into(), migrate_core::plan::Priority::Critical);
    }
    let first = rig.migration(c.clone()).run().await.unwrap();
    assert!(
        first
            .results
            .iter()
            .any(|r| r.status == TableStatus::Deferred),
        "{}",
        first.to_markdown()
    );
    assert_eq!(first.status, RunStatus::Completed);
    assert!(
        first
            .results
            .iter()
            .any(|r| r.status == TableStatus::Completed),
        "{}",
        first.to_markdown()
    );
    let completed_writes: Vec<_> = rig.sink.write_log();
    // The follow-up, without the window that deferred them.
    let mut follow = cfg("follow");
    follow.priorities = c.priorities.clone();
    let second = rig.migration(follow).run().await.unwrap();
    assert!(second.succeeded(), "{}", second.to_markdown());
    assert_eq!(
        second.execution_id, first.execution_id,
        "the same run, followed up"
    );
    let deferred: Vec<_> = first
        .results
        .iter()
        .filter(|r| r.status == TableStatus::Deferred)
        .map(|r| r.table.clone())
        .collect();
    let rewritten: std::collections::BTreeSet<_> = rig.sink.write_log()[completed_writes.len()..]
        .iter()
        .map(|w| w.table.clone())
        .collect();
    assert_eq!(
        rewritten,
        deferred.iter().cloned().collect(),
        "the follow-up wrote exactly the deferred tables"
    );
    rig.assert_target_equals_source();
}

#[tokio::test]
async fn incremental_runs_pick_up_changes_without_loss_at_the_boundary() {
    for encoded in [false, true] {
        incremental_case(encoded).await;
    }
}

/// One incremental sequence; `encoded`: the source's rows reach the sink undecoded (the
/// watermark then comes from the codec).
async fn incremental_case(encoded: bool) {
    let fixtures = fixture_tables(Some("public"), 40)[..1].to_vec();
    let rig = match encoded {
        true => Rig::encoded(fixtures),
        false => Rig::with(fixtures),
    };
    let customers = t("customers");
    // Full load first.
    assert!(rig.migration(cfg("inc")).run().await.unwrap().succeeded());
    let inc = incremental_cfg("inc", None);
    let first = rig.migration(inc.clone()).run().await.unwrap();
    assert!(first.succeeded(), "{}", first.to_markdown());
    // An incremental run compares no key ranges, and says so rather than "target 0 rows".
    let md = first.to_markdown();
    assert!(
        !md.contains("target 0 rows") && md.contains("an incremental run reads only changed rows"),
        "{md}"
    );
    assert!(first
        .verification
        .tables
        .iter()
        .all(|v| v.checksum_match.is_none()));
    let top = watermark(&rig, "inc").await;
    // New rows: one sharing the watermark's cursor value with a larger key, one newer, and an
    // update of an existing row.
    let f = &rig.fixtures[0];
    let mut same = f.rows[3].clone();
    same[0] = Value::Int64(1000);
    same[5] = Value::TimestampTz(top);
    let mut newer = f.rows[4].clone();
    newer[0] = Value::Int64(1001);
    newer[5] = Value::TimestampTz(top + 10);
    let mut updated = f.rows[5].clone();
    updated[2] = Value::Text("moved@example.com".into());
    updated[5] = Value::TimestampTz(top + 20);
    rig.source
        .upsert_rows(
            &customers,
            vec![same.clone(), newer.clone(), updated.clone()],
        )
        .unwrap();
    let second = rig.migration(inc.clone()).run().await.unwrap();
    assert!(second.succeeded());
    assert_eq!(
        second.progress.records_this_execution, 4,
        "the changed rows, and the row at the watermark's cursor value read again"
    );
    let got = rig.sink.rows(&customers).unwrap();
    assert_eq!(got.len(), 42);
    assert!(got.contains(&same) && got.contains(&newer) && got.contains(&updated));
    // Nothing changed: only the row at the watermark's cursor value is read (and upserted) again.
    let third = rig.migration(inc).run().await.unwrap();
    assert_eq!(third.progress.records_this_execution, 1);
    assert_eq!(
        rig.sink.rows(&customers).unwrap(),
        got,
        "the target is unchanged"
    );
    assert_target_equals_current_source(&rig).await;
    assert_eq!(rig.sink.encoded_batches() > 0, encoded);
}

/// Incremental settings on `created_at`, with an optional lookback.
fn incremental_cfg(name: &str, lookback: Option<Duration>) -> migrate_core::ExecutorConfig {
    let mut c = cfg(name);
    c.mode = Mode::Incremental(IncrementalConfig {
        cursor_column: Some("created_at".into()),
        lookback,
        ..Default::default()
    });
    c
}

/// The cursor value of the customers table's stored watermark.
async fn watermark(rig: &Rig, migration: &str) -> i64 {
    let mark = rig
        .store
        .cursor(migration, &t("customers"))
        .await
        .unwrap()
        .expect("watermark saved");
    let Value::TimestampTz(top) = mark.cursor else {
        panic!("cursor is a timestamptz")
    };
    top
}

/// The sink holds exactly the source's rows as they are now (not as the fixtures were).
async fn assert_target_equals_current_source(rig: &Rig) {
    for f in &rig.fixtures {
        let want = rig
            .source
            .checksum(&f.table, &KeyRange::all())
            .await
            .unwrap();
        let got = RowChecksum::of_rows(&rig.sink.rows(&f.table.name).unwrap());
        assert_eq!(got, want, "target of {} equals the source", f.table.name);
    }
}

/// Issue 14, part 3: after a run whose watermark is (cursor C, key K), a row moved to cursor C
/// with a key below K and a new row with cursor C and key -5 were never read again (rows were
/// read past (C, K)). They are now: each run reads from C itself.
#[tokio::test]
async fn rows_at_the_watermark_cursor_below_its_key_are_picked_up() {
    for encoded in [false, true] {
        let fixtures = fixture_tables(Some("public"), 40)[..1].to_vec();
        let rig = match encoded {
            true => Rig::encoded(fixtures),
            false => Rig::with(fixtures),
        };
        let customers = t("customers");
        let inc = incremental_cfg("boundary", None);
        let first = rig.migration(inc.clone()).run().await.unwrap();
        assert!(first.succeeded(), "{}", first.to_markdown());
        assert_eq!(first.progress.records_this_execution, 40);
        let top = watermark(&rig, "boundary").await;
        let f = &rig.fixtures[0];
        // UPDATE … SET email = …, created_at = C WHERE id = 30 (30 < K = 40).
        let mut moved = f.rows[29].clone();
        moved[2] = Value::Text("888@example.com".into());
        moved[5] = Value::TimestampTz(top);
        // INSERT a row with key -5 at cursor C.
        let mut below = f.rows[1].clone();
        below[0] = Value::Int64(-5);
        below[5] = Value::TimestampTz(top);
        rig.source
            .upsert_rows(&customers, vec![moved.clone(), below.clone()])
            .unwrap();
        let second = rig.migration(inc).run().await.unwrap();
        assert!(second.succeeded(), "{}", second.to_markdown());
        let got = rig.sink.rows(&customers).unwrap();
        assert!(
            got.contains(&moved),
            "the row moved to the watermark's cursor"
        );
        assert!(
            got.contains(&below),
            "the new row below the watermark's key"
        );
        assert_eq!(got.len(), 41);
        assert_target_equals_current_source(&rig).await;
    }
}

/// Rows committed late with a cursor older than the watermark are read when within the
/// lookback, and not when older than it (the documented guarantee).
#[tokio::test]
async fn the_lookback_rereads_late_rows_within_it_and_no_further() {
    let rig = Rig::with(fixture_tables(Some("public"), 40)[..1].to_vec());
    let customers = t("customers");
    let inc = incremental_cfg("lookback", Some(Duration::from_secs(60)));
    assert!(rig.migration(inc.clone()).run().await.unwrap().succeeded());
    let top = watermark(&rig, "lookback").await;
    let f = &rig.fixtures[0];
    let mut within = f.rows[0].clone();
    within[0] = Value::Int64(2000);
    within[5] = Value::TimestampTz(top - 59_000_000);
    let mut beyond = f.rows[1].clone();
    beyond[0] = Value::Int64(2001);
    beyond[5] = Value::TimestampTz(top - 61_000_000);
    rig.source
        .upsert_rows(&customers, vec![within.clone(), beyond.clone()])
        .unwrap();
    let second = rig.migration(inc).run().await.unwrap();
    assert!(second.succeeded(), "{}", second.to_markdown());
    let got = rig.sink.rows(&customers).unwrap();
    assert!(
        got.contains(&within),
        "a late row within the lookback is read"
    );
    assert!(
        !got.iter().any(|r| r[0] == Value::Int64(2001)),
        "a late row older than the lookback is not (set the lookback above the longest transaction)"
    );
    // The fixture's cursors are ~1 s apart: the row at the watermark, the late row and the
    // fixture rows of the last minute are read again.
    let rereads = f.rows.iter().filter(|r| match r[5] {
        Value::TimestampTz(c) => c >= top - 60_000_000,
        _ => false,
    });
    assert_eq!(
        second.progress.records_this_execution,
        rereads.count() as u64 + 1
    );
}

#[tokio::test]
async fn rollback_reports_feasibility_then_drops_what_the_run_created() {
    let rig = Rig::sample(0.0005);
    let m = rig.migration(cfg("rollback"));
    let report = m.clone().run().await.unwrap();
    assert!(report.succeeded());
    let plan = m.rollback_plan(None).await.unwrap();
    assert!(plan.feasible && !plan.executed);
    assert_eq!(plan.actions.len(), 8);
    assert!(plan
        .actions
        .iter()
        .all(|a| matches!(a, RollbackAction::Drop { .. })));
    // Children before parents.
    let pos = |n: &str| {
        plan.actions
            .iter()
            .position(|a| matches!(a, RollbackAction::Drop { table } if table.name == n))
            .unwrap()
    };
    assert!(pos("transactions") < pos("orders") && pos("orders") < pos("customers"));
    let done = m.rollback(None, false).await.unwrap();
    assert!(done.executed);
    for f in &rig.fixtures {
        assert!(
            rig.sink.rows(&f.table.name).is_none(),
            "{} dropped",
            f.table.name
        );
    }
    let events = rig.store.events(&RunId(report.execution_id)).await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.action == "rollback.table")
            .count(),
        8
    );
}

#[tokio::test]
async fn rollback_of_a_table_that_existed_without_backup_is_refused() {
    let rig = Rig::sample(0.0005);
    // The target already has every table, from another migration.
    assert!(rig.migration(cfg("pre")).run().await.unwrap().succeeded());
    let mut c = cfg("second");
    c.prepare.existing_rows = ExistingRows::Replace;
    let m = rig.migration(c);
    assert!(m.clone().run().await.unwrap().succeeded());
    let plan = m.rollback_plan(None).await.unwrap();
    assert!(!plan.feasible);
    assert!(plan
        .actions
        .iter()
        .any(|a| matches!(a, RollbackAction::Impossible { .. })));
    let e = m.rollback(None, false).await.unwrap_err();
    assert!(e.to_string().contains("prepare.backup = true"), "{e}");
    // With backups, the same situation is reversible.
    let mut c = cfg("third");
    c.prepare.backup = true;
    c.prepare.existing_rows = ExistingRows::Replace;
    let m = rig.migration(c);
    assert!(m.clone().run().await.unwrap().succeeded());
    let plan = m.rollback_plan(None).await.unwrap();
    assert!(plan.feasible, "{plan:?}");
    assert!(plan
        .actions
        .iter()
        .all(|a| matches!(a, RollbackAction::Restore { .. })));
    m.rollback(None, false).await.unwrap();
    rig.assert_target_equals_source();
}

#[tokio::test]
async fn a_resume_does_the_chunks_skipped_because_a_parent_failed() {
    let rig = Rig::with(fixture_tables(Some("public"), 60));
    let mut c = cfg("skipped");
    c.chunk_rows = 1000; // one chunk per table
    c.parallelism = 1;
    for n in 1..=3 {
        rig.sink_faults.fail_nth(Op::Write, n, ErrorKind::Transient); // customers gives up
    }
    let first = rig.migration(c.clone()).run().await.unwrap();
    let status = |r: &migrate_core::MigrationReport, n: &str| {
        r.results.iter().find(|t| t.table.name == n).unwrap().status
    };
    assert_eq!(status(&first, "customers"), TableStatus::Failed);
    assert_eq!(status(&first, "orders"), TableStatus::Skipped);
    let second = tokio::time::timeout(Duration::from_secs(30), rig.migration(c).run())
        .await
        .expect("the resumed run must not hang on skipped chunks")
        .unwrap();
    assert!(second.succeeded(), "{}", second.to_markdown());
    rig.assert_target_equals_source();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_handle_is_dropped_still_finishes() {
    let rig = Rig::sample(0.0005);
    drop(rig.migration(cfg("dropped")).start());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let run = rig.store.latest_run("dropped").await.unwrap();
        if run
            .as_ref()
            .is_some_and(|r| r.status == RunStatus::Completed)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run never finished: {run:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rig.assert_target_equals_source();
}

#[tokio::test]
async fn chunks_written_without_checksums_are_verified_against_the_source_on_resume() {
    let rig = Rig::sample(0.001);
    rig.sink_faults.fail_nth(Op::Write, 40, ErrorKind::Fatal);
    let mut off = cfg("unverified");
    off.verify.checksums = false;
    let first = rig.migration(off).run().await.unwrap();
    assert_eq!(first.status, RunStatus::Failed);
    let run = RunId(first.execution_id.clone());
    let chunks = rig.store.chunks(&run).await.unwrap();
    let done = chunks
        .iter()
        .filter(|c| c.status == ChunkStatus::Completed)
        .count();
    assert!(done > 0);
    assert!(
        chunks.iter().all(|c| c.checksum.is_none()),
        "nothing checksummed with verification off"
    );

    let second = rig.migration(cfg("unverified")).run().await.unwrap();
    assert!(
        second.succeeded() && second.verification.passed,
        "{}",
        second.to_markdown()
    );
    assert_eq!(second.execution_id, first.execution_id);
    let chunks = rig.store.chunks(&run).await.unwrap();
    let with = chunks.iter().filter(|c| c.checksum.is_some()).count();
    assert_eq!(
        chunks.len() - with,
        done,
        "only the resumed chunks carry checksums"
    );
    rig.assert_target_equals_source();
}
