//! `PgSink::finalize` reached by several workers at once: each table's primary key, foreign
//! keys and indexes are built once and every caller succeeds; a namesake with another
//! definition is an error naming it; a finalize abandoned mid-way leaves no lock behind.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use std::time::Duration;

use common::{admin_url, client, fresh_db};
use futures_util::future::join_all;
use migrate_backend_postgres::{PgSink, PgSource};
use migrate_core::{PrepareOptions, Sink, Source, TableFilter, TableInfo};

const SOURCE: &str = "
CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL, region text);
CREATE UNIQUE INDEX customers_email_key ON customers (email);
CREATE INDEX customers_region_idx ON customers (region);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers (id),
                     status text NOT NULL, total numeric(12,2) NOT NULL);
CREATE INDEX orders_customer_id_idx ON orders (customer_id);
CREATE INDEX orders_status_idx ON orders (status, total);
CREATE INDEX orders_big_idx ON orders (total) WHERE total > 100;
INSERT INTO customers SELECT i, 'c' || i || '@example.com', 'r' || (i % 5) FROM generate_series(1, 3000) i;
INSERT INTO orders SELECT i, 1 + i % 3000, (ARRAY['new','paid'])[1 + i % 2], (i % 500) / 3.0
  FROM generate_series(1, 6000) i;
";

/// Indexes and foreign keys of `public`, as comparable text.
async fn structure(url: &str) -> Vec<String> {
    let c = client(url).await;
    let mut out: Vec<String> = c
        .query(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    out.extend(
        c.query(
            "SELECT conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
               FROM pg_constraint WHERE contype = 'f' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0)),
    );
    out
}

/// The source's tables, parents first.
async fn tables(src: &str) -> Vec<TableInfo> {
    let mut t = PgSource::new(src)
        .unwrap()
        .discover(&TableFilter::default())
        .await
        .unwrap();
    t.sort_by_key(|t| t.name.name != "customers");
    assert_eq!(t.len(), 2);
    t
}

/// Creates the target tables through `sink` (primary keys deferred) and copies the rows.
async fn load(src: &str, sink: &PgSink, tables: &[TableInfo]) {
    let source = PgSource::new(src).unwrap();
    for t in tables {
        sink.prepare(
            t,
            &PrepareOptions::default(),
            &migrate_core::RunId::generate(),
        )
        .await
        .unwrap();
        for chunk in source.chunks(t, 2000).await.unwrap() {
            let mut rows = source.read_chunk(t, &chunk, 1000).await.unwrap();
            sink.write_chunk(t, &chunk, &mut *rows).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sinks_finalizing_the_same_tables_at_once_both_succeed_and_build_each_thing_once() {
    let Some(admin) = admin_url() else { return };
    let src = fresh_db(&admin, "migrate_finalize_race_src").await;
    client(&src).await.batch_execute(SOURCE).await.unwrap();
    let tables = tables(&src).await;
    let expected = structure(&src).await;
    assert_eq!(expected.len(), 7 + 1, "{expected:#?}");
    for round in 0..8 {
        let dst = fresh_db(&admin, "migrate_finalize_race_dst").await;
        let (a, b) = (PgSink::new(&dst).unwrap(), PgSink::new(&dst).unwrap());
        load(&src, &a, &tables).await;
        // Two workers finalize the child and the parent at the same moment (the child's
        // finalize also builds the parent's deferred key, for its foreign key).
        let results = join_all(
            tables
                .iter()
                .rev()
                .flat_map(|t| [a.finalize(t), b.finalize(t)]),
        )
        .await;
        for r in results {
            r.unwrap_or_else(|e| panic!("round {round}: every finalize succeeds: {e}"));
        }
        assert_eq!(structure(&dst).await, expected, "round {round}");
        // And again, by a third worker arriving late: nothing left to do, nothing fails.
        let c = PgSink::new(&dst).unwrap();
        for t in &tables {
            c.finalize(t).await.unwrap();
        }
        assert_eq!(structure(&dst).await, expected, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namesake_with_another_definition_is_an_error_naming_it() {
    let Some(admin) = admin_url() else { return };
    let src = fresh_db(&admin, "migrate_finalize_names_src").await;
    client(&src).await.batch_execute(SOURCE).await.unwrap();
    let tables = tables(&src).await;
    let dst = fresh_db(&admin, "migrate_finalize_names_dst").await;
    let sink = PgSink::new(&dst).unwrap();
    load(&src, &sink, &tables).await;
    sink.finalize(&tables[0]).await.unwrap();
    let target = client(&dst).await;
    target
        .batch_execute("CREATE INDEX orders_status_idx ON orders (total)")
        .await
        .unwrap();
    let e = sink.finalize(&tables[1]).await.unwrap_err().to_string();
    assert!(
        e.contains("orders_status_idx") && e.contains("(total)") && e.contains("(status, total)"),
        "{e}"
    );
    target
        .batch_execute(
            // Indexes are built before foreign keys: the failed finalize made none yet.
            "DROP INDEX orders_status_idx; ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_customer_id_fkey;
             ALTER TABLE orders ADD CONSTRAINT orders_customer_id_fkey CHECK (customer_id > 0)",
        )
        .await
        .unwrap();
    let e = sink.finalize(&tables[1]).await.unwrap_err().to_string();
    assert!(
        e.contains("orders_customer_id_fkey") && e.contains("CHECK"),
        "{e}"
    );
    target
        .batch_execute("ALTER TABLE orders DROP CONSTRAINT orders_customer_id_fkey")
        .await
        .unwrap();
    sink.finalize(&tables[1]).await.unwrap();
    assert_eq!(structure(&dst).await, structure(&src).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finalize_abandoned_while_waiting_for_the_lock_leaves_no_lock_behind() {
    let Some(admin) = admin_url() else { return };
    let src = fresh_db(&admin, "migrate_finalize_abandon_src").await;
    client(&src).await.batch_execute(SOURCE).await.unwrap();
    let tables = tables(&src).await;
    let dst = fresh_db(&admin, "migrate_finalize_abandon_dst").await;
    let a = PgSink::new(&dst).unwrap();
    load(&src, &a, &tables).await;
    // Someone holds the customers table's finalize lock; a's finalize waits, then is dropped.
    let holder = client(&dst).await;
    let key = format!("migrate finalize {}", tables[0].name);
    holder
        .execute("SELECT pg_advisory_lock(hashtext($1))", &[&key])
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), a.finalize(&tables[0]))
            .await
            .is_err(),
        "finalize waits for the lock"
    );
    holder
        .execute("SELECT pg_advisory_unlock(hashtext($1))", &[&key])
        .await
        .unwrap();
    // Neither a (whose pooled connection was waiting) nor another sink is locked out.
    let b = PgSink::new(&dst).unwrap();
    for sink in [&a, &b, &a] {
        for t in &tables {
            tokio::time::timeout(Duration::from_secs(20), sink.finalize(t))
                .await
                .expect("no lock was left behind")
                .unwrap();
        }
    }
    let held: i64 = holder
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
                AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(held, 0, "no session holds a finalize lock");
    assert_eq!(structure(&dst).await, structure(&src).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_build_side_by_side_and_a_failed_one_leaves_the_others_whole() {
    let Some(admin) = admin_url() else { return };
    let src = fresh_db(&admin, "migrate_finalize_lanes_src").await;
    client(&src).await.batch_execute(SOURCE).await.unwrap();
    let tables = tables(&src).await;
    let dst = fresh_db(&admin, "migrate_finalize_lanes_dst").await;
    let sink = PgSink::with_config(
        migrate_backend_postgres::PgConfig::from_url(&dst).unwrap(),
        migrate_backend_postgres::PgSinkOptions {
            index_jobs: 3,
            ..Default::default()
        },
    )
    .unwrap();
    load(&src, &sink, &tables).await;
    // A duplicate e-mail in the target: the unique index fails, the region index beside it
    // still completes (all lanes run to their end before the finalize returns).
    let target = client(&dst).await;
    target
        .batch_execute("UPDATE customers SET email = 'c1@example.com' WHERE id = 2")
        .await
        .unwrap();
    let e = sink.finalize(&tables[0]).await.unwrap_err().to_string();
    assert!(e.contains("customers_email_key"), "{e}");
    let region: i64 = target
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'customers_region_idx'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(region, 1, "the lane beside the failed build finished");
    target
        .batch_execute("UPDATE customers SET email = 'c2@example.com' WHERE id = 2")
        .await
        .unwrap();
    // The pooled connections are whole again (none left with an empty search path or mid-
    // statement): the next finalizes build everything.
    for t in &tables {
        sink.finalize(t).await.unwrap();
    }
    assert_eq!(structure(&dst).await, structure(&src).await);
}
