//! The suite every [`CheckpointStore`] passes.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::checkpoint::{
    AuditEvent, CheckpointStore, ChunkRecord, ChunkResult, ChunkStatus, Control, RejectedRecord,
    RunRecord, RunStatus, TableRecord, TableStatus,
};
use crate::checksum::RowChecksum;
use crate::chunk::{ChunkSpec, KeyRange};
use crate::error::ErrorKind;
use crate::schema::TableName;
use crate::source::Watermark;
use crate::value::Value;

const LONG: Duration = Duration::from_secs(600);

fn specs(table: &TableName, n: u32) -> Vec<ChunkSpec> {
    (0..n)
        .map(|i| ChunkSpec {
            table: table.clone(),
            index: i,
            range: KeyRange::between(
                (i > 0).then(|| vec![Value::Int64(i64::from(i) * 100)]),
                (i + 1 < n).then(|| vec![Value::Int64(i64::from(i + 1) * 100)]),
            ),
            estimated_rows: 100,
            operation: crate::Operation::CopyRows,
        })
        .collect()
}

fn result(rows: u64) -> ChunkResult {
    ChunkResult {
        rows,
        bytes: rows * 10,
        checksum: Some(RowChecksum::of_rows(&[vec![Value::Int64(rows as i64)]])),
        duration_ms: 5,
    }
}

/// Runs the checkpoint-store contract against `store`, which must start empty. Panics with a
/// message naming the broken rule.
pub async fn checkpoint_conformance(store: Arc<dyn CheckpointStore>) {
    runs(&*store).await;
    chunk_lifecycle(&*store).await;
    tables_events_rejects_cursors(&*store).await;
    concurrent_plans(store.clone()).await;
    concurrent_claims(store).await;
}

/// Workers planning one table at once with different plans (3 to 10 chunks, estimates having
/// moved between them) leave exactly one plan in the store — never one's chunks with
/// another's ranges after them — while a table planned by none of them is still added.
async fn concurrent_plans(store: Arc<dyn CheckpointStore>) {
    let run = RunRecord::new("conf-plans", "p");
    store.create_run(&run).await.expect("create_run");
    let t = TableName::new("s", "planned");
    let mut tasks = Vec::new();
    for n in 3..=10u32 {
        let (store, run, t) = (store.clone(), run.id.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            store
                .add_chunks(&run, &specs(&t, n))
                .await
                .expect("add_chunks");
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let stored: Vec<ChunkRecord> = store.chunks(&run.id).await.expect("chunks");
    let n = stored.len() as u32;
    assert!((3..=10).contains(&n), "{n} chunks stored");
    let ranges: Vec<KeyRange> = stored.iter().map(|c| c.range.clone()).collect();
    let plan: Vec<KeyRange> = specs(&t, n).into_iter().map(|c| c.range).collect();
    assert_eq!(
        ranges, plan,
        "the stored chunks are one worker's plan of {n}"
    );
    let other = TableName::new("s", "other");
    store
        .add_chunks(&run.id, &[specs(&t, 2), specs(&other, 2)].concat())
        .await
        .expect("add_chunks");
    let stored = store.chunks(&run.id).await.expect("chunks");
    assert_eq!(
        stored.iter().filter(|c| c.table == t).count() as u32,
        n,
        "a planned table keeps its plan"
    );
    assert_eq!(
        stored.iter().filter(|c| c.table == other).count(),
        2,
        "an unplanned table is added"
    );
}

async fn runs(store: &dyn CheckpointStore) {
    let mut first = RunRecord::new("conf-runs", "plan-a");
    first.started_at -= chrono::Duration::seconds(10);
    store.create_run(&first).await.expect("create_run");
    assert!(
        store.create_run(&first).await.is_err(),
        "creating the same run id twice must fail"
    );
    let second = RunRecord::new("conf-runs", "plan-b");
    let refused = store
        .create_run(&second)
        .await
        .expect_err("a second resumable run is refused");
    assert_eq!(refused.kind(), ErrorKind::Constraint);
    store
        .set_run_status(&first.id, RunStatus::Superseded)
        .await
        .expect("supersede");
    store
        .create_run(&second)
        .await
        .expect("create second run once the first is superseded");
    let got = store
        .run(&first.id)
        .await
        .expect("run")
        .expect("run exists");
    assert_eq!(got.plan_hash, "plan-a");
    assert_eq!(got.status, RunStatus::Superseded);
    assert!(got.finished_at.is_some(), "a superseded run has stopped");
    assert!(!got.status.is_resumable());
    let latest = store.latest_run("conf-runs").await.expect("latest_run");
    assert_eq!(
        latest.map(|r| r.id),
        Some(second.id.clone()),
        "latest_run is the newest"
    );
    assert!(store
        .latest_run("no-such-migration")
        .await
        .expect("latest")
        .is_none());

    store
        .set_run_status(&second.id, RunStatus::Paused)
        .await
        .expect("pause");
    let r = store.run(&second.id).await.expect("run").expect("exists");
    assert_eq!(r.status, RunStatus::Paused);
    assert!(r.finished_at.is_none(), "a paused run has not finished");
    store
        .set_run_status(&second.id, RunStatus::Completed)
        .await
        .expect("complete");
    let r = store.run(&second.id).await.expect("run").expect("exists");
    assert_eq!(r.status, RunStatus::Completed);
    assert!(
        r.finished_at.is_some(),
        "a completed run records finished_at"
    );
    store
        .set_run_status(&second.id, RunStatus::Running)
        .await
        .expect("running");
    let r = store.run(&second.id).await.expect("run").expect("exists");
    assert!(r.finished_at.is_none(), "running again clears finished_at");
}

async fn chunk_lifecycle(store: &dyn CheckpointStore) {
    let run = RunRecord::new("conf-chunks", "p");
    store.create_run(&run).await.expect("create_run");
    let (a, b) = (TableName::new("s", "a"), TableName::new("s", "b"));
    let mut all = specs(&a, 4);
    all.extend(specs(&b, 2));
    // A schema migration's two steps per table are chunks too, told apart by operation.
    all[4].operation = crate::Operation::CreateTable;
    all[5].operation = crate::Operation::FinalizeTable;
    store.add_chunks(&run.id, &all).await.expect("add_chunks");
    let chunks = store.chunks(&run.id).await.expect("chunks");
    assert_eq!(chunks.len(), 6);
    assert_eq!(
        chunks.iter().map(|c| c.spec()).collect::<Vec<_>>(),
        all,
        "every chunk's spec (range, estimate, operation) survives the round trip"
    );
    assert!(chunks
        .iter()
        .all(|c| c.status == ChunkStatus::Pending && c.attempts == 0));
    let order: Vec<(String, u32)> = chunks
        .iter()
        .map(|c| (c.table.to_string(), c.index))
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "chunks are ordered by table and index");
    assert_eq!(
        chunks[1].range, all[1].range,
        "ranges survive the round trip"
    );

    // Claims are exclusive while the lease lives.
    let c = store
        .claim_chunk(&run.id, &a, 0, "w1", LONG)
        .await
        .expect("claim");
    let c = c.expect("a pending chunk is claimable");
    assert_eq!(
        (c.status, c.attempts, c.worker.as_deref()),
        (ChunkStatus::Running, 1, Some("w1"))
    );
    assert!(c.lease_until.is_some());
    assert!(
        store
            .claim_chunk(&run.id, &a, 0, "w2", LONG)
            .await
            .expect("claim")
            .is_none(),
        "a live lease keeps other workers out"
    );
    let again = store
        .claim_chunk(&run.id, &a, 0, "w1", LONG)
        .await
        .expect("reclaim");
    assert_eq!(
        again.map(|c| c.attempts),
        Some(2),
        "the holder may reclaim; attempts count"
    );
    assert!(store
        .renew_lease(&run.id, &a, 0, "w1", LONG)
        .await
        .expect("renew"));
    assert!(!store
        .renew_lease(&run.id, &a, 0, "w2", LONG)
        .await
        .expect("renew"));

    // Completion only by the holder, and final.
    assert!(
        !store
            .complete_chunk(&run.id, &a, 0, "w2", &result(7))
            .await
            .expect("complete"),
        "a worker without the lease cannot complete"
    );
    assert!(store
        .complete_chunk(&run.id, &a, 0, "w1", &result(100))
        .await
        .expect("complete"));
    assert!(store
        .claim_chunk(&run.id, &a, 0, "w1", LONG)
        .await
        .expect("claim")
        .is_none());
    assert!(store
        .claim_chunk(&run.id, &a, 0, "w3", LONG)
        .await
        .expect("claim")
        .is_none());
    store
        .fail_chunk(&run.id, &a, 0, "late failure", ErrorKind::Transient)
        .await
        .expect("fail");
    let done = find(store, &run.id, &a, 0).await;
    assert_eq!(
        done.status,
        ChunkStatus::Completed,
        "a completed chunk stays completed"
    );
    assert_eq!((done.rows, done.bytes), (100, 1000));
    assert_eq!(done.checksum, result(100).checksum);
    assert_eq!(
        done.duration_ms,
        Some(5),
        "the completed attempt's duration is kept"
    );
    assert!(done.finished_at.is_some());

    // An expired lease is taken over.
    store
        .claim_chunk(&run.id, &a, 1, "w1", Duration::ZERO)
        .await
        .expect("claim")
        .expect("claimable");
    let taken = store
        .claim_chunk(&run.id, &a, 1, "w2", LONG)
        .await
        .expect("claim");
    assert_eq!(
        taken.map(|c| (c.worker, c.attempts)),
        Some((Some("w2".into()), 2))
    );
    assert!(!store
        .complete_chunk(&run.id, &a, 1, "w1", &result(1))
        .await
        .expect("complete"));

    // Failure records the error and leaves the chunk claimable.
    store
        .fail_chunk(&run.id, &a, 1, "deadlock detected", ErrorKind::Transient)
        .await
        .expect("fail");
    let f = find(store, &run.id, &a, 1).await;
    assert_eq!(f.status, ChunkStatus::Failed);
    assert_eq!(f.error.as_deref(), Some("deadlock detected"));
    assert_eq!(f.error_kind, Some(ErrorKind::Transient));
    assert!(store
        .claim_chunk(&run.id, &a, 1, "w9", LONG)
        .await
        .expect("claim")
        .is_some());

    // Skip does not undo a completion; a skipped chunk is left for a later run to claim.
    store
        .skip_chunk(&run.id, &b, 0, "parent failed")
        .await
        .expect("skip");
    store
        .skip_chunk(&run.id, &a, 0, "nope")
        .await
        .expect("skip");
    let skipped = find(store, &run.id, &b, 0).await;
    assert_eq!(skipped.status, ChunkStatus::Skipped);
    assert_eq!(skipped.error.as_deref(), Some("parent failed"));
    assert_eq!(
        find(store, &run.id, &a, 0).await.status,
        ChunkStatus::Completed
    );
    let later = store
        .claim_chunk(&run.id, &b, 0, "w1", LONG)
        .await
        .expect("claim");
    assert_eq!(
        later.map(|c| c.status),
        Some(ChunkStatus::Running),
        "a later run claims a skipped chunk"
    );
    store
        .skip_chunk(&run.id, &b, 0, "parent failed again")
        .await
        .expect("skip");

    // Registering again (a resume) keeps progress.
    store
        .add_chunks(&run.id, &all)
        .await
        .expect("add_chunks again");
    assert_eq!(
        find(store, &run.id, &a, 0).await.status,
        ChunkStatus::Completed
    );
    assert_eq!(store.chunks(&run.id).await.expect("chunks").len(), 6);

    // Resume query: what is left to do.
    let left: Vec<(String, u32)> = store
        .chunks(&run.id)
        .await
        .expect("chunks")
        .into_iter()
        .filter(|c| !matches!(c.status, ChunkStatus::Completed | ChunkStatus::Skipped))
        .map(|c| (c.table.name, c.index))
        .collect();
    assert_eq!(
        left,
        vec![
            ("a".into(), 1),
            ("a".into(), 2),
            ("a".into(), 3),
            ("b".into(), 1)
        ]
    );

    // Reconciliation resets a whole table.
    store.reset_table_chunks(&run.id, &a).await.expect("reset");
    let reset = store.chunks(&run.id).await.expect("chunks");
    assert!(reset
        .iter()
        .filter(|c| c.table == a)
        .all(|c| c.status == ChunkStatus::Pending));
    assert_eq!(
        find(store, &run.id, &b, 0).await.status,
        ChunkStatus::Skipped
    );

    // A run that does not verify records no checksum, and reads back none (not a zero).
    store
        .claim_chunk(&run.id, &a, 0, "w1", LONG)
        .await
        .expect("claim")
        .expect("claimable after the reset");
    let unverified = ChunkResult {
        checksum: None,
        ..result(7)
    };
    assert!(store
        .complete_chunk(&run.id, &a, 0, "w1", &unverified)
        .await
        .expect("complete"));
    let u = find(store, &run.id, &a, 0).await;
    assert_eq!(
        (u.status, u.rows, u.checksum),
        (ChunkStatus::Completed, 7, None)
    );

    // Another run's chunks are separate.
    let other = RunRecord::new("conf-chunks-other", "p");
    store.create_run(&other).await.expect("create_run");
    assert!(store.chunks(&other.id).await.expect("chunks").is_empty());
    assert!(
        store
            .claim_chunk(&other.id, &a, 0, "w1", LONG)
            .await
            .is_err(),
        "unknown chunk is an error"
    );
}

async fn find(
    store: &dyn CheckpointStore,
    run: &crate::checkpoint::RunId,
    t: &TableName,
    i: u32,
) -> crate::checkpoint::ChunkRecord {
    store
        .chunks(run)
        .await
        .expect("chunks")
        .into_iter()
        .find(|c| &c.table == t && c.index == i)
        .expect("chunk exists")
}

async fn tables_events_rejects_cursors(store: &dyn CheckpointStore) {
    let run = RunRecord::new("conf-misc", "p");
    store.create_run(&run).await.expect("create_run");
    let t = TableName::new("s", "orders");
    let mut rec = TableRecord::pending(t.clone(), 500);
    store.put_table(&run.id, &rec).await.expect("put_table");
    rec.status = TableStatus::Failed;
    rec.rows = 20;
    rec.reason = Some("schema mismatch on column \"amount\"".into());
    rec.prepared = Some(crate::sink::Prepared {
        created: true,
        existing_rows: Some(3),
        merge: true,
        ..Default::default()
    });
    store
        .put_table(&run.id, &rec)
        .await
        .expect("put_table replaces");
    let tables = store.tables(&run.id).await.expect("tables");
    assert_eq!(tables, vec![rec.clone()]);

    // Workers sharing the run never write over a table one of them completed; put_table still
    // can (a reset).
    let mut running = rec.clone();
    running.status = TableStatus::Running;
    assert_eq!(
        store
            .put_table_unless_completed(&run.id, &running)
            .await
            .expect("put_table_unless_completed"),
        None,
        "a table not completed is written"
    );
    let mut done = running.clone();
    done.status = TableStatus::Completed;
    done.rows = 500;
    assert_eq!(
        store
            .put_table_unless_completed(&run.id, &done)
            .await
            .expect("put_table_unless_completed"),
        None
    );
    assert_eq!(
        store
            .put_table_unless_completed(&run.id, &running)
            .await
            .expect("put_table_unless_completed"),
        Some(done.clone()),
        "a completed table is returned, not written over"
    );
    assert_eq!(store.tables(&run.id).await.expect("tables"), vec![done]);
    let fresh = TableRecord::pending(TableName::new("s", "new_table"), 5);
    assert_eq!(
        store
            .put_table_unless_completed(&run.id, &fresh)
            .await
            .expect("put_table_unless_completed"),
        None,
        "a table with no state yet is written"
    );
    store
        .put_table(&run.id, &rec)
        .await
        .expect("put_table resets");
    let tables = store.tables(&run.id).await.expect("tables");
    assert_eq!(tables, vec![fresh, rec.clone()]);

    for action in ["run.started", "table.completed", "run.paused"] {
        store
            .append_event(&run.id, &AuditEvent::new(action, "by test").on(&t, Some(3)))
            .await
            .expect("append_event");
    }
    let events = store.events(&run.id).await.expect("events");
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["run.started", "table.completed", "run.paused"],
        "events keep order"
    );
    assert_eq!(events[1].table.as_ref(), Some(&t));
    assert_eq!(events[1].chunk, Some(3));

    let rej = RejectedRecord {
        table: t.clone(),
        chunk: 2,
        key: "(42)".into(),
        rule: "required email".into(),
        reason: "a required value is missing".into(),
        kind: Some(crate::ErrorKind::Validation),
        values: None,
        at: chrono::Utc::now(),
    };
    let other_rule = RejectedRecord {
        rule: "convert age".into(),
        values: Some("{\"age\":\"x\"}".into()),
        ..rej.clone()
    };
    store
        .add_rejected(&run.id, &[rej.clone(), other_rule.clone()])
        .await
        .expect("add_rejected");
    // The chunk written again rejects the same rows again: each kept once, the newer reason.
    let again = RejectedRecord {
        chunk: 3,
        reason: "still missing".into(),
        ..rej.clone()
    };
    store
        .add_rejected(&run.id, std::slice::from_ref(&again))
        .await
        .expect("add_rejected again");
    let got = store.rejected(&run.id).await.expect("rejected");
    assert_eq!(got.len(), 2, "one record per (table, key, rule): {got:?}");
    let email = got
        .iter()
        .find(|r| r.rule == "required email")
        .expect("kept");
    assert_eq!((email.key.as_str(), email.chunk), ("(42)", 3));
    assert_eq!(email.reason, "still missing");
    assert_eq!(email.kind, Some(crate::ErrorKind::Validation));
    assert_eq!(email.values, None);
    let age = got.iter().find(|r| r.rule == "convert age").expect("kept");
    assert_eq!(age.values, other_rule.values, "values kept where opted in");
    // The chunk redone with another outcome: its records are the new attempt's alone.
    let passes_now = RejectedRecord {
        key: "(43)".into(),
        chunk: 3,
        ..rej.clone()
    };
    store
        .add_rejected(&run.id, std::slice::from_ref(&passes_now))
        .await
        .expect("add_rejected");
    store
        .replace_chunk_rejected(&run.id, &t, 3, std::slice::from_ref(&again))
        .await
        .expect("replace_chunk_rejected");
    let got = store.rejected(&run.id).await.expect("rejected");
    assert!(
        got.iter().all(|r| r.key != "(43)"),
        "a row that passes on the redo is no longer listed: {got:?}"
    );
    assert_eq!(got.len(), 2, "{got:?}");
    // A replay checks key 42 again: it now breaks only a third rule — its two earlier
    // records are resolved and the new one listed, in one change.
    let third = RejectedRecord {
        rule: "lookup country".into(),
        ..rej.clone()
    };
    let n = store
        .recheck_rejected(
            &run.id,
            &t,
            &["(42)".to_string(), "(7)".to_string()],
            std::slice::from_ref(&third),
        )
        .await
        .expect("recheck_rejected");
    assert_eq!(n, 2);
    let got = store.rejected(&run.id).await.expect("rejected");
    assert_eq!(
        got.iter().map(|r| r.rule.as_str()).collect::<Vec<_>>(),
        ["lookup country"],
        "{got:?}"
    );
    // Passing now: resolved, nothing left.
    store
        .recheck_rejected(&run.id, &t, &["(42)".to_string()], &[])
        .await
        .expect("recheck_rejected");
    assert!(store.rejected(&run.id).await.expect("rejected").is_empty());
    // Rejected again later (the data still fails): listed again.
    store
        .add_rejected(&run.id, std::slice::from_ref(&rej))
        .await
        .expect("add_rejected after resolve");
    assert_eq!(store.rejected(&run.id).await.expect("rejected").len(), 1);

    assert!(store
        .cursor("conf-misc", &t)
        .await
        .expect("cursor")
        .is_none());
    let m1 = Watermark {
        cursor: Value::TimestampTz(10),
        key: vec![Value::Int64(5)],
    };
    let m2 = Watermark {
        cursor: Value::TimestampTz(20),
        key: vec![Value::Int64(1)],
    };
    store
        .save_cursor("conf-misc", &t, &m1)
        .await
        .expect("save_cursor");
    store
        .save_cursor("conf-misc", &t, &m2)
        .await
        .expect("save_cursor replaces");
    assert_eq!(
        store.cursor("conf-misc", &t).await.expect("cursor"),
        Some(m2)
    );
    assert!(store.cursor("other", &t).await.expect("cursor").is_none());

    assert_eq!(store.control(&run.id).await.expect("control"), Control::Run);
    store
        .set_control(&run.id, Control::Pause)
        .await
        .expect("pause");
    assert_eq!(
        store.control(&run.id).await.expect("control"),
        Control::Pause
    );
    store
        .set_control(&run.id, Control::Cancel)
        .await
        .expect("cancel");
    assert_eq!(
        store.control(&run.id).await.expect("control"),
        Control::Cancel
    );
}

/// Eight tasks race to claim forty chunks: each chunk is claimed and completed exactly once.
async fn concurrent_claims(store: Arc<dyn CheckpointStore>) {
    let run = RunRecord::new("conf-concurrent", "p");
    store.create_run(&run).await.expect("create_run");
    let t = TableName::new("s", "big");
    store
        .add_chunks(&run.id, &specs(&t, 40))
        .await
        .expect("add_chunks");
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        let run = run.id.clone();
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let worker = format!("worker-{w}");
            let mut won = Vec::new();
            for i in 0..40 {
                if let Some(c) = store
                    .claim_chunk(&run, &t, i, &worker, LONG)
                    .await
                    .expect("claim")
                {
                    assert!(
                        store
                            .complete_chunk(&run, &t, i, &worker, &result(u64::from(i)))
                            .await
                            .expect("complete"),
                        "the claim holder completes"
                    );
                    won.push(c.index);
                }
                tokio::task::yield_now().await;
            }
            won
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let unique: HashSet<u32> = all.iter().copied().collect();
    assert_eq!(
        all.len(),
        40,
        "every chunk claimed exactly once (claims: {all:?})"
    );
    assert_eq!(unique.len(), 40);
    let chunks = store.chunks(&run.id).await.expect("chunks");
    assert!(chunks
        .iter()
        .all(|c| c.status == ChunkStatus::Completed && c.attempts == 1));
}
