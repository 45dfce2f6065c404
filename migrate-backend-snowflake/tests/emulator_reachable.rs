//! `scripts/test` provisions the fakesnow Snowflake emulator: it accepts a login over
//! Snowflake's REST protocol and runs a query. (The backend's own suites arrive with `SfSink`.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

use migrate_core::testing::{http_request, service_env};

#[test]
fn snowflake_emulator_logs_in_and_runs_a_query() {
    let Some(url) = service_env("MIGRATE_TEST_SNOWFLAKE_URL") else {
        return;
    };
    let login = r#"{"data": {"LOGIN_NAME": "migrate", "PASSWORD": "unused", "ACCOUNT_NAME": "test",
        "SESSION_PARAMETERS": {"FAKESNOW_DB_PATH": ":isolated:"}}}"#;
    let resp = http_request(
        &url,
        "POST",
        "/session/v1/login-request?databaseName=db1&schemaName=s1",
        &[("Content-Type", "application/json")],
        login,
    )
    .unwrap_or_else(|e| panic!("fakesnow at {url} unreachable: {e}"));
    assert_eq!(resp.status, 200, "{}", resp.body);
    let json: serde_json::Value = serde_json::from_str(&resp.body).expect("login answer is JSON");
    let token = json["data"]["token"]
        .as_str()
        .expect("login returns a token");
    let auth = format!("Snowflake Token=\"{token}\"");
    let run = |sql: &str| {
        let body = serde_json::json!({ "sqlText": sql }).to_string();
        let r = http_request(
            &url,
            "POST",
            "/queries/v1/query-request",
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &auth),
            ],
            &body,
        )
        .unwrap_or_else(|e| panic!("fakesnow query {sql:?} failed: {e}"));
        assert_eq!(r.status, 200, "{sql}: {}", r.body);
        let json: serde_json::Value = serde_json::from_str(&r.body).expect("query answer is JSON");
        assert_eq!(json["success"], true, "{sql}: {}", r.body);
        json
    };
    run("create table smoke (x int)");
    // DML answers carry the affected row count as a JSON rowset.
    let inserted = run("insert into smoke values (40), (2)");
    assert_eq!(inserted["data"]["rowset"][0][0], "2", "{inserted}");
    // Queries answer in Arrow (what the Snowflake backend must decode).
    let q = run("select sum(x) as answer from smoke");
    assert_eq!(q["data"]["queryResultFormat"], "arrow");
    assert_eq!(q["data"]["rowtype"][0]["name"], "ANSWER");
    assert!(
        q["data"]["rowsetBase64"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{q}"
    );
}
