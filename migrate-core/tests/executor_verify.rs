//! What verification compares: the target against the rows as copied by default, the source
//! read again with `recheck_source`; and the phases a table goes through on the way.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use common::{cfg, t, Rig};
use migrate_core::executor::{Phase, TablePhase};
use migrate_core::report::ComparedWith;
use migrate_core::testing::{sample_dataset, Op};
use migrate_core::{CheckpointStore, RunStatus, Value};

/// A rig over the sample dataset whose sink runs `change` on each table as its copy ends
/// (before its finalize and verification).
fn rig_changing(
    change: impl Fn(&Rig, &migrate_core::TableName) + Send + Sync + 'static,
) -> std::sync::Arc<Rig> {
    let rig = std::sync::Arc::new(Rig::with(sample_dataset("public", 0.001)));
    let weak = std::sync::Arc::downgrade(&rig);
    rig.sink.before_finalize(move |table| {
        if let Some(rig) = weak.upgrade() {
            change(&rig, table);
        }
    });
    rig
}

/// The first row of `customers` in the source, with its second column changed.
fn changed_customer(rig: &Rig) -> Vec<Value> {
    let f = rig
        .fixtures
        .iter()
        .find(|f| f.table.name == t("customers"))
        .unwrap();
    let mut row = f.rows[0].clone();
    row[1] = Value::Text("changed after the copy".into());
    row
}

/// `table`'s verification in `report`.
fn verification_of<'a>(
    report: &'a migrate_core::MigrationReport,
    table: &str,
) -> &'a migrate_core::report::TableVerification {
    report
        .verification
        .tables
        .iter()
        .find(|v| v.table == t(table))
        .unwrap_or_else(|| panic!("{table} verified"))
}

#[tokio::test]
async fn a_target_changed_after_the_copy_fails_against_the_rows_as_copied() {
    let rig = rig_changing(|rig, table| {
        if *table == t("customers") {
            let key = rig
                .fixtures
                .iter()
                .find(|f| f.table.name == *table)
                .unwrap()
                .rows[0][0]
                .clone();
            rig.sink.delete_row(table, &[key]);
        }
    });
    let mut c = cfg("verify_target_changed");
    c.verify.sample_size = 0;
    let report = rig.migration(c).run().await.unwrap();
    assert_eq!(report.status, RunStatus::Failed, "{}", report.to_markdown());
    let v = verification_of(&report, "customers");
    assert_eq!(v.checksum_match, Some(false));
    assert_eq!(v.count_match, Some(false));
    assert_eq!(v.compared_with, Some(ComparedWith::RowsAsCopied));
    assert_eq!(v.mismatches.len(), 1, "{v:?}");
    assert!(v.mismatches[0].detail.contains("the run wrote"), "{v:?}");
    // Every other table verified passed.
    assert!(report
        .verification
        .tables
        .iter()
        .filter(|v| v.table != t("customers"))
        .all(|v| v.passed()));
    // Its children may have copied while it was verified, but none completed: each is
    // skipped, and says what it holds.
    let children: Vec<_> = rig
        .fixtures
        .iter()
        .filter(|f| {
            f.table
                .foreign_keys
                .iter()
                .any(|k| k.referenced_table == t("customers"))
        })
        .map(|f| f.table.name.clone())
        .collect();
    assert!(!children.is_empty());
    for c in &children {
        let r = report.results.iter().find(|r| r.table == *c).unwrap();
        assert_eq!(r.status, migrate_core::TableStatus::Skipped, "{r:?}");
        let why = r.reason.as_deref().unwrap_or_default();
        assert!(why.contains("parent table public.customers"), "{why}");
    }
}

#[tokio::test]
async fn the_source_is_read_again_only_when_asked() {
    // A source row changes after its chunk was copied: the target still holds what was copied.
    let change = |rig: &Rig, table: &migrate_core::TableName| {
        if *table == t("customers") {
            rig.source
                .upsert_rows(table, vec![changed_customer(rig)])
                .unwrap();
        }
    };
    let rig = rig_changing(change);
    let mut c = cfg("verify_as_copied");
    c.verify.sample_size = 0;
    let report = rig.migration(c).run().await.unwrap();
    assert_eq!(
        report.status,
        RunStatus::Completed,
        "{}",
        report.to_markdown()
    );
    let chunks = report.progress.total_batches;
    for v in &report.verification.tables {
        assert_eq!(v.compared_with, Some(ComparedWith::RowsAsCopied), "{v:?}");
        assert_eq!(v.checksum_match, Some(true), "{v:?}");
        assert_eq!(v.source_count, v.target_count, "{v:?}");
    }
    // Only the target was read to verify: one checksum per chunk, none on the source.
    assert_eq!(rig.sink_faults.count(Op::Checksum), chunks);
    assert_eq!(rig.source_faults.count(Op::Checksum), 0);

    let rig = rig_changing(change);
    let mut c = cfg("verify_recheck");
    c.verify.sample_size = 0;
    c.verify.recheck_source = true;
    let report = rig.migration(c).run().await.unwrap();
    assert_eq!(report.status, RunStatus::Failed, "{}", report.to_markdown());
    let v = verification_of(&report, "customers");
    assert_eq!(v.compared_with, Some(ComparedWith::SourceReread));
    assert_eq!(v.checksum_match, Some(false));
    assert_eq!(
        v.count_match,
        Some(true),
        "one value changed, no row: {v:?}"
    );
    assert!(v.mismatches[0].detail.contains("source holds"), "{v:?}");
    // Every range of every verified table was read again (tables under the failed one were
    // skipped, unverified).
    let verified: u64 = report
        .results
        .iter()
        .filter(|r| {
            report
                .verification
                .tables
                .iter()
                .any(|v| v.table == r.table)
        })
        .map(|r| r.chunks_total)
        .sum();
    assert!(verified > 0);
    assert_eq!(rig.source_faults.count(Op::Checksum), verified);
    assert!(report
        .to_markdown()
        .contains("the source re-read after the load"));
}

#[tokio::test]
async fn the_report_times_each_phase_of_each_table() {
    let rig = Rig::sample(0.001);
    rig.sink_faults
        .set_latency(std::time::Duration::from_millis(2));
    let report = rig.migration(cfg("phases")).run().await.unwrap();
    assert!(report.succeeded(), "{}", report.to_markdown());
    for r in &report.results {
        let p = r.phase_seconds.expect("phase timings");
        assert!(p.copy > 0.0, "{}: {p:?}", r.table);
        assert!(p.verify > 0.0, "{}: {p:?}", r.table);
        assert!(p.finalize >= 0.0 && p.prepare >= 0.0, "{}: {p:?}", r.table);
        let phases = p.prepare + p.copy + p.finalize + p.verify;
        assert!(
            phases <= report.timing.duration_seconds + 0.05,
            "{}: {phases} s of phases in a {} s run",
            r.table,
            report.timing.duration_seconds
        );
    }
    // The audit trail marks each table's finalize and verification (what `migrate status`
    // reads).
    let events = rig
        .store
        .events(&migrate_core::RunId(report.execution_id.clone()))
        .await
        .unwrap();
    for r in &report.results {
        for action in ["table.finalizing", "table.verifying"] {
            assert!(
                events
                    .iter()
                    .any(|e| e.action == action && e.table.as_ref() == Some(&r.table)),
                "{action} of {}",
                r.table
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_shows_a_long_finalize_with_time_still_ahead() {
    // The last table's finalize takes a while after every row is copied: the progress must
    // say so (its phase, the run's phase, an ETA above zero) and keep being republished.
    let rig = Rig::sample(0.001);
    let last = rig.fixtures.last().unwrap().table.name.clone();
    let slow = last.clone();
    rig.sink.before_finalize(move |table| {
        if *table == slow {
            std::thread::sleep(std::time::Duration::from_millis(2500));
        }
    });
    let handle = rig.migration(cfg("progress_phases")).start();
    let mut rx = handle.progress();
    let mut seen = Vec::new();
    let mut times: Vec<f64> = Vec::new();
    while rx.changed().await.is_ok() {
        let p = rx.borrow_and_update().clone();
        let finalizing = p
            .tables
            .iter()
            .any(|t| t.table == last && t.phase == TablePhase::Finalizing);
        if finalizing && p.rows_done == p.rows_total {
            seen.push((p.phase, p.eta_secs));
            times.push(p.elapsed_secs);
        }
        if p.phase == Phase::Done {
            break;
        }
    }
    let report = handle.wait().await.unwrap();
    assert!(report.succeeded(), "{}", report.to_markdown());
    assert!(!seen.is_empty(), "the last table was seen finalizing");
    assert!(
        seen.iter().any(|(phase, _)| *phase == Phase::Finalizing),
        "{seen:?}"
    );
    assert!(
        seen.iter().all(|(_, eta)| eta.is_some_and(|e| e > 0.0)),
        "an ETA above zero while the build runs: {seen:?}"
    );
    // Snapshots kept coming (at least every second) while nothing else happened.
    let gap = times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    assert!(times.len() >= 3 && gap <= 1.0, "snapshots at {times:?}");
    assert!(times.last().unwrap() - times[0] >= 2.0, "{times:?}");
    let r = report.results.iter().find(|r| r.table == last).unwrap();
    assert!(r.phase_seconds.unwrap().finalize >= 2.4, "{r:?}");
}
