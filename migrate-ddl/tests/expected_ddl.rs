//! The shop fixture converted for each target, checked against the expected text in
//! `tests/fixtures/shop_expected/` (each table's columns in the target's own types, what is
//! built after the data, what is dropped and why, what was skipped): a change in the mapping
//! or in what a sink carries shows up as a diff to review. No target is contacted.
//! `MIGRATE_UPDATE_EXPECTED=1` rewrites the files (then read the diff before committing).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use std::path::Path;

use migrate_backend_bigquery::client::BqEndpoint;
use migrate_backend_bigquery::BqSink;
use migrate_backend_postgres::PgSink;
use migrate_backend_snowflake::{SfEndpoint, SfSink};
use migrate_core::Sink;
use migrate_ddl::target_ddl;

fn check(sink: &dyn Sink, file: &str) {
    let text = target_ddl(&common::shop(), sink, common::fixture());
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/shop_expected")
        .join(file);
    if std::env::var_os("MIGRATE_UPDATE_EXPECTED").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (MIGRATE_UPDATE_EXPECTED=1 writes it)",
            path.display()
        )
    });
    if text != expected {
        let first = text
            .lines()
            .zip(expected.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| format!("line {}: got {a:?}, expected {b:?}", i + 1))
            .unwrap_or_else(|| "one is a prefix of the other".into());
        panic!("{file} differs from the conversion: {first}");
    }
}

#[test]
fn the_shop_schema_as_bigquery_holds_it() {
    let sink = BqSink::new(
        BqEndpoint::unauthenticated("http://127.0.0.1:9", "proj"),
        "shop",
    )
    .unwrap();
    check(&sink, "bigquery.sql");
}

#[test]
fn the_shop_schema_as_snowflake_holds_it() {
    let endpoint = SfEndpoint::from_url("snowflake://loader:unused@acct/DB/SHOP").unwrap();
    check(&SfSink::new(endpoint).unwrap(), "snowflake.sql");
}

#[test]
fn the_shop_schema_as_postgres_holds_it() {
    let sink = PgSink::new("postgres://postgres@127.0.0.1:9/unused").unwrap();
    check(&sink, "postgres.sql");
}
