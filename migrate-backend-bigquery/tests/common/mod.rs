//! What the emulator tests share: the client `scripts/test` points them at, and a fresh typed
//! table.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // each test uses a part

use migrate_backend_bigquery::client::{BqClient, BqEndpoint};
use migrate_backend_bigquery::sql::table_ref;
use migrate_backend_bigquery::types::{column_type, BqColumn};
use migrate_core::testing::service_env;
use migrate_core::{Column, TableName};

/// The emulator's endpoint, or `None` (the test then returns) outside `scripts/test`.
pub fn endpoint() -> Option<BqEndpoint> {
    let rest = service_env("MIGRATE_TEST_BIGQUERY_URL")?;
    let project =
        std::env::var("MIGRATE_TEST_BIGQUERY_PROJECT").unwrap_or_else(|_| "test-project".into());
    Some(BqEndpoint::unauthenticated(rest, project))
}

/// A client on the emulator.
pub fn client() -> Option<BqClient> {
    endpoint().map(|e| BqClient::new(e).unwrap())
}

/// `dataset.t` created afresh with `cols` (as the sink maps them); returns the columns'
/// BigQuery types and the table's SQL name.
pub async fn typed_table(c: &BqClient, dataset: &str, cols: &[Column]) -> (Vec<BqColumn>, String) {
    c.create_dataset(dataset).await.unwrap();
    c.delete_table(dataset, "t").await.unwrap();
    let name = TableName::parse("public.t");
    let bq: Vec<BqColumn> = cols
        .iter()
        .map(|x| column_type(&name, x).unwrap())
        .collect();
    let ddl: Vec<String> = cols
        .iter()
        .zip(&bq)
        .map(|(x, b)| format!("`{}` {}", x.name, b.ddl()))
        .collect();
    let target = table_ref(c.project(), dataset, "t");
    c.query(&format!("CREATE TABLE {target} ({})", ddl.join(", ")))
        .await
        .unwrap();
    (bq, target)
}
