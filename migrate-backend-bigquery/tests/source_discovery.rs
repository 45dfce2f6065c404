//! `BqSource` discovery from table resources as BigQuery answers them — with the
//! `tableConstraints` (primary and foreign keys, NOT ENFORCED) that the emulator drops, so
//! played here by a local server with recorded bodies: keys and foreign keys found, types
//! mapped back, counts from metadata, migrate's own bookkeeping tables left out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use migrate_backend_bigquery::{BqEndpoint, BqSource};
use migrate_core::{DataType, Source, TableFilter};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BASE: &str = "/bigquery/v2/projects/proj/datasets/shop/tables";

async fn table(server: &MockServer, id: &str, resource: serde_json::Value) {
    Mock::given(method("GET"))
        .and(path(format!("{BASE}/{id}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(resource))
        .mount(server)
        .await;
}

#[tokio::test]
async fn keys_and_foreign_keys_are_discovered_from_table_constraints() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(BASE))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "kind": "bigquery#tableList", "totalItems": 3,
            "tables": [
                {"kind": "bigquery#table", "id": "proj:shop.customers", "type": "TABLE",
                 "tableReference": {"projectId": "proj", "datasetId": "shop", "tableId": "customers"}},
                {"kind": "bigquery#table", "id": "proj:shop.order_lines", "type": "TABLE",
                 "tableReference": {"projectId": "proj", "datasetId": "shop", "tableId": "order_lines"}},
                {"kind": "bigquery#table", "id": "proj:shop._migrate_prepared", "type": "TABLE",
                 "tableReference": {"projectId": "proj", "datasetId": "shop", "tableId": "_migrate_prepared"}}
            ]})))
        .mount(&server)
        .await;
    table(
        &server,
        "customers",
        json!({
            "kind": "bigquery#table", "id": "proj:shop.customers",
            "tableReference": {"projectId": "proj", "datasetId": "shop", "tableId": "customers"},
            "schema": {"fields": [
                {"name": "id", "type": "INTEGER", "mode": "REQUIRED"},
                {"name": "email", "type": "STRING", "mode": "NULLABLE"},
                {"name": "balance", "type": "NUMERIC", "mode": "NULLABLE", "precision": "12", "scale": "2"}
            ]},
            "tableConstraints": {"primaryKey": {"columns": ["id"]}},
            "numRows": "95", "numBytes": "4096", "type": "TABLE"
        }),
    )
    .await;
    table(
        &server,
        "order_lines",
        json!({
            "kind": "bigquery#table", "id": "proj:shop.order_lines",
            "tableReference": {"projectId": "proj", "datasetId": "shop", "tableId": "order_lines"},
            "schema": {"fields": [
                {"name": "customer_id", "type": "INTEGER", "mode": "REQUIRED"},
                {"name": "line", "type": "INTEGER", "mode": "REQUIRED"},
                {"name": "placed", "type": "DATE", "mode": "REQUIRED"},
                {"name": "tags", "type": "STRING", "mode": "REPEATED"}
            ]},
            "tableConstraints": {
                "primaryKey": {"columns": ["customer_id", "line"]},
                "foreignKeys": [{
                    "name": "order_lines_customer_id_fkey",
                    "referencedTable": {"projectId": "proj", "datasetId": "shop", "tableId": "customers"},
                    "columnReferences": [{"referencingColumn": "customer_id", "referencedColumn": "id"}]
                }]
            },
            "numRows": "300", "numBytes": "9000", "type": "TABLE"
        }),
    )
    .await;
    let endpoint = BqEndpoint::unauthenticated(server.uri(), "proj");
    let source = BqSource::new(endpoint, "shop").unwrap();
    let found = source.discover(&TableFilter::default()).await.unwrap();
    let names: Vec<String> = found.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, ["shop.customers", "shop.order_lines"]);

    let customers = &found[0];
    assert_eq!(customers.primary_key(), ["id"]);
    assert_eq!(
        customers.schema.columns[2].data_type,
        DataType::Decimal {
            precision: Some(12),
            scale: Some(2)
        }
    );
    assert!(!customers.schema.columns[0].nullable && customers.schema.columns[1].nullable);
    assert_eq!(
        (customers.estimated_rows, customers.estimated_bytes),
        (95, 4096)
    );

    let lines = &found[1];
    assert_eq!(lines.primary_key(), ["customer_id", "line"]);
    assert_eq!(
        lines.schema.columns[3].data_type,
        DataType::Array(Box::new(DataType::text()))
    );
    let fk = &lines.foreign_keys[..];
    assert_eq!(fk.len(), 1);
    assert_eq!(fk[0].name.as_deref(), Some("order_lines_customer_id_fkey"));
    assert_eq!(fk[0].columns, ["customer_id"]);
    assert_eq!(fk[0].referenced_table.to_string(), "shop.customers");
    assert_eq!(fk[0].referenced_columns, ["id"]);
}
