//! The canonical row checksum computed inside BigQuery (the emulator) equals the one migrate
//! computes for the same logical rows — the figure Postgres computes too — for every type whose
//! canonical text BigQuery can render; and it moves when one value does.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use common::{client, typed_table};
use migrate_backend_bigquery::sql::{
    bucketed_checksum_query, checksum_columns, checksum_from_sums, checksum_query, literal,
    range_bucket, range_predicate,
};
use migrate_core::{Column, DataType, KeyRange, RowChecksum, Value};

fn columns() -> Vec<Column> {
    vec![
        Column::new("id", DataType::Int64),
        Column::new("small", DataType::Int16),
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
    ]
}

fn rows() -> Vec<Vec<Value>> {
    let d = |s: &str| Value::Decimal(s.parse().unwrap());
    let mut uid = [0u8; 16];
    uid[0] = 0xab;
    uid[15] = 7;
    vec![
        vec![
            Value::Int64(1),
            Value::Int16(-3),
            Value::Text("Größe — naïve 東京".into()),
            Value::Bool(true),
            d("12.500"),
            Value::Date(-1),
            Value::TimestampTz(1_577_934_245_123_456),
            Value::Timestamp(-86_400_000_001),
            Value::Time(3_723_000_004),
            Value::Bytes(vec![0, 255, 16]),
            Value::Uuid(uid),
        ],
        vec![
            Value::Int64(2),
            Value::Null,
            Value::Text(String::new()),
            Value::Bool(false),
            d("-0.05"),
            Value::Date(19_000),
            Value::TimestampTz(0),
            Value::Timestamp(0),
            Value::Time(0),
            Value::Bytes(vec![]),
            Value::Null,
        ],
        vec![
            Value::Int64(3),
            Value::Int16(i16::MAX),
            Value::Null,
            Value::Null,
            d("100"),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
        ],
    ]
}

#[tokio::test]
async fn bigquery_computes_the_canonical_checksum_migrate_computes() {
    let Some(c) = client() else { return };
    let d = "migrate_checksum_parity";
    let cols = columns();
    let (bq, t) = typed_table(&c, d, &cols).await;
    let values: Vec<String> = rows()
        .iter()
        .map(|r| {
            let lits: Vec<String> = r.iter().map(|v| literal(v).unwrap()).collect();
            format!("({})", lits.join(", "))
        })
        .collect();
    c.query(&format!("INSERT INTO {t} VALUES {}", values.join(", ")))
        .await
        .unwrap();

    let sum_of = |range: &KeyRange| {
        let checksum_cols = checksum_columns(&cols, &bq);
        let pred = range_predicate("", &["id"], range).unwrap();
        checksum_query(&t, &checksum_cols, &pred).expect("every column renders")
    };
    let whole = c.query(&sum_of(&KeyRange::all())).await.unwrap();
    assert_eq!(
        checksum_from_sums(&whole.rows[0]).unwrap(),
        RowChecksum::of_rows(&rows()),
        "the whole table"
    );
    // A key range: the rows with id >= 2.
    let range = KeyRange::between(Some(vec![Value::Int64(2)]), None);
    let part = c.query(&sum_of(&range)).await.unwrap();
    assert_eq!(
        checksum_from_sums(&part.rows[0]).unwrap(),
        RowChecksum::of_rows(&rows()[1..]),
    );
    // Several ranges in one scan: each gets its own rows' figure; a range with no rows
    // answers nothing; a row in no range (id 3) counts nowhere.
    let int = |i: i64| Some(vec![Value::Int64(i)]);
    let ranges = [
        KeyRange::between(int(2), int(3)),
        KeyRange::between(int(10), int(20)),
        KeyRange::between(None, int(2)),
    ];
    let bucket = range_bucket(&["id"], &ranges).unwrap();
    let q = bucketed_checksum_query(&t, &checksum_columns(&cols, &bq), &bucket).unwrap();
    let mut got: Vec<(String, RowChecksum)> = c
        .query(&q)
        .await
        .unwrap()
        .rows
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_string(),
                checksum_from_sums(&r[1..]).unwrap(),
            )
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        vec![
            ("0".to_string(), RowChecksum::of_rows(&rows()[1..2])),
            ("2".to_string(), RowChecksum::of_rows(&rows()[..1])),
        ]
    );
    // One value changed: the figure moves.
    c.query(&format!("UPDATE {t} SET `name` = 'Grösse' WHERE `id` = 1"))
        .await
        .unwrap();
    let changed = c.query(&sum_of(&KeyRange::all())).await.unwrap();
    assert_ne!(
        checksum_from_sums(&changed.rows[0]).unwrap(),
        RowChecksum::of_rows(&rows())
    );
}
