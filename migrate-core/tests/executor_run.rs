//! Full runs: order, verification, memory, dry run, report.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{cfg, t, Rig};
use migrate_core::executor::Mode;
use migrate_core::{
    Batch, ChunkStatus, RunStatus, Schema, TableStatus, Transform, TransformOutput,
};

#[tokio::test]
async fn full_run_migrates_verifies_and_reports() {
    let rig = Rig::sample(0.001);
    let report = rig.migration(cfg("full")).run().await.expect("run");
    assert_eq!(
        report.status,
        RunStatus::Completed,
        "{}",
        report.to_markdown()
    );
    assert!(report.succeeded());
    assert!(report.verification.passed);
    rig.assert_target_equals_source();
    assert_eq!(report.results.len(), 8);
    assert!(report
        .results
        .iter()
        .all(|r| r.status == TableStatus::Completed));
    let total: u64 = rig.fixtures.iter().map(|f| f.rows.len() as u64).sum();
    assert_eq!(report.progress.processed_records, total);
    assert_eq!(report.progress.records_this_execution, total);
    assert_eq!(
        report.progress.completed_batches,
        report.progress.total_batches
    );
    // Every table was verified chunk by chunk against the source and sampled.
    assert_eq!(report.verification.tables.len(), 8);
    for v in &report.verification.tables {
        assert!(
            v.checksum_match == Some(true) && v.count_match == Some(true),
            "{v:?}"
        );
        assert_eq!(v.source_count, v.target_count);
        let s = v.sample.as_ref().expect("sampled");
        assert!(s.sample_size > 0 && s.mismatched_records == 0, "{s:?}");
    }
    // Checkpoints: every chunk completed once, with its checksum recorded.
    let chunks = rig
        .store
        .chunks(&migrate_core::RunId(report.execution_id.clone()))
        .await
        .unwrap();
    assert!(chunks
        .iter()
        .all(|c| c.status == ChunkStatus::Completed && c.attempts == 1 && c.checksum.is_some()));
    // JSON and Markdown renderings.
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["status"], "completed");
    let md = report.to_markdown();
    assert!(
        md.contains("# Migration Report") && md.contains("| public.transactions | ✓ |"),
        "{md}"
    );
    assert!(report.audit_summary.by_action["table.completed"] == 8);
}

use migrate_core::CheckpointStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_child_chunk_starts_before_its_parents_complete() {
    let rig = Rig::sample(0.001);
    rig.sink_faults.set_latency(Duration::from_millis(2));
    let mut c = cfg("order");
    c.parallelism = 6;
    c.chunk_rows = 20;
    let report = rig.migration(c).run().await.unwrap();
    assert!(report.succeeded());
    let log = rig.sink.write_log();
    let deps: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
        ("orders", vec!["customers", "products"]),
        ("transactions", vec!["orders", "customers"]),
        ("inventory", vec!["products"]),
        ("preferences", vec!["customers"]),
    ]);
    for (child, parents) in deps {
        let first_child = log
            .iter()
            .position(|w| w.table == t(child))
            .expect("child written");
        for p in parents {
            let last_parent = log
                .iter()
                .rposition(|w| w.table == t(p))
                .expect("parent written");
            assert!(
                last_parent < first_child,
                "{child} started (write #{first_child}) before {p} finished (write #{last_parent})"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_in_flight_stays_within_the_budget() {
    let rig = Rig::sample(0.003);
    let source_bytes: u64 = rig.fixtures.iter().map(|f| f.table.estimated_bytes).sum();
    let budget = source_bytes / 20;
    let mut c = cfg("memory");
    c.memory_budget = budget;
    c.parallelism = 4;
    c.batch_rows = 10_000; // lowered by the executor to fit the budget
    rig.sink_faults.set_latency(Duration::from_millis(1));
    let handle = rig.migration(c).start();
    let budget_acc = handle.budget().clone();
    let report = handle.wait().await.unwrap();
    assert!(report.succeeded());
    rig.assert_target_equals_source();
    let peak = budget_acc.peak();
    println!(
        "source {source_bytes} bytes, budget {} bytes, peak in flight {peak} bytes",
        budget_acc.total()
    );
    assert!(
        source_bytes >= 20 * budget_acc.total() - 20 * 1024,
        "the source is 20x the budget"
    );
    assert!(peak > 0, "batches were accounted");
    assert!(
        peak <= budget_acc.total(),
        "peak {peak} exceeds budget {}",
        budget_acc.total()
    );
    assert_eq!(report.progress.peak_in_flight_bytes, peak);
    assert_eq!(budget_acc.in_flight(), 0, "every reservation was released");
}

#[tokio::test]
async fn dry_run_writes_nothing_and_reports_preflight() {
    let rig = Rig::sample(0.001);
    let mut c = cfg("dry");
    c.mode = Mode::DryRun;
    let report = rig.migration(c).run().await.unwrap();
    assert_eq!(report.execution_type, "dry-run");
    assert_eq!(report.preflight.len(), 8);
    assert!(report
        .preflight
        .iter()
        .all(|p| p.reachable && !p.exists && p.problems.is_empty() && p.chunks >= 1));
    assert!(rig.sink.write_log().is_empty(), "a dry run writes nothing");
    assert!(
        rig.sink.rows(&t("customers")).is_none(),
        "a dry run creates nothing"
    );
    assert!(
        rig.store.latest_run("dry").await.unwrap().is_none(),
        "a dry run records no run"
    );
    assert!(report.to_markdown().contains("## Dry Run"));
}

#[tokio::test]
async fn a_foreign_key_cycle_is_refused_naming_the_tables() {
    use migrate_core::testing::fixture_tables;
    let mut f = fixture_tables(Some("public"), 10);
    let orders = f[1].table.name.clone();
    f[0].table.foreign_keys.push(migrate_core::ForeignKey {
        definition: None,
        name: None,
        columns: vec!["id".into()],
        referenced_table: orders,
        referenced_columns: vec!["customer_id".into()],
    });
    let rig = Rig::with(f);
    let e = rig.migration(cfg("cycle")).run().await.unwrap_err();
    assert!(
        e.to_string().contains("public.customers, public.orders"),
        "{e}"
    );
    assert!(e.to_string().contains("defer the foreign key"), "{e}");
}

#[tokio::test]
async fn a_dry_run_reports_schema_drift_with_the_ddl_or_why_it_cannot_proceed() {
    use migrate_core::testing::fixture_tables;
    use migrate_core::{Column, DataType, Schema, TableInfo, Value};
    let rig = Rig::with(fixture_tables(Some("public"), 20)[..1].to_vec());
    assert!(rig.migration(cfg("drift")).run().await.unwrap().succeeded());
    // The source gains a column after the first migration.
    let f = &rig.fixtures[0];
    let mut cols = f.table.schema.columns.clone();
    cols.push(Column::new("loyalty_tier", DataType::Int16));
    let info = TableInfo::new(f.table.name.clone(), Schema::new(cols, &["id"]).unwrap());
    let rows = f
        .rows
        .iter()
        .map(|r| r.iter().cloned().chain([Value::Int16(1)]).collect())
        .collect();
    rig.source.add_table(info, rows);
    let mut c = cfg("drift");
    c.mode = Mode::DryRun;
    let report = rig.migration(c).run().await.unwrap();
    assert_eq!(
        report.status,
        RunStatus::Failed,
        "blocking drift fails the dry run"
    );
    let d = report
        .drift
        .iter()
        .find(|d| d.column.as_deref() == Some("loyalty_tier"))
        .expect("drift found");
    assert!(d.blocking);
    assert!(
        d.action
            .contains("ALTER TABLE public.customers ADD COLUMN loyalty_tier int16"),
        "{}",
        d.action
    );
    assert!(report.to_markdown().contains("## Schema Drift"));
}

/// A sink that cannot describe tables (`Unsupported`) gets a dry run without schema drift; a
/// sink whose `describe` fails for a configuration reason fails the dry run with that error
/// instead of having it mistaken for "cannot describe".
#[tokio::test]
async fn a_dry_run_skips_drift_only_when_describe_is_unsupported() {
    use migrate_core::testing::{fixture_tables, Op};
    use migrate_core::{Column, DataType, ErrorKind, TableInfo, Value};
    // A migrated table, then drift the describe would find (the source gains a column), then a
    // dry run whose every describe fails with `kind`.
    let dry_run = |kind| async move {
        let rig = Rig::with(fixture_tables(Some("public"), 20)[..1].to_vec());
        assert!(rig
            .migration(cfg("nodescribe"))
            .run()
            .await
            .unwrap()
            .succeeded());
        let f = &rig.fixtures[0];
        let mut cols = f.table.schema.columns.clone();
        cols.push(Column::new("loyalty_tier", DataType::Int16));
        let info = TableInfo::new(f.table.name.clone(), Schema::new(cols, &["id"]).unwrap());
        let rows = f
            .rows
            .iter()
            .map(|r| r.iter().cloned().chain([Value::Int16(1)]).collect())
            .collect();
        rig.source.add_table(info, rows);
        let n = rig.sink_faults.count(Op::Describe);
        for i in 1..=10 {
            rig.sink_faults.fail_nth(Op::Describe, n + i, kind);
        }
        let mut c = cfg("nodescribe");
        c.mode = Mode::DryRun;
        rig.migration(c).run().await
    };

    let report = dry_run(ErrorKind::Unsupported).await.unwrap();
    assert_eq!(report.execution_type, "dry-run");
    assert!(report.drift.is_empty(), "{:?}", report.drift);

    let e = dry_run(ErrorKind::Config).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert_eq!(e.context().operation.as_deref(), Some("describe"), "{e}");
}

/// Passes batches through unchanged (a transform the executor cannot see through).
struct Unchanged;

impl Transform for Unchanged {
    fn name(&self) -> &str {
        "unchanged"
    }
    fn output_schema(&self, input: &Arc<Schema>) -> migrate_core::Result<Arc<Schema>> {
        Ok(input.clone())
    }
    fn apply(&self, batch: Batch) -> migrate_core::Result<TransformOutput> {
        Ok(TransformOutput::passed(batch))
    }
}

#[tokio::test]
async fn undecoded_rows_are_checksummed_sampled_and_verified_like_decoded_ones() {
    let decoded = Rig::sample(0.001);
    let encoded = Rig::encoded(decoded.fixtures.clone());
    let a = decoded.migration(cfg("plain")).run().await.unwrap();
    let b = encoded.migration(cfg("plain")).run().await.unwrap();
    assert!(
        b.succeeded() && b.verification.passed,
        "{}",
        b.to_markdown()
    );
    encoded.assert_target_equals_source();
    assert_eq!(decoded.sink.encoded_batches(), 0);
    assert!(
        encoded.sink.encoded_batches() > 0,
        "the sink forwarded rows"
    );
    // The same checksums were recorded for every chunk, and every table was sampled.
    let sums = |rig: &Rig, run: &str| {
        let rig_store = rig.store.clone();
        let run = migrate_core::RunId(run.to_string());
        async move {
            let mut c: Vec<_> = rig_store
                .chunks(&run)
                .await
                .unwrap()
                .into_iter()
                .map(|c| (c.table, c.index, c.checksum))
                .collect();
            c.sort_by(|x, y| (&x.0, x.1).cmp(&(&y.0, y.1)));
            c
        }
    };
    assert_eq!(
        sums(&decoded, &a.execution_id).await,
        sums(&encoded, &b.execution_id).await
    );
    for v in &b.verification.tables {
        assert!(
            v.checksum_match == Some(true) && v.count_match == Some(true),
            "{v:?}"
        );
        let s = v.sample.as_ref().expect("sampled");
        assert!(s.sample_size > 0 && s.mismatched_records == 0, "{s:?}");
    }
    // A transform needs values: nothing is forwarded undecoded then.
    let transformed = Rig::encoded(decoded.fixtures.clone());
    let r = transformed
        .migration(cfg("transformed"))
        .with_transform(None, Arc::new(Unchanged))
        .run()
        .await
        .unwrap();
    assert!(r.succeeded(), "{}", r.to_markdown());
    assert_eq!(transformed.sink.encoded_batches(), 0);
    transformed.assert_target_equals_source();
}

#[tokio::test]
async fn checks_that_did_not_run_are_reported_as_not_run() {
    let rig = Rig::sample(0.0005);
    let mut c = cfg("unverified");
    c.verify.checksums = false;
    c.verify.sample_size = 0;
    let report = rig.migration(c).run().await.unwrap();
    assert!(report.succeeded(), "{}", report.to_markdown());
    assert_eq!(
        report.verification.not_verified.len(),
        report.results.len(),
        "no table was compared"
    );
    for v in &report.verification.tables {
        assert_eq!(v.checksum_match, None);
        assert_eq!(v.count_match, None);
        assert_eq!(v.target_count, None, "no count shown that was not taken");
        assert!(v.not_compared.is_some());
    }
    let md = report.to_markdown();
    assert!(md.contains("Result: NOT RUN"), "{md}");
    assert!(!md.contains("checksum match"), "{md}");
    assert!(!md.contains("target 0 rows"), "{md}");
    let json = report.to_json();
    assert!(json.contains("\"checksum_match\": null"), "{json}");
    rig.assert_target_equals_source();
}

#[tokio::test]
async fn a_run_that_defers_every_table_is_not_a_success() {
    let rig = Rig::sample(0.0005);
    let mut c = cfg("nothing");
    c.window = Some(std::time::Duration::ZERO);
    let report = rig.migration(c).run().await.unwrap();
    assert!(report.nothing_migrated(), "{}", report.to_markdown());
    assert!(!report.succeeded());
    assert!(report.to_markdown().contains("NOTHING MIGRATED"));
}

#[tokio::test]
async fn merging_into_a_keyless_table_that_holds_rows_is_refused_before_any_write() {
    let f = migrate_core::testing::keyless_table(Some("public"), 10);
    let rig = Rig::with(vec![f.clone()]);
    rig.sink.put_table(&f.table, f.rows[..3].to_vec()).unwrap();
    let mut c = cfg("keyless");
    c.prepare.existing_rows = migrate_core::ExistingRows::Merge;
    let e = rig.migration(c).run().await.unwrap_err();
    assert_eq!(e.kind(), migrate_core::ErrorKind::Config);
    assert!(
        e.to_string().contains(&f.table.name.to_string())
            && e.to_string().contains("no primary key"),
        "{e}"
    );
    assert_eq!(
        rig.sink.rows(&f.table.name).unwrap().len(),
        3,
        "nothing was written"
    );
    assert!(rig.sink.write_log().is_empty());
}
