//! Quickstart: migrate the sample e-commerce dataset (customers, products, orders, inventory,
//! transactions, preferences, audit_logs, user_sessions) between two in-memory stores — in
//! foreign-key order, chunk by chunk, checkpointing every chunk — interrupt it midway, resume
//! it, verify every table by count and checksum, and print the report. No services needed:
//!
//! ```text
//! cargo run --release --example quickstart
//! ```
//!
//! Checkpoints go to an SQLite file (the embedded default store); source and sink are in
//! memory. Swap them for the Postgres, BigQuery or Snowflake ones and the rest stays the same.

use std::sync::Arc;
use std::time::Duration;

use migrate_checkpoint_sqlite::SqliteCheckpointStore;
use migrate_core::executor::{ExecutorConfig, Migration};
use migrate_core::testing::{sample_dataset, Faults, MemorySink, MemorySource};

#[tokio::main]
async fn main() -> Result<(), migrate_core::Error> {
    let dataset = sample_dataset("public", 0.01); // 136 000 rows
    let source = Arc::new(MemorySource::with_fixtures(
        &dataset,
        Arc::new(Faults::new()),
    ));
    let sink = Arc::new(MemorySink::new(Arc::new(Faults::new())));
    let dir = std::env::temp_dir().join(format!("migrate-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| {
        migrate_core::Error::with_source(migrate_core::ErrorKind::Config, "temp dir", e)
    })?;
    let db = dir.join("migration.db");
    let store = Arc::new(SqliteCheckpointStore::open(&db).await?);
    println!("checkpoints: {}", db.display());
    let config = ExecutorConfig {
        migration: "quickstart".into(),
        parallelism: 2,
        chunk_rows: 5_000,
        memory_budget: 16 << 20,
        ..Default::default()
    };
    let migration = Migration::new(source, sink, store.clone()).with_config(config);

    // First attempt: cancel it once a third of the chunks are done, as an operator might.
    let handle = migration.clone().start();
    let mut progress = handle.progress();
    let _ = progress
        .wait_for(|p| p.chunks_total > 0 && p.chunks_done * 3 >= p.chunks_total)
        .await;
    let p = progress.borrow().clone();
    println!(
        "interrupting after {}/{} chunks ({} of {} rows, {:.0} rows/s)",
        p.chunks_done, p.chunks_total, p.rows_done, p.rows_total, p.rows_per_sec
    );
    handle.cancel();
    let first = handle.wait().await?;
    println!(
        "first attempt: {:?}, run {}",
        first.status, first.execution_id
    );

    // Second attempt: the same migration continues the same run from its checkpoints.
    let handle = migration.start();
    let mut progress = handle.progress();
    let ticker = tokio::spawn(async move {
        let mut shown = 0;
        while progress.changed().await.is_ok() {
            let p = progress.borrow_and_update().clone();
            if p.chunks_done >= shown + 5 {
                shown = p.chunks_done;
                println!(
                    "  {:>3}/{} chunks  {:>6} rows  ETA {:.1}s",
                    p.chunks_done,
                    p.chunks_total,
                    p.rows_done,
                    p.eta_secs.unwrap_or(0.0)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let report = handle.wait().await?;
    ticker.abort();
    println!(
        "resumed run {}: {} chunks were already done and were neither re-read nor re-written\n",
        report.execution_id, report.progress.batches_already_done
    );
    println!("{}", report.to_markdown());
    // An operator query on the `migration_control` table, answered by the checkpoint file.
    println!("## From the checkpoint file (table status)\n");
    for row in store.table_status(None).await? {
        println!(
            "- {:<22} {:<9} {:>6}/{:<6} rows  {:>5.1}%",
            row.table_name,
            row.status,
            row.records_processed,
            row.total_records,
            row.completion_percentage.unwrap_or(0.0)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    if report.succeeded() {
        Ok(())
    } else {
        Err(migrate_core::Error::validation(
            "the migration did not complete and verify",
        ))
    }
}
