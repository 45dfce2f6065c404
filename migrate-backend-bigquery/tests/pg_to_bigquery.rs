//! Postgres → BigQuery (the emulator) through the executor: two tables with a foreign key, in
//! several chunks, copied and verified — each chunk's canonical checksum computed in flight
//! from Postgres' wire format equals the one BigQuery computes over the range — then
//! `Migration::verify` (each engine computing its own figure) passes, and fails once one value
//! in BigQuery is altered. And back: BigQuery → Postgres returns every row as it left.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

use std::sync::Arc;

use migrate_backend_bigquery::client::{BqClient, BqEndpoint};
use migrate_backend_bigquery::{BqSink, BqSource};
use migrate_backend_postgres::{PgSink, PgSource};
use migrate_core::executor::{CheckOutcome, ExecutorConfig, Migration};
use migrate_core::report::ComparedWith;
use migrate_core::testing::{service_env, MemoryCheckpointStore};
use migrate_core::{KeyRange, Source, TableFilter};

const SOURCE: &str = "
CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL, born date,
                        balance numeric(12, 2), seen timestamptz, flags text[] NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers,
                     total numeric(10, 2) NOT NULL, placed timestamp, note jsonb, ok boolean);
INSERT INTO customers
  SELECT i, 'c' || i || '@exämple.com', DATE '1950-01-01' + i % 20000,
         CASE WHEN i % 9 = 0 THEN NULL ELSE (i * 7.31)::numeric(12, 2) END,
         TIMESTAMPTZ '2026-01-01 00:00:00+00' + i * interval '1 minute 1.000001 second',
         CASE WHEN i % 3 = 0 THEN '{}'::text[] ELSE ARRAY['vip', 'r' || i % 5] END
    FROM generate_series(1, 2500) i;
INSERT INTO orders
  SELECT i, 1 + i % 2500, (i % 1000) / 4.0,
         CASE WHEN i % 11 = 0 THEN NULL ELSE TIMESTAMP '2026-02-01' + i * interval '37 seconds' END,
         CASE WHEN i % 5 = 0 THEN NULL ELSE jsonb_build_object('n', i, 'tags', jsonb_build_array('x', i % 3)) END,
         i % 2 = 0
    FROM generate_series(1, 6000) i;
-- Every other mapped type, NULLs and extremes (row 1 holds the extremes). Floats are exact
-- binary fractions: a real travels as FLOAT64 and comes back as double precision.
CREATE TABLE kinds (id integer PRIMARY KEY, s smallint, big bigint, r real, d double precision,
                    n numeric(38, 9), vc varchar(20), b bytea, t time, u uuid, iv interval,
                    ia integer[] NOT NULL);
INSERT INTO kinds VALUES
  (1, -32768, 9223372036854775807, -1.5, 'Infinity', 99999999999999999999999999999.999999999,
   'ünï — 漢字', '\\x00ff10', '23:59:59.999999', 'ffffffff-ffff-ffff-ffff-ffffffffffff',
   interval '10 years 11 months 30 days 23:59:59.999999', '{}'),
  (2, NULL, NULL, NULL, 'NaN', -0.000000001, '', '\\x', '00:00:00', NULL, interval '-3 months', '{-1, 0, 2147483647}');
INSERT INTO kinds
  SELECT i, i % 300, i * 1000003, i / 4.0, i / 1024.0, i * 1.000000001, 'v' || i,
         CASE WHEN i % 4 = 0 THEN NULL ELSE decode(md5(i::text), 'hex') END,
         CASE WHEN i % 5 = 0 THEN NULL ELSE TIME '00:00:00' + i * interval '1.000001 second' END,
         md5(i::text)::uuid,
         CASE WHEN i % 6 = 0 THEN NULL ELSE make_interval(0, i % 13, 0, i % 29, 0, 0, i / 7.0) END,
         ARRAY[i, i + 1]
    FROM generate_series(3, 1500) i;
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_to_bigquery_is_verified_in_each_engine() {
    let (Some(rest), Some(admin)) = (
        service_env("MIGRATE_TEST_BIGQUERY_URL"),
        service_env("MIGRATE_TEST_PG_URL"),
    ) else {
        return;
    };
    let project =
        std::env::var("MIGRATE_TEST_BIGQUERY_PROJECT").unwrap_or_else(|_| "test-project".into());
    let (pg, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    for sql in [
        "DROP DATABASE IF EXISTS migrate_pg_to_bq WITH (FORCE)",
        "CREATE DATABASE migrate_pg_to_bq",
    ] {
        pg.batch_execute(sql).await.unwrap();
    }
    let src_url = match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/migrate_pg_to_bq"),
        None => panic!("admin URL {admin} names no database"),
    };
    let (src, conn) = tokio_postgres::connect(&src_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    src.batch_execute(SOURCE).await.unwrap();

    let endpoint = BqEndpoint::unauthenticated(rest, project.clone());
    let dataset = "migrate_pg_to_bq";
    let client = BqClient::new(endpoint.clone()).unwrap();
    client.create_dataset(dataset).await.unwrap();
    for t in ["customers", "orders", "_migrate_prepared"] {
        client.delete_table(dataset, t).await.unwrap();
    }
    // One store for the run and the later checks (they compare the run's ranges).
    let store = Arc::new(MemoryCheckpointStore::new());
    let migration = || {
        Migration::new(
            Arc::new(PgSource::new(&src_url).unwrap()),
            Arc::new(BqSink::new(endpoint.clone(), dataset).unwrap()),
            store.clone(),
        )
        .with_config(ExecutorConfig {
            migration: "pg_to_bq".into(),
            tables: TableFilter {
                include: vec!["public.*".into()],
                ..Default::default()
            },
            chunk_rows: 1000,
            parallelism: 2,
            ..Default::default()
        })
    };
    let report = migration().run().await.unwrap();
    assert!(report.succeeded(), "{}", report.to_markdown());
    assert!(report.verification.passed);
    assert_eq!(report.verification.tables.len(), 3);
    for v in &report.verification.tables {
        assert_eq!(v.checksum_match, Some(true), "{v:?}");
        assert_eq!(v.compared_with, Some(ComparedWith::RowsAsCopied));
        assert!(v.mismatches.is_empty(), "{v:?}");
        let sample = v.sample.as_ref().unwrap();
        assert!(
            sample.sample_size > 0 && sample.mismatched_records == 0,
            "{sample:?}"
        );
    }
    let rows: u64 = report.results.iter().map(|r| r.rows).sum();
    assert_eq!(rows, 10000);
    // Both keys declared (NOT ENFORCED): the parent was there when its child was created.
    let declared = |kind: migrate_core::ObjectKind, table: &str| {
        report.schema_objects.iter().any(|o| {
            o.kind == kind
                && o.not_created.is_none()
                && o.table.as_ref().is_some_and(|t| t.name == table)
        })
    };
    assert!(
        declared(migrate_core::ObjectKind::PrimaryKey, "customers")
            && declared(migrate_core::ObjectKind::ForeignKey, "orders"),
        "{:?}",
        report.schema_objects
    );
    assert!(
        report.results.iter().all(|r| r.chunks_total > 1),
        "several chunks each"
    );

    // BigQuery → Postgres: every row comes back as it left (the emulator keeps no declared
    // key, so each table travels as one chunk).
    for sql in [
        "DROP DATABASE IF EXISTS migrate_bq_to_pg WITH (FORCE)",
        "CREATE DATABASE migrate_bq_to_pg",
    ] {
        pg.batch_execute(sql).await.unwrap();
    }
    let back_url = src_url.replace("/migrate_pg_to_bq", "/migrate_bq_to_pg");
    let (back, conn) = tokio_postgres::connect(&back_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    back.batch_execute(&format!("CREATE SCHEMA {dataset}"))
        .await
        .unwrap();
    let home = Migration::new(
        Arc::new(BqSource::new(endpoint.clone(), dataset).unwrap()),
        Arc::new(PgSink::new(&back_url).unwrap()),
        Arc::new(MemoryCheckpointStore::new()),
    )
    .with_config(ExecutorConfig {
        migration: "bq_to_pg".into(),
        tables: TableFilter {
            include: vec![format!("{dataset}.*")],
            ..Default::default()
        },
        ..Default::default()
    })
    .run()
    .await
    .unwrap();
    assert!(home.succeeded(), "{}", home.to_markdown());
    let all = |schema: &str| TableFilter {
        include: vec![format!("{schema}.*")],
        ..Default::default()
    };
    let original = PgSource::new(&src_url).unwrap();
    let returned = PgSource::new(&back_url).unwrap();
    let there = original.discover(&all("public")).await.unwrap();
    let again = returned.discover(&all(dataset)).await.unwrap();
    assert_eq!(again.len(), 3);
    for t in &there {
        let r = again.iter().find(|r| r.name.name == t.name.name).unwrap();
        assert_eq!(
            returned.checksum(r, &KeyRange::all()).await.unwrap(),
            original.checksum(t, &KeyRange::all()).await.unwrap(),
            "{} after Postgres → BigQuery → Postgres",
            t.name
        );
    }

    // Each engine computes its own figure, range by range.
    let checked = migration().verify().await.unwrap();
    assert!(checked.passed, "{}", checked.to_markdown());

    // One value altered in BigQuery: the range holding it no longer matches.
    client
        .query(&format!(
            "UPDATE `{project}`.`{dataset}`.`orders` SET `total` = `total` + 0.01 WHERE `id` = 4321"
        ))
        .await
        .unwrap();
    let checked = migration().verify().await.unwrap();
    assert!(!checked.passed);
    let orders = checked
        .tables
        .iter()
        .find(|t| t.table.name == "orders")
        .unwrap();
    assert_eq!(orders.result, CheckOutcome::Mismatch);
    assert_eq!(orders.mismatched_chunks.len(), 1, "{orders:?}");
    let customers = checked
        .tables
        .iter()
        .find(|t| t.table.name == "customers")
        .unwrap();
    assert_eq!(customers.result, CheckOutcome::Match);
}
