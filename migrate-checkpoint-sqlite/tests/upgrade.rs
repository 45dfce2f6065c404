//! Schema versions: a file from the first version is upgraded in place with its data; a file
//! from a newer version is refused with both versions named.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

use migrate_checkpoint_sqlite::{SqliteCheckpointStore, CURRENT_VERSION};
use migrate_core::{
    CheckpointStore, ChunkStatus, ErrorKind, RunId, RunStatus, TableName, TableStatus, Value,
};

#[tokio::test]
async fn a_version_1_file_is_upgraded_in_place_and_keeps_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/store-v1.db"),
        &path,
    )
    .unwrap();
    let store = SqliteCheckpointStore::open(&path).await.unwrap();
    let run = store
        .latest_run("legacy")
        .await
        .unwrap()
        .expect("the v1 run survives");
    assert_eq!(
        (run.id.0.as_str(), run.status, run.plan_hash.as_str()),
        ("run-v1", RunStatus::Failed, "hash-v1")
    );
    let chunks = store.chunks(&run.id).await.unwrap();
    assert_eq!(chunks.len(), 2);
    assert_eq!(chunks[0].status, ChunkStatus::Completed);
    assert_eq!(chunks[0].rows, 500);
    assert_eq!(chunks[0].duration_ms, None, "v1 did not record durations");
    assert_eq!(chunks[0].range.upper, Some(vec![Value::Int64(501)]));
    assert_eq!(chunks[1].status, ChunkStatus::Failed);
    assert_eq!(chunks[1].error_kind, Some(ErrorKind::Transient));
    let tables = store.tables(&run.id).await.unwrap();
    assert_eq!(tables[0].status, TableStatus::Failed);
    assert_eq!(tables[0].table, TableName::new("public", "customers"));
    let mark = store
        .cursor("legacy", &TableName::new("public", "customers"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mark.key, vec![Value::Int64(3)]);
    // The upgraded file works as a current one: resume the failed chunk and record a duration.
    let t = TableName::new("public", "customers");
    store
        .claim_chunk(&run.id, &t, 1, "w2", std::time::Duration::from_secs(30))
        .await
        .unwrap()
        .expect("claimable");
    let res = migrate_core::ChunkResult {
        rows: 500,
        bytes: 1,
        checksum: Default::default(),
        duration_ms: 42,
    };
    assert!(store
        .complete_chunk(&run.id, &t, 1, "w2", &res)
        .await
        .unwrap());
    assert_eq!(
        store.chunks(&RunId("run-v1".into())).await.unwrap()[1].duration_ms,
        Some(42)
    );
    drop(store);
    // Opening again finds it current and changes nothing.
    let again = SqliteCheckpointStore::open(&path).await.unwrap();
    assert_eq!(again.chunks(&run.id).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_file_from_a_newer_version_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    migrate_checkpoint_sqlite::create_store_at_version(&path, CURRENT_VERSION).unwrap();
    {
        let c = std_sqlite(&path);
        c.execute_batch("PRAGMA user_version = 9").unwrap();
    }
    let e = SqliteCheckpointStore::open(&path).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    let msg = e.to_string();
    assert!(
        msg.contains("schema version 9") && msg.contains(&format!("up to {CURRENT_VERSION}")),
        "{msg}"
    );
    assert!(msg.contains("future.db"), "{msg}");
}

#[tokio::test]
async fn a_file_that_is_not_sqlite_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.db");
    std::fs::write(
        &path,
        b"this is not a database, it is a plain text file of some length",
    )
    .unwrap();
    let e = SqliteCheckpointStore::open(&path).await.unwrap_err();
    assert!(e.to_string().contains("garbage.db"), "{e}");
}

fn std_sqlite(path: &std::path::Path) -> rusqlite_shim::Connection {
    rusqlite_shim::Connection::open(path).unwrap()
}

/// The tests reach SQLite directly only to forge a future version number.
mod rusqlite_shim {
    pub use rusqlite::Connection;
}
