//! A chunk of every type the emulator holds goes through its staging table and the MERGE and
//! arrives as it left: counted, checksummed inside BigQuery against migrate's figure where
//! BigQuery renders the canonical text, and read back value by value where it does not (floats,
//! JSON, arrays, intervals). Written twice, it leaves the same rows.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use common::{client, typed_table};
use migrate_backend_bigquery::cells::read_cell;
use migrate_backend_bigquery::sql::{
    checksum_columns, checksum_from_sums, checksum_query, table_ref,
};
use migrate_backend_bigquery::stage::{append_row, merge_sql, staged_columns};
use migrate_core::{Column, DataType, KeyRange, RowChecksum, TableName, Value};

fn columns() -> Vec<Column> {
    vec![
        Column::new("id", DataType::Int64),
        Column::new("name", DataType::text()),
        Column::new("ok", DataType::Bool),
        Column::new(
            "price",
            DataType::Decimal {
                precision: Some(12),
                scale: Some(3),
            },
        ),
        Column::new("day", DataType::Date),
        Column::new("at", DataType::TimestampTz),
        Column::new("local", DataType::Timestamp),
        Column::new("clock", DataType::Time),
        Column::new("raw", DataType::Bytes),
        Column::new("uid", DataType::Uuid),
        Column::new("ratio", DataType::Float64),
        Column::new("doc", DataType::Json),
        Column::new("tags", DataType::Array(Box::new(DataType::text()))),
        Column::new("span", DataType::Interval),
    ]
}

fn rows() -> Vec<Vec<Value>> {
    let d = |s: &str| Value::Decimal(s.parse().unwrap());
    (0..40i64)
        .map(|i| {
            let null = i % 7 == 3;
            let v = |x: Value| if null { Value::Null } else { x };
            vec![
                Value::Int64(i * 3 - 20),
                v(Value::Text(format!("row {i} — Größe"))),
                v(Value::Bool(i % 2 == 0)),
                v(d(&format!("{}.{:03}", i * 17, i % 1000))),
                v(Value::Date(i as i32 * 100 - 2000)),
                v(Value::TimestampTz(1_600_000_000_000_000 + i * 1_000_001)),
                v(Value::Timestamp(-5_000_000 + i)),
                v(Value::Time(i * 3_600_000_017 % 86_400_000_000)),
                v(Value::Bytes((0..i as u8).collect())),
                v(Value::Uuid([i as u8; 16])),
                v(Value::Float64(i as f64 / 7.0)),
                v(Value::Json(format!(r#"{{"z": {i}, "a": [1, "x"]}}"#))),
                // Never NULL: BigQuery arrays cannot be (an empty one can).
                Value::Array((0..i % 3).map(|k| Value::Text(format!("t{k}"))).collect()),
                // Negative months too; days and time stay positive, which the emulator
                // renders without their sign (BigQuery keeps each part's: see the README).
                v(Value::Interval(migrate_core::value::Interval {
                    months: i as i32 - 20,
                    days: i as i32,
                    micros: i * 3_723_000_001,
                })),
            ]
        })
        .collect()
}

#[tokio::test]
async fn a_staged_chunk_arrives_as_it_left() {
    let Some(c) = client() else { return };
    let d = "migrate_stage_roundtrip";
    let name = TableName::parse("public.t");
    let cols = columns();
    let (bq, target) = typed_table(&c, d, &cols).await;
    let project = c.project().to_string();

    let staged = staged_columns(&cols, &bq);
    let mut ndjson = String::new();
    for (i, r) in rows().iter().enumerate() {
        append_row(&name, &cols, &staged, i, r, &mut ndjson).unwrap();
    }
    let fields = serde_json::Value::Array(staged.iter().map(|s| s.field()).collect());
    c.load_ndjson(d, "stg", fields, ndjson.into_bytes())
        .await
        .unwrap();
    let merge = merge_sql(
        &target,
        &table_ref(&project, d, "stg"),
        &staged,
        &["id"],
        &KeyRange::all(),
    )
    .unwrap();
    c.query(&merge).await.unwrap();
    c.query(&merge).await.unwrap(); // again, as after a crash before the checkpoint

    // Renderable columns: the checksum inside BigQuery equals migrate's.
    let renderable = 10;
    let checksum_cols = checksum_columns(&cols[..renderable], &bq[..renderable]);
    let q = checksum_query(&target, &checksum_cols, "TRUE").unwrap();
    let got = checksum_from_sums(&c.query(&q).await.unwrap().rows[0]).unwrap();
    let projected: Vec<Vec<Value>> = rows().iter().map(|r| r[..renderable].to_vec()).collect();
    assert_eq!(got, RowChecksum::of_rows(&projected));

    // The rest, value by value.
    let back = c
        .query(&format!(
            "SELECT `ratio`, TO_JSON_STRING(`doc`), ARRAY_LENGTH(`tags`), ARRAY_TO_STRING(`tags`, ',') FROM {target} ORDER BY `id`"
        ))
        .await
        .unwrap();
    assert_eq!(back.rows.len(), rows().len());
    for (got, want) in back.rows.iter().zip(rows()) {
        match &want[10] {
            Value::Float64(f) => {
                let g: f64 = got[0].as_str().unwrap().parse().unwrap();
                assert_eq!(g, *f);
            }
            _ => assert!(got[0].is_null(), "{got:?}"),
        }
        match &want[11] {
            Value::Json(doc) => {
                let g: serde_json::Value = serde_json::from_str(got[1].as_str().unwrap()).unwrap();
                let w: serde_json::Value = serde_json::from_str(doc).unwrap();
                assert_eq!(g, w);
            }
            _ => assert!(got[1].is_null(), "{got:?}"),
        }
        let Value::Array(tags) = &want[12] else {
            unreachable!()
        };
        let texts: Vec<String> = tags
            .iter()
            .map(migrate_core::checksum::canonical_text)
            .collect();
        assert_eq!(
            got[3].as_str().unwrap_or_default(),
            texts.join(","),
            "{got:?}"
        );
    }

    // Every column read back (what a checksum by streaming and fetch_rows read): the rows as
    // they left.
    let all = c
        .query(&format!("SELECT * FROM {target} ORDER BY `id`"))
        .await
        .unwrap();
    let decoded: Vec<Vec<Value>> = all
        .rows
        .iter()
        .map(|r| {
            r.iter()
                .zip(&cols)
                .map(|(cell, col)| read_cell(&col.data_type, cell, &col.name).unwrap())
                .collect()
        })
        .collect();
    assert_eq!(
        RowChecksum::of_rows(&decoded),
        RowChecksum::of_rows(&rows())
    );
    c.delete_table(d, "stg").await.unwrap();
}
