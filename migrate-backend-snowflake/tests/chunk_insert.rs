//! A chunk of every type Snowflake holds goes in as one bound JSON text and one `INSERT …
//! FROM TABLE(FLATTEN(PARSE_JSON(?)))`, on fakesnow, and reads back as it left — NULLs,
//! extremes (the widest integer and decimal, microsecond timestamps, non-ASCII text, a JSON
//! `null` document apart from SQL NULL, empty arrays) included: the same canonical checksum.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

use migrate_backend_snowflake::sql::{
    chunk_json, column, insert_from_json, range_predicate, table_name,
};
use migrate_backend_snowflake::types::column_type;
use migrate_backend_snowflake::{Binding, SfClient, SfEndpoint};
use migrate_core::decimal::Decimal;
use migrate_core::testing::service_env;
use migrate_core::{Column, DataType, KeyRange, RowChecksum, TableName, Value};

fn columns() -> Vec<Column> {
    let dec = |p, s| DataType::Decimal {
        precision: Some(p),
        scale: Some(s),
    };
    vec![
        Column::new("id", DataType::Int64),
        Column::new("i2", DataType::Int16),
        Column::new("i4", DataType::Int32),
        Column::new("wide", dec(38, 9)),
        Column::new("money", dec(12, 2)),
        Column::new("f4", DataType::Float32),
        Column::new("f8", DataType::Float64),
        Column::new("t", DataType::text()),
        Column::new("vc", DataType::Text { max_len: Some(20) }),
        Column::new("b", DataType::Bytes),
        Column::new("ok", DataType::Bool),
        Column::new("d", DataType::Date),
        Column::new("tm", DataType::Time),
        Column::new("ts", DataType::Timestamp),
        Column::new("tz", DataType::TimestampTz),
        Column::new("j", DataType::Json),
        Column::new("u", DataType::Uuid),
    ]
}

fn rows() -> Vec<Vec<Value>> {
    let d = |s: &str| Value::Decimal(s.parse::<Decimal>().unwrap());
    let mut rows: Vec<Vec<Value>> = (1..=40i64)
        .map(|i| {
            vec![
                Value::Int64(i),
                Value::Int16((i * 7) as i16),
                Value::Int32((i * 100_003) as i32),
                d(&format!("{}.{:09}", i * 1_000_003, i * 7)),
                d(&format!("-{i}.{:02}", i % 100)),
                Value::Float32(i as f32 / 4.0),
                Value::Float64(i as f64 / 1024.0),
                Value::Text(format!("row {i} — Größe 漢字")),
                Value::Text(format!("v{i}")),
                Value::Bytes((0..(i % 5) as u8).collect()),
                Value::Bool(i % 2 == 0),
                Value::Date(19_000 + i as i32),
                Value::Time(i * 3_600_000_017 % 86_400_000_000),
                Value::Timestamp(1_600_000_000_000_000 + i * 1_000_001),
                Value::TimestampTz(1_700_000_000_000_000 - i * 999_999),
                Value::Json(format!(r#"{{"n": {i}, "tags": ["a", null]}}"#)),
                Value::Uuid([i as u8; 16]),
            ]
        })
        .collect();
    // Extremes, and a row of NULLs.
    rows.push(vec![
        Value::Int64(i64::MAX),
        Value::Int16(i16::MIN),
        Value::Int32(i32::MAX),
        d("99999999999999999999999999999.999999999"),
        d("-9999999999.99"),
        Value::Float32(-0.5),
        Value::Float64(f64::MIN_POSITIVE),
        Value::Text(String::new()),
        Value::Text("it's \\ \"quoted\"".into()),
        Value::Bytes(vec![0, 255]),
        Value::Bool(false),
        Value::Date(-719_162),
        Value::Time(86_399_999_999),
        Value::Timestamp(-62_135_596_800_000_000),
        Value::TimestampTz(253_402_300_799_999_999),
        Value::Json("null".into()),
        Value::Uuid([255; 16]),
    ]);
    let mut nulls = vec![Value::Null; columns().len()];
    nulls[0] = Value::Int64(-1);
    rows.push(nulls);
    rows
}

#[tokio::test]
async fn a_chunk_goes_in_as_one_json_text_and_reads_back_as_it_left() {
    let Some(url) = service_env("MIGRATE_TEST_SNOWFLAKE_URL") else {
        return;
    };
    let (host, port) = url.trim_start_matches("http://").split_once(':').unwrap();
    let endpoint = SfEndpoint::from_url(&format!(
        "snowflake://migrate:unused@test/MIGRATE_CHUNK/PUBLIC?host={host}&port={port}&protocol=http"
    ))
    .unwrap();
    let s = SfClient::new(endpoint).unwrap().session().await.unwrap();
    let name = TableName::parse("public.kinds");
    let cols = columns();
    let defs: Vec<String> = cols
        .iter()
        .map(|c| format!("{} {}", column(&c.name), column_type(&name, c).unwrap()))
        .collect();
    let target = table_name("PUBLIC", "kinds");
    s.query(
        &format!("CREATE OR REPLACE TABLE {target} ({})", defs.join(", ")),
        &[],
    )
    .await
    .unwrap();

    let text = chunk_json(&name, &cols, &rows()).unwrap();
    let insert = insert_from_json(&name, &target, &cols).unwrap();
    let r = s.query(&insert, &[Binding::text(text)]).await.unwrap();
    assert_eq!(r.affected(), Some(rows().len() as u64));

    let back = s
        .query(&format!("SELECT * FROM {target} ORDER BY \"ID\""), &[])
        .await
        .unwrap();
    let mut want = rows();
    want.sort_by_key(|r| match r[0] {
        Value::Int64(i) => i,
        _ => unreachable!(),
    });
    assert_eq!(back.rows.len(), want.len());
    for (got, want) in back.rows.iter().zip(&want) {
        assert_eq!(
            RowChecksum::of_rows(std::slice::from_ref(got)),
            RowChecksum::of_rows(std::slice::from_ref(want)),
            "\n got: {got:?}\nwant: {want:?}"
        );
    }
    // A key range reads exactly its rows.
    let range = KeyRange::between(Some(vec![Value::Int64(10)]), Some(vec![Value::Int64(20)]));
    let n = s
        .query(
            &format!(
                "SELECT COUNT(*) FROM {target} WHERE {}",
                range_predicate(&["id"], &range).unwrap()
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(migrate_core::checksum::canonical_text(&n.rows[0][0]), "10");
    s.close().await;
}
