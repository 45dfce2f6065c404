//! Postgres → Snowflake (fakesnow) through the executor: three tables with a foreign key, in
//! several chunks, copied and verified (each chunk's checksum computed in flight from Postgres'
//! wire format equals the one read back from Snowflake), every mapped type with NULLs and
//! extremes, an unconstrained `numeric` column sized from its data so its fractions arrive;
//! then `Migration::verify` passes, and fails once one value in Snowflake is altered. And
//! back: Snowflake → Postgres returns every row as it left. (Arrays here hold integers:
//! Snowflake's `ARRAY` keeps no element type, so it comes back as an array of JSON values,
//! whose canonical text equals that of integers but not that of text.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use std::sync::Arc;

use migrate_backend_postgres::{PgSink, PgSource};
use migrate_backend_snowflake::{SfSink, SfSource};
use migrate_core::executor::{CheckOutcome, ExecutorConfig, Migration};
use migrate_core::testing::{service_env, MemoryCheckpointStore};
use migrate_core::{DataType, KeyRange, ObjectKind, Sink, Source, TableFilter};

const SOURCE: &str = "
CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL, born date,
                        balance numeric(12, 2), seen timestamptz, flags integer[] NOT NULL,
                        ratio numeric);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers,
                     total numeric(10, 2) NOT NULL, placed timestamp, note jsonb, ok boolean);
INSERT INTO customers
  SELECT i, 'c' || i || '@exämple.com', DATE '1950-01-01' + i % 20000,
         CASE WHEN i % 9 = 0 THEN NULL ELSE (i * 7.31)::numeric(12, 2) END,
         TIMESTAMPTZ '2026-01-01 00:00:00+00' + i * interval '1 minute 1.000001 second',
         CASE WHEN i % 3 = 0 THEN '{}'::integer[] ELSE ARRAY[7, i % 5, NULL] END,
         CASE WHEN i % 7 = 0 THEN NULL ELSE i / 7.0 + 0.000000000001 END
    FROM generate_series(1, 2500) i;
INSERT INTO orders
  SELECT i, 1 + i % 2500, (i % 1000) / 4.0,
         CASE WHEN i % 11 = 0 THEN NULL ELSE TIMESTAMP '2026-02-01' + i * interval '37 seconds' END,
         CASE WHEN i % 5 = 0 THEN NULL WHEN i % 13 = 0 THEN 'null'::jsonb
              ELSE jsonb_build_object('n', i, 'tags', jsonb_build_array('x', i % 3)) END,
         i % 2 = 0
    FROM generate_series(1, 6000) i;
-- A text key in a collation that orders it unlike Snowflake's code points (`B` after `b`):
-- chunks cut in that order must neither lose rows nor fail verification range by range.
CREATE TABLE tags (code text COLLATE \"en-x-icu\" PRIMARY KEY, n integer NOT NULL);
INSERT INTO tags SELECT CASE WHEN i % 2 = 0 THEN lower(chr(65 + i % 26)) ELSE chr(65 + i % 26) END || i, i
  FROM generate_series(1, 3000) i;
-- Every other mapped type, NULLs and extremes (row 1 holds the extremes).
CREATE TABLE kinds (id integer PRIMARY KEY, s smallint, big bigint, r real, d double precision,
                    n numeric(38, 9), vc varchar(20), b bytea, t time, u uuid,
                    ia integer[] NOT NULL, ts timestamp);
INSERT INTO kinds VALUES
  (1, -32768, 9223372036854775807, -1.5, 'Infinity', 99999999999999999999999999999.999999999,
   'ünï — 漢字', '\\x00ff10', '23:59:59.999999', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '{}',
   '9999-12-31 23:59:59.999999'),
  (2, NULL, NULL, NULL, 'NaN', -0.000000001, '', '\\x', '00:00:00', NULL, '{-1, 0, 2147483647}',
   '0001-01-01 00:00:00');
INSERT INTO kinds
  SELECT i, i % 300, i * 1000003, i / 4.0, i / 1024.0 + 1e-300, i * 1.000000001, 'v' || i,
         CASE WHEN i % 4 = 0 THEN NULL ELSE decode(md5(i::text), 'hex') END,
         CASE WHEN i % 5 = 0 THEN NULL ELSE TIME '00:00:00' + i * interval '1.000001 second' END,
         md5(i::text)::uuid, ARRAY[i, i + 1, NULL],
         CASE WHEN i % 6 = 0 THEN NULL ELSE TIMESTAMP '2000-01-01' + i * interval '1.5 second' END
    FROM generate_series(3, 1500) i;
";

async fn fresh_database(admin: &str, name: &str) -> (String, tokio_postgres::Client) {
    let (pg, conn) = tokio_postgres::connect(admin, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    pg.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
    pg.batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let url = match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("admin URL {admin} names no database"),
    };
    let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    (url, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_to_snowflake_and_back_is_exact() {
    let (Some(endpoint), Some(admin)) = (
        common::endpoint("MIGRATE_PG_TO_SF", "PUBLIC"),
        service_env("MIGRATE_TEST_PG_URL"),
    ) else {
        return;
    };
    let (src_url, src) = fresh_database(&admin, "migrate_pg_to_sf").await;
    src.batch_execute(SOURCE).await.unwrap();

    let sink = SfSink::new(endpoint.clone()).unwrap();
    sink.pool()
        .query(
            "CREATE SCHEMA IF NOT EXISTS \"MIGRATE_PG_TO_SF\".\"PUBLIC\"",
            &[],
        )
        .await
        .unwrap();
    for t in ["ORDERS", "CUSTOMERS", "KINDS", "TAGS", "_MIGRATE_PREPARED"] {
        sink.pool()
            .query(
                &format!("DROP TABLE IF EXISTS \"MIGRATE_PG_TO_SF\".\"PUBLIC\".\"{t}\""),
                &[],
            )
            .await
            .unwrap();
    }
    let store = Arc::new(MemoryCheckpointStore::new());
    let migration = || {
        Migration::new(
            Arc::new(PgSource::new(&src_url).unwrap()),
            Arc::new(SfSink::new(endpoint.clone()).unwrap()),
            store.clone(),
        )
        .with_config(ExecutorConfig {
            migration: "pg_to_sf".into(),
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
    assert_eq!(report.verification.tables.len(), 4);
    for v in &report.verification.tables {
        assert_eq!(v.checksum_match, Some(true), "{v:?}");
        let sample = v.sample.as_ref().unwrap();
        assert!(
            sample.sample_size > 0 && sample.mismatched_records == 0,
            "{sample:?}"
        );
    }
    let rows: u64 = report.results.iter().map(|r| r.rows).sum();
    assert_eq!(rows, 13000);
    assert!(
        report.results.iter().all(|r| r.chunks_total > 1),
        "several chunks each"
    );
    // The primary key is declared with the table; the foreign key is reported either way
    // (fakesnow cannot add one to an existing table, and says so).
    let outcome = |kind: ObjectKind, table: &str| {
        report
            .schema_objects
            .iter()
            .find(|o| o.kind == kind && o.table.as_ref().is_some_and(|t| t.name == table))
            .cloned()
    };
    assert!(outcome(ObjectKind::PrimaryKey, "customers").is_some_and(|o| o.not_created.is_none()));
    assert!(
        outcome(ObjectKind::ForeignKey, "orders").is_some(),
        "{:?}",
        report.schema_objects
    );

    // The unconstrained numeric was sized from its data: its fractions are all there.
    let described = sink
        .describe(
            &PgSource::new(&src_url)
                .unwrap()
                .discover(&TableFilter::default())
                .await
                .unwrap()
                .into_iter()
                .find(|t| t.name.name == "customers")
                .unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    let ratio = &described.schema.columns[described.schema.index_of("ratio").unwrap()];
    assert!(
        matches!(ratio.data_type, DataType::Decimal { scale: Some(s), .. } if s >= 12),
        "{ratio:?}"
    );

    // Snowflake → Postgres: every row comes back as it left.
    let (back_url, back) = fresh_database(&admin, "migrate_sf_to_pg").await;
    let home = Migration::new(
        Arc::new(SfSource::new(endpoint.clone()).unwrap()),
        Arc::new(PgSink::new(&back_url).unwrap()),
        Arc::new(MemoryCheckpointStore::new()),
    )
    .with_config(ExecutorConfig {
        migration: "sf_to_pg".into(),
        chunk_rows: 700,
        ..Default::default()
    })
    .run()
    .await
    .unwrap();
    assert!(home.succeeded(), "{}", home.to_markdown());
    // fakesnow describes an ARRAY column as VARIANT (Snowflake says ARRAY, which comes back as
    // an array of JSON values — `types` is unit-tested on that name), so the array arrives as
    // one JSON document here: turned back into the array it spells before comparing.
    for (table, column) in [("customers", "flags"), ("kinds", "ia")] {
        back.batch_execute(&format!(
            "ALTER TABLE {table} ALTER COLUMN {column} TYPE integer[] \
             USING translate({column}::text, '[]', '{{}}')::integer[]"
        ))
        .await
        .unwrap();
    }
    let all = TableFilter {
        include: vec!["public.*".into()],
        ..Default::default()
    };
    let original = PgSource::new(&src_url).unwrap();
    let returned = PgSource::new(&back_url).unwrap();
    let there = original.discover(&all).await.unwrap();
    let again = returned.discover(&all).await.unwrap();
    assert_eq!(again.len(), 4, "{again:?}");
    for t in &there {
        let r = again.iter().find(|r| r.name.name == t.name.name).unwrap();
        assert_eq!(
            returned.checksum(r, &KeyRange::all()).await.unwrap(),
            original.checksum(t, &KeyRange::all()).await.unwrap(),
            "{} after Postgres → Snowflake → Postgres",
            t.name
        );
    }

    // Each side computes its own figure, range by range.
    let checked = migration().verify().await.unwrap();
    assert!(checked.passed, "{}", checked.to_markdown());

    // One value altered in Snowflake: the range holding it no longer matches.
    sink.pool()
        .query(
            "UPDATE \"MIGRATE_PG_TO_SF\".\"PUBLIC\".\"ORDERS\" SET \"TOTAL\" = \"TOTAL\" + 0.01 WHERE \"ID\" = 4321",
            &[],
        )
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
