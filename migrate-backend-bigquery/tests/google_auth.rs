//! Signing in to Google: a service-account key's JWT exchanged for an access token at the
//! key's `token_uri`, the token sent on every request and reused until it expires, and a
//! rejected key, a missing file or no credentials at all each an `Auth` error naming where the
//! credentials were looked for — never their content. Google's token endpoint and REST API are
//! played by a local HTTP server answering with recorded bodies (no network here); the key in
//! `fixtures/` is a throwaway made for these tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use migrate_backend_bigquery::{BqAuth, BqClient, BqEndpoint};
use migrate_core::ErrorKind;
use serde_json::{json, Value as Json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TABLE: &str = "/bigquery/v2/projects/proj/datasets/ds/tables/t";
const SCOPE: &str = "https://www.googleapis.com/auth/bigquery";

/// The throwaway key with its `token_uri` pointed at `server`, written to a temporary file.
fn key_file(server: &MockServer, name: &str) -> (std::path::PathBuf, Json) {
    let text = include_str!("fixtures/throwaway-service-account.json")
        .replace("TOKEN_URI", &format!("{}/token", server.uri()));
    let path = std::env::temp_dir().join(format!("migrate-{name}-{}.json", std::process::id()));
    std::fs::write(&path, &text).unwrap();
    (path, serde_json::from_str(&text).unwrap())
}

fn table_resource() -> Json {
    json!({"kind": "bigquery#table", "id": "proj:ds.t",
           "tableReference": {"projectId": "proj", "datasetId": "ds", "tableId": "t"},
           "schema": {"fields": [{"name": "id", "type": "INTEGER", "mode": "REQUIRED"}]},
           "numRows": "0", "numBytes": "0"})
}

/// A client signing in with the key at `key_path` and talking to `server`.
fn client_with_key(server: &MockServer, key_path: &std::path::Path) -> BqClient {
    let mut endpoint = BqEndpoint::unauthenticated(server.uri(), "proj");
    endpoint.auth = BqAuth::KeyFile(key_path.to_path_buf());
    BqClient::new(endpoint).unwrap()
}

/// The token endpoint answering `status` with `body`.
async fn token_endpoint(server: &MockServer, status: u16, body: Json) {
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(server)
        .await;
}

/// A JWT's part `i` (0 header, 1 claims), decoded.
fn jwt_part(jwt: &str, i: usize) -> Json {
    let part = jwt.split('.').nth(i).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn a_service_account_key_signs_in_once_and_every_request_carries_the_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "ya29.recorded-token", "expires_in": 3599, "token_type": "Bearer"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(TABLE))
        .and(header("authorization", "Bearer ya29.recorded-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(table_resource()))
        .expect(2)
        .mount(&server)
        .await;
    let (key_path, key) = key_file(&server, "sa-ok");
    let url = format!(
        "bigquery://proj/ds?endpoint={}&credentials={}",
        server.uri(),
        key_path.display()
    );
    let (endpoint, dataset) = BqEndpoint::from_url(&url).unwrap();
    assert_eq!(endpoint.auth, BqAuth::KeyFile(key_path.clone()));
    let client = BqClient::new(endpoint).unwrap();
    for _ in 0..2 {
        let t = client.get_table(&dataset, "t").await.unwrap();
        assert_eq!(t.unwrap()["id"], "proj:ds.t");
    }

    // What went to the token endpoint: a JWT bearer grant signed for this key and scope.
    let requests = server.received_requests().await.unwrap();
    let token = requests.iter().find(|r| r.url.path() == "/token").unwrap();
    let form: std::collections::HashMap<String, String> =
        url_form(std::str::from_utf8(&token.body).unwrap());
    assert_eq!(
        form["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    let jwt = &form["assertion"];
    assert_eq!(jwt_part(jwt, 0)["alg"], "RS256");
    let claims = jwt_part(jwt, 1);
    assert_eq!(claims["iss"], key["client_email"]);
    assert_eq!(claims["aud"], key["token_uri"]);
    assert_eq!(claims["scope"], SCOPE);
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());

    // Neither the key nor the token shows in what a log could print.
    let shown = format!("{client:?}");
    assert!(
        !shown.contains("PRIVATE KEY") && !shown.contains("ya29"),
        "{shown}"
    );
    server.verify().await;
    std::fs::remove_file(key_path).unwrap();
}

#[tokio::test]
async fn a_rejected_key_is_an_auth_error_naming_the_file_and_nothing_reaches_bigquery() {
    let server = MockServer::start().await;
    // Google's answer to a key that was deleted or whose signature does not verify.
    let refused = json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."});
    token_endpoint(&server, 400, refused).await;
    let (key_path, _) = key_file(&server, "sa-rejected");
    let e = client_with_key(&server, &key_path)
        .get_table("ds", "t")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    let text = e.to_string();
    assert!(text.contains(&key_path.display().to_string()), "{text}");
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    let requests = server.received_requests().await.unwrap();
    assert!(
        requests.iter().all(|r| r.url.path() == "/token"),
        "a request went out without a token"
    );
    std::fs::remove_file(key_path).unwrap();
}

#[tokio::test]
async fn a_key_file_that_is_missing_or_not_a_key_is_named() {
    let server = MockServer::start().await;
    let missing = std::env::temp_dir().join("migrate-no-such-key.json");
    let not_a_key =
        std::env::temp_dir().join(format!("migrate-not-a-key-{}.json", std::process::id()));
    std::fs::write(&not_a_key, r#"{"type": "service_account"}"#).unwrap();
    for path in [&missing, &not_a_key] {
        let e = client_with_key(&server, path)
            .get_table("ds", "t")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    }
    assert!(server.received_requests().await.unwrap().is_empty());
    std::fs::remove_file(not_a_key).unwrap();
}

#[tokio::test]
async fn an_expired_token_refused_by_bigquery_is_an_auth_error() {
    let server = MockServer::start().await;
    let token = json!({"access_token": "ya29.revoked", "expires_in": 3599, "token_type": "Bearer"});
    token_endpoint(&server, 200, token).await;
    // BigQuery's recorded answer to a token it no longer accepts.
    Mock::given(method("GET"))
        .and(path(TABLE))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {
            "code": 401,
            "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            "errors": [{"message": "Invalid Credentials", "domain": "global", "reason": "authError",
                        "location": "Authorization", "locationType": "header"}],
            "status": "UNAUTHENTICATED"}})))
        .mount(&server)
        .await;
    let (key_path, _) = key_file(&server, "sa-revoked");
    let e = client_with_key(&server, &key_path)
        .get_table("ds", "t")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(!e.to_string().contains("ya29"), "{e}");
    std::fs::remove_file(key_path).unwrap();
}

/// `a=b&c=d`, percent-decoded.
fn url_form(body: &str) -> std::collections::HashMap<String, String> {
    reqwest::Url::parse(&format!("http://x/?{body}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}
