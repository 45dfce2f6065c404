//! Move a legacy Snowflake schema into a new one — `LEGACY_DB.LEGACY_SCHEMA` →
//! `NEW_DB.NEW_SCHEMA` — table by table in foreign-key order, each chunk of the new tables
//! written in one transaction, with a zero-copy clone of any table the run overwrites (so
//! `migrate rollback` puts it back), verified, and checkpointed in a local SQLite file:
//!
//! ```text
//! cargo run --release --example snowflake_to_snowflake -- \
//!     'snowflake://MIGRATOR:secret@myorg-myaccount/LEGACY_DB/LEGACY_SCHEMA?warehouse=MIGRATE_WH' \
//!     'snowflake://MIGRATOR:secret@myorg-myaccount/NEW_DB/NEW_SCHEMA?warehouse=MIGRATE_WH' \
//!     [migration.db]
//! ```
//!
//! With the same user and role on both URLs, each chunk moves inside Snowflake (`INSERT …
//! SELECT` from the legacy key range into a staging table, one `MERGE` into the new table): no
//! row passes through this process, and verification reads the legacy ranges in Snowflake.
//! Keys are read back from `SHOW PRIMARY KEYS` and `SHOW IMPORTED KEYS` and declared again on
//! the new tables. Tables without a primary key are copied whole in one chunk.

use std::sync::Arc;

use migrate_backend_snowflake::{SfEndpoint, SfSink, SfSource};
use migrate_checkpoint_sqlite::SqliteCheckpointStore;
use migrate_core::{Error, ExecutorConfig, Migration, PrepareOptions};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(legacy), Some(new)) = (args.first(), args.get(1)) else {
        eprintln!("usage: snowflake_to_snowflake LEGACY_URL NEW_URL [CHECKPOINT_FILE]");
        std::process::exit(2);
    };
    let state = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "migration.db".into());

    let source = Arc::new(SfSource::new(SfEndpoint::from_url(legacy)?)?);
    let sink = Arc::new(SfSink::new(SfEndpoint::from_url(new)?)?);
    let store = Arc::new(SqliteCheckpointStore::open(&state).await?);
    let config = ExecutorConfig {
        migration: "legacy_to_new".into(),
        parallelism: 2,
        chunk_rows: 50_000,
        prepare: PrepareOptions {
            // A table already in the new schema is cloned before the run's first write to it.
            backup: true,
            ..Default::default()
        },
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
