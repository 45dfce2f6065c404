//! `BqSink` against the shared sink suite, on the emulator: prepare (per run, existing rows
//! refused, merged or replaced, backed up), chunk writes that converge however often they run,
//! checksums equal to migrate's figure, every type the emulator holds, rollback.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use common::endpoint;
use migrate_backend_bigquery::client::BqClient;
use migrate_backend_bigquery::BqSink;
use migrate_core::testing::{sink_conformance, SinkSuite};
use migrate_core::DataType;

#[tokio::test]
async fn bigquery_sink_passes_the_sink_suite() {
    let Some(endpoint) = endpoint() else { return };
    let dataset = "migrate_sink_suite";
    // The suite wants none of its tables there (an earlier run against the same emulator).
    let client = BqClient::new(endpoint.clone()).unwrap();
    client.create_dataset(dataset).await.unwrap();
    for t in [
        "customers",
        "events_keyless",
        "all_types",
        "existing_rows",
        "_migrate_prepared",
    ] {
        client.delete_table(dataset, t).await.unwrap();
    }
    let sink = BqSink::new(endpoint, dataset).unwrap();
    let suite = SinkSuite {
        namespace: Some(dataset.into()),
        unsupported_types: vec![
            // The suite's sample holds 110 digits before the point: beyond BIGNUMERIC, refused
            // (see `types`), and the emulator cannot create BIGNUMERIC columns at all.
            DataType::Decimal {
                precision: None,
                scale: None,
            },
            DataType::Decimal {
                precision: Some(76),
                scale: Some(38),
            },
            // Its NULL row holds NULL arrays, which BigQuery cannot store and the sink refuses.
            DataType::Array(Box::new(DataType::Int64)),
            DataType::Array(Box::new(DataType::text())),
        ],
    };
    sink_conformance(&sink, &suite).await;
}

#[tokio::test]
async fn staging_tables_a_crash_left_behind_are_dropped_at_the_end_and_by_rollback() {
    use migrate_backend_bigquery::sink::staging_prefix;
    use migrate_core::{Sink, TableInfo, TableName};

    let Some(endpoint) = endpoint() else { return };
    let dataset = "migrate_staging_leftovers";
    let client = BqClient::new(endpoint.clone()).unwrap();
    client.create_dataset(dataset).await.unwrap();
    let fields = serde_json::json!([{"name": "id", "type": "INT64"}]);
    // Leftovers of `a`, and a table of `a_b`'s (another table, whose prefix `a`'s must not take).
    let a_left = format!("{}c3_deadbeef", staging_prefix("a"));
    let ab_left = format!("{}c1_cafe", staging_prefix("a_b"));
    for t in [&a_left, &ab_left, &"a".to_string()] {
        client
            .create_table(dataset, t, fields.clone())
            .await
            .unwrap();
    }
    let sink = BqSink::new(endpoint, dataset).unwrap();
    let table = |name: &str| {
        TableInfo::new(
            TableName::parse(&format!("public.{name}")),
            migrate_core::Schema::new(vec![migrate_core::Column::new("id", DataType::Int64)], &[])
                .unwrap(),
        )
    };
    sink.after_data(&[table("a")], &[], false).await.unwrap();
    let left = client.list_tables(dataset).await.unwrap();
    assert!(!left.contains(&a_left), "{left:?}");
    assert!(
        left.contains(&ab_left) && left.contains(&"a".to_string()),
        "{left:?}"
    );
    sink.rollback(&[(table("a_b"), migrate_core::Prepared::default())])
        .await
        .unwrap();
    let left = client.list_tables(dataset).await.unwrap();
    assert!(!left.contains(&ab_left), "{left:?}");
}
