//! Copy every table of a Postgres database into a BigQuery dataset, in foreign-key order, each
//! chunk written exactly once (a staging table and one `MERGE`), verified against the checksum
//! BigQuery computes itself, with checkpoints in a local SQLite file so an interrupted copy
//! resumes where it stopped:
//!
//! ```text
//! cargo run --release --example pg_to_bigquery -- \
//!     postgres://app@db-host/shop 'bigquery://my-project/shop?endpoint=http://127.0.0.1:9050' \
//!     [migration.db]
//! ```
//!
//! Without `endpoint=` it talks to Google with the service-account key `credentials=PATH`
//! names, or with application-default credentials (`GOOGLE_APPLICATION_CREDENTIALS`,
//! `gcloud auth application-default login`, the metadata server); with it, to that endpoint
//! (the emulator) unauthenticated. Values BigQuery cannot hold as they are — a NULL array or array
//! element, a JSON `null` document, a decimal wider than its column — stop the table with the
//! table, column and row named; nothing is rounded or turned into something else.

use std::sync::Arc;

use migrate_backend_bigquery::client::BqEndpoint;
use migrate_backend_bigquery::BqSink;
use migrate_backend_postgres::PgSource;
use migrate_checkpoint_sqlite::SqliteCheckpointStore;
use migrate_core::{Error, ExecutorConfig, Migration, TableFilter};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(source_url), Some(target_url)) = (args.first(), args.get(1)) else {
        eprintln!("usage: pg_to_bigquery SOURCE_URL 'bigquery://PROJECT/DATASET[?credentials=KEY.json|endpoint=URL]' [CHECKPOINT_FILE]");
        std::process::exit(2);
    };
    let state = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "migration.db".into());

    let (endpoint, dataset) = BqEndpoint::from_url(target_url)?;
    let source = Arc::new(PgSource::new(source_url)?);
    let sink = Arc::new(BqSink::new(endpoint, &dataset)?);
    let store = Arc::new(SqliteCheckpointStore::open(&state).await?);
    let config = ExecutorConfig {
        migration: "pg_to_bigquery".into(),
        tables: TableFilter {
            include: vec!["public.*".into()],
            ..Default::default()
        },
        parallelism: 2,
        // Each chunk is one load job into its own staging table and one MERGE: larger chunks
        // mean fewer statements scanning the target.
        chunk_rows: 50_000,
        ..Default::default()
    };
    let report = Migration::new(source, sink, store)
        .with_config(config)
        .run()
        .await?;
    println!("{}", report.to_markdown());
    if !report.succeeded() {
        std::process::exit(1);
    }
    Ok(())
}
