//! Postgres → Postgres on the sample e-commerce dataset's schema: exact result by checksum, foreign keys valid on
//! the target.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use std::sync::Arc;

use migrate_backend_postgres::{PgSink, PgSource};
use migrate_checkpoint_sqlite::SqliteCheckpointStore;
use migrate_core::testing::sample_dataset;
use migrate_core::{ExecutorConfig, Migration, RowChecksum};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_to_postgres_with_foreign_keys() {
    let Some(admin) = common::admin_url() else {
        return;
    };
    let src = common::fresh_db(&admin, "migrate_t_e2e_src").await;
    let dst = common::fresh_db(&admin, "migrate_t_e2e_dst").await;
    let data = sample_dataset("public", 0.002);
    common::load(&src, &data).await;
    common::client(&src)
        .await
        .batch_execute(
            "CREATE INDEX orders_placed_idx ON public.orders (placed_at DESC);
             CREATE UNIQUE INDEX products_sku_key ON public.products (sku);
             CREATE INDEX customers_lower_email_idx ON public.customers (lower(email));",
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteCheckpointStore::open(dir.path().join("m.db"))
            .await
            .unwrap(),
    );
    let config = ExecutorConfig {
        migration: "pg2pg".into(),
        parallelism: 2,
        chunk_rows: 700,
        ..Default::default()
    };
    let report = Migration::new(
        Arc::new(PgSource::new(&src).unwrap()),
        Arc::new(PgSink::new(&dst).unwrap()),
        store,
    )
    .with_config(config)
    .run()
    .await
    .unwrap();
    assert!(report.succeeded(), "{}", report.to_markdown());
    assert!(
        report.progress.total_batches > 8,
        "tables were split into chunks"
    );
    // The target holds exactly the source rows: our own checksum of every table, read back.
    let c = common::client(&dst).await;
    for f in &data {
        let n: i64 = c
            .query_one(
                &format!("SELECT count(*) FROM public.{}", f.table.name.name),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n as usize, f.rows.len(), "{}", f.table.name);
    }
    let sink = PgSink::new(&dst).unwrap();
    for f in &data {
        let got = migrate_core::Sink::checksum(&sink, &f.table, &migrate_core::KeyRange::all())
            .await
            .unwrap();
        assert_eq!(got, RowChecksum::of_rows(&f.rows), "{}", f.table.name);
    }
    // Foreign keys were created after the data, and Postgres validated them.
    let fks: i64 = c
        .query_one("SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND convalidated AND connamespace = 'public'::regnamespace", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(fks, 6, "orders→customers, orders→products, transactions→orders, transactions→customers, inventory→products, preferences→customers");
    let pk: i64 = c.query_one("SELECT count(*) FROM pg_constraint WHERE contype = 'p' AND connamespace = 'public'::regnamespace", &[]).await.unwrap().get(0);
    assert_eq!(pk, 8);
    // Secondary indexes, expression indexes included, were rebuilt after the data.
    let names: Vec<String> = c
        .query("SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public' AND indexname NOT LIKE '%pkey' ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        names,
        [
            "customers_lower_email_idx",
            "orders_placed_idx",
            "products_sku_key"
        ]
    );
}
