//! A thin client for Snowflake's connector protocol — the REST calls the official drivers
//! make: `login-request` opens a session, `query-request` runs one statement in it (bound
//! parameters; results inline as Arrow or JSON, or in chunks downloaded from presigned URLs),
//! a statement still running is polled at its `getResultUrl`, an expired session token is
//! renewed with the master token (or the session opened again) and the request re-sent, and
//! every failure is read by [`SfError`].
//!
//! A session is what a transaction lives in, so a chunk's `BEGIN … COMMIT` runs on a session
//! of its own ([`SfClient::session`]); nothing else is shared between sessions.
//!
//! Sign-in: user and password, or key pair (`private_key_file=`: a JWT signed with the key,
//! see [`crate::keypair`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use migrate_core::{DataType, Error, ErrorKind, Result, Row};
use serde_json::{json, Value as Json};
use tokio::sync::Mutex;

use crate::endpoint::{SfAuth, SfEndpoint};
use crate::error::SfError;
use crate::keypair::KeyPair;
use crate::rowset::{arrow_rows, base64_bytes, json_rows, json_rowset, ResultColumn};

/// How long one request may take (a running statement is polled in steps of this).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Between polls of a statement still running.
const POLL: Duration = Duration::from_millis(500);
/// Snowflake's "still running" codes.
const IN_PROGRESS: [&str; 2] = ["333333", "333334"];

/// Opens sessions on one account.
#[derive(Clone)]
pub struct SfClient {
    http: reqwest::Client,
    endpoint: Arc<SfEndpoint>,
    /// The key of key-pair sign-in, read once.
    key: Option<Arc<KeyPair>>,
}

impl std::fmt::Debug for SfClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SfClient")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// A statement's result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryResult {
    /// The result's columns.
    pub columns: Vec<ResultColumn>,
    /// Its rows, as migrate's values (SELECT, SHOW, DESCRIBE).
    pub rows: Vec<Row>,
    /// Its rows as text, when Snowflake answered with a JSON rowset (DML counts).
    pub text_rows: Vec<Vec<Option<String>>>,
    /// Snowflake's id of the statement.
    pub query_id: Option<String>,
}

impl QueryResult {
    /// The sum of a DML answer's counts in the columns whose names contain one of `words`
    /// (a `MERGE` answers `number of rows inserted`, `… updated`, `… deleted`).
    pub fn counted(&self, words: &[&str]) -> u64 {
        let Some(cells) = self.texts().into_iter().next() else {
            return 0;
        };
        self.columns
            .iter()
            .zip(cells)
            .filter(|(c, _)| {
                words
                    .iter()
                    .any(|w| c.name.to_ascii_lowercase().contains(w))
            })
            .filter_map(|(_, v)| v?.parse::<u64>().ok())
            .sum()
    }

    /// Every row as text, however it came: counts come as a JSON rowset from Snowflake, as
    /// Arrow from the emulator.
    pub fn texts(&self) -> Vec<Vec<Option<String>>> {
        match self.text_rows.is_empty() {
            false => self.text_rows.clone(),
            true => self
                .rows
                .iter()
                .map(|row| {
                    row.iter()
                        .map(|v| match v {
                            migrate_core::Value::Null => None,
                            v => Some(migrate_core::checksum::canonical_text(v)),
                        })
                        .collect()
                })
                .collect(),
        }
    }

    /// The position of the column named `name` (any case).
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// Rows a DML statement inserted, updated or deleted: the first column of its one row.
    pub fn affected(&self) -> Option<u64> {
        let row = self.text_rows.first()?;
        row.first()?.as_deref()?.parse().ok()
    }
}

/// One parameter bound to a `?` (Snowflake's binding types; values as text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// `TEXT`, `FIXED`, `REAL`, `BOOLEAN`, …
    pub ty: &'static str,
    /// The value as Snowflake's bindings carry it; `None` is NULL.
    pub value: Option<String>,
}

impl Binding {
    /// A text parameter.
    pub fn text(value: impl Into<String>) -> Binding {
        Binding {
            ty: "TEXT",
            value: Some(value.into()),
        }
    }
}

/// An open session: statements run one after another in it, and a transaction spans them.
pub struct SfSession {
    client: SfClient,
    tokens: Mutex<Tokens>,
    sequence: AtomicU64,
    /// Times this session signed in again (a new server session: any open transaction lost).
    signins: AtomicU64,
}

impl std::fmt::Debug for SfSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SfSession")
            .field("endpoint", &self.client.endpoint)
            .finish_non_exhaustive()
    }
}

/// The session's tokens (never logged).
struct Tokens {
    session: String,
    master: Option<String>,
}

impl SfClient {
    /// A client for `endpoint`.
    pub fn new(endpoint: SfEndpoint) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| Error::with_source(ErrorKind::Config, "HTTP client", e))?;
        let key = match &endpoint.auth {
            SfAuth::KeyPair(path) => Some(Arc::new(KeyPair::from_file(path)?)),
            SfAuth::Password(_) => None,
        };
        Ok(SfClient {
            http,
            endpoint: Arc::new(endpoint),
            key,
        })
    }

    /// The endpoint sessions open on.
    pub fn endpoint(&self) -> &SfEndpoint {
        &self.endpoint
    }

    /// Opens a session in the endpoint's database and schema (with its warehouse and role),
    /// its time zone UTC.
    pub async fn session(&self) -> Result<SfSession> {
        let tokens = self.login().await?;
        Ok(SfSession {
            client: self.clone(),
            tokens: Mutex::new(tokens),
            sequence: AtomicU64::new(0),
            signins: AtomicU64::new(0),
        })
    }

    async fn login(&self) -> Result<Tokens> {
        let e = &self.endpoint;
        let mut params = vec![("request_id", uuid::Uuid::new_v4().to_string())];
        params.push(("databaseName", e.database.clone()));
        params.push(("schemaName", e.schema.clone()));
        if let Some(w) = &e.warehouse {
            params.push(("warehouse", w.clone()));
        }
        if let Some(r) = &e.role {
            params.push(("roleName", r.clone()));
        }
        let mut body = json!({"data": {
            "CLIENT_APP_ID": "migrate",
            "CLIENT_APP_VERSION": env!("CARGO_PKG_VERSION"),
            "SVN_REVISION": "",
            "ACCOUNT_NAME": account_name(&e.account),
            "LOGIN_NAME": e.user,
            "CLIENT_ENVIRONMENT": {"APPLICATION": "migrate", "OS": std::env::consts::OS},
            // Instants read back in UTC; every statement commits unless a BEGIN opened a
            // transaction.
            "SESSION_PARAMETERS": {"TIMEZONE": "UTC", "AUTOCOMMIT": true},
        }});
        match (&e.auth, &self.key) {
            (_, Some(key)) => {
                let jwt = key.jwt(&account_name(&e.account), &e.user, chrono_millis() / 1000)?;
                body["data"]["AUTHENTICATOR"] = json!("SNOWFLAKE_JWT");
                body["data"]["TOKEN"] = json!(jwt);
            }
            (SfAuth::Password(p), None) => body["data"]["PASSWORD"] = json!(p),
            (SfAuth::KeyPair(path), None) => {
                return Err(Error::config(format!(
                    "Snowflake private key file {} was not read",
                    path.display()
                )))
            }
        }
        let req = self
            .http
            .post(self.url("/session/v1/login-request"))
            .query(&params)
            .json(&body);
        let data = self.send(req, None, "signing in").await?;
        let session = data["token"]
            .as_str()
            .ok_or_else(|| Error::fatal("Snowflake signed in without a session token"))?
            .to_string();
        Ok(Tokens {
            session,
            master: data["masterToken"].as_str().map(str::to_string),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint.base.trim_end_matches('/'))
    }

    /// Sends `req` (with `token`, when given) and returns the answer's `data`; a failure as
    /// [`SfError`] (the raw error, so callers can renew an expired session).
    async fn send_raw(
        &self,
        req: reqwest::RequestBuilder,
        token: Option<&str>,
    ) -> std::result::Result<Json, Failure> {
        let mut req = req.header(reqwest::header::ACCEPT, "application/snowflake");
        if let Some(t) = token {
            req = req.header(
                reqwest::header::AUTHORIZATION,
                format!("Snowflake Token=\"{t}\""),
            );
        }
        let resp = req.send().await.map_err(|e| {
            let kind = match e.is_timeout() {
                true => ErrorKind::Timeout,
                false => ErrorKind::Transient,
            };
            Failure::Transport(Error::with_source(kind, "request failed", e))
        })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.text().await.map_err(|e| {
            Failure::Transport(Error::with_source(
                ErrorKind::Transient,
                "reading the answer",
                e,
            ))
        })?;
        let json: Json = serde_json::from_str(&body).unwrap_or(Json::Null);
        let code = json["code"].as_str().unwrap_or_default();
        // "Still running" comes with success true: the code decides first.
        if (200..300).contains(&status) && IN_PROGRESS.contains(&code) {
            return Err(Failure::Running(json["data"].clone()));
        }
        if (200..300).contains(&status) && json["success"].as_bool() == Some(true) {
            return Ok(json["data"].clone());
        }
        Err(Failure::Service(SfError::from_response(
            status,
            &body,
            retry_after.as_deref(),
        )))
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        token: Option<&str>,
        what: &str,
    ) -> Result<Json> {
        self.send_raw(req, token)
            .await
            .map_err(|f| f.into_error(what))
    }
}

/// Why a request did not answer with data.
enum Failure {
    /// Never answered (network, timeout).
    Transport(Error),
    /// Answered "still running", with this `data` (its `getResultUrl`).
    Running(Json),
    /// Answered with an error.
    Service(SfError),
}

impl Failure {
    fn into_error(self, what: &str) -> Error {
        match self {
            Failure::Transport(e) => Error::new(e.kind(), format!("Snowflake {what}: {e}")),
            Failure::Running(_) => Error::fatal(format!("Snowflake {what}: still running")),
            Failure::Service(e) => e.into_error(what),
        }
    }
}

/// A statement's rows as they arrive: the inline part first, then each result chunk, downloaded
/// and decoded only when asked for — so memory holds one chunk, however large the result.
pub struct RowStream {
    client: SfClient,
    columns: Vec<ResultColumn>,
    types: Vec<DataType>,
    inline: Option<Vec<u8>>,
    /// The rows of a JSON answer, decoded.
    json: Option<Vec<Row>>,
    /// The answer (and so its chunks) is JSON, not Arrow.
    format_json: bool,
    chunks: VecDeque<String>,
    headers: Vec<(String, String)>,
    text_rows: Vec<Vec<Option<String>>>,
    query_id: Option<String>,
    what: String,
}

impl std::fmt::Debug for RowStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowStream")
            .field("what", &self.what)
            .field("chunks_left", &self.chunks.len())
            .finish_non_exhaustive()
    }
}

impl RowStream {
    fn new(
        client: SfClient,
        data: Json,
        types: Option<Vec<DataType>>,
        what: String,
    ) -> Result<Self> {
        let columns = ResultColumn::from_rowtype(&data["rowtype"]);
        let types = match types {
            Some(t) => t,
            None => match data["queryResultFormat"].as_str() {
                // A JSON answer's rows are text in any case (DML counts): values where its
                // columns' types are ones migrate reads.
                // A column of a type migrate does not read (a SHOW answer's) is text here.
                Some("json") => columns
                    .iter()
                    .map(|c| c.data_type().unwrap_or_else(|_| DataType::text()))
                    .collect(),
                _ => columns
                    .iter()
                    .map(|c| c.data_type())
                    .collect::<Result<_>>()?,
            },
        };
        let mut stream = RowStream {
            headers: chunk_headers(&data),
            chunks: data["chunks"]
                .as_array()
                .map(|cs| {
                    cs.iter()
                        .map(|c| c["url"].as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default(),
            query_id: data["queryId"].as_str().map(str::to_string),
            client,
            columns,
            types,
            inline: None,
            json: None,
            format_json: data["queryResultFormat"].as_str() == Some("json"),
            text_rows: Vec::new(),
            what,
        };
        match data["queryResultFormat"].as_str() {
            Some("json") => {
                stream.text_rows = json_rowset(&data["rowset"]);
                // Rows as values too, when any: a session answering in JSON (its result
                // format set so) reads the same as one answering in Arrow.
                if !stream.text_rows.is_empty() && !stream.types.is_empty() {
                    stream.json = Some(
                        json_rows(&stream.text_rows, &stream.columns, &stream.types)
                            .map_err(|e| e.operation(&stream.what))?,
                    );
                }
            }
            _ => {
                let inline = data["rowsetBase64"].as_str().unwrap_or_default();
                stream.inline = Some(base64_bytes(inline).map_err(|e| e.operation(&stream.what))?);
            }
        }
        Ok(stream)
    }

    /// The result's columns.
    pub fn columns(&self) -> &[ResultColumn] {
        &self.columns
    }

    /// The next rows: the inline part, then one chunk's; `None` once all have been read.
    pub async fn next_rows(&mut self) -> Result<Option<Vec<Row>>> {
        if let Some(rows) = self.json.take() {
            return Ok(Some(rows));
        }
        let bytes = match self.inline.take() {
            Some(b) => b,
            None => match self.chunks.pop_front() {
                Some(url) if url.is_empty() => {
                    return Err(Error::fatal(format!(
                        "Snowflake {}: a result chunk without a URL",
                        self.what
                    )))
                }
                Some(url) => self.download(&url).await?,
                None => return Ok(None),
            },
        };
        let rows = match self.format_json {
            // A JSON answer's chunks are its rows, comma-separated, without the brackets.
            true => {
                let mut text = Vec::with_capacity(bytes.len() + 2);
                text.push(b'[');
                text.extend_from_slice(&bytes);
                text.push(b']');
                let rowset: Json = serde_json::from_slice(&text).map_err(|e| {
                    Error::fatal(format!(
                        "Snowflake {}: a JSON result chunk that does not parse: {e}",
                        self.what
                    ))
                })?;
                json_rows(&json_rowset(&rowset), &self.columns, &self.types)
            }
            false => arrow_rows(&bytes, &self.columns, &self.types),
        };
        rows.map(Some).map_err(|e| e.operation(&self.what))
    }

    /// One result chunk: a plain GET of its presigned URL with the headers Snowflake named
    /// (never the session token), gunzipped when it arrives compressed.
    async fn download(&self, url: &str) -> Result<Vec<u8>> {
        let what = &self.what;
        let mut req = self.client.http.get(url);
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let failed = |e: reqwest::Error| {
            Error::with_source(
                ErrorKind::Transient,
                format!("Snowflake {what}: downloading a result chunk"),
                e,
            )
        };
        let resp = req.send().await.map_err(failed)?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(failed)?;
        if !(200..300).contains(&status) {
            return Err(
                SfError::from_response(status, &String::from_utf8_lossy(&bytes), None)
                    .into_error(&format!("{what}: downloading a result chunk")),
            );
        }
        gunzip(&bytes).map_err(|e| e.operation(what))
    }
}

impl SfSession {
    /// Runs one statement with `bindings` for its `?` placeholders and reads its whole result.
    pub async fn query(&self, sql: &str, bindings: &[Binding]) -> Result<QueryResult> {
        let mut stream = self.stream(sql, bindings, None).await?;
        let mut out = QueryResult {
            columns: stream.columns.clone(),
            text_rows: std::mem::take(&mut stream.text_rows),
            query_id: stream.query_id.clone(),
            rows: Vec::new(),
        };
        while let Some(rows) = stream.next_rows().await? {
            out.rows.extend(rows);
        }
        Ok(out)
    }

    /// Runs one statement and returns its rows as they arrive — the inline part, then one
    /// downloaded chunk at a time — each column read as `types` says (the types a table was
    /// created from), or as its `rowtype` names when `types` is `None`.
    pub async fn stream(
        &self,
        sql: &str,
        bindings: &[Binding],
        types: Option<Vec<DataType>>,
    ) -> Result<RowStream> {
        let (data, what) = self.run(sql, bindings).await?;
        RowStream::new(self.client.clone(), data, types, what)
    }

    /// Runs a file-transfer statement (`PUT`) and returns its answer's `data`: no rows, but
    /// where and how to upload.
    pub(crate) async fn transfer(&self, sql: &str) -> Result<Json> {
        Ok(self.run(sql, &[]).await?.0)
    }

    /// The HTTP client, for uploads to a stage's storage.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.client.http
    }

    /// Sends one statement (renewing an expired session once, polling while it runs) and
    /// returns its answer's `data` and the statement's name for errors.
    async fn run(&self, sql: &str, bindings: &[Binding]) -> Result<(Json, String)> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut body = json!({
            "sqlText": sql,
            "asyncExec": false,
            "sequenceId": self.sequence.fetch_add(1, Ordering::Relaxed) + 1,
            "querySubmissionTime": chrono_millis(),
        });
        if !bindings.is_empty() {
            let map: serde_json::Map<String, Json> = bindings
                .iter()
                .enumerate()
                .map(|(i, b)| ((i + 1).to_string(), json!({"type": b.ty, "value": b.value})))
                .collect();
            body["bindings"] = Json::Object(map);
        }
        let what = statement_name(sql);
        // One renewal per statement: a second expiry in a row is an error.
        let mut renewed = false;
        let data = loop {
            let token = self.tokens.lock().await.session.clone();
            // The same request id on a re-send: Snowflake runs a statement once per id.
            let req = self
                .client
                .http
                .post(self.client.url("/queries/v1/query-request"))
                .query(&[("requestId", &request_id)])
                .json(&body);
            match self.client.send_raw(req, Some(&token)).await {
                Ok(data) => break data,
                Err(Failure::Running(data)) => break self.wait(data, &what).await?,
                Err(Failure::Service(e)) if e.session_expired() && !renewed => {
                    renewed = true;
                    self.renew(&token).await?;
                }
                Err(f) => return Err(f.into_error(&what)),
            }
        };
        Ok((data, what))
    }

    /// How many times the session signed in again after its token was refused: a change
    /// between two statements means the server session — and any transaction open in it — was
    /// replaced.
    pub fn signins(&self) -> u64 {
        self.signins.load(Ordering::Relaxed)
    }

    /// Polls a running statement's `getResultUrl` until it answers.
    async fn wait(&self, mut data: Json, what: &str) -> Result<Json> {
        loop {
            let url = data["getResultUrl"]
                .as_str()
                .ok_or_else(|| {
                    Error::fatal(format!(
                        "Snowflake {what}: still running, with no result URL"
                    ))
                })?
                .to_string();
            let url = match url.starts_with("http") {
                true => url,
                false => self.client.url(&url),
            };
            tokio::time::sleep(POLL).await;
            let token = self.tokens.lock().await.session.clone();
            match self
                .client
                .send_raw(self.client.http.get(url), Some(&token))
                .await
            {
                Ok(done) => return Ok(done),
                Err(Failure::Running(next)) => data = next,
                Err(Failure::Service(e)) if e.session_expired() => self.renew(&token).await?,
                Err(f) => return Err(f.into_error(what)),
            }
        }
    }

    /// The session token `expired` was refused: renew it with the master token, or open the
    /// session again where there is none (or renewal is refused too). A session opened again
    /// has lost any open transaction, which then fails at its next statement and is retried
    /// whole by the executor.
    async fn renew(&self, expired: &str) -> Result<()> {
        let mut tokens = self.tokens.lock().await;
        if tokens.session != expired {
            return Ok(()); // another statement renewed it meanwhile
        }
        if let Some(master) = tokens.master.clone() {
            let req = self
                .client
                .http
                .post(self.client.url("/session/token-request"))
                .query(&[("requestId", uuid::Uuid::new_v4().to_string())])
                .json(&json!({"oldSessionToken": expired, "requestType": "RENEW"}));
            if let Ok(data) = self.client.send_raw(req, Some(&master)).await {
                if let Some(t) = data["sessionToken"].as_str() {
                    tokens.session = t.to_string();
                    if let Some(m) = data["masterToken"].as_str() {
                        tokens.master = Some(m.to_string());
                    }
                    return Ok(());
                }
            }
        }
        *tokens = self.client.login().await?;
        self.signins.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Ends the session (best effort: an abandoned session expires on its own).
    pub async fn close(self) {
        let token = self.tokens.lock().await.session.clone();
        let req = self
            .client
            .http
            .post(self.client.url("/session"))
            .query(&[("delete", "true")])
            .json(&json!({}));
        let _ = self.client.send_raw(req, Some(&token)).await;
    }
}

/// The headers a chunk download needs: `chunkHeaders` as given, or the server-side
/// encryption key `qrmk` names.
fn chunk_headers(data: &Json) -> Vec<(String, String)> {
    if let Some(map) = data["chunkHeaders"].as_object() {
        return map
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
            .collect();
    }
    match data["qrmk"].as_str() {
        Some(key) => vec![
            (
                "x-amz-server-side-encryption-customer-algorithm".into(),
                "AES256".into(),
            ),
            (
                "x-amz-server-side-encryption-customer-key".into(),
                key.into(),
            ),
        ],
        None => Vec::new(),
    }
}

/// `bytes`, gunzipped when they start with gzip's magic number (some stores send compressed
/// chunks without saying so).
fn gunzip(bytes: &[u8]) -> Result<Vec<u8>> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes.to_vec());
    }
    use std::io::Read as _;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| Error::fatal(format!("a result chunk that does not gunzip: {e}")))?;
    Ok(out)
}

/// The account part Snowflake's sign-in names: before the first `.` (a locator's region
/// goes), upper-case.
fn account_name(account: &str) -> String {
    account
        .split('.')
        .next()
        .unwrap_or(account)
        .to_ascii_uppercase()
}

/// The statement's first words, for error messages (never its values).
fn statement_name(sql: &str) -> String {
    let words: Vec<&str> = sql.split_whitespace().take(3).collect();
    format!("statement {}", words.join(" "))
}

fn chrono_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_names_the_account_and_chunks_their_keys() {
        assert_eq!(account_name("xy12345.eu-west-1.aws"), "XY12345");
        assert_eq!(account_name("myorg-acct"), "MYORG-ACCT");
        let d = json!({"qrmk": "a2V5", "chunks": []});
        assert_eq!(
            chunk_headers(&d)[1],
            (
                "x-amz-server-side-encryption-customer-key".into(),
                "a2V5".into()
            )
        );
        let d = json!({"qrmk": "x", "chunkHeaders": {"x-goog-a": "1"}});
        assert_eq!(
            chunk_headers(&d),
            vec![("x-goog-a".to_string(), "1".to_string())]
        );
        assert_eq!(
            statement_name("DELETE FROM t WHERE id = 5"),
            "statement DELETE FROM t"
        );
    }
}
