//! The sink's exactly-once step on the emulator, through the REST client: a chunk's rows are
//! loaded into a staging table of their own, then one MERGE replaces the chunk's key range in
//! the target with them — run twice (a crash between the target's commit and the checkpoint)
//! it leaves the same rows; run with other rows it leaves exactly those, and rows outside the
//! range stay.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use common::client;
use migrate_backend_bigquery::client::BqClient;
use serde_json::json;

fn ndjson(rows: &[(i64, &str)]) -> Vec<u8> {
    rows.iter()
        .map(|(id, v)| format!("{}\n", json!({"id": id, "v": v})))
        .collect::<String>()
        .into_bytes()
}

const FIELDS: &str =
    r#"[{"name":"id","type":"INT64","mode":"REQUIRED"},{"name":"v","type":"STRING"}]"#;

/// The rows of `d.t`, by id.
async fn rows(c: &BqClient, d: &str) -> Vec<(i64, String)> {
    let r = c
        .query(&format!("SELECT id, v FROM `{d}.t` ORDER BY id"))
        .await
        .unwrap();
    r.rows
        .iter()
        .map(|row| {
            (
                row[0].as_str().unwrap().parse().unwrap(),
                row[1].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Replaces the key range [lo, hi) of `d.t` with the rows of `d.stg`: the sink's one statement.
fn merge(d: &str, lo: i64, hi: i64) -> String {
    format!(
        "MERGE `{d}.t` T USING (SELECT id, v FROM `{d}.stg`) S ON FALSE
         WHEN NOT MATCHED BY SOURCE AND T.id >= {lo} AND T.id < {hi} THEN DELETE
         WHEN NOT MATCHED THEN INSERT (id, v) VALUES (S.id, S.v)"
    )
}

#[tokio::test]
async fn a_chunk_replaced_by_one_merge_holds_exactly_its_rows_however_often_it_is_written() {
    let Some(c) = client() else { return };
    let d = "migrate_chunk_replace";
    c.create_dataset(d).await.unwrap();
    assert!(
        !c.create_dataset(d).await.unwrap(),
        "a second create finds it"
    );
    c.delete_table(d, "t").await.unwrap();
    let fields: serde_json::Value = serde_json::from_str(FIELDS).unwrap();
    assert!(c.create_table(d, "t", fields.clone()).await.unwrap());
    assert!(!c.create_table(d, "t", fields.clone()).await.unwrap());

    // Another chunk's row, outside the range [1, 100).
    c.load_ndjson(d, "stg", fields.clone(), ndjson(&[(150, "other chunk")]))
        .await
        .unwrap();
    c.query(&merge(d, 100, 200)).await.unwrap();

    let first: Vec<(i64, &str)> = (1..=10).map(|i| (i, "first")).collect();
    let loaded = c
        .load_ndjson(d, "stg", fields.clone(), ndjson(&first))
        .await
        .unwrap();
    assert!(loaded >= 10, "the load reports its rows ({loaded})");
    let m = c.query(&merge(d, 1, 100)).await.unwrap();
    assert_eq!(m.affected, Some(10));
    let want: Vec<(i64, String)> = (1..=10)
        .map(|i| (i, "first".to_string()))
        .chain([(150, "other chunk".to_string())])
        .collect();
    assert_eq!(rows(&c, d).await, want);

    // Written again, as after a crash between the commit and the checkpoint: the same rows.
    c.query(&merge(d, 1, 100)).await.unwrap();
    assert_eq!(rows(&c, d).await, want);

    // Rewritten from a source that changed: exactly the new rows in the range.
    let second: Vec<(i64, &str)> = (1..=10)
        .filter(|i| *i != 5)
        .map(|i| (i, "second"))
        .collect();
    c.load_ndjson(d, "stg", fields.clone(), ndjson(&second))
        .await
        .unwrap();
    c.query(&merge(d, 1, 100)).await.unwrap();
    let want: Vec<(i64, String)> = (1..=10)
        .filter(|i| *i != 5)
        .map(|i| (i, "second".to_string()))
        .chain([(150, "other chunk".to_string())])
        .collect();
    assert_eq!(rows(&c, d).await, want);

    assert!(c.delete_table(d, "stg").await.unwrap());
    assert!(
        !c.delete_table(d, "stg").await.unwrap(),
        "a second drop finds nothing"
    );
}

#[tokio::test]
async fn failed_statements_and_loads_are_classified_errors_naming_what_was_done() {
    let Some(c) = client() else { return };
    let d = "migrate_chunk_errors";
    c.create_dataset(d).await.unwrap();
    let e = c
        .query(&format!("SELECT * FROM `{d}.no_such_table`"))
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("query"), "{e}");
    let fields: serde_json::Value = serde_json::from_str(FIELDS).unwrap();
    // A row that does not fit the schema: the load fails whole.
    let e = c
        .load_ndjson(d, "bad", fields, b"{\"id\": \"not a number\"}\n".to_vec())
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(
        e.to_string().contains("loading migrate_chunk_errors.bad"),
        "{e}"
    );
}

/// A text key's chunk ranges were cut in the source's order (a Postgres collation puts `B`
/// after `b`; BigQuery's code points put it before `a`): a chunk must not clear its range in
/// BigQuery's order — it would delete a row another chunk wrote — and upserts by key instead.
#[tokio::test]
async fn a_text_keyed_chunk_does_not_clear_rows_another_chunk_wrote() {
    use migrate_backend_bigquery::BqSink;
    use migrate_core::{
        ChunkSpec, Column, DataType, KeyRange, PrepareMode, PrepareOptions, RowChecksum, RunId,
        Schema, Sink, TableInfo, TableName, Value, VecBatchReader,
    };
    let Some(endpoint) = common::endpoint() else {
        return;
    };
    let sink = BqSink::new(endpoint, "migrate_text_keys").unwrap();
    let columns = vec![
        Column::new("code", DataType::text()).not_null(),
        Column::new("n", DataType::Int64),
    ];
    let t = TableInfo::new(
        TableName::new("public", "codes"),
        Schema::new(columns, &["code"]).unwrap(),
    );
    let recreate = PrepareOptions {
        mode: PrepareMode::Recreate,
        ..Default::default()
    };
    sink.prepare(&t, &recreate, &RunId::generate())
        .await
        .unwrap();
    let text = |s: &str| Value::Text(s.into());
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
    let b = Some(vec![text("b")]);
    let rows1 = vec![
        vec![text("B"), Value::Int64(2)],
        vec![text("c"), Value::Int64(3)],
    ];
    let rows0 = vec![vec![text("a"), Value::Int64(1)]];
    let all: Vec<Vec<Value>> = rows0.iter().chain(&rows1).cloned().collect();
    write(1, KeyRange::between(b.clone(), None), rows1).await;
    for _ in 0..2 {
        write(0, KeyRange::between(None, b.clone()), rows0.clone()).await;
        assert_eq!(
            sink.checksum(&t, &KeyRange::all()).await.unwrap(),
            RowChecksum::of_rows(&all),
            "B, written by chunk 1, survives chunk 0"
        );
    }
}
