//! Incremental Postgres → Postgres: rows with cursor ≥ the watermark's cursor value (minus the
//! lookback) and ≤ the bound fixed at start, upserted; nothing lost at the boundary, and the rows
//! read again there change nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use std::sync::Arc;
use std::time::Duration;

use migrate_backend_postgres::{PgSink, PgSource};
use migrate_core::executor::{IncrementalConfig, Mode};
use migrate_core::testing::{fixture_tables, MemoryCheckpointStore};
use migrate_core::{
    ExecutorConfig, KeyRange, Migration, MigrationReport, Sink, Source, TableFilter,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_runs_carry_every_change() {
    let Some(admin) = common::admin_url() else {
        return;
    };
    let src = common::fresh_db(&admin, "migrate_t_inc_src").await;
    let dst = common::fresh_db(&admin, "migrate_t_inc_dst").await;
    let f = fixture_tables(Some("public"), 50).swap_remove(0); // customers, cursor: created_at
    common::load(&src, std::slice::from_ref(&f)).await;
    let store = Arc::new(MemoryCheckpointStore::new());
    let run = |mode: Mode| {
        let config = ExecutorConfig {
            migration: "inc".into(),
            mode,
            chunk_rows: 20,
            ..Default::default()
        };
        Migration::new(
            Arc::new(PgSource::new(&src).unwrap()),
            Arc::new(PgSink::new(&dst).unwrap()),
            store.clone(),
        )
        .with_config(config)
        .run()
    };
    let inc = Mode::Incremental(IncrementalConfig {
        cursor_column: Some("created_at".into()),
        ..Default::default()
    });
    assert!(run(Mode::Full).await.unwrap().succeeded());
    let first = run(inc.clone()).await.unwrap();
    assert!(first.succeeded(), "{}", first.to_markdown());
    assert_eq!(
        first.progress.records_this_execution, 50,
        "the first incremental run reads everything up to the bound"
    );

    let c = common::client(&src).await;
    // Same cursor value as the watermark (the newest row's) but a larger key; an update; a new row.
    c.batch_execute(
        "INSERT INTO public.customers (id, name, email, balance, active, created_at)
             SELECT 1000, 'tie', 'tie@example.com', 1.00, true, max(created_at) FROM public.customers;
         UPDATE public.customers SET email = 'moved@example.com', created_at = created_at + interval '1 day' WHERE id = 7;
         INSERT INTO public.customers (id, name, email, balance, active, created_at)
             VALUES (1001, 'new', NULL, -3.50, false, now() + interval '10 days');",
    )
    .await
    .unwrap();
    let second = run(inc.clone()).await.unwrap();
    assert!(second.succeeded(), "{}", second.to_markdown());
    assert_eq!(
        second.progress.records_this_execution, 4,
        "the tie, the update, the new row, and the row at the watermark's cursor value again"
    );
    let third = run(inc).await.unwrap();
    assert_eq!(
        third.progress.records_this_execution, 1,
        "nothing changed: only the row at the watermark's cursor value is read again"
    );

    let source = PgSource::new(&src).unwrap();
    let t = &source.discover(&TableFilter::default()).await.unwrap()[0];
    let want = source.checksum(t, &KeyRange::all()).await.unwrap();
    let got = PgSink::new(&dst)
        .unwrap()
        .checksum(t, &KeyRange::all())
        .await
        .unwrap();
    assert_eq!(
        got, want,
        "the target equals the source after the incremental runs"
    );
    assert_eq!(got.count, 52);
}

/// Source and target databases named after `name`, the source holding `public.orders` with 50
/// rows whose `updated_at` is one minute apart (row 50 newest).
async fn orders_dbs(admin: &str, name: &str) -> (String, String) {
    let src = common::fresh_db(admin, &format!("{name}_src")).await;
    let dst = common::fresh_db(admin, &format!("{name}_dst")).await;
    common::client(&src)
        .await
        .batch_execute(
            "CREATE TABLE public.orders (id bigint PRIMARY KEY, total numeric(12,2) NOT NULL,
                 updated_at timestamptz NOT NULL);
             INSERT INTO public.orders
                 SELECT g, g * 1.5, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute'
                 FROM generate_series(1, 50) g;",
        )
        .await
        .unwrap();
    (src, dst)
}

/// One incremental run of `public.orders` on `updated_at`.
async fn incremental_run(
    src: &str,
    dst: &str,
    store: &Arc<MemoryCheckpointStore>,
    lookback: Option<Duration>,
) -> MigrationReport {
    let config = ExecutorConfig {
        migration: "orders".into(),
        mode: Mode::Incremental(IncrementalConfig {
            cursor_column: Some("updated_at".into()),
            lookback,
            ..Default::default()
        }),
        ..Default::default()
    };
    let report = Migration::new(
        Arc::new(PgSource::new(src).unwrap()),
        Arc::new(PgSink::new(dst).unwrap()),
        store.clone(),
    )
    .with_config(config)
    .run()
    .await
    .unwrap();
    assert!(report.succeeded(), "{}", report.to_markdown());
    report
}

/// Asserts the target's `public.orders` equals the source's (count and checksum).
async fn assert_orders_equal(src: &str, dst: &str) {
    let source = PgSource::new(src).unwrap();
    let t = source
        .discover(&TableFilter::default())
        .await
        .unwrap()
        .swap_remove(0);
    let want = source.checksum(&t, &KeyRange::all()).await.unwrap();
    let got = PgSink::new(dst)
        .unwrap()
        .checksum(&t, &KeyRange::all())
        .await
        .unwrap();
    assert_eq!(got, want, "the target equals the source");
}

/// Issue 14, part 3: after a run whose watermark is (cursor C, key K = 50), a row updated to
/// cursor C with a key below K, and a new row with cursor C and key -5, were never read by
/// later runs (rows were read with (cursor, key) > (C, K)). Each run now reads from C itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_at_the_watermark_cursor_below_its_key_are_picked_up() {
    let Some(admin) = common::admin_url() else {
        return;
    };
    let (src, dst) = orders_dbs(&admin, "migrate_t_inc_tie").await;
    let store = Arc::new(MemoryCheckpointStore::new());
    let first = incremental_run(&src, &dst, &store, None).await;
    assert_eq!(first.progress.records_this_execution, 50);
    let c = common::client(&src).await;
    c.batch_execute(
        "UPDATE public.orders SET total = 888, updated_at = (SELECT max(updated_at) FROM public.orders)
             WHERE id = 30;
         INSERT INTO public.orders SELECT -5, 7.25, max(updated_at) FROM public.orders;",
    )
    .await
    .unwrap();
    incremental_run(&src, &dst, &store, None).await;
    let target = common::client(&dst).await;
    let total: String = target
        .query_one("SELECT total::text FROM public.orders WHERE id = 30", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        total, "888.00",
        "the update to the watermark's cursor value"
    );
    let below = target
        .query_opt("SELECT 1 FROM public.orders WHERE id = -5", &[])
        .await
        .unwrap();
    assert!(below.is_some(), "the new row below the watermark's key");
    assert_orders_equal(&src, &dst).await;
}

/// The guarantee with a lookback: a row committed late with a cursor older than the watermark
/// is read when within the lookback, and never when older than it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lookback_rereads_late_rows_within_it_and_no_further() {
    let Some(admin) = common::admin_url() else {
        return;
    };
    let (src, dst) = orders_dbs(&admin, "migrate_t_inc_lookback").await;
    let store = Arc::new(MemoryCheckpointStore::new());
    let lookback = Some(Duration::from_secs(5 * 60));
    incremental_run(&src, &dst, &store, lookback).await;
    let c = common::client(&src).await;
    c.batch_execute(
        "INSERT INTO public.orders SELECT 1000, 1.00, max(updated_at) - interval '4 minutes'
             FROM public.orders;
         INSERT INTO public.orders SELECT 1001, 2.00, max(updated_at) - interval '6 minutes'
             FROM public.orders;",
    )
    .await
    .unwrap();
    let second = incremental_run(&src, &dst, &store, lookback).await;
    assert_eq!(
        second.progress.records_this_execution, 7,
        "rows 45 to 50 (the last five minutes up to the watermark) again, and the late row 1000"
    );
    let target = common::client(&dst).await;
    let ids: Vec<i64> = target
        .query(
            "SELECT id FROM public.orders WHERE id >= 1000 ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        ids,
        vec![1000],
        "the late row within the lookback is read; the one older than it is not"
    );
}
