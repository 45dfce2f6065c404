//! A chunk lands by one statement (a `MERGE` from a staging table of its attempt's own), so
//! nothing of it is visible until that statement ran. Here a chunk's work is cut off before
//! its commit — a session deleting the range and inserting rows in a transaction, abandoned as
//! a killed process leaves it: nothing of it is visible (the rows that were there stay, the new
//! ones are not there); once that transaction ends, the chunk written again holds exactly its
//! rows once — from one JSON text, from several bound one after another, or from several files
//! through the stage. A transaction
//! whose check fails before its commit is rolled back.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use migrate_backend_snowflake::sql::{chunk_json, insert_from_json};
use migrate_backend_snowflake::{Binding, Load, SfClient, SfSink};
use migrate_core::testing::fixture_tables;
use migrate_core::{
    ChunkSpec, KeyRange, PrepareMode, PrepareOptions, RowChecksum, RunId, Sink, Value,
    VecBatchReader,
};

#[tokio::test]
async fn an_interrupted_chunk_leaves_nothing_and_its_replay_converges() {
    let Some(endpoint) = common::endpoint("MIGRATE_CHUNK_TX", "PUBLIC") else {
        return;
    };
    let sink = SfSink::new(endpoint.clone()).unwrap();
    let fixture = fixture_tables(None, 60).swap_remove(0);
    let (t, rows) = (fixture.table, fixture.rows);
    let recreate = PrepareOptions {
        mode: PrepareMode::Recreate,
        ..Default::default()
    };
    sink.prepare(&t, &recreate, &RunId::generate())
        .await
        .unwrap();
    let bound = |k: i64| Some(vec![Value::Int64(k)]);
    let chunk = ChunkSpec {
        table: t.name.clone(),
        index: 1,
        range: KeyRange::between(bound(21), bound(41)),
        estimated_rows: 20,
        operation: migrate_core::Operation::CopyRows,
    };
    let in_chunk: Vec<_> = rows
        .iter()
        .filter(|r| chunk.range.contains(&t.schema.key_of(r)))
        .cloned()
        .collect();
    let write = |rows: Vec<Vec<Value>>| {
        let (sink, t, chunk) = (&sink, &t, &chunk);
        async move {
            let mut reader = VecBatchReader::from_rows(t.schema.clone(), rows, 7);
            sink.write_chunk(t, chunk, &mut reader).await.unwrap()
        }
    };
    let stale: Vec<_> = in_chunk[..5].to_vec();
    write(stale.clone()).await;
    let target = "\"MIGRATE_CHUNK_TX\".\"PUBLIC\".\"CUSTOMERS\"";
    let checksum = || async { sink.checksum(&t, &chunk.range).await.unwrap() };
    assert_eq!(checksum().await, RowChecksum::of_rows(&stale));

    // The chunk's transaction, cut off after its delete and insert: the session is abandoned
    // without COMMIT, as a SIGKILL leaves it.
    let client = SfClient::new(endpoint).unwrap();
    let cut = client.session().await.unwrap();
    cut.query("BEGIN", &[]).await.unwrap();
    let predicate = migrate_backend_snowflake::sql::range_predicate(&["id"], &chunk.range).unwrap();
    cut.query(&format!("DELETE FROM {target} WHERE {predicate}"), &[])
        .await
        .unwrap();
    let text = chunk_json(&t.name, &t.schema.columns, &in_chunk).unwrap();
    let insert = insert_from_json(&t.name, target, &t.schema.columns).unwrap();
    let r = cut.query(&insert, &[Binding::text(text)]).await.unwrap();
    assert_eq!(r.affected(), Some(in_chunk.len() as u64));
    // Seen from anywhere else, nothing happened.
    assert_eq!(
        checksum().await,
        RowChecksum::of_rows(&stale),
        "uncommitted work is invisible"
    );
    // A transaction left open holds its locks until it ends: Snowflake aborts a detached one
    // after four hours idle (or at once with SYSTEM$ABORT_TRANSACTION); here its session is
    // closed, which rolls it back.
    cut.close().await;
    assert_eq!(
        checksum().await,
        RowChecksum::of_rows(&stale),
        "rolled back, nothing of it"
    );

    // The chunk written again: exactly its rows, once.
    write(in_chunk.clone()).await;
    assert_eq!(checksum().await, RowChecksum::of_rows(&in_chunk));
    assert_eq!(
        sink.checksum(&t, &KeyRange::all()).await.unwrap(),
        RowChecksum::of_rows(&in_chunk),
        "nothing outside the chunk's range"
    );

    // The same chunk with texts of about three rows each: staged by several INSERTs and moved
    // by one MERGE, over the rows written before — exactly the rows again.
    // Then the same through the stage — the default for a chunk of several texts: one
    // gzipped file per text under the attempt's own directory, one COPY, the same MERGE.
    for load in [Load::Bind, Load::Auto] {
        let small = SfSink::new(common::endpoint("MIGRATE_CHUNK_TX", "PUBLIC").unwrap())
            .unwrap()
            .with_text_bytes(600)
            .with_load(load);
        let changed: Vec<_> = in_chunk.iter().skip(2).cloned().collect();
        let mut reader = VecBatchReader::from_rows(t.schema.clone(), changed.clone(), 7);
        let stats = small.write_chunk(&t, &chunk, &mut reader).await.unwrap();
        assert_eq!(stats.rows, changed.len() as u64);
        assert_eq!(
            checksum().await,
            RowChecksum::of_rows(&changed),
            "written in parts ({load:?})"
        );
        let mut reader = VecBatchReader::from_rows(t.schema.clone(), in_chunk.clone(), 7);
        small.write_chunk(&t, &chunk, &mut reader).await.unwrap();
        assert_eq!(
            checksum().await,
            RowChecksum::of_rows(&in_chunk),
            "and again ({load:?})"
        );
        // Re-attempted after its COPY and MERGE committed but before the checkpoint (a crash
        // in between): the new attempt's files have new names, so COPY loads them (a skipped
        // file would fail the attempt's count check), and the MERGE leaves every row once.
        let mut reader = VecBatchReader::from_rows(t.schema.clone(), in_chunk.clone(), 7);
        let again = small.write_chunk(&t, &chunk, &mut reader).await.unwrap();
        assert_eq!(
            again.rows,
            in_chunk.len() as u64,
            "{load:?}: loaded, not skipped"
        );
        assert_eq!(
            checksum().await,
            RowChecksum::of_rows(&in_chunk),
            "re-attempted: no row twice, none missing ({load:?})"
        );
    }

    // A transaction whose check fails before COMMIT (here: an insert count other than the rows
    // sent) is rolled back: the range keeps what it held.
    let failed = sink
        .pool()
        .transaction(
            &[(
                format!("DELETE FROM {target} WHERE {predicate}"),
                Vec::new(),
            )],
            |_| Err(migrate_core::Error::fatal("the check refused the commit")),
        )
        .await;
    assert!(failed.is_err());
    assert_eq!(
        checksum().await,
        RowChecksum::of_rows(&in_chunk),
        "rolled back"
    );
}
