//! Applying the shop fixture's 30 tables to the in-memory sink with scripted failures: a
//! permission error at table 9 stops the run there; the next run starts at table 9 and leaves
//! tables 1–8 alone; a quota error waits the configured delay and retries; a table the store
//! completed but the target lost is redone, and one the target has but the store does not know
//! is adopted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use std::sync::Arc;
use std::time::Duration;

use migrate_core::retry::RetryConfig;
use migrate_core::testing::{Faults, MemoryCheckpointStore, MemorySink, Op};
use migrate_core::ErrorKind;
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
