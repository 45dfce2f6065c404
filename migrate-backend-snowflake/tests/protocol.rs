//! What the emulator never does, played by a local server with Snowflake's recorded answer
//! shapes: an expired session token renewed with the master token and the statement re-sent
//! under the same request id; a statement still running polled at its `getResultUrl`; result
//! chunks downloaded from presigned URLs (with the encryption headers, without the session
//! token) and gunzipped; a sign-in refused as an auth error.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

use std::io::Write as _;
use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use migrate_backend_snowflake::{SfClient, SfEndpoint};
use migrate_core::{ErrorKind, Value};
use serde_json::json;
use wiremock::matchers::{header, header_exists, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn client(server: &MockServer) -> SfClient {
    let addr = server.uri().trim_start_matches("http://").to_string();
    let (host, port) = addr.split_once(':').unwrap();
    let url = format!(
        "snowflake://loader:secret@myorg-acct/NEW_DB/NEW_SCHEMA?warehouse=LOAD_WH&host={host}&port={port}&protocol=http"
    );
    SfClient::new(SfEndpoint::from_url(&url).unwrap()).unwrap()
}

async fn login(server: &MockServer, token: &str, master: &str) {
    Mock::given(method("POST"))
        .and(path("/session/v1/login-request"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"token": token, "masterToken": master, "validityInSeconds": 3600,
                     "masterValidityInSeconds": 14400, "sessionId": 1_172_562_260_498_i64,
                     "parameters": [], "sessionInfo": {"databaseName": "NEW_DB"}},
            "code": null, "message": null, "success": true})))
        .mount(server)
        .await;
}

/// A DML answer: one row, the count.
fn inserted(n: u64) -> serde_json::Value {
    json!({"data": {"rowtype": [{"name": "number of rows inserted", "type": "fixed",
                                 "precision": 19, "scale": 0, "nullable": false}],
                    "rowset": [[n.to_string()]], "queryResultFormat": "json", "total": 1,
                    "queryId": "01b2-0001"},
           "code": null, "message": null, "success": true})
}

#[tokio::test]
async fn an_expired_session_is_renewed_and_the_statement_sent_again_once() {
    let server = MockServer::start().await;
    login(&server, "session-1", "master-1").await;
    Mock::given(method("POST"))
        .and(path("/queries/v1/query-request"))
        .and(header("authorization", "Snowflake Token=\"session-1\""))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"nextAction": "RENEW_SESSION"}, "code": "390112",
            "message": "Your session has expired. Please login again.", "success": false})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/session/token-request"))
        .and(header("authorization", "Snowflake Token=\"master-1\""))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"sessionToken": "session-2", "validityInSecondsST": 3600,
                     "masterToken": "master-2", "validityInSecondsMT": 14400},
            "code": null, "message": null, "success": true})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/queries/v1/query-request"))
        .and(header("authorization", "Snowflake Token=\"session-2\""))
        .respond_with(ResponseTemplate::new(200).set_body_json(inserted(3)))
        .expect(1)
        .mount(&server)
        .await;
    let s = client(&server).session().await.unwrap();
    let r = s.query("INSERT INTO t SELECT 1", &[]).await.unwrap();
    assert_eq!(r.affected(), Some(3));
    server.verify().await;

    // The re-sent statement kept its request id (Snowflake runs one id once), and the
    // renewal named the expired token.
    let requests = server.received_requests().await.unwrap();
    let ids: Vec<String> = requests
        .iter()
        .filter(|r| r.url.path() == "/queries/v1/query-request")
        .map(|r| {
            r.url
                .query_pairs()
                .find(|(k, _)| k == "requestId")
                .unwrap()
                .1
                .to_string()
        })
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1]);
    let renew = requests
        .iter()
        .find(|r| r.url.path() == "/session/token-request")
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&renew.body).unwrap();
    assert_eq!(
        body,
        json!({"oldSessionToken": "session-1", "requestType": "RENEW"})
    );
    // Sign-in named the account as Snowflake wants it, and the session's database.
    let signin = &requests[0];
    let body: serde_json::Value = serde_json::from_slice(&signin.body).unwrap();
    assert_eq!(body["data"]["ACCOUNT_NAME"], "MYORG-ACCT");
    assert_eq!(body["data"]["LOGIN_NAME"], "loader");
    assert_eq!(body["data"]["SESSION_PARAMETERS"]["TIMEZONE"], "UTC");
    assert!(signin.url.query().unwrap().contains("databaseName=NEW_DB"));
    assert!(signin.url.query().unwrap().contains("warehouse=LOAD_WH"));
}

/// Answers "still running" the first `n` times, then the result.
struct Running(std::sync::atomic::AtomicUsize, usize);

impl Respond for Running {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let seen = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match seen < self.1 {
            true => ResponseTemplate::new(200).set_body_json(json!({
                "data": {"queryId": "01b2-0002", "getResultUrl": "/queries/01b2-0002/result",
                         "queryAbortsAfterSecs": 300, "progressDesc": null},
                "code": "333334", "message": "Asynchronous execution in progress. Use provided query id to perform query monitoring and management.",
                "success": true})),
            false => ResponseTemplate::new(200).set_body_json(inserted(7)),
        }
    }
}

#[tokio::test]
async fn a_statement_still_running_is_polled_until_it_answers() {
    let server = MockServer::start().await;
    login(&server, "s", "m").await;
    Mock::given(method("POST"))
        .and(path("/queries/v1/query-request"))
        .respond_with(Running(Default::default(), 1))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/queries/01b2-0002/result"))
        .and(header("authorization", "Snowflake Token=\"s\""))
        .respond_with(Running(Default::default(), 2))
        .expect(3)
        .mount(&server)
        .await;
    let s = client(&server).session().await.unwrap();
    let r = s
        .query("INSERT INTO big SELECT * FROM huge", &[])
        .await
        .unwrap();
    assert_eq!(r.affected(), Some(7));
    server.verify().await;
}

/// An Arrow IPC stream of one INT64 column `id` holding `ids`.
fn arrow_ids(ids: Vec<i64>) -> Vec<u8> {
    let schema = Arc::new(Schema::new(vec![Field::new("ID", DataType::Int64, false)]));
    let batch =
        RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(ids))]).unwrap();
    let mut out = Vec::new();
    let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut out, &schema).unwrap();
    w.write(&batch).unwrap();
    w.finish().unwrap();
    drop(w);
    out
}

#[tokio::test]
async fn result_chunks_are_downloaded_with_their_keys_and_gunzipped() {
    use base64::Engine as _;
    let server = MockServer::start().await;
    login(&server, "s", "m").await;
    let inline = base64::engine::general_purpose::STANDARD.encode(arrow_ids(vec![1, 2]));
    Mock::given(method("POST"))
        .and(path("/queries/v1/query-request"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"rowtype": [{"name": "ID", "type": "fixed", "precision": 19, "scale": 0, "nullable": false}],
                     "rowsetBase64": inline, "queryResultFormat": "arrow", "total": 5, "returned": 2,
                     "qrmk": "c2VjcmV0LWtleQ==",
                     "chunks": [{"url": format!("{}/stage/results/0_0", server.uri()), "rowCount": 2,
                                 "uncompressedSize": 500, "compressedSize": 300},
                                {"url": format!("{}/stage/results/0_1", server.uri()), "rowCount": 1,
                                 "uncompressedSize": 400, "compressedSize": 250}],
                     "queryId": "01b2-0003"},
            "code": null, "message": null, "success": true})))
        .mount(&server)
        .await;
    // The first chunk gzip-compressed without saying so (as GCS serves it), the second plain.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&arrow_ids(vec![3, 4])).unwrap();
    let chunk0 = gz.finish().unwrap();
    for (p, body) in [
        ("/stage/results/0_0", chunk0),
        ("/stage/results/0_1", arrow_ids(vec![5])),
    ] {
        Mock::given(method("GET"))
            .and(path(p))
            .and(header(
                "x-amz-server-side-encryption-customer-key",
                "c2VjcmV0LWtleQ==",
            ))
            .and(header(
                "x-amz-server-side-encryption-customer-algorithm",
                "AES256",
            ))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(body))
            .expect(1)
            .mount(&server)
            .await;
    }
    let s = client(&server).session().await.unwrap();
    let r = s
        .query("SELECT id FROM orders ORDER BY id", &[])
        .await
        .unwrap();
    let ids: Vec<Value> = r.rows.into_iter().map(|mut row| row.remove(0)).collect();
    assert_eq!(ids, (1..=5).map(Value::Int64).collect::<Vec<_>>());
    server.verify().await;
    // Chunks go to the store without the session token.
    let requests = server.received_requests().await.unwrap();
    assert!(requests
        .iter()
        .filter(|r| r.url.path().starts_with("/stage/"))
        .all(|r| !r.headers.contains_key("authorization")));
}

#[tokio::test]
async fn a_refused_sign_in_is_an_auth_error_without_the_password() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/session/v1/login-request"))
        .and(header_exists("content-type"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"nextAction": "RETRY_LOGIN", "authnMethod": "USERNAME_PASSWORD",
                     "signInOptions": {}},
            "code": "390100", "message": "Incorrect username or password was specified.",
            "success": false, "headers": null})))
        .mount(&server)
        .await;
    let e = client(&server).session().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(
        e.to_string().contains("390100") && !e.to_string().contains("secret"),
        "{e}"
    );
}

/// What the server received, kept for the test to read.
#[derive(Clone)]
struct Captured(Arc<std::sync::Mutex<Vec<serde_json::Value>>>);

impl Respond for Captured {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        self.0
            .lock()
            .unwrap()
            .push(serde_json::from_slice(&req.body).unwrap());
        ResponseTemplate::new(200).set_body_json(json!({
            "data": {"token": "session-k", "masterToken": "master-k"},
            "code": null, "message": null, "success": true}))
    }
}

#[tokio::test]
async fn key_pair_sign_in_sends_a_jwt_naming_the_key_by_fingerprint() {
    use base64::Engine as _;
    let server = MockServer::start().await;
    let seen = Captured(Arc::new(std::sync::Mutex::new(Vec::new())));
    Mock::given(method("POST"))
        .and(path("/session/v1/login-request"))
        .respond_with(seen.clone())
        .mount(&server)
        .await;
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let addr = server.uri().trim_start_matches("http://").to_string();
    let (host, port) = addr.split_once(':').unwrap();
    for file in ["throwaway-rsa-key.p8", "throwaway-rsa-key-pkcs1.pem"] {
        let url = format!(
            "snowflake://loader@myorg-acct/NEW_DB/NEW_SCHEMA?private_key_file={fixtures}/{file}&host={host}&port={port}&protocol=http"
        );
        let c = SfClient::new(SfEndpoint::from_url(&url).unwrap()).unwrap();
        c.session().await.unwrap();
        let body = seen.0.lock().unwrap().pop().unwrap();
        let data = &body["data"];
        assert_eq!(data["AUTHENTICATOR"], "SNOWFLAKE_JWT");
        assert!(data.get("PASSWORD").is_none(), "{data}");
        let jwt = data["TOKEN"].as_str().unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let claims: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
        // The fingerprint as `openssl rsa -pubout -outform DER | openssl dgst -sha256 -binary
        // | base64` gives it for the fixture key.
        assert_eq!(
            claims["iss"],
            "MYORG-ACCT.LOADER.SHA256:o4Mf+mZnngmS4omt9aDq3knCerHG2fzBFVLlnU2qBSQ="
        );
        assert_eq!(claims["sub"], "MYORG-ACCT.LOADER");
        let (iat, exp) = (
            claims["iat"].as_u64().unwrap(),
            claims["exp"].as_u64().unwrap(),
        );
        assert!(exp > iat && exp - iat <= 3600, "{claims}");
        // Signed with the key: the public key verifies it.
        let key = migrate_backend_snowflake::keypair::KeyPair::from_file(std::path::Path::new(
            &format!("{fixtures}/{file}"),
        ))
        .unwrap();
        let spki = key.public_key_der();
        let pkcs1 = &spki[24..]; // a 2048-bit key's SubjectPublicKeyInfo header
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            pkcs1,
        );
        public
            .verify(
                format!("{}.{}", parts[0], parts[1]).as_bytes(),
                &b64.decode(parts[2]).unwrap(),
            )
            .unwrap();
        // The key never shows.
        assert!(!format!("{key:?}").contains("PRIVATE"));
    }
    let missing = SfEndpoint::from_url(&format!(
        "snowflake://loader@acct/DB/S?private_key_file={fixtures}/nope.p8"
    ))
    .unwrap();
    let e = SfClient::new(missing).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("nope.p8"), "{e}");
}

/// A JSON-format answer with these text columns and one row.
fn json_answer(names: &[String], cells: Vec<Option<String>>) -> serde_json::Value {
    let rowtype: Vec<serde_json::Value> = names
        .iter()
        .map(|n| json!({"name": n, "type": "text", "nullable": true}))
        .collect();
    json!({"data": {"rowtype": rowtype, "rowset": [cells], "queryResultFormat": "json",
                    "queryId": "01b2-0002"},
           "code": null, "message": null, "success": true})
}

/// The self-check's answer as a server rendering every sample as migrate does — but with the
/// decimal `0.50` shown as `misrender` when given.
fn self_check_answer(misrender: Option<&str>) -> serde_json::Value {
    use migrate_backend_snowflake::checksum_sql::samples;
    let samples = samples();
    let mut names: Vec<String> = (0..samples.len()).map(|i| format!("C{i}")).collect();
    let mut cells: Vec<Option<String>> = samples
        .iter()
        .map(|(v, _)| Some(migrate_core::checksum::canonical_text(v)))
        .collect();
    if let Some(bad) = misrender {
        let at = cells
            .iter()
            .position(|c| c.as_deref() == Some("0.5"))
            .unwrap();
        cells[at] = Some(bad.into());
    }
    let values: Vec<Value> = samples.into_iter().map(|(v, _)| v).collect();
    let mut want = migrate_core::RowChecksum::new();
    want.add_row(&values);
    names.extend(["HI".to_string(), "LO".to_string()]);
    cells.extend([Some(want.sum_hi.to_string()), Some(want.sum_lo.to_string())]);
    json_answer(&names, cells)
}

#[tokio::test]
async fn checksums_are_computed_in_snowflake_where_the_self_check_passes() {
    use migrate_backend_snowflake::SfSink;
    use migrate_core::{Column, DataType as Dt, KeyRange, Schema, Sink, TableInfo, TableName};
    use wiremock::matchers::body_string_contains;

    let table = TableInfo::new(
        TableName::new("public", "orders"),
        Schema::new(
            vec![
                Column::new("id", Dt::Int64).not_null(),
                Column::new(
                    "total",
                    Dt::Decimal {
                        precision: Some(12),
                        scale: Some(2),
                    },
                ),
            ],
            &["id"],
        )
        .unwrap(),
    );
    for (misrender, in_sql) in [(None, true), (Some("0.50"), false)] {
        let server = MockServer::start().await;
        login(&server, "s", "m").await;
        Mock::given(method("POST"))
            .and(path("/queries/v1/query-request"))
            .and(body_string_contains("AS \\\"HI\\\""))
            .respond_with(ResponseTemplate::new(200).set_body_json(self_check_answer(misrender)))
            .expect(1)
            .mount(&server)
            .await;
        // The sums of one range: 2 rows, the halves' exact sums past 2^64.
        let fixed =
            |name: &str, p: u32| json!({"name": name, "type": "fixed", "precision": p, "scale": 0});
        let sums = json!({"data": {
            "rowtype": [fixed("_B", 1), fixed("COUNT(*)", 18), fixed("HI", 38), fixed("LO", 38)],
            "rowset": [["0", "2", "18446744073709551622", "7"]], "queryResultFormat": "json"},
            "code": null, "message": null, "success": true});
        Mock::given(method("POST"))
            .and(path("/queries/v1/query-request"))
            .and(body_string_contains("GROUP BY"))
            .respond_with(ResponseTemplate::new(200).set_body_json(sums))
            .expect(u64::from(in_sql))
            .mount(&server)
            .await;
        let addr = server.uri().trim_start_matches("http://").to_string();
        let (host, port) = addr.split_once(':').unwrap();
        let url =
            format!("snowflake://loader:secret@acct/DB/S?host={host}&port={port}&protocol=http");
        let sink = SfSink::new(SfEndpoint::from_url(&url).unwrap()).unwrap();
        let path_taken = sink.checksum_path(&table).await.unwrap();
        if in_sql {
            assert!(
                path_taken.starts_with("computed in Snowflake"),
                "{path_taken}"
            );
            let sum = sink.checksum(&table, &KeyRange::all()).await.unwrap();
            assert_eq!((sum.count, sum.sum_hi, sum.sum_lo), (2, 6, 7));
        } else {
            assert!(
                path_taken.contains("streamed")
                    && path_taken.contains("\"total\"")
                    && path_taken.contains("\"0.50\""),
                "{path_taken}"
            );
        }
    }
}

#[tokio::test]
async fn a_json_result_reads_inline_and_from_its_chunks() {
    let server = MockServer::start().await;
    login(&server, "s", "m").await;
    Mock::given(method("POST"))
        .and(path("/queries/v1/query-request"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"rowtype": [{"name": "ID", "type": "fixed", "precision": 19, "scale": 0},
                                 {"name": "AT", "type": "timestamp_ntz", "scale": 6}],
                     "rowset": [["1", "0.000001000"]], "queryResultFormat": "json",
                     "chunks": [{"url": format!("{}/stage/results/json_0", server.uri()), "rowCount": 2}],
                     "queryId": "01b2-0004"},
            "code": null, "message": null, "success": true})))
        .mount(&server)
        .await;
    // A JSON chunk is its rows without the enclosing brackets.
    Mock::given(method("GET"))
        .and(path("/stage/results/json_0"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(r#"["2", null], ["3", "-1.500000000"]"#),
        )
        .expect(1)
        .mount(&server)
        .await;
    let s = client(&server).session().await.unwrap();
    let r = s.query("SELECT id, at FROM t", &[]).await.unwrap();
    assert_eq!(
        r.rows,
        vec![
            vec![Value::Int64(1), Value::Timestamp(1)],
            vec![Value::Int64(2), Value::Null],
            vec![Value::Int64(3), Value::Timestamp(-1_500_000)],
        ]
    );
}

#[tokio::test]
async fn foreign_keys_are_read_from_show_imported_keys() {
    use migrate_backend_snowflake::catalog::Catalog;
    use migrate_backend_snowflake::pool::SessionPool;
    use wiremock::matchers::body_string_contains;

    let server = MockServer::start().await;
    login(&server, "s", "m").await;
    // SHOW IMPORTED KEYS as Snowflake answers it: one row per column of each key; a composite
    // key's rows by key_sequence; a parent in another schema; the emulator's rows without a
    // parent table.
    let cols = [
        "created_on",
        "pk_database_name",
        "pk_schema_name",
        "pk_table_name",
        "pk_column_name",
        "fk_database_name",
        "fk_schema_name",
        "fk_table_name",
        "fk_column_name",
        "key_sequence",
        "update_rule",
        "delete_rule",
        "fk_name",
        "pk_name",
        "deferrability",
        "rely",
        "comment",
    ];
    let rowtype: Vec<serde_json::Value> = cols
        .iter()
        .map(|c| match *c {
            "key_sequence" => json!({"name": c, "type": "fixed", "precision": 38, "scale": 0}),
            _ => json!({"name": c, "type": "text"}),
        })
        .collect();
    let row = |pt: &str, pc: &str, ft: &str, fc: &str, seq: &str, name: &str, ps: &str| {
        json!([
            "2026-01-01",
            "NEW_DB",
            ps,
            pt,
            pc,
            "NEW_DB",
            "NEW_SCHEMA",
            ft,
            fc,
            seq,
            "NO ACTION",
            "NO ACTION",
            name,
            "PK",
            "NOT DEFERRABLE",
            "false",
            null
        ])
    };
    let rowset = json!([
        row(
            "ORDERS",
            "REGION",
            "LINES",
            "ORDER_REGION",
            "1",
            "LINES_ORDER_FKEY",
            "NEW_SCHEMA"
        ),
        row(
            "ORDERS",
            "ID",
            "LINES",
            "ORDER_ID",
            "2",
            "LINES_ORDER_FKEY",
            "NEW_SCHEMA"
        ),
        row(
            "CUSTOMERS",
            "ID",
            "ORDERS",
            "CUSTOMER_ID",
            "1",
            "ORDERS_CUSTOMER_FKEY",
            "NEW_SCHEMA"
        ),
        row(
            "ACCOUNTS",
            "ID",
            "ORDERS",
            "ACCOUNT_ID",
            "1",
            "FOREIGN_FKEY",
            "OTHER_SCHEMA"
        ),
        row("", "ID", "ORDERS", "ID", "1", "x", ""),
    ]);
    Mock::given(method("POST"))
        .and(path("/queries/v1/query-request"))
        .and(body_string_contains("SHOW IMPORTED KEYS"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"rowtype": rowtype, "rowset": rowset, "queryResultFormat": "json"},
            "code": null, "message": null, "success": true})))
        .mount(&server)
        .await;
    let c = client(&server);
    let catalog = Catalog::new(c.endpoint());
    let pool = SessionPool::new(c);
    let fks = catalog.foreign_keys(&pool, "new_schema").await.unwrap();
    let lines = &fks["LINES"];
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].name.as_deref(), Some("lines_order_fkey"));
    assert_eq!(lines[0].columns, vec!["order_region", "order_id"]);
    assert_eq!(lines[0].referenced_columns, vec!["region", "id"]);
    assert_eq!(lines[0].referenced_table.to_string(), "new_schema.orders");
    // Only the parent in this schema.
    let orders = &fks["ORDERS"];
    assert_eq!(orders.len(), 1, "{orders:?}");
    assert_eq!(orders[0].columns, vec!["customer_id"]);
}
