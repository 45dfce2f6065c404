//! One test per retry class, on tokio's paused clock: the delays taken are asserted exactly.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{cfg, Rig};
use migrate_core::testing::{fixture_tables, sample_dataset, Op};
use migrate_core::{
    Batch, CheckpointStore, Error, ErrorKind, Result, RunId, RunStatus, Schema, TableName,
    TableStatus, Transform, TransformOutput,
};

/// One table, one chunk: every write is the same chunk, so the fault schedule is exact.
fn single() -> Rig {
    Rig::with(fixture_tables(Some("public"), 30)[..1].to_vec())
}

async fn retry_delays(rig: &Rig, run: &str) -> Vec<u64> {
    let events = rig.store.events(&RunId(run.into())).await.unwrap();
    events
        .iter()
        .filter(|e| e.action == "chunk.retry")
        .map(|e| {
            let ms = e
                .detail
                .split("retrying in ")
                .nth(1)
                .and_then(|s| s.split(' ').next())
                .unwrap();
            ms.parse().unwrap()
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn transient_errors_back_off_exponentially() {
    let rig = single();
    rig.sink_faults.fail_nth(Op::Write, 1, ErrorKind::Transient);
    rig.sink_faults.fail_nth(Op::Write, 2, ErrorKind::Transient);
    let start = tokio::time::Instant::now();
    let report = rig.migration(cfg("transient")).run().await.unwrap();
    let elapsed = start.elapsed();
    assert!(report.succeeded(), "{}", report.to_markdown());
    assert_eq!(retry_delays(&rig, &report.execution_id).await, [1000, 2000]);
    assert_eq!(report.progress.retries, 2);
    assert!(
        elapsed >= Duration::from_secs(3) && elapsed < Duration::from_millis(3500),
        "{elapsed:?}"
    );
    rig.assert_target_equals_source();
}

#[tokio::test(start_paused = true)]
async fn transient_errors_give_up_after_max_attempts() {
    let rig = single();
    for n in 1..=3 {
        rig.sink_faults.fail_nth(Op::Write, n, ErrorKind::Transient);
    }
    let report = rig.migration(cfg("giveup")).run().await.unwrap();
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(retry_delays(&rig, &report.execution_id).await, [1000, 2000]);
    assert_eq!(report.errors.by_type.get("transient"), Some(&1));
    assert_eq!(report.results[0].status, TableStatus::Failed);
    assert!(!report.succeeded());
}

/// A chunk that spent its retries on a transient error is reported as not retriable (retrying
/// it again is an operator's decision now), with the attempts and time it took.
#[tokio::test(start_paused = true)]
async fn an_exhausted_transient_error_is_reported_not_retriable_with_its_attempts() {
    let rig = single();
    for n in 1..=3 {
        rig.sink_faults.fail_nth(Op::Write, n, ErrorKind::Transient);
    }
    let report = rig.migration(cfg("exhausted")).run().await.unwrap();
    assert_eq!(report.status, RunStatus::Failed);
    let sample = &report.errors.sample_errors[0];
    assert_eq!(sample.error_type, "transient");
    assert!(!sample.retriable, "{sample:?}");
    assert_eq!(sample.batch_number, Some(0));
    // Backoff of 1 s then 2 s between the three attempts.
    assert!(
        sample
            .message
            .contains("gave up after 3 attempts over 3.0 s"),
        "{}",
        sample.message
    );
    let reason = report.results[0].reason.as_deref().unwrap_or_default();
    assert!(reason.contains("after 3 attempts"), "{reason}");
}

/// An error that was never retriable is reported as such, without attempts.
#[tokio::test(start_paused = true)]
async fn a_permanent_error_is_reported_without_attempts() {
    let rig = single();
    rig.sink_faults
        .fail_nth(Op::Write, 1, ErrorKind::Constraint);
    let report = rig.migration(cfg("permanent")).run().await.unwrap();
    let sample = &report.errors.sample_errors[0];
    assert_eq!(sample.error_type, "constraint");
    assert!(!sample.retriable);
    assert!(!sample.message.contains("attempt"), "{}", sample.message);
}

#[tokio::test(start_paused = true)]
async fn quota_errors_wait_30_then_60_seconds() {
    let rig = single();
    rig.sink_faults.quota_nth(Op::Write, 1);
    rig.sink_faults.quota_nth(Op::Write, 2);
    let start = tokio::time::Instant::now();
    let report = rig.migration(cfg("quota")).run().await.unwrap();
    assert!(report.succeeded());
    assert_eq!(
        retry_delays(&rig, &report.execution_id).await,
        [30_000, 60_000]
    );
    assert!(
        start.elapsed() >= Duration::from_secs(90) && start.elapsed() < Duration::from_secs(91)
    );
}

#[tokio::test(start_paused = true)]
async fn rate_limits_honour_retry_after() {
    let rig = single();
    rig.source_faults
        .rate_limit_nth(Op::Read, 1, Some(Duration::from_secs(7)));
    rig.sink_faults.rate_limit_nth(Op::Write, 1, None);
    let report = rig.migration(cfg("ratelimit")).run().await.unwrap();
    assert!(report.succeeded());
    // The read's Retry-After of 7 s; then, as the chunk's second failure, the write's backoff
    // of 2 s doubled because the service asked to slow down without saying how long.
    assert_eq!(retry_delays(&rig, &report.execution_id).await, [7000, 4000]);
}

#[tokio::test(start_paused = true)]
async fn permission_errors_stop_the_whole_run_at_once() {
    let rig = Rig::with(sample_dataset("public", 0.0005));
    rig.sink_faults
        .fail_nth(Op::Write, 2, ErrorKind::Permission);
    let mut c = cfg("perm");
    c.parallelism = 1;
    let report = rig.migration(c).run().await.unwrap();
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(
        report.progress.retries, 0,
        "permission errors are not retried"
    );
    assert_eq!(report.errors.by_type.get("permission"), Some(&1));
    assert_eq!(
        rig.sink.write_log().len(),
        2,
        "nothing is written after the permission error"
    );
    assert!(report.to_markdown().contains("permission"));
}

/// Fails every batch of one table with a schema error.
struct Incompatible(TableName);

impl Transform for Incompatible {
    fn name(&self) -> &str {
        "incompatible"
    }
    fn output_schema(&self, input: &Arc<Schema>) -> Result<Arc<Schema>> {
        Ok(input.clone())
    }
    fn apply(&self, _batch: Batch) -> Result<TransformOutput> {
        Err(Error::schema(format!(
            "column \"price\" of {} cannot be mapped",
            self.0
        )))
    }
}

#[tokio::test(start_paused = true)]
async fn schema_errors_fail_the_table_skip_its_children_and_continue() {
    let rig = Rig::with(sample_dataset("public", 0.0005));
    let products = TableName::new("public", "products");
    let m = rig.migration(cfg("schema")).with_transform(
        Some(products.clone()),
        Arc::new(Incompatible(products.clone())),
    );
    let report = m.run().await.unwrap();
    assert_eq!(report.status, RunStatus::Failed);
    let status = |n: &str| {
        report
            .results
            .iter()
            .find(|r| r.table.name == n)
            .unwrap()
            .status
    };
    assert_eq!(status("products"), TableStatus::Failed);
    assert_eq!(status("orders"), TableStatus::Skipped, "child of products");
    assert_eq!(
        status("inventory"),
        TableStatus::Skipped,
        "child of products"
    );
    assert_eq!(
        status("transactions"),
        TableStatus::Skipped,
        "grandchild of products"
    );
    for independent in ["customers", "preferences", "audit_logs", "user_sessions"] {
        assert_eq!(
            status(independent),
            TableStatus::Completed,
            "{independent} goes on"
        );
    }
    assert_eq!(report.progress.retries, 0, "schema errors are not retried");
    let reason = report
        .results
        .iter()
        .find(|r| r.table.name == "orders")
        .unwrap()
        .reason
        .clone()
        .unwrap();
    assert!(reason.contains("public.products"), "{reason}");
}

#[tokio::test(start_paused = true)]
async fn children_load_anyway_when_configured_to_continue() {
    let rig = Rig::with(sample_dataset("public", 0.0005));
    let products = TableName::new("public", "products");
    let mut c = cfg("continue");
    c.on_parent_failure = migrate_core::executor::OnParentFailure::Continue;
    let report = rig
        .migration(c)
        .with_transform(Some(products.clone()), Arc::new(Incompatible(products)))
        .run()
        .await
        .unwrap();
    let status = |n: &str| {
        report
            .results
            .iter()
            .find(|r| r.table.name == n)
            .unwrap()
            .status
    };
    assert_eq!(status("products"), TableStatus::Failed);
    assert_eq!(status("orders"), TableStatus::Completed);
    assert_eq!(status("inventory"), TableStatus::Completed);
}

#[tokio::test(start_paused = true)]
async fn stop_on_first_error_stops_after_the_first_failed_table() {
    let rig = Rig::with(sample_dataset("public", 0.0005));
    let products = TableName::new("public", "products");
    let mut c = cfg("stopfirst");
    c.stop_on_first_error = true;
    c.parallelism = 1;
    let report = rig
        .migration(c)
        .with_transform(Some(products.clone()), Arc::new(Incompatible(products)))
        .run()
        .await
        .unwrap();
    assert_eq!(report.status, RunStatus::Failed);
    let pending = report
        .results
        .iter()
        .filter(|r| r.status == TableStatus::Pending)
        .count();
    assert!(
        pending > 0,
        "tables after the failure were not started: {:?}",
        report
            .results
            .iter()
            .map(|r| (r.table.name.clone(), r.status))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(start_paused = true)]
async fn a_chunk_attempt_past_its_timeout_is_retried_as_a_timeout() {
    let rig = single();
    rig.sink_faults.set_latency(Duration::from_secs(400));
    let mut c = cfg("timeout");
    c.retry.max_attempts = 2;
    let report = rig.migration(c).run().await.unwrap();
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(
        report.errors.by_type.get("timeout"),
        Some(&1),
        "{:?}",
        report.errors
    );
    assert_eq!(retry_delays(&rig, &report.execution_id).await, [1000]);
}
