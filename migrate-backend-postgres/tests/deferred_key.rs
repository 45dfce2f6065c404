//! Primary keys built after the data: a table the sink creates has no key until `finalize`,
//! and the chunk-write markers that let a first write skip its range `DELETE` keep every
//! interleaving of writers free of duplicates.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use common::{admin_url, client, fresh_db};
use migrate_backend_postgres::PgSink;
use migrate_core::testing::fixture_tables;
use migrate_core::{
    Batch, BatchReader, ChunkSpec, PrepareMode, PrepareOptions, Result, Row, Schema, Sink,
    TableInfo, VecBatchReader,
};
use tokio::sync::Notify;

fn customers() -> (TableInfo, Vec<Row>) {
    let f = fixture_tables(Some("public"), 300).remove(0);
    assert_eq!(f.table.name.name, "customers");
    (f.table, f.rows)
}

async fn has_key(url: &str, table: &str) -> bool {
    client(url)
        .await
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = to_regclass($1) AND indisprimary)",
            &[&table],
        )
        .await
        .unwrap()
        .get(0)
}

async fn counts(url: &str) -> (i64, i64) {
    let row = client(url)
        .await
        .query_one("SELECT count(*), count(DISTINCT id) FROM customers", &[])
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

async fn write(sink: &PgSink, t: &TableInfo, rows: &[Row]) {
    let chunk = ChunkSpec::whole_table(t.name.clone(), rows.len() as u64);
    let mut r = VecBatchReader::from_rows(t.schema.clone(), rows.to_vec(), 100);
    sink.write_chunk(t, &chunk, &mut r).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_comes_at_finalize_and_a_rewritten_chunk_replaces_its_rows() {
    let Some(admin) = admin_url() else { return };
    let url = fresh_db(&admin, "migrate_deferred_key_a").await;
    let sink = PgSink::new(&url).unwrap();
    let (t, rows) = customers();
    sink.prepare(
        &t,
        &PrepareOptions::default(),
        &migrate_core::RunId::generate(),
    )
    .await
    .unwrap();
    assert!(
        !has_key(&url, "customers").await,
        "key built before the data"
    );

    write(&sink, &t, &rows).await; // first write: no DELETE
    write(&sink, &t, &rows).await; // the chunk again (a retry after commit): replaces
    assert_eq!(counts(&url).await, (300, 300));

    sink.finalize(&t).await.unwrap();
    assert!(
        has_key(&url, "customers").await,
        "finalize must build the key"
    );
    let left: i64 = client(&url)
        .await
        .query_one(
            "SELECT (SELECT count(*) FROM _migrate.loading) + (SELECT count(*) FROM _migrate.written)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "finalize leaves no load state behind");
    // Later writes take the ordinary path and still replace.
    write(&sink, &t, &rows).await;
    assert_eq!(counts(&url).await, (300, 300));

    // A table recreated under the same name starts a fresh load (old markers forgotten).
    let recreate = PrepareOptions {
        mode: PrepareMode::Recreate,
        ..Default::default()
    };
    sink.prepare(&t, &recreate, &migrate_core::RunId::generate())
        .await
        .unwrap();
    assert!(!has_key(&url, "customers").await);
    write(&sink, &t, &rows[..120]).await;
    assert_eq!(counts(&url).await, (120, 120));
    sink.finalize(&t).await.unwrap();
    assert!(has_key(&url, "customers").await);
}

/// Rows in the sink's load state: (tables loading with nothing to build, tables loading with
/// a key to build, chunk markers).
async fn load_state(url: &str) -> (i64, i64, i64) {
    let r = client(url)
        .await
        .query_one(
            "SELECT (SELECT count(*) FROM _migrate.loading WHERE add_key = ''),
                    (SELECT count(*) FROM _migrate.loading WHERE add_key <> ''),
                    (SELECT count(*) FROM _migrate.written)",
            &[],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

/// A bare table without its key that is not loading, as pg_dump's pre-data section leaves
/// one: created by a sink whose load state is then dropped. Returns its name as the load
/// state records it.
async fn bare_table(url: &str, t: &TableInfo) -> String {
    PgSink::new(url)
        .unwrap()
        .prepare(
            t,
            &PrepareOptions::default(),
            &migrate_core::RunId::generate(),
        )
        .await
        .unwrap();
    let c = client(url).await;
    let target: String = c
        .query_one("SELECT target FROM _migrate.loading", &[])
        .await
        .unwrap()
        .get(0);
    c.batch_execute("DELETE FROM _migrate.loading; DELETE FROM _migrate.written")
        .await
        .unwrap();
    target
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_existing_table_loads_with_markers_and_gets_no_key() {
    let Some(admin) = admin_url() else { return };
    let url = fresh_db(&admin, "migrate_deferred_key_c").await;
    let (t, rows) = customers();
    bare_table(&url, &t).await;

    let sink = PgSink::new(&url).unwrap();
    let prepared = sink
        .prepare(
            &t,
            &PrepareOptions::default(),
            &migrate_core::RunId::generate(),
        )
        .await
        .unwrap();
    assert!(!prepared.created);
    assert_eq!(
        load_state(&url).await,
        (1, 0, 0),
        "loading, nothing to build"
    );
    write(&sink, &t, &rows).await; // first write: no DELETE
    write(&sink, &t, &rows).await; // the chunk again: replaces
    assert_eq!(counts(&url).await, (300, 300));
    assert_eq!(load_state(&url).await, (1, 0, 1));
    sink.finalize(&t).await.unwrap();
    assert!(
        !has_key(&url, "customers").await,
        "the table's indexes are its owner's"
    );
    assert_eq!(load_state(&url).await, (0, 0, 0));

    // Not empty any more: preparing again (for a run that replaces its rows) marks nothing,
    // and a rewrite still replaces.
    sink.prepare(
        &t,
        &PrepareOptions {
            existing_rows: migrate_core::ExistingRows::Replace,
            ..Default::default()
        },
        &migrate_core::RunId::generate(),
    )
    .await
    .unwrap();
    assert_eq!(load_state(&url).await, (0, 0, 0));
    write(&sink, &t, &rows).await;
    assert_eq!(counts(&url).await, (300, 300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_written_just_before_loading_starts_is_cleared_when_retried() {
    let Some(admin) = admin_url() else { return };
    let url = fresh_db(&admin, "migrate_deferred_key_d").await;
    let (t, rows) = customers();
    // A bare, empty table that is not loading; another worker writes chunk 0 into it ...
    let target = bare_table(&url, &t).await;
    let sink = PgSink::new(&url).unwrap();
    let c = client(&url).await;
    write(&sink, &t, &rows).await;
    // ... right after a preparing worker found the table empty and before it marked the table
    // loading (the interleaving of two workers' prepare and write, replayed in order).
    c.execute(
        "INSERT INTO _migrate.loading (target, add_key) VALUES ($1, '')",
        &[&target],
    )
    .await
    .unwrap();
    // The retry must clear the chunk's range, not take it for a first write.
    write(&sink, &t, &rows).await;
    assert_eq!(counts(&url).await, (300, 300));
}

/// Yields its rows, then waits for `release` before ending, holding the write open.
struct HeldReader {
    schema: Arc<Schema>,
    rows: Option<Vec<Row>>,
    started: Arc<Notify>,
    release: Arc<Notify>,
}

#[async_trait]
impl BatchReader for HeldReader {
    fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    async fn next_batch(&mut self) -> Result<Option<Batch>> {
        match self.rows.take() {
            Some(rows) => Ok(Some(Batch::new(self.schema.clone(), rows))),
            None => {
                self.started.notify_one();
                self.release.notified().await;
                Ok(None)
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_writer_and_its_successor_never_duplicate_a_chunk() {
    let Some(admin) = admin_url() else { return };
    let url = fresh_db(&admin, "migrate_deferred_key_b").await;
    let sink = Arc::new(PgSink::new(&url).unwrap());
    let (t, rows) = customers();
    sink.prepare(
        &t,
        &PrepareOptions::default(),
        &migrate_core::RunId::generate(),
    )
    .await
    .unwrap();

    // Writer A (whose lease will have lapsed) has sent its rows but not committed when
    // writer B, the chunk's new owner, writes the same chunk.
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let a = {
        let (sink, t, rows) = (sink.clone(), t.clone(), rows.clone());
        let mut reader = HeldReader {
            schema: t.schema.clone(),
            rows: Some(rows.clone()),
            started: started.clone(),
            release: release.clone(),
        };
        tokio::spawn(async move {
            let chunk = ChunkSpec::whole_table(t.name.clone(), rows.len() as u64);
            sink.write_chunk(&t, &chunk, &mut reader).await
        })
    };
    let mut a = a;
    tokio::select! {
        _ = started.notified() => {}
        r = &mut a => panic!("writer A ended before holding its write open: {r:?}"),
    }
    let b = {
        let (sink, t, rows) = (sink.clone(), t.clone(), rows.clone());
        tokio::spawn(async move { write(&sink, &t, &rows).await })
    };
    // B must wait for A's transaction: give it time to get there, then let A commit.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !b.is_finished(),
        "B must wait for A's uncommitted write of the chunk"
    );
    release.notify_one();
    a.await.unwrap().unwrap();
    b.await.unwrap();
    assert_eq!(counts(&url).await, (300, 300));

    // A worker that prepares a table another worker left loading builds its key at once, so
    // its own writes clear their ranges.
    let other = PgSink::new(&url).unwrap();
    other
        .prepare(
            &t,
            &PrepareOptions {
                existing_rows: migrate_core::ExistingRows::Replace,
                ..Default::default()
            },
            &migrate_core::RunId::generate(),
        )
        .await
        .unwrap();
    assert!(has_key(&url, "customers").await);
    write(&other, &t, &rows).await;
    assert_eq!(counts(&url).await, (300, 300));
}
