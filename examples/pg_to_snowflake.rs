//! Copy every table of a Postgres database into a Snowflake schema, in foreign-key order, each
//! chunk written exactly once (its rows staged, then one `MERGE` that also deletes the range's
//! other rows), verified against the rows read back, with checkpoints in a local SQLite file so an
//! interrupted copy resumes where it stopped:
//!
//! ```text
//! cargo run --release --example pg_to_snowflake -- \
//!     postgres://app@db-host/shop \
//!     'snowflake://LOADER:secret@myorg-myaccount/ANALYTICS/SHOP?warehouse=LOAD_WH&role=LOADER' \
//!     [migration.db]
//! ```
//!
//! Tables land in the URL's database and schema (the schema is created when missing), their
//! plain lower-case names in Snowflake's upper case (`orders` → `ORDERS`), so they read with
//! unquoted names on both sides. A `numeric` column without precision is sized from its data
//! (Snowflake's bare `NUMBER` would drop every fraction). Add `&load=stage` to send every
//! chunk through a stage (`PUT` + `COPY INTO`). Add
//! `&host=127.0.0.1&port=8085&protocol=http` to the URL to run against fakesnow.

use std::sync::Arc;

use migrate_backend_postgres::PgSource;
use migrate_backend_snowflake::{SfEndpoint, SfSink};
use migrate_checkpoint_sqlite::SqliteCheckpointStore;
use migrate_core::{Error, ExecutorConfig, Migration, TableFilter};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(source_url), Some(target_url)) = (args.first(), args.get(1)) else {
        eprintln!("usage: pg_to_snowflake SOURCE_URL 'snowflake://USER:PASSWORD@ACCOUNT/DATABASE/SCHEMA?warehouse=WH' [CHECKPOINT_FILE]");
        std::process::exit(2);
    };
    let state = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "migration.db".into());

    let source = Arc::new(PgSource::new(source_url)?);
    let sink = Arc::new(SfSink::new(SfEndpoint::from_url(target_url)?)?);
    let store = Arc::new(SqliteCheckpointStore::open(&state).await?);
    let config = ExecutorConfig {
        migration: "pg_to_snowflake".into(),
        tables: TableFilter {
            include: vec!["public.*".into()],
            ..Default::default()
        },
        // Each chunk is one transaction on a session of its own; Snowflake runs DML on one
        // table one statement at a time, so more workers help only across tables.
        parallelism: 2,
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
