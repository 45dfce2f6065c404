//! `PgSink` and `PgSource` pass the shared conformance suites against the real server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use migrate_backend_postgres::{PgSink, PgSource};
use migrate_core::testing::{
    sink_conformance, source_conformance, source_fixtures, SinkSuite, SourceSuite,
};

#[tokio::test]
async fn pg_sink_passes_the_sink_suite() {
    let Some(admin) = common::admin_url() else {
        return;
    };
    let url = common::fresh_db(&admin, "migrate_t_sink_suite").await;
    let sink = PgSink::new(&url).unwrap();
    sink_conformance(
        &sink,
        &SinkSuite {
            namespace: Some("suite".into()),
            unsupported_types: vec![],
        },
    )
    .await;
}

#[tokio::test]
async fn pg_source_passes_the_source_suite() {
    let Some(admin) = common::admin_url() else {
        return;
    };
    let url = common::fresh_db(&admin, "migrate_t_source_suite").await;
    common::load(&url, &source_fixtures(Some("suite"))).await;
    let source = PgSource::new(&url).unwrap();
    source_conformance(
        &source,
        &SourceSuite {
            namespace: Some("suite".into()),
            exact_types: true,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_checkpoint_store_passes_the_checkpoint_suite() {
    let Some(admin) = common::admin_url() else {
        return;
    };
    let url = common::fresh_db(&admin, "migrate_t_store_suite").await;
    let store = migrate_backend_postgres::PgCheckpointStore::open(&url, "migrate")
        .await
        .unwrap();
    migrate_core::testing::checkpoint_conformance(std::sync::Arc::new(store)).await;
    // Opening again (another worker) finds the installed schema and changes nothing.
    migrate_backend_postgres::PgCheckpointStore::open(&url, "migrate")
        .await
        .unwrap();
}
