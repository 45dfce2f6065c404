//! Create the tables of a folder of ordered DDL files (`00_foundation_tables.sql`, `01_*.sql`,
//! …) in a target — Postgres, BigQuery or Snowflake — one table at a time, each checkpointed in
//! a local SQLite file, so a run stopped at table 9 continues at table 9:
//!
//! ```text
//! cargo run --example apply_ddl_folder -- migrate-ddl/tests/fixtures/shop \
//!     'snowflake://LOADER:secret@myorg-myaccount/ANALYTICS/SHOP?warehouse=LOAD_WH' [schema.db]
//! ```
//!
//! It prints what the target cannot carry of each table first (a CHECK in a warehouse, an
//! index), then the migration progress report. The `migrate schema apply` command does the same
//! with more options (`--dry-run`, `--strict`, `--replace`, `--json`).

use std::path::Path;

use migrate_backend_postgres::PgSinkOptions;
use migrate_checkpoint_sqlite::SqliteCheckpointStore;
use migrate_core::Error;
use migrate_ddl::{apply, progress_text, read_dir, ApplyConfig, Event, Options};
use migrate_examples::backends;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(target)) = (args.first(), args.get(1)) else {
        eprintln!("usage: apply_ddl_folder DIR TARGET_URL [CHECKPOINT_FILE]");
        std::process::exit(2);
    };
    // pg_dump output holds statements sqlparser does not read (ALTER SEQUENCE): list them.
    let tables = read_dir(
        Path::new(dir),
        &Options {
            skip_unreadable: true,
        },
    )?;
    let sink = backends::sink(target, &PgSinkOptions::default())?;
    for t in &tables.tables {
        for o in sink.plan_objects(&t.info) {
            if let Some(why) = &o.not_created {
                println!("{}: {} {} not carried: {why}", t.info.name, o.kind, o.name);
            }
        }
    }
    let file = args.get(2).map_or("schema.db", String::as_str);
    let store = SqliteCheckpointStore::open(file).await?;
    let config = ApplyConfig {
        migration: format!("schema:{dir}"),
        ..Default::default()
    };
    let mut on = |e: &Event| {
        if let Event::Completed { table, how, .. } = e {
            eprintln!("{table}: {how}");
        }
    };
    let report = apply(&tables, &*sink, &store, &config, &mut on).await?;
    print!("{}", progress_text(&report, None));
    if !report.succeeded() {
        std::process::exit(1);
    }
    Ok(())
}
