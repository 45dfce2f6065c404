//! The SQLite store passes the checkpoint conformance suite.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

use std::sync::Arc;

use migrate_checkpoint_sqlite::SqliteCheckpointStore;
use migrate_core::testing::checkpoint_conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_store_passes_the_checkpoint_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteCheckpointStore::open(dir.path().join("suite.db"))
        .await
        .unwrap();
    checkpoint_conformance(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_handles_on_one_file_share_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let a = SqliteCheckpointStore::open(&path).await.unwrap();
    let b = SqliteCheckpointStore::open(&path).await.unwrap();
    use migrate_core::{CheckpointStore, RunRecord};
    let run = RunRecord::new("m", "p");
    a.create_run(&run).await.unwrap();
    assert_eq!(
        b.run(&run.id).await.unwrap().map(|r| r.id),
        Some(run.id.clone())
    );
    let again = RunRecord::new("m", "p");
    assert!(
        b.create_run(&again).await.is_err(),
        "one resumable run per migration, across handles"
    );
}
