//! Application-default credentials: with no `credentials=`, the key that
//! `GOOGLE_APPLICATION_CREDENTIALS` names signs in (Google played by a local server; a test
//! binary of its own, since it sets the process's environment).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use migrate_backend_bigquery::{BqAuth, BqClient, BqEndpoint};
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn google_application_credentials_names_the_key_used() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "ya29.from-adc", "expires_in": 3599, "token_type": "Bearer"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/bigquery/v2/projects/proj/datasets/ds/tables/t"))
        .and(header("authorization", "Bearer ya29.from-adc"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": {
            "code": 404, "message": "Not found: Table proj:ds.t",
            "errors": [{"message": "Not found: Table proj:ds.t", "domain": "global", "reason": "notFound"}],
            "status": "NOT_FOUND"}})))
        .expect(1)
        .mount(&server)
        .await;
    let text = include_str!("fixtures/throwaway-service-account.json")
        .replace("TOKEN_URI", &format!("{}/token", server.uri()));
    let key = std::env::temp_dir().join(format!("migrate-adc-{}.json", std::process::id()));
    std::fs::write(&key, text).unwrap();
    std::env::set_var("GOOGLE_APPLICATION_CREDENTIALS", &key);

    // Google's endpoint without credentials= means application-default credentials.
    let (google, _) = BqEndpoint::from_url("bigquery://proj/ds").unwrap();
    assert_eq!(google.auth, BqAuth::ApplicationDefault);
    let mut endpoint = BqEndpoint::unauthenticated(server.uri(), "proj");
    endpoint.auth = google.auth;
    // The table is not there: answered, so the request went out signed in.
    let answer = BqClient::new(endpoint)
        .unwrap()
        .get_table("ds", "t")
        .await
        .unwrap();
    assert!(answer.is_none());
    server.verify().await;
    std::fs::remove_file(key).unwrap();
}
