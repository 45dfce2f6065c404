//! Three workers share one migration through a Postgres checkpoint store: each claims chunks
//! (FOR UPDATE SKIP LOCKED, leases on the database clock), none does a chunk another has done,
//! and the result is verified. Here the workers are three tasks in one process; on several
//! machines, run the same code on each with the same URLs.
//!
//! ```text
//! cargo run --release --example multi_worker -- SOURCE_URL TARGET_URL STATE_URL
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use migrate_backend_postgres::{PgCheckpointStore, PgSink, PgSource};
use migrate_core::{CheckpointStore, ChunkStatus, Error, ExecutorConfig, Migration, TableFilter};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [source_url, target_url, state_url] = args.as_slice() else {
        eprintln!("usage: multi_worker SOURCE_URL TARGET_URL STATE_URL");
        std::process::exit(2);
    };
    let mut workers = Vec::new();
    for w in ["worker-a", "worker-b", "worker-c"] {
        let store = Arc::new(PgCheckpointStore::open(state_url, "migrate").await?);
        let config = ExecutorConfig {
            migration: "multi-worker".into(),
            worker_id: w.into(),
            tables: TableFilter {
                include: vec!["public.*".into()],
                exclude: vec![],
                ..Default::default()
            },
            parallelism: 1,
            chunk_rows: 10_000,
            ..Default::default()
        };
        let m = Migration::new(
            Arc::new(PgSource::new(source_url)?),
            Arc::new(PgSink::new(target_url)?),
            store,
        )
        .with_config(config);
        workers.push(tokio::spawn(m.run()));
    }
    let mut ok = true;
    for (w, h) in ["worker-a", "worker-b", "worker-c"].iter().zip(workers) {
        let report = h
            .await
            .map_err(|e| Error::with_source(migrate_core::ErrorKind::Fatal, "worker task", e))??;
        println!(
            "{w}: {:?}, wrote {} rows itself",
            report.status, report.progress.records_this_execution
        );
        ok &= report.succeeded();
    }
    let store = PgCheckpointStore::open(state_url, "migrate").await?;
    let run = store
        .latest_run("multi-worker")
        .await?
        .ok_or_else(|| Error::fatal("no run"))?;
    let mut by_worker: BTreeMap<String, usize> = BTreeMap::new();
    for c in store.chunks(&run.id).await? {
        if c.status == ChunkStatus::Completed {
            *by_worker.entry(c.worker.unwrap_or_default()).or_insert(0) += 1;
        }
    }
    println!("chunks completed per worker: {by_worker:?}");
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
