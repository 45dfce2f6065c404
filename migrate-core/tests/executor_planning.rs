//! Runs planned against a window: bandwidth throttling, deferrals decided before the run and
//! during it, plan vs actual in the report.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{cfg, Rig};
use migrate_core::plan::Priority;
use migrate_core::testing::fixture_tables;
use migrate_core::{RunStatus, TableStatus};

fn sample_priorities() -> BTreeMap<String, Priority> {
    [
        ("public.customers", Priority::Critical),
        ("public.products", Priority::Critical),
        ("public.orders", Priority::Critical),
        ("public.transactions", Priority::Critical),
        ("public.inventory", Priority::Important),
        ("public.preferences", Priority::Important),
        ("public.audit_logs", Priority::Deferrable),
        ("public.user_sessions", Priority::Deferrable),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[tokio::test(start_paused = true)]
async fn a_bandwidth_target_holds_the_run_to_that_rate() {
    let rig = Rig::with(fixture_tables(Some("public"), 300));
    let bytes: u64 = rig.fixtures.iter().map(|f| f.table.estimated_bytes).sum();
    let target = bytes / 4; // about four seconds of work
    let mut c = cfg("throttled");
    c.bandwidth_target = Some(target);
    c.bandwidth_cap = Some(target * 2);
    let start = tokio::time::Instant::now();
    let report = rig.migration(c).run().await.unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    assert!(report.succeeded(), "{}", report.to_markdown());
    let moved = report.progress.bytes_this_execution as f64;
    let rate = moved / elapsed;
    println!(
        "moved {moved} bytes in {elapsed:.2} s: {rate:.0} B/s against a target of {target} B/s"
    );
    assert!(
        rate <= target as f64 * 1.02,
        "{rate:.0} B/s exceeds the target {target} B/s"
    );
    assert!(
        elapsed >= 3.5,
        "the throttle actually held the run back ({elapsed:.2} s)"
    );
    rig.assert_target_equals_source();
}

#[tokio::test]
async fn a_target_above_the_cap_is_refused() {
    let rig = Rig::with(fixture_tables(Some("public"), 10));
    let mut c = cfg("overcap");
    c.bandwidth_target = Some(2_000);
    c.bandwidth_cap = Some(1_000);
    let e = rig.migration(c).run().await.unwrap_err();
    assert!(e.to_string().contains("exceeds the hard cap"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn the_plan_defers_what_does_not_fit_the_window_before_starting() {
    let rig = Rig::sample(0.001);
    let total: u64 = rig.fixtures.iter().map(|f| f.table.estimated_bytes).sum();
    let deferrable: u64 = rig
        .fixtures
        .iter()
        .filter(|f| ["audit_logs", "user_sessions"].contains(&f.table.name.name.as_str()))
        .map(|f| f.table.estimated_bytes)
        .sum();
    let mut c = cfg("planned");
    c.window = Some(Duration::from_secs(1));
    c.bandwidth_target = Some(((total - deferrable) as f64 / 0.8) as u64); // kept work: 0.8 s
    c.priorities = sample_priorities();
    let report = rig.migration(c).run().await.unwrap();
    assert_eq!(
        report.status,
        RunStatus::Completed,
        "{}",
        report.to_markdown()
    );
    assert!(report.succeeded());
    let deferred: Vec<&str> = report.deferred.iter().map(|d| d.table.as_str()).collect();
    assert_eq!(deferred, ["public.audit_logs", "public.user_sessions"]);
    assert!(
        report
            .deferred
            .iter()
            .all(|d| d.reason.starts_with("planned:")),
        "{:?}",
        report.deferred
    );
    for r in &report.results {
        let expect = if deferred.contains(&r.table.to_string().as_str()) {
            TableStatus::Deferred
        } else {
            TableStatus::Completed
        };
        assert_eq!(r.status, expect, "{}", r.table);
    }
    assert!(
        rig.sink
            .rows(&common::t("audit_logs"))
            .is_none_or(|r| r.is_empty()),
        "a deferred table is not loaded"
    );
    assert!(!report.plan_vs_actual.is_empty());
    assert!(
        report
            .plan_vs_actual
            .iter()
            .all(|p| p.actual_secs.is_some()),
        "{:?}",
        report.plan_vs_actual
    );
    let md = report.to_markdown();
    assert!(
        md.contains("PARTIAL") && md.contains("## Plan vs Actual") && md.contains("## Deferred"),
        "{md}"
    );
    assert_eq!(
        report.audit_summary.by_action.get("table.deferred"),
        Some(&2)
    );
}

#[tokio::test(start_paused = true)]
async fn slower_than_planned_defers_deferrable_work_mid_run_and_finishes_critical_work() {
    let rig = Rig::sample(0.001);
    rig.sink_faults.set_latency(Duration::from_millis(25)); // far slower than the plan assumes
    let mut c = cfg("behind");
    c.window = Some(Duration::from_secs(2));
    c.parallelism = 2;
    c.priorities = sample_priorities();
    let report = rig.migration(c).run().await.unwrap();
    assert_eq!(
        report.status,
        RunStatus::Completed,
        "{}",
        report.to_markdown()
    );
    let audit = report
        .deferred
        .iter()
        .find(|d| d.table == "public.audit_logs")
        .expect("audit_logs deferred mid-run");
    assert!(
        audit.reason.contains("measured") && audit.reason.contains("window"),
        "{}",
        audit.reason
    );
    for critical in ["customers", "products", "orders", "transactions"] {
        let r = report
            .results
            .iter()
            .find(|r| r.table.name == critical)
            .unwrap();
        assert_eq!(
            r.status,
            TableStatus::Completed,
            "critical {critical} keeps going"
        );
    }
    assert!(report.deferred.iter().all(|d| ![
        "public.customers",
        "public.orders",
        "public.products",
        "public.transactions"
    ]
    .contains(&d.table.as_str())));
    assert!(report.to_markdown().contains("## Deferred"));
}

#[tokio::test(start_paused = true)]
async fn estimates_are_refined_by_throughput_measured_in_earlier_runs() {
    use migrate_core::plan::{measured_rates, plan, Constraints, PlanTable};
    let rig = Rig::with(fixture_tables(Some("public"), 200));
    rig.sink_faults.set_latency(Duration::from_millis(50));
    let report = rig.migration(cfg("history")).run().await.unwrap();
    assert!(report.succeeded());
    let rates = measured_rates(&*rig.store, "history").await.unwrap();
    let customers = common::t("customers");
    let measured = rates[&customers];
    assert!(measured > 0.0);
    let info = &rig.fixtures[0].table;
    let fast = Constraints {
        bandwidth_target: 1_000_000_000,
        ..Constraints::default()
    };
    let naive = plan(&[PlanTable::from_info(info, Priority::Critical)], &fast).unwrap();
    let informed = plan(
        &[PlanTable {
            measured_bytes_per_sec: Some(measured),
            ..PlanTable::from_info(info, Priority::Critical)
        }],
        &fast,
    )
    .unwrap();
    assert!(
        informed.estimated_secs > naive.estimated_secs * 10.0,
        "history slower than the nominal bandwidth lengthens the estimate: {} vs {}",
        informed.estimated_secs,
        naive.estimated_secs
    );
    assert!((informed.estimated_secs - info.estimated_bytes as f64 / measured).abs() < 1e-6);
}

#[tokio::test]
async fn plan_decides_what_the_run_does_and_writes_nothing() {
    let rig = Rig::sample(0.001);
    let total: u64 = rig.fixtures.iter().map(|f| f.table.estimated_bytes).sum();
    let deferrable: u64 = rig
        .fixtures
        .iter()
        .filter(|f| ["audit_logs", "user_sessions"].contains(&f.table.name.name.as_str()))
        .map(|f| f.table.estimated_bytes)
        .sum();
    let mut c = cfg("planned-api");
    c.window = Some(Duration::from_secs(1));
    c.bandwidth_target = Some(((total - deferrable) as f64 / 0.8) as u64);
    c.priorities = sample_priorities();
    let planned = rig.migration(c.clone()).plan().await.unwrap();
    assert!(planned.ready, "{}", planned.to_markdown());
    assert!(!planned.plan.assumed.no_window && !planned.plan.assumed.no_bandwidth);
    let deferred: Vec<&str> = planned
        .plan
        .deferred
        .iter()
        .map(|d| d.table.as_str())
        .collect();
    assert_eq!(deferred, ["public.audit_logs", "public.user_sessions"]);
    assert_eq!(planned.preflight.preflight.len(), rig.fixtures.len());
    assert!(
        rig.fixtures
            .iter()
            .all(|f| rig.sink.rows(&f.table.name).is_none()),
        "plan wrote into the target"
    );
    assert_eq!(planned.to_json()["ready"], true);
    // The run defers exactly what the plan said.
    let report = rig.migration(c).run().await.unwrap();
    let ran: Vec<&str> = report.deferred.iter().map(|d| d.table.as_str()).collect();
    assert_eq!(ran, deferred);

    // Without a window nothing is judged: the plan says so, and is still ready.
    let planned = rig.migration(cfg("unbounded")).plan().await.unwrap();
    assert!(planned.plan.assumed.no_window && planned.plan.assumed.no_bandwidth);
    assert!(planned.plan.deferred.is_empty());
    assert!(planned.to_json()["feasible"].is_null());
}

#[tokio::test]
async fn verify_compares_the_runs_key_ranges_and_records_the_outcome() {
    let rig = Rig::sample(0.002);
    let mut c = cfg("verified");
    c.chunk_rows = 50;
    let report = rig.migration(c.clone()).run().await.unwrap();
    assert!(report.succeeded(), "{}", report.to_markdown());
    let m = rig.migration(c);
    let checked = m.verify().await.unwrap();
    assert!(checked.passed, "{}", checked.to_markdown());
    assert_eq!(
        checked.recorded_in.as_deref(),
        Some(report.execution_id.as_str())
    );
    // A row goes missing from the target: the table fails, naming the key range that differs.
    let orders = rig
        .fixtures
        .iter()
        .find(|f| f.table.name.name == "orders")
        .unwrap();
    let key = orders.table.schema.key_of(&orders.rows[7]);
    rig.sink.delete_row(&orders.table.name, &key);
    let checked = m.verify().await.unwrap();
    assert!(!checked.passed);
    let t = checked
        .tables
        .iter()
        .find(|t| t.table == orders.table.name)
        .unwrap();
    assert_eq!(t.result, migrate_core::executor::CheckOutcome::Mismatch);
    assert_eq!(t.mismatched_chunks.len(), 1, "{t:?}");
    assert_eq!(t.target_count, Some(t.source_count - 1));
    // The stored report shows the later verification.
    let stored = migrate_core::executor::stored_report(&*rig.store, "verified")
        .await
        .unwrap()
        .unwrap();
    let later = stored.later_verification.unwrap();
    assert!(
        !later.passed && later.failures[0].contains("orders"),
        "{later:?}"
    );
}
