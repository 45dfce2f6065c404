//! Deterministic fixture tables the conformance suites write, read and compare.

use crate::batch::Row;
use crate::decimal::Decimal;
use crate::schema::{Column, DataType, ForeignKey, Schema, TableInfo, TableName};
use crate::value::{Interval, Value};

/// A table and its rows.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The table (its schema names the types the backend must carry).
    pub table: TableInfo,
    /// The rows, in key order.
    pub rows: Vec<Row>,
}

fn info(name: TableName, schema: Schema, rows: &[Row]) -> TableInfo {
    let mut t = TableInfo::new(name, schema);
    t.estimated_rows = rows.len() as u64;
    t.estimated_bytes = rows
        .iter()
        .map(|r| crate::batch::row_byte_size(r) as u64)
        .sum();
    t
}

/// `customers` (integer key) and `orders` (references customers, composite key) in `namespace`.
pub fn fixture_tables(namespace: Option<&str>, customers: usize) -> Vec<Fixture> {
    let name = |n: &str| TableName {
        schema: namespace.map(str::to_string),
        name: n.to_string(),
    };
    let cust_schema = Schema::new(
        vec![
            Column::new("id", DataType::Int64).not_null(),
            Column::new("name", DataType::Text { max_len: Some(80) }).not_null(),
            Column::new("email", DataType::text()),
            Column::new(
                "balance",
                DataType::Decimal {
                    precision: Some(12),
                    scale: Some(2),
                },
            ),
            Column::new("active", DataType::Bool).not_null(),
            Column::new("created_at", DataType::TimestampTz).not_null(),
        ],
        &["id"],
    )
    .unwrap_or_else(|e| panic!("fixture schema: {e}"));
    let cust_rows: Vec<Row> = (1..=customers as i64)
        .map(|i| {
            vec![
                Value::Int64(i),
                Value::Text(format!("Customer {i} – Ünïcode")),
                if i % 7 == 0 {
                    Value::Null
                } else {
                    Value::Text(format!("c{i}@example.com"))
                },
                Value::Decimal(
                    Decimal::from_parts(i % 3 == 0, &(i * 1234 % 1_000_000).to_string(), 2)
                        .unwrap_or_else(|_| Decimal::zero()),
                ),
                Value::Bool(i % 2 == 0),
                Value::TimestampTz(1_700_000_000_000_000 + i * 1_000_001),
            ]
        })
        .collect();
    let order_schema = Schema::new(
        vec![
            Column::new("customer_id", DataType::Int64).not_null(),
            Column::new("line", DataType::Int32).not_null(),
            Column::new(
                "amount",
                DataType::Decimal {
                    precision: Some(38),
                    scale: Some(9),
                },
            )
            .not_null(),
            Column::new("placed", DataType::Date).not_null(),
            Column::new("note", DataType::text()),
        ],
        &["customer_id", "line"],
    )
    .unwrap_or_else(|e| panic!("fixture schema: {e}"));
    let order_rows: Vec<Row> = (1..=customers as i64)
        .flat_map(|c| {
            (1..=(c % 3 + 1) as i32).map(move |l| {
                vec![
                    Value::Int64(c),
                    Value::Int32(l),
                    Value::Decimal(
                        format!("{}.{:09}", c * 10 + i64::from(l), c * 7 % 1_000_000_000)
                            .parse()
                            .unwrap_or_else(|_| Decimal::zero()),
                    ),
                    Value::Date(19_000 + (c as i32 % 400)),
                    if l == 2 {
                        Value::Null
                    } else {
                        Value::Text(format!("note {c}/{l}"))
                    },
                ]
            })
        })
        .collect();
    let customers_t = info(name("customers"), cust_schema, &cust_rows);
    let mut orders_t = info(name("orders"), order_schema, &order_rows);
    orders_t.foreign_keys.push(ForeignKey {
        definition: None,
        name: Some("orders_customer_fk".into()),
        columns: vec!["customer_id".into()],
        referenced_table: customers_t.name.clone(),
        referenced_columns: vec!["id".into()],
    });
    vec![
        Fixture {
            table: customers_t,
            rows: cust_rows,
        },
        Fixture {
            table: orders_t,
            rows: order_rows,
        },
    ]
}

/// A table without a primary key (reloaded whole on every write).
pub fn keyless_table(namespace: Option<&str>, rows: usize) -> Fixture {
    let schema = Schema::new(
        vec![
            Column::new("at", DataType::Timestamp).not_null(),
            Column::new("event", DataType::text()),
            Column::new("payload", DataType::Json),
        ],
        &[],
    )
    .unwrap_or_else(|e| panic!("fixture schema: {e}"));
    let rows: Vec<Row> = (0..rows as i64)
        .map(|i| {
            vec![
                Value::Timestamp(1_600_000_000_000_000 + i),
                Value::Text(format!("event {}", i % 5)),
                Value::Json(format!(r#"{{"n": {i}, "tags": ["a", "b"]}}"#)),
            ]
        })
        .collect();
    let name = TableName {
        schema: namespace.map(str::to_string),
        name: "events_keyless".into(),
    };
    Fixture {
        table: info(name, schema, &rows),
        rows,
    }
}

/// A table with one column of every [`DataType`] except those in `skip`, and edge values:
/// 100+ digit decimals, BIGNUMERIC and NUMBER(38,s) limits, microsecond timestamps, NULLs.
pub fn all_types_table(namespace: Option<&str>, skip: &[DataType]) -> Fixture {
    let big = format!("{}.{}", "9".repeat(110), "0123456789");
    let cols: Vec<(Column, Vec<Value>)> = vec![
        (
            Column::new("b", DataType::Bool),
            vec![Value::Bool(true), Value::Bool(false)],
        ),
        (
            Column::new("i2", DataType::Int16),
            vec![Value::Int16(i16::MIN), Value::Int16(i16::MAX)],
        ),
        (
            Column::new("i4", DataType::Int32),
            vec![Value::Int32(i32::MIN), Value::Int32(i32::MAX)],
        ),
        (
            Column::new("f4", DataType::Float32),
            vec![Value::Float32(0.1), Value::Float32(-3.5e30)],
        ),
        (
            Column::new("f8", DataType::Float64),
            vec![Value::Float64(0.1), Value::Float64(-1e-300)],
        ),
        (
            Column::new(
                "num_any",
                DataType::Decimal {
                    precision: None,
                    scale: None,
                },
            ),
            vec![dec(&big), dec("-0.000000000000000000000000000000000001")],
        ),
        (
            Column::new(
                "num_38_9",
                DataType::Decimal {
                    precision: Some(38),
                    scale: Some(9),
                },
            ),
            vec![dec("99999999999999999999999999999.999999999"), dec("-1.5")],
        ),
        (
            Column::new(
                "num_76_38",
                DataType::Decimal {
                    precision: Some(76),
                    scale: Some(38),
                },
            ),
            vec![
                dec(
                    "57896044618658097711785492504343953926.63499233282028201972879200395656481996",
                ),
                dec("0.00000000000000000000000000000000000001"),
            ],
        ),
        (
            Column::new("t", DataType::text()),
            vec![
                Value::Text("plain".into()),
                Value::Text("tab\t quote' \" back\\ ✓ \n".into()),
            ],
        ),
        (
            Column::new("vc", DataType::Text { max_len: Some(10) }),
            vec![Value::Text("ten chars!".into()), Value::Text(String::new())],
        ),
        (
            Column::new("by", DataType::Bytes),
            vec![Value::Bytes(vec![0, 1, 255, 10]), Value::Bytes(vec![])],
        ),
        (
            Column::new("d", DataType::Date),
            vec![Value::Date(-719_162), Value::Date(2_932_896)],
        ),
        (
            Column::new("tm", DataType::Time),
            vec![Value::Time(0), Value::Time(86_399_999_999)],
        ),
        (
            Column::new("ts", DataType::Timestamp),
            vec![
                Value::Timestamp(1_700_000_000_123_456),
                Value::Timestamp(-62_135_596_800_000_000),
            ],
        ),
        (
            Column::new("tstz", DataType::TimestampTz),
            vec![
                Value::TimestampTz(1_700_000_000_654_321),
                Value::TimestampTz(0),
            ],
        ),
        (
            Column::new("iv", DataType::Interval),
            vec![
                Value::Interval(Interval {
                    months: 14,
                    days: 3,
                    micros: 4_000_005,
                }),
                Value::Interval(Interval {
                    months: -1,
                    days: 0,
                    micros: 0,
                }),
            ],
        ),
        (
            Column::new("u", DataType::Uuid),
            vec![
                Value::Uuid(*b"\x12\x34\x56\x78\x9a\xbc\xde\xf0\x12\x34\x56\x78\x9a\xbc\xde\xf0"),
                Value::Uuid([0; 16]),
            ],
        ),
        (
            Column::new("j", DataType::Json),
            vec![
                Value::Json(r#"{"b": [1, 2.5, null], "a": "x"}"#.into()),
                Value::Json("[]".into()),
            ],
        ),
        (
            Column::new("arr", DataType::Array(Box::new(DataType::Int64))),
            vec![
                Value::Array(vec![Value::Int64(1), Value::Int64(-2)]),
                Value::Array(vec![]),
            ],
        ),
        (
            Column::new("tarr", DataType::Array(Box::new(DataType::text()))),
            vec![
                Value::Array(vec![Value::Text("a,b".into()), Value::Text("\"q\"".into())]),
                Value::Array(vec![Value::Text(String::new())]),
            ],
        ),
    ];
    let mut columns = vec![Column::new("id", DataType::Int64).not_null()];
    let mut samples = Vec::new();
    for (c, v) in cols {
        if !skip.contains(&c.data_type) {
            columns.push(c);
            samples.push(v);
        }
    }
    let width = columns.len();
    let mut rows: Vec<Row> = (0..2)
        .map(|r| {
            std::iter::once(Value::Int64(r as i64 + 1))
                .chain(samples.iter().map(|s| s[r].clone()))
                .collect()
        })
        .collect();
    // A row of NULLs in every nullable column.
    rows.push(
        std::iter::once(Value::Int64(3))
            .chain((1..width).map(|_| Value::Null))
            .collect(),
    );
    let schema = Schema::new(columns, &["id"]).unwrap_or_else(|e| panic!("fixture schema: {e}"));
    let name = TableName {
        schema: namespace.map(str::to_string),
        name: "all_types".into(),
    };
    Fixture {
        table: info(name, schema, &rows),
        rows,
    }
}

fn dec(s: &str) -> Value {
    Value::Decimal(s.parse().unwrap_or_else(|e| panic!("fixture decimal: {e}")))
}
