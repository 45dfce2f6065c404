//! The shop fixture applied to a real Postgres through `PgSink`: every table created with the
//! columns the conversion says (the target's own description), checkpointed in a SQLite-free
//! in-memory store; run again, nothing is touched (same table OIDs); a table dropped behind the
//! store's back is redone and said so.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

use std::path::Path;

use migrate_backend_postgres::PgSink;
use migrate_core::testing::{service_env, MemoryCheckpointStore};
use migrate_core::Sink;
use migrate_ddl::{apply, progress_text, read_dir, ApplyConfig, Event, Options};

async fn client(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    c
}

async fn fresh_db(admin: &str, name: &str) -> String {
    let c = client(admin).await;
    c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .unwrap();
    c.batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b.to_string(), format!("?{q}")),
        None => (admin.to_string(), String::new()),
    };
    let root = &base[..base.rfind('/').unwrap()];
    format!("{root}/{name}{query}")
}

async fn oids(url: &str) -> Vec<(String, u32)> {
    client(url)
        .await
        .query(
            "SELECT relname::text, oid FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p') ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shop_schema_lands_in_postgres_and_a_second_run_touches_nothing() {
    let Some(admin) = service_env("MIGRATE_TEST_PG_URL") else {
        return;
    };
    let url = fresh_db(&admin, "migrate_t_ddl_shop").await;
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/shop"));
    let conv = read_dir(
        dir,
        &Options {
            skip_unreadable: true,
        },
    )
    .unwrap();
    let sink = PgSink::new(&url).unwrap();
    let store = MemoryCheckpointStore::new();
    let cfg = ApplyConfig {
        migration: "shop".into(),
        ..Default::default()
    };
    let report = apply(&conv, &sink, &store, &cfg, &mut |_: &Event| {})
        .await
        .unwrap();
    assert!(report.succeeded(), "{}", progress_text(&report, None));
    assert_eq!(report.completed.len(), 30);
    for t in &conv.tables {
        let described = sink.describe(&t.info).await.unwrap().expect("created");
        let names = |i: &migrate_core::TableInfo| -> Vec<String> {
            i.schema.columns.iter().map(|c| c.name.clone()).collect()
        };
        assert_eq!(names(&described), names(&t.info), "{}", t.info.name);
    }
    let before = oids(&url).await;
    assert!(before.len() >= 30, "{before:?}");

    let again = apply(&conv, &sink, &store, &cfg, &mut |_: &Event| {})
        .await
        .unwrap();
    assert!(again.succeeded());
    assert_eq!(oids(&url).await, before, "a second run touches nothing");

    client(&url)
        .await
        .batch_execute("DROP TABLE public.review_votes")
        .await
        .unwrap();
    let redone = apply(&conv, &sink, &store, &cfg, &mut |_: &Event| {})
        .await
        .unwrap();
    assert!(redone.succeeded(), "{}", progress_text(&redone, None));
    assert!(
        redone.reconciled.iter().any(|r| r.contains("review_votes")),
        "{:?}",
        redone.reconciled
    );
    let after = oids(&url).await;
    let changed: Vec<&String> = after
        .iter()
        .filter(|(n, oid)| !before.contains(&(n.clone(), *oid)))
        .map(|(n, _)| n)
        .collect();
    assert_eq!(changed, ["review_votes"], "only the lost table again");
}
