//! `scripts/test` provisions the bqemulator BigQuery emulator: its REST API answers a real
//! dataset listing for the test project. (The backend's own suites arrive with `BqSink`.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

use migrate_core::testing::{http_request, service_env};

#[test]
fn bigquery_emulator_answers_the_rest_api() {
    let Some(url) = service_env("MIGRATE_TEST_BIGQUERY_URL") else {
        return;
    };
    let project =
        std::env::var("MIGRATE_TEST_BIGQUERY_PROJECT").unwrap_or_else(|_| "test-project".into());
    let body = r#"{"datasetReference": {"datasetId": "migrate_smoke"}}"#;
    let created = http_request(
        &url,
        "POST",
        &format!("/bigquery/v2/projects/{project}/datasets"),
        &[("Content-Type", "application/json")],
        body,
    )
    .unwrap_or_else(|e| panic!("bqemulator at {url} unreachable: {e}"));
    assert!(
        created.status == 200 || created.status == 409,
        "create dataset: {} {}",
        created.status,
        created.body
    );
    let listed = http_request(
        &url,
        "GET",
        &format!("/bigquery/v2/projects/{project}/datasets"),
        &[],
        "",
    )
    .unwrap_or_else(|e| panic!("bqemulator at {url} unreachable: {e}"));
    assert_eq!(listed.status, 200, "{}", listed.body);
    let json: serde_json::Value = serde_json::from_str(&listed.body).expect("dataset list is JSON");
    let ids: Vec<&str> = json["datasets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["datasetReference"]["datasetId"].as_str())
        .collect();
    assert!(
        ids.contains(&"migrate_smoke"),
        "created dataset is listed: {ids:?}"
    );
}
