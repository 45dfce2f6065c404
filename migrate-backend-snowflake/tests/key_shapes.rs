//! Keys whose shape changes how a chunk may land:
//!
//! - a text key's ranges were cut in the source's order (a Postgres collation puts `B` after
//!   `b`; Snowflake's code points put it before `a`), so a chunk must not clear its range in
//!   Snowflake's order — it would delete a row another chunk wrote — and upserts by key instead;
//! - a table whose every column is in its key has nothing to update, and rewriting a chunk of
//!   it still counts every row as written.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use migrate_backend_snowflake::SfSink;
use migrate_core::{
    ChunkSpec, Column, DataType, KeyRange, PrepareMode, PrepareOptions, RowChecksum, RunId, Schema,
    Sink, TableInfo, TableName, Value, VecBatchReader,
};

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

#[tokio::test]
async fn a_text_keyed_chunk_does_not_clear_rows_another_chunk_wrote() {
    let Some(endpoint) = common::endpoint("MIGRATE_KEY_SHAPES", "TEXT_KEYS") else {
        return;
    };
    let sink = SfSink::new(endpoint).unwrap();
    let columns = vec![
        Column::new("code", DataType::text()).not_null(),
        Column::new("n", DataType::Int64),
    ];
    let t = TableInfo::new(
        TableName::new("text_keys", "codes"),
        Schema::new(columns, &["code"]).unwrap(),
    );
    let recreate = PrepareOptions {
        mode: PrepareMode::Recreate,
        ..Default::default()
    };
    sink.prepare(&t, &recreate, &RunId::generate())
        .await
        .unwrap();
    let write = |index: u32, range: KeyRange, rows: Vec<Vec<Value>>| {
        let (sink, t) = (&sink, &t);
        async move {
            let chunk = ChunkSpec {
                table: t.name.clone(),
                index,
                range,
                estimated_rows: rows.len() as u64,
                operation: migrate_core::Operation::CopyRows,
            };
            let mut reader = VecBatchReader::from_rows(t.schema.clone(), rows, 10);
            sink.write_chunk(t, &chunk, &mut reader).await.unwrap();
        }
    };
    // Cut in a collation's order: chunk 1 = [b, ∞) holds B and c, chunk 0 = (-∞, b) holds a.
    let b = Some(vec![text("b")]);
    let rows1 = vec![
        vec![text("B"), Value::Int64(2)],
        vec![text("c"), Value::Int64(3)],
    ];
    let rows0 = vec![vec![text("a"), Value::Int64(1)]];
    let all: Vec<Vec<Value>> = rows0.iter().chain(&rows1).cloned().collect();
    write(1, KeyRange::between(b.clone(), None), rows1.clone()).await;
    // Chunk 0 after chunk 1, and again (a retry): B, which Snowflake orders inside chunk 0's
    // range, is chunk 1's row and stays.
    for _ in 0..2 {
        write(0, KeyRange::between(None, b.clone()), rows0.clone()).await;
        assert_eq!(
            sink.checksum(&t, &KeyRange::all()).await.unwrap(),
            RowChecksum::of_rows(&all),
            "B, written by chunk 1, survives chunk 0"
        );
    }
}

#[tokio::test]
async fn a_table_keyed_by_every_column_rewrites_its_chunks() {
    let Some(endpoint) = common::endpoint("MIGRATE_KEY_SHAPES", "ALL_KEYS") else {
        return;
    };
    let sink = SfSink::new(endpoint).unwrap();
    let columns = vec![
        Column::new("a", DataType::Int64).not_null(),
        Column::new("b", DataType::Int64).not_null(),
    ];
    let t = TableInfo::new(
        TableName::new("all_keys", "pairs"),
        Schema::new(columns, &["a", "b"]).unwrap(),
    );
    let recreate = PrepareOptions {
        mode: PrepareMode::Recreate,
        ..Default::default()
    };
    sink.prepare(&t, &recreate, &RunId::generate())
        .await
        .unwrap();
    let rows: Vec<Vec<Value>> = (0..20)
        .map(|i| vec![Value::Int64(i / 4), Value::Int64(i % 4)])
        .collect();
    let chunk = ChunkSpec::whole_table(t.name.clone(), 20);
    for _ in 0..2 {
        let mut reader = VecBatchReader::from_rows(t.schema.clone(), rows.clone(), 7);
        let stats = sink.write_chunk(&t, &chunk, &mut reader).await.unwrap();
        assert_eq!(stats.rows, 20);
    }
    assert_eq!(
        sink.checksum(&t, &KeyRange::all()).await.unwrap(),
        RowChecksum::of_rows(&rows)
    );
}
