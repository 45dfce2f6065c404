//! Rows already in the target (refused, merged, rolled back) and a migration run again (nothing
//! to do, then a refresh with the target's foreign keys in place), on real Postgres.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use std::sync::Arc;

use migrate_backend_postgres::{PgSink, PgSource};
use migrate_checkpoint_sqlite::SqliteCheckpointStore;
use migrate_core::testing::sample_dataset;
use migrate_core::{
    ErrorKind, ExecutorConfig, ExistingRows, KeyRange, Migration, Mode, Sink, Source,
};

fn migration(
    src: &str,
    dst: &str,
    store: Arc<SqliteCheckpointStore>,
    c: ExecutorConfig,
) -> Migration {
    Migration::new(
        Arc::new(PgSource::new(src).unwrap()),
        Arc::new(PgSink::new(dst).unwrap()),
        store,
    )
    .with_config(c)
}

fn cfg(name: &str) -> ExecutorConfig {
    ExecutorConfig {
        migration: name.into(),
        parallelism: 2,
        chunk_rows: 40,
        ..Default::default()
    }
}

async fn count(url: &str, table: &str) -> i64 {
    common::client(url)
        .await
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

async fn tables_in(url: &str) -> i64 {
    common::client(url)
        .await
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Every source table equals its target table by count and canonical checksum.
async fn assert_target_equals_source(src: &str, dst: &str) {
    let (source, sink) = (PgSource::new(src).unwrap(), PgSink::new(dst).unwrap());
    for t in source.discover(&Default::default()).await.unwrap() {
        let a = source.checksum(&t, &KeyRange::all()).await.unwrap();
        let b = sink.checksum(&t, &KeyRange::all()).await.unwrap();
        assert_eq!(a, b, "{}", t.name);
    }
}

/// Two fresh databases, the sample dataset's rows (loaded into neither yet) and a checkpoint store.
struct Setup {
    src: String,
    dst: String,
    data: Vec<migrate_core::testing::Fixture>,
    store: Arc<SqliteCheckpointStore>,
    _dir: tempfile::TempDir,
}

async fn setup(name: &str) -> Option<Setup> {
    let admin = common::admin_url()?;
    let src = common::fresh_db(&admin, &format!("migrate_t_{name}_src")).await;
    let dst = common::fresh_db(&admin, &format!("migrate_t_{name}_dst")).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteCheckpointStore::open(dir.path().join("m.db"))
            .await
            .unwrap(),
    );
    Some(Setup {
        src,
        dst,
        data: sample_dataset("public", 0.002),
        store,
        _dir: dir,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_already_in_the_target_are_refused_then_merged_and_rolled_back() {
    let Some(Setup {
        src,
        dst,
        data,
        store,
        _dir,
    }) = setup("exist").await
    else {
        return;
    };
    common::load(&src, &data).await;
    // The target already has customers 1, 2 and 999999 (not in the source), changed.
    common::load(&dst, &data[..1]).await;
    common::client(&dst)
        .await
        .batch_execute(
            "DELETE FROM public.customers WHERE id > 2;
             CREATE TEMP TABLE extra AS SELECT * FROM public.customers WHERE id = 1;
             UPDATE extra SET id = 999999;
             INSERT INTO public.customers SELECT * FROM extra;
             UPDATE public.customers SET name = 'target only' WHERE id IN (2, 999999);",
        )
        .await
        .unwrap();

    // The dry run names the table, its rows and what the run would do.
    let mut dry = cfg("exist");
    dry.mode = Mode::DryRun;
    let plan = migration(&src, &dst, store.clone(), dry)
        .run()
        .await
        .unwrap();
    let p = plan
        .preflight
        .iter()
        .find(|p| p.table.name == "customers")
        .unwrap();
    assert_eq!(p.target_rows, Some(3));
    assert!(
        p.action.contains("refuse") && !p.problems.is_empty(),
        "{p:?}"
    );
    assert!(
        !plan.succeeded(),
        "a plan that would be refused is not ready"
    );

    // The default refuses before anything is written, naming the table and its rows.
    let e = migration(&src, &dst, store.clone(), cfg("exist"))
        .run()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(
        e.to_string().contains("public.customers (3 rows)")
            && e.to_string().contains("prepare.existing_rows"),
        "{e}"
    );
    assert_eq!(count(&dst, "public.customers").await, 3);
    assert_eq!(tables_in(&dst).await, 1, "nothing else was created");

    // Merge with a backup: source rows in, the target-only row kept.
    let mut merge = cfg("exist");
    merge.prepare.existing_rows = ExistingRows::Merge;
    merge.prepare.backup = true;
    let m = migration(&src, &dst, store.clone(), merge);
    let report = m.clone().run().await.unwrap();
    assert!(report.succeeded(), "{}", report.to_markdown());
    let source_customers = data[0].rows.len() as i64;
    assert_eq!(count(&dst, "public.customers").await, source_customers + 1);
    let kept: String = common::client(&dst)
        .await
        .query_one("SELECT name FROM public.customers WHERE id = 999999", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, "target only");
    let v = report
        .verification
        .tables
        .iter()
        .find(|v| v.table.name == "customers")
        .unwrap();
    assert!(
        v.not_compared.is_some(),
        "merged ranges are not claimed as compared"
    );

    // Rollback puts the three rows back, as they were, and drops what the run created.
    let rb = m.rollback(None, false).await.unwrap();
    assert!(rb.executed && rb.feasible, "{rb:?}");
    assert_eq!(count(&dst, "public.customers").await, 3);
    let names: Vec<String> = common::client(&dst)
        .await
        .query("SELECT name FROM public.customers ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names[1..], ["target only", "target only"]);
    assert_eq!(
        tables_in(&dst).await,
        1,
        "created tables and the backup are gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_migration_run_again_does_nothing_and_a_refresh_works_with_its_foreign_keys() {
    let Some(Setup {
        src,
        dst,
        data,
        store,
        _dir,
    }) = setup("again").await
    else {
        return;
    };
    common::load(&src, &data).await;
    let first = migration(&src, &dst, store.clone(), cfg("again"))
        .run()
        .await
        .unwrap();
    assert!(first.succeeded(), "{}", first.to_markdown());
    let fks: i64 = common::client(&dst)
        .await
        .query_one(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(fks > 0, "the run created foreign keys");

    // The source changes: an order (a parent of transactions) and its transactions go, a
    // customer changes.
    common::client(&src)
        .await
        .batch_execute(
            "DELETE FROM public.transactions WHERE order_id = 3;
             DELETE FROM public.orders WHERE id = 3;
             UPDATE public.customers SET name = 'renamed' WHERE id = 1;",
        )
        .await
        .unwrap();

    // Running the completed migration again: nothing to do, nothing written.
    let second = migration(&src, &dst, store.clone(), cfg("again"))
        .run()
        .await
        .unwrap();
    assert!(second.succeeded());
    assert_eq!(second.execution_id, first.execution_id);
    assert!(second.reconciliation.join(" ").contains("nothing to do"));
    assert_eq!(
        count(&dst, "public.customers").await,
        data[0].rows.len() as i64,
        "the target was left alone"
    );

    // A refresh: every table rewritten, parents before children, with the foreign keys back.
    let mut refresh = cfg("again");
    refresh.refresh = true;
    let third = migration(&src, &dst, store.clone(), refresh)
        .run()
        .await
        .unwrap();
    assert!(third.succeeded(), "{}", third.to_markdown());
    assert_ne!(third.execution_id, first.execution_id);
    assert_target_equals_source(&src, &dst).await;
    let after: i64 = common::client(&dst)
        .await
        .query_one(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(after, fks, "the foreign keys are back");
}

async fn foreign_keys(url: &str) -> Vec<(String, String)> {
    common::client(url)
        .await
        .query(
            "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'f' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_sets_foreign_keys_aside_and_rollback_restores_rows_and_keys() {
    let Some(Setup {
        src,
        dst,
        data,
        store,
        _dir,
    }) = setup("replace").await
    else {
        return;
    };
    common::load(&src, &data).await;
    // The target holds an older copy: renamed customers, and a customer and an order of its own
    // (the order references the customer through the target's foreign key).
    common::load(&dst, &data).await;
    common::client(&dst)
        .await
        .batch_execute(
            "UPDATE public.customers SET name = 'old name';
             CREATE TEMP TABLE c AS SELECT * FROM public.customers WHERE id = 1;
             UPDATE c SET id = 999999;
             INSERT INTO public.customers SELECT * FROM c;
             CREATE TEMP TABLE o AS SELECT * FROM public.orders WHERE id = 1;
             UPDATE o SET id = 999999, customer_id = 999999;
             INSERT INTO public.orders SELECT * FROM o;",
        )
        .await
        .unwrap();
    let keys_before = foreign_keys(&dst).await;
    assert!(!keys_before.is_empty());
    let mut c = cfg("replace");
    c.prepare.existing_rows = ExistingRows::Replace;
    c.prepare.backup = true;
    let m = migration(&src, &dst, store, c);
    let report = m.clone().run().await.unwrap();
    assert!(report.succeeded(), "{}", report.to_markdown());
    assert_target_equals_source(&src, &dst).await;
    assert_eq!(
        foreign_keys(&dst).await,
        keys_before,
        "the foreign keys are back as they were"
    );

    let rb = m.rollback(None, false).await.unwrap();
    assert!(rb.executed, "{rb:?}");
    let c = common::client(&dst).await;
    let old: i64 = c
        .query_one(
            "SELECT count(*) FROM public.customers WHERE name = 'old name'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(old, data[0].rows.len() as i64 + 1, "every old row is back");
    let order: i64 = c
        .query_one(
            "SELECT customer_id FROM public.orders WHERE id = 999999",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(order, 999999);
    assert_eq!(foreign_keys(&dst).await, keys_before);
    assert_eq!(
        tables_in(&dst).await,
        data.len() as i64,
        "the backups are gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_rows_that_other_tables_cascade_from_is_refused() {
    let Some(Setup {
        src,
        dst,
        data,
        store,
        _dir,
    }) = setup("cascade").await
    else {
        return;
    };
    common::load(&src, &data[..1]).await;
    common::load(&dst, &data[..1]).await;
    common::client(&dst)
        .await
        .batch_execute(
            "CREATE TABLE public.notes (customer_id bigint REFERENCES public.customers ON DELETE CASCADE);
             INSERT INTO public.notes VALUES (1), (2);",
        )
        .await
        .unwrap();
    let mut c = cfg("cascade");
    c.prepare.existing_rows = ExistingRows::Replace;
    let report = migration(&src, &dst, store, c).run().await.unwrap();
    assert!(!report.succeeded());
    let md = report.to_markdown();
    assert!(md.contains("ON DELETE") && md.contains("notes"), "{md}");
    assert_eq!(count(&dst, "public.notes").await, 2, "no note was deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_run_loads_the_deferred_tables_under_the_first_runs_foreign_keys() {
    let Some(Setup {
        src,
        dst,
        data,
        store,
        _dir,
    }) = setup("follow").await
    else {
        return;
    };
    common::load(&src, &data).await;
    // A window nothing fits in: the critical parents load, every other table is deferred.
    let mut first = cfg("follow");
    first.window = Some(std::time::Duration::from_millis(1));
    first.bandwidth_target = Some(100_000_000);
    for t in ["public.customers", "public.products", "public.orders"] {
        first
            .priorities
            .insert(t.into(), migrate_core::plan::Priority::Critical);
    }
    let a = migration(&src, &dst, store.clone(), first.clone())
        .run()
        .await
        .unwrap();
    let deferred: Vec<String> = a
        .results
        .iter()
        .filter(|r| r.status == migrate_core::TableStatus::Deferred)
        .map(|r| r.table.to_string())
        .collect();
    assert!(
        a.status == migrate_core::RunStatus::Completed && deferred.len() >= 3,
        "{}",
        a.to_markdown()
    );
    let orders_fk: i64 = common::client(&dst)
        .await
        .query_one(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid = 'public.orders'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        orders_fk > 0,
        "the first run created the orders' foreign keys"
    );
    // Which transaction last wrote each completed table's rows: the follow-up must not.
    let written_by = || async {
        let c = common::client(&dst).await;
        let mut out = Vec::new();
        for t in ["public.customers", "public.products", "public.orders"] {
            let x: i64 = c
                .query_one(&format!("SELECT max(xmin::text::bigint) FROM {t}"), &[])
                .await
                .unwrap()
                .get(0);
            out.push(x);
        }
        out
    };
    let before = written_by().await;
    // The follow-up, without the window: the deferred tables, and nothing else.
    let mut follow = first;
    follow.window = None;
    follow.bandwidth_target = None;
    let b = migration(&src, &dst, store, follow).run().await.unwrap();
    assert!(b.succeeded(), "{}", b.to_markdown());
    assert_eq!(b.execution_id, a.execution_id, "the same run, followed up");
    assert_eq!(
        written_by().await,
        before,
        "the completed tables were left alone"
    );
    for t in &deferred {
        let r = b
            .results
            .iter()
            .find(|r| r.table.to_string() == *t)
            .unwrap();
        assert_eq!(r.status, migrate_core::TableStatus::Completed, "{t}");
    }
    assert_target_equals_source(&src, &dst).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merging_into_a_table_without_a_unique_key_is_refused_before_any_write() {
    let Some(Setup {
        src,
        dst,
        data,
        store,
        _dir,
    }) = setup("nokey").await
    else {
        return;
    };
    common::load(&src, &data[..1]).await;
    common::load(&dst, &data[..1]).await;
    common::client(&dst)
        .await
        .batch_execute(
            "CREATE TABLE public.plain AS TABLE public.customers;
             DROP TABLE public.customers;
             ALTER TABLE public.plain RENAME TO customers;",
        )
        .await
        .unwrap();
    let mut c = cfg("nokey");
    c.prepare.existing_rows = ExistingRows::Merge;
    c.prepare.backup = true;
    let report = migration(&src, &dst, store, c).run().await.unwrap();
    assert!(!report.succeeded());
    let md = report.to_markdown();
    assert!(md.contains("no unique key on (id)"), "{md}");
    assert_eq!(
        count(&dst, "public.customers").await,
        data[0].rows.len() as i64,
        "nothing was written"
    );
    assert_eq!(tables_in(&dst).await, 1, "no backup was left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_ddl_names_the_targets_own_types() {
    let Some(Setup {
        src,
        dst,
        data,
        store,
        _dir,
    }) = setup("drift").await
    else {
        return;
    };
    common::load(&src, &data[..1]).await;
    common::load(&dst, &data[..1]).await;
    common::client(&src)
        .await
        .batch_execute(
            "ALTER TABLE public.customers ADD COLUMN payload jsonb, ADD COLUMN raw bytea, ADD COLUMN n bigint",
        )
        .await
        .unwrap();
    let mut c = cfg("drift");
    c.mode = Mode::DryRun;
    let report = migration(&src, &dst, store, c).run().await.unwrap();
    let actions: Vec<&str> = report.drift.iter().map(|d| d.action.as_str()).collect();
    let all = actions.join("\n");
    for ddl in ["payload jsonb", "raw bytea", "n bigint"] {
        assert!(all.contains(ddl), "{ddl} in:\n{all}");
    }
    assert!(!all.contains("int64") && !all.contains("bytes"), "{all}");
}
