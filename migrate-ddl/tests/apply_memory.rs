//! Applying the shop fixture's 30 tables to the in-memory sink with scripted failures: a
//! permission error at table 9 stops the run there; the next run starts at table 9 and leaves
//! tables 1–8 alone; a quota error waits the configured delay and retries; a table the store
//! completed but the target lost is redone, and one the target has but the store does not know
//! is adopted; the documented delays on virtual time; a killed process's claim on a table is
//! waited out and taken over; a column whose type or nullability differs is drift, also when
//! the files were edited after the table was created.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use std::sync::Arc;
use std::time::Duration;

use migrate_core::retry::RetryConfig;
use migrate_core::testing::{Faults, MemoryCheckpointStore, MemorySink, Op};
use migrate_core::{CheckpointStore, DataType, ErrorKind};
use migrate_ddl::{apply, progress_text, ApplyConfig, Event};

fn config() -> ApplyConfig {
    ApplyConfig {
        migration: "shop".into(),
        retry: RetryConfig {
            initial_delay: Duration::from_millis(10),
            jitter: false,
            quota_delays: vec![Duration::from_millis(60), Duration::from_millis(120)],
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn a_run_stopped_at_table_9_resumes_there_and_leaves_1_to_8_alone() {
    let conv = common::shop();
    let faults = Arc::new(Faults::new());
    faults.fail_nth(Op::Prepare, 9, ErrorKind::Permission);
    let sink = MemorySink::new(faults.clone());
    let store = MemoryCheckpointStore::new();
    let mut events = Vec::new();
    let first = apply(&conv, &sink, &store, &config(), &mut |e: &Event| {
        events.push(e.clone())
    })
    .await
    .unwrap();
    assert!(!first.succeeded());
    assert_eq!(first.completed.len(), 8, "{}", progress_text(&first, None));
    assert_eq!(first.failed.len(), 1);
    assert_eq!(
        first.failed[0].0, conv.tables[8].info.name,
        "table 9 failed"
    );
    assert!(
        first
            .stopped
            .as_deref()
            .unwrap_or_default()
            .contains("permission"),
        "{first:?}"
    );
    assert_eq!(
        faults.count(Op::Prepare),
        9,
        "nothing after table 9 was tried"
    );
    let text = progress_text(&first, Some("03_inventory.sql"));
    assert!(
        text.contains("Current Status: 8 of 30 tables completed"),
        "{text}"
    );
    assert!(text.contains("Failed Tables:\n  - public."), "{text}");

    let second = apply(&conv, &sink, &store, &config(), &mut |_: &Event| {})
        .await
        .unwrap();
    assert!(second.succeeded(), "{}", progress_text(&second, None));
    assert_eq!(second.completed.len(), 30);
    assert_eq!(
        faults.count(Op::Prepare),
        9 + 22,
        "tables 1–8 not prepared again; 9–30 once each"
    );
    let earlier = second
        .completed
        .iter()
        .filter(|(_, _, how)| how == "completed by an earlier run")
        .count();
    assert_eq!(earlier, 8);

    // A table dropped behind the store's back is redone; the others are left alone.
    let lost = conv.tables[3].info.name.clone();
    sink.drop_table(&lost);
    let third = apply(&conv, &sink, &store, &config(), &mut |_: &Event| {})
        .await
        .unwrap();
    assert!(third.succeeded());
    assert_eq!(third.reconciled.len(), 1, "{:?}", third.reconciled);
    assert!(third.reconciled[0].contains(&lost.to_string()));
    assert_eq!(
        faults.count(Op::Prepare),
        9 + 22 + 1,
        "only the lost table again"
    );
}

#[tokio::test]
async fn quota_and_rate_limits_wait_their_delays_and_a_known_table_is_adopted() {
    let conv = common::shop();
    let faults = Arc::new(Faults::new());
    faults.quota_nth(Op::Prepare, 2);
    faults.quota_nth(Op::Prepare, 3);
    faults.rate_limit_nth(Op::Prepare, 6, Some(Duration::from_millis(40)));
    let sink = MemorySink::new(faults.clone());
    // The target already has table 5 (the store does not know it).
    sink.put_table(&conv.tables[4].info, Vec::new()).unwrap();
    let store = MemoryCheckpointStore::new();
    let mut waits = Vec::new();
    let started = std::time::Instant::now();
    let report = apply(&conv, &sink, &store, &config(), &mut |e: &Event| {
        if let Event::Retrying { delay, .. } = e {
            waits.push(*delay);
        }
    })
    .await
    .unwrap();
    assert!(report.succeeded(), "{}", progress_text(&report, None));
    assert_eq!(
        waits,
        [
            Duration::from_millis(60),
            Duration::from_millis(120),
            Duration::from_millis(40)
        ],
        "quota delays in order, then Retry-After"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(220),
        "the waits were paused"
    );
    assert!(
        report
            .reconciled
            .iter()
            .any(|r| r.contains(&conv.tables[4].info.name.to_string()) && r.contains("adopted")),
        "{:?}",
        report.reconciled
    );
}

#[tokio::test(start_paused = true)]
async fn the_documented_delays_on_virtual_time() {
    let conv = common::shop();
    let faults = Arc::new(Faults::new());
    // Table 2: three quota errors, then it goes through.
    for nth in [2, 3, 4] {
        faults.quota_nth(Op::Prepare, nth);
    }
    // Table 3: two network errors; table 4: a rate limit with Retry-After.
    for nth in [6, 7] {
        faults.fail_nth(Op::Prepare, nth, ErrorKind::Transient);
    }
    faults.rate_limit_nth(Op::Prepare, 9, Some(Duration::from_secs(7)));
    let sink = MemorySink::new(faults.clone());
    let store = MemoryCheckpointStore::new();
    let cfg = ApplyConfig {
        migration: "shop".into(),
        retry: RetryConfig {
            jitter: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut waits = Vec::new();
    let started = tokio::time::Instant::now();
    let report = apply(&conv, &sink, &store, &cfg, &mut |e: &Event| {
        if let Event::Retrying { table, delay, .. } = e {
            waits.push((table.name.clone(), delay.as_secs()));
        }
    })
    .await
    .unwrap();
    assert!(report.succeeded(), "{}", progress_text(&report, None));
    let name = |i: usize| conv.tables[i].info.name.name.clone();
    assert_eq!(
        waits,
        [
            (name(1), 30),
            (name(1), 60),
            (name(1), 120),
            (name(2), 1),
            (name(2), 2),
            (name(3), 7)
        ],
        "quota 30 s, 60 s, 120 s; backoff from 1 s doubling; Retry-After honoured"
    );
    assert!(started.elapsed() >= Duration::from_secs(220));
}

#[tokio::test]
async fn a_killed_process_claim_is_waited_out_and_taken_over() {
    let conv = common::shop();
    let sink = MemorySink::new(Arc::new(Faults::new()));
    let store = MemoryCheckpointStore::new();
    let cfg = ApplyConfig {
        lease: Duration::from_millis(600),
        ..config()
    };
    // A first run registers the tables; then a process "dies" holding table 1's claim.
    let faults_first = Arc::new(Faults::new());
    faults_first.fail_nth(Op::Prepare, 1, ErrorKind::Permission);
    let first_sink = MemorySink::new(faults_first);
    let first = apply(&conv, &first_sink, &store, &cfg, &mut |_: &Event| {})
        .await
        .unwrap();
    assert!(first.stopped.is_some());
    let run = store.latest_run("shop").await.unwrap().unwrap();
    let t1 = &conv.tables[0].info.name;
    store
        .claim_chunk(&run.id, t1, 0, "dead-worker", Duration::from_millis(500))
        .await
        .unwrap()
        .expect("the failed table is claimable");
    let mut said = Vec::new();
    let report = apply(&conv, &sink, &store, &cfg, &mut |e: &Event| {
        if let Event::Retrying { error, .. } = e {
            said.push(error.clone());
        }
    })
    .await
    .unwrap();
    assert!(report.succeeded(), "{}", progress_text(&report, None));
    assert!(
        said.iter().any(|e| e.contains("dead-worker holds it")),
        "the wait is said: {said:?}"
    );
    let chunks = store.chunks(&run.id).await.unwrap();
    let c = chunks
        .iter()
        .find(|c| &c.table == t1 && c.index == 0)
        .unwrap();
    assert_eq!(c.worker.as_deref(), Some(cfg.worker_id.as_str()));
    assert_eq!(c.operation, migrate_core::Operation::CreateTable);
}

#[tokio::test]
async fn a_column_of_another_type_or_nullability_is_drift_also_after_the_files_changed() {
    let conv = common::shop();
    let sink = MemorySink::new(Arc::new(Faults::new()));
    // The target has table 2 with a column of another type, and table 3 with a NOT NULL
    // column the files leave nullable.
    let mut t2 = conv.tables[1].info.clone();
    let c = &mut Arc::make_mut(&mut t2.schema).columns[1];
    let (c2, ty2) = (c.name.clone(), c.data_type.clone());
    c.data_type = match ty2 {
        DataType::Bytes => DataType::Int64,
        _ => DataType::Bytes,
    };
    sink.put_table(&t2, Vec::new()).unwrap();
    let mut t3 = conv.tables[2].info.clone();
    let c3 = Arc::make_mut(&mut t3.schema)
        .columns
        .iter_mut()
        .find(|c| c.nullable)
        .expect("table 3 has a nullable column");
    c3.nullable = false;
    let c3 = c3.name.clone();
    sink.put_table(&t3, Vec::new()).unwrap();
    let store = MemoryCheckpointStore::new();
    let report = apply(&conv, &sink, &store, &config(), &mut |_: &Event| {})
        .await
        .unwrap();
    let failed: Vec<(String, String)> = report
        .failed
        .iter()
        .map(|(t, e)| (t.name.clone(), e.clone()))
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(
        failed[0].1.contains(&c2) && failed[0].1.contains("in the files"),
        "{failed:?}"
    );
    assert!(
        failed[1].1.contains(&c3) && failed[1].1.contains("NOT NULL in the target"),
        "{failed:?}"
    );
    // Told to replace: both recreated from the files.
    let replace = ApplyConfig {
        replace_drifted: true,
        ..config()
    };
    let report = apply(&conv, &sink, &store, &replace, &mut |_: &Event| {})
        .await
        .unwrap();
    assert!(report.succeeded(), "{}", progress_text(&report, None));

    // The files are edited after the run: table 5's second column changes type. The next run
    // finds the target's table unlike the files, says so, and fails it as drift.
    let mut edited = common::shop();
    let c = &mut Arc::make_mut(&mut edited.tables[4].info.schema).columns[1];
    c.data_type = match c.data_type {
        DataType::Bytes => DataType::Int64,
        _ => DataType::Bytes,
    };
    let report = apply(&edited, &sink, &store, &config(), &mut |_: &Event| {})
        .await
        .unwrap();
    assert!(
        report
            .reconciled
            .iter()
            .any(|r| r.contains(&edited.tables[4].info.name.to_string())
                && r.contains("differ from the files")),
        "{:?}",
        report.reconciled
    );
    assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
    assert_eq!(report.completed.len(), 29);
}

#[tokio::test]
async fn a_table_a_live_worker_keeps_fails_by_itself_and_the_run_goes_on() {
    let conv = common::shop();
    let store = MemoryCheckpointStore::new();
    let first_faults = Arc::new(Faults::new());
    first_faults.fail_nth(Op::Prepare, 1, ErrorKind::Permission);
    let cfg = ApplyConfig {
        table_timeout: Duration::from_millis(300),
        lease: Duration::from_millis(600),
        ..config()
    };
    apply(
        &conv,
        &MemorySink::new(first_faults),
        &store,
        &cfg,
        &mut |_: &Event| {},
    )
    .await
    .unwrap();
    let run = store.latest_run("shop").await.unwrap().unwrap();
    let t1 = &conv.tables[0].info.name;
    // Another worker, alive, holds table 1 for a minute.
    store
        .claim_chunk(&run.id, t1, 0, "busy-worker", Duration::from_secs(60))
        .await
        .unwrap()
        .expect("claimable");
    let sink = MemorySink::new(Arc::new(Faults::new()));
    let report = apply(&conv, &sink, &store, &cfg, &mut |_: &Event| {})
        .await
        .unwrap();
    assert!(report.stopped.is_none(), "{}", progress_text(&report, None));
    assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
    assert_eq!(&report.failed[0].0, t1);
    assert!(
        report.failed[0].1.contains("busy-worker"),
        "{:?}",
        report.failed
    );
    assert_eq!(report.completed.len(), 29);
}
