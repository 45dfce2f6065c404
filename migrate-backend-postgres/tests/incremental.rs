//! Incremental Postgres → Postgres: rows with (cursor, key) past the watermark and cursor ≤ the
//! bound fixed at start, upserted; nothing lost or repeated at the boundary.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use std::sync::Arc;

use migrate_backend_postgres::{PgSink, PgSource};
use migrate_core::executor::{IncrementalConfig, Mode};
use migrate_core::testing::{fixture_tables, MemoryCheckpointStore};
use migrate_core::{ExecutorConfig, KeyRange, Migration, Sink, Source, TableFilter};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_runs_carry_exactly_the_changes() {
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
        second.progress.records_this_execution, 3,
        "exactly the tie, the update and the new row"
    );
    let third = run(inc).await.unwrap();
    assert_eq!(
        third.progress.records_this_execution, 0,
        "nothing changed, nothing read"
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
