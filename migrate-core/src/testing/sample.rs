//! The sample e-commerce dataset (customers, products, orders, inventory, transactions, preferences,
//! audit_logs, user_sessions, with their foreign keys), scaled: `scale = 1.0` is the manifest's
//! 13.6 M rows; the quickstart uses a few thousandths of that.

use super::fixtures::Fixture;
use crate::batch::{row_byte_size, Row};
use crate::decimal::Decimal;
use crate::schema::{Column, DataType, ForeignKey, Schema, TableInfo, TableName};
use crate::value::Value;

/// Row counts of the sample dataset's manifest (`tests/fixtures/sample_manifest.json`).
pub const SAMPLE_ROWS: [(&str, u64); 8] = [
    ("customers", 50_000),
    ("products", 5_000),
    ("orders", 500_000),
    ("inventory", 25_000),
    ("transactions", 2_000_000),
    ("preferences", 50_000),
    ("audit_logs", 10_000_000),
    ("user_sessions", 1_000_000),
];

fn count(name: &str, scale: f64) -> i64 {
    let base = SAMPLE_ROWS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(0, |(_, r)| *r);
    ((base as f64 * scale).round() as i64).max(1)
}

fn money(cents: i64) -> Value {
    Value::Decimal(
        Decimal::from_parts(cents < 0, &cents.unsigned_abs().to_string(), 2)
            .unwrap_or_else(|_| Decimal::zero()),
    )
}

fn schema(cols: Vec<Column>, pk: &[&str]) -> Schema {
    Schema::new(cols, pk).unwrap_or_else(|e| panic!("sample dataset schema: {e}"))
}

fn fk(col: &str, parent: &TableName) -> ForeignKey {
    ForeignKey {
        definition: None,
        name: Some(format!("{}_{col}_fkey", parent.name)),
        columns: vec![col.to_string()],
        referenced_table: parent.clone(),
        referenced_columns: vec!["id".to_string()],
    }
}

fn fixture(name: TableName, schema: Schema, fks: Vec<ForeignKey>, rows: Vec<Row>) -> Fixture {
    let mut t = TableInfo::new(name, schema);
    t.foreign_keys = fks;
    t.estimated_rows = rows.len() as u64;
    t.estimated_bytes = rows.iter().map(|r| row_byte_size(r) as u64).sum();
    Fixture { table: t, rows }
}

/// The sample dataset's eight tables in `namespace`, with row counts scaled by `scale`.
pub fn sample_dataset(namespace: &str, scale: f64) -> Vec<Fixture> {
    let n = |t: &str| TableName::new(namespace, t);
    let (customers, products, orders) = (n("customers"), n("products"), n("orders"));
    let (nc, np, no) = (
        count("customers", scale),
        count("products", scale),
        count("orders", scale),
    );
    let ts = |i: i64| Value::TimestampTz(1_704_067_200_000_000 + i * 37_000_123);
    let id = || Column::new("id", DataType::Int64).not_null();
    let text = |c: &str| Column::new(c, DataType::text());

    let mut out = Vec::new();
    out.push(fixture(
        customers.clone(),
        schema(
            vec![
                id(),
                text("name").not_null(),
                text("email"),
                Column::new("created_at", DataType::TimestampTz).not_null(),
            ],
            &["id"],
        ),
        vec![],
        (1..=nc)
            .map(|i| {
                vec![
                    Value::Int64(i),
                    Value::Text(format!("Customer {i}")),
                    Value::Text(format!("customer{i}@example.com")),
                    ts(i),
                ]
            })
            .collect(),
    ));
    out.push(fixture(
        products.clone(),
        schema(
            vec![
                id(),
                text("sku").not_null(),
                text("name"),
                Column::new(
                    "price",
                    DataType::Decimal {
                        precision: Some(10),
                        scale: Some(2),
                    },
                )
                .not_null(),
            ],
            &["id"],
        ),
        vec![],
        (1..=np)
            .map(|i| {
                vec![
                    Value::Int64(i),
                    Value::Text(format!("SKU-{i:06}")),
                    Value::Text(format!("Product {i}")),
                    money(199 + i * 37 % 50_000),
                ]
            })
            .collect(),
    ));
    out.push(fixture(
        orders.clone(),
        schema(
            vec![
                id(),
                Column::new("customer_id", DataType::Int64).not_null(),
                Column::new("product_id", DataType::Int64).not_null(),
                Column::new("quantity", DataType::Int32).not_null(),
                Column::new(
                    "total",
                    DataType::Decimal {
                        precision: Some(12),
                        scale: Some(2),
                    },
                )
                .not_null(),
                Column::new("placed_at", DataType::TimestampTz).not_null(),
            ],
            &["id"],
        ),
        vec![fk("customer_id", &customers), fk("product_id", &products)],
        (1..=no)
            .map(|i| {
                vec![
                    Value::Int64(i),
                    Value::Int64(i * 7 % nc + 1),
                    Value::Int64(i * 13 % np + 1),
                    Value::Int32((i % 5 + 1) as i32),
                    money(i * 1013 % 900_000 + 100),
                    ts(i),
                ]
            })
            .collect(),
    ));
    out.push(fixture(
        n("inventory"),
        schema(
            vec![
                Column::new("product_id", DataType::Int64).not_null(),
                Column::new("warehouse", DataType::Int32).not_null(),
                Column::new("on_hand", DataType::Int32).not_null(),
            ],
            &["product_id", "warehouse"],
        ),
        vec![ForeignKey {
            definition: None,
            name: Some("inventory_product_fkey".into()),
            columns: vec!["product_id".into()],
            referenced_table: products.clone(),
            referenced_columns: vec!["id".into()],
        }],
        (0..count("inventory", scale))
            .map(|i| {
                vec![
                    Value::Int64(i / 5 % np + 1),
                    Value::Int32((i % 5) as i32 + 10 * (i / (5 * np)) as i32),
                    Value::Int32((i * 31 % 1000) as i32),
                ]
            })
            .collect(),
    ));
    out.push(fixture(
        n("transactions"),
        schema(
            vec![
                id(),
                Column::new("order_id", DataType::Int64).not_null(),
                Column::new("customer_id", DataType::Int64).not_null(),
                Column::new(
                    "amount",
                    DataType::Decimal {
                        precision: Some(12),
                        scale: Some(2),
                    },
                )
                .not_null(),
                Column::new("at", DataType::TimestampTz).not_null(),
                text("method"),
            ],
            &["id"],
        ),
        vec![fk("order_id", &orders), fk("customer_id", &customers)],
        (1..=count("transactions", scale))
            .map(|i| {
                vec![
                    Value::Int64(i),
                    Value::Int64(i % no + 1),
                    Value::Int64(i * 3 % nc + 1),
                    money(i * 977 % 500_000 - 2_000),
                    ts(i),
                    Value::Text(["card", "wire", "cash"][(i % 3) as usize].into()),
                ]
            })
            .collect(),
    ));
    out.push(fixture(
        n("preferences"),
        schema(
            vec![
                Column::new("customer_id", DataType::Int64).not_null(),
                Column::new("settings", DataType::Json),
            ],
            &["customer_id"],
        ),
        vec![ForeignKey {
            definition: None,
            name: Some("preferences_customer_fkey".into()),
            columns: vec!["customer_id".into()],
            referenced_table: customers.clone(),
            referenced_columns: vec!["id".into()],
        }],
        (1..=count("preferences", scale).min(nc))
            .map(|i| {
                vec![
                    Value::Int64(i),
                    Value::Json(format!(
                        r#"{{"theme": "{}", "newsletter": {}}}"#,
                        if i % 2 == 0 { "dark" } else { "light" },
                        i % 3 == 0
                    )),
                ]
            })
            .collect(),
    ));
    out.push(fixture(
        n("audit_logs"),
        schema(
            vec![
                id(),
                Column::new("at", DataType::TimestampTz).not_null(),
                text("actor"),
                text("action").not_null(),
                text("detail"),
            ],
            &["id"],
        ),
        vec![],
        (1..=count("audit_logs", scale))
            .map(|i| {
                vec![
                    Value::Int64(i),
                    ts(i),
                    Value::Text(format!("user{}", i % 97)),
                    Value::Text(["login", "update", "delete", "export"][(i % 4) as usize].into()),
                    Value::Text(format!("entity {} changed", i % 1000)),
                ]
            })
            .collect(),
    ));
    out.push(fixture(
        n("user_sessions"),
        schema(
            vec![
                Column::new("id", DataType::Uuid).not_null(),
                Column::new("customer_id", DataType::Int64).not_null(),
                Column::new("started_at", DataType::TimestampTz).not_null(),
                text("ip"),
            ],
            &["id"],
        ),
        vec![],
        (1..=count("user_sessions", scale))
            .map(|i| {
                let mut u = [0u8; 16];
                u[..8]
                    .copy_from_slice(&(i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
                u[8..].copy_from_slice(&(i as u64).to_be_bytes());
                vec![
                    Value::Uuid(u),
                    Value::Int64(i % nc + 1),
                    ts(i),
                    Value::Text(format!("10.{}.{}.{}", i % 256, i / 256 % 256, i % 7)),
                ]
            })
            .collect(),
    ));
    out
}
