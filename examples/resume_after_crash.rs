//! Resume after a crash: a migration is killed mid-run (the task is aborted with no cleanup,
//! as `kill -9` would), then started again; it continues the same run from its SQLite
//! checkpoints, redoes only what was not committed, and verifies. No services needed:
//!
//! ```text
//! cargo run --release --example resume_after_crash
//! ```

use std::sync::Arc;
use std::time::Duration;

use migrate_checkpoint_sqlite::SqliteCheckpointStore;
use migrate_core::testing::{sample_dataset, Faults, MemorySink, MemorySource};
use migrate_core::{CheckpointStore, ChunkStatus, Error, ErrorKind, ExecutorConfig, Migration};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let data = sample_dataset("public", 0.01);
    let source = Arc::new(MemorySource::with_fixtures(&data, Arc::new(Faults::new())));
    let slow = Arc::new(Faults::new());
    slow.set_latency(Duration::from_millis(2)); // a target a little slower than memory
    let sink = Arc::new(MemorySink::new(slow));
    let dir = std::env::temp_dir().join(format!("migrate-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::with_source(ErrorKind::Config, "temp dir", e))?;
    let store = Arc::new(SqliteCheckpointStore::open(dir.join("migration.db")).await?);
    let config = ExecutorConfig {
        migration: "resume-demo".into(),
        chunk_rows: 2_000,
        lease: Duration::from_secs(1), // a crashed worker's chunks are taken over after this
        ..Default::default()
    };
    let migration = Migration::new(source, sink, store.clone()).with_config(config);

    let handle = migration.clone().start();
    let _ = handle
        .progress()
        .wait_for(|p| p.chunks_total > 0 && p.chunks_done * 2 >= p.chunks_total)
        .await;
    handle.abort(); // the crash: no cleanup, chunks in flight keep their leases
    let run = store
        .latest_run("resume-demo")
        .await?
        .ok_or_else(|| Error::fatal("no run recorded"))?;
    let chunks = store.chunks(&run.id).await?;
    let done = chunks
        .iter()
        .filter(|c| c.status == ChunkStatus::Completed)
        .count();
    let held = chunks
        .iter()
        .filter(|c| c.status == ChunkStatus::Running)
        .count();
    println!("crashed: run {} is still marked {:?}; {done}/{} chunks committed, {held} held by the dead worker", run.id, run.status, chunks.len());

    let report = migration.run().await?;
    println!(
        "resumed run {}: {} chunks were already done and were not redone; the dead worker's chunks were taken over after their lease expired",
        report.execution_id, report.progress.batches_already_done
    );
    println!("{}", report.to_markdown());
    let _ = std::fs::remove_dir_all(&dir);
    if report.succeeded() {
        Ok(())
    } else {
        Err(Error::validation(
            "the resumed migration did not complete and verify",
        ))
    }
}
