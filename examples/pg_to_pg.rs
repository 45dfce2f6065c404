//! Copy every table of one Postgres database into another, in foreign-key order, with
//! checkpoints in a local SQLite file so an interrupted copy resumes where it stopped:
//!
//! ```text
//! cargo run --release --example pg_to_pg -- \
//!     postgres://app@old-host/shop postgres://app@new-host/shop [migration.db]
//! ```
//!
//! Run it again after a crash or Ctrl-C and it continues the same run. Passwords in the URLs
//! never appear in the output.

use std::sync::Arc;
use std::time::Duration;

use migrate_backend_postgres::{PgSink, PgSource};
use migrate_checkpoint_sqlite::SqliteCheckpointStore;
use migrate_core::{Error, ExecutorConfig, Migration, TableFilter};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(source_url), Some(target_url)) = (args.first(), args.get(1)) else {
        eprintln!("usage: pg_to_pg SOURCE_URL TARGET_URL [CHECKPOINT_FILE]");
        std::process::exit(2);
    };
    let state = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "migration.db".into());

    let source = Arc::new(PgSource::new(source_url)?);
    let sink = Arc::new(PgSink::new(target_url)?);
    let store = Arc::new(SqliteCheckpointStore::open(&state).await?);
    let config = ExecutorConfig {
        migration: "pg_to_pg".into(),
        tables: TableFilter {
            include: vec!["public.*".into()],
            exclude: vec![],
            ..Default::default()
        },
        parallelism: 4,
        chunk_rows: 100_000,
        ..Default::default()
    };
    let handle = Migration::new(source, sink, store)
        .with_config(config)
        .start();

    // Ctrl-C cancels safely (below): in-flight chunks are abandoned and redone next run.
    let mut progress = handle.progress();
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            if progress.has_changed().is_err() {
                break;
            }
            let p = progress.borrow_and_update().clone();
            eprintln!(
                "{:>5.1}%  {}/{} chunks  {:.1} MB/s  ETA {}",
                if p.rows_total > 0 {
                    p.rows_done as f64 * 100.0 / p.rows_total as f64
                } else {
                    0.0
                },
                p.chunks_done,
                p.chunks_total,
                p.mb_per_sec,
                p.eta_secs.map_or("-".into(), |s| format!("{s:.0}s"))
            );
        }
    });
    let controls = handle.controls();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("cancelling: in-flight chunks stop; run this command again to resume");
            controls.cancel();
        }
    });
    let report = handle.wait().await?;
    ticker.abort();
    println!("{}", report.to_markdown());
    if !report.succeeded() {
        std::process::exit(1);
    }
    Ok(())
}
