//! A thin client for BigQuery's REST API (v2) — what the sink and source need: datasets,
//! tables, queries (paged), and load jobs from an upload — with every failure read by
//! [`BqError`] wherever BigQuery reports it (an error status, a failed job fetched with 200,
//! the emulator's 200 with `errors`).
//!
//! Auth: a bearer token on every request for Google (see [`crate::auth`]); none for the
//! emulator, which takes any request.

use std::time::Duration;

use migrate_core::{Error, Result};
use serde_json::{json, Value as Json};

use crate::auth::{BqAuth, TokenSource};
use crate::error::BqError;

/// Where the REST API answers, and for which project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BqEndpoint {
    /// Base URL of the REST API (`http://127.0.0.1:9050` for the emulator).
    pub rest: String,
    /// The project jobs run in and tables belong to.
    pub project: String,
    /// Location of the datasets and jobs (`US`, `EU`, a region), when one is set.
    pub location: Option<String>,
    /// How requests are authenticated.
    pub auth: BqAuth,
}

impl BqEndpoint {
    /// An endpoint that takes unauthenticated requests (the emulator at `rest`).
    pub fn unauthenticated(rest: impl Into<String>, project: impl Into<String>) -> BqEndpoint {
        BqEndpoint {
            rest: rest.into(),
            project: project.into(),
            location: None,
            auth: BqAuth::None,
        }
    }

    /// Reads `bigquery://PROJECT/DATASET?endpoint=URL&credentials=PATH&location=LOC` into the
    /// endpoint and the dataset. Without `endpoint`, requests go to Google's REST API with
    /// the service-account key `credentials` names, else with application-default
    /// credentials; with `endpoint` (the emulator's base URL) and no `credentials`, they go
    /// unauthenticated. `grpc_endpoint` is read and unused: this version writes through load
    /// jobs and DML, not the Storage Write API.
    pub fn from_url(url: &str) -> Result<(BqEndpoint, String)> {
        let bad = |why: &str| Error::config(format!("BigQuery URL {url}: {why}"));
        let parsed = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if parsed.scheme() != "bigquery" {
            return Err(bad("the scheme must be bigquery://"));
        }
        let project = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no project (bigquery://PROJECT/DATASET)"))?
            .to_string();
        let dataset = parsed.path().trim_matches('/').to_string();
        if dataset.is_empty() || dataset.contains('/') {
            return Err(bad(
                "the path must be one dataset (bigquery://PROJECT/DATASET)",
            ));
        }
        let mut rest = None;
        let mut location = None;
        let mut credentials = None;
        for (k, v) in parsed.query_pairs() {
            match k.as_ref() {
                "endpoint" => rest = Some(v.trim_end_matches('/').to_string()),
                "location" => location = Some(v.to_string()),
                "credentials" if v.is_empty() => return Err(bad("credentials= names no file")),
                "credentials" => credentials = Some(std::path::PathBuf::from(v.as_ref())),
                "grpc_endpoint" => {}
                other => return Err(bad(&format!("unknown parameter {other:?}"))),
            }
        }
        let auth = match (&rest, credentials) {
            (_, Some(path)) => BqAuth::KeyFile(path),
            (Some(_), None) => BqAuth::None,
            (None, None) => BqAuth::ApplicationDefault,
        };
        Ok((
            BqEndpoint {
                rest: rest.unwrap_or_else(|| GOOGLE.to_string()),
                project,
                location,
                auth,
            },
            dataset,
        ))
    }
}

/// Rows a query returned, and what a DML statement changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryResult {
    /// Each row's cells as BigQuery renders them (`f[i].v`: strings, nested for arrays).
    pub rows: Vec<Vec<Json>>,
    /// Rows a DML statement inserted, deleted or updated (`numDmlAffectedRows`).
    pub affected: Option<u64>,
}

/// A query's rows, fetched a page at a time ([`BqClient::pages`]).
pub struct QueryPages {
    client: BqClient,
    /// The answer not read yet (the first, or the one just fetched).
    page: Option<Json>,
    page_rows: Option<usize>,
    /// Rows a DML statement changed, once its answer was read.
    pub affected: Option<u64>,
}

impl QueryPages {
    /// The next page's rows (each row's cells, `f[i].v`), or `None` after the last.
    pub async fn next(&mut self) -> Result<Option<Vec<Vec<Json>>>> {
        loop {
            let Some(page) = self.page.take() else {
                return Ok(None);
            };
            query_failed(&page)?;
            let complete = page["jobComplete"].as_bool().unwrap_or(true);
            let token = page["pageToken"].as_str().map(str::to_string);
            if complete {
                if let Some(n) = count(&page["numDmlAffectedRows"]) {
                    self.affected = Some(n);
                }
            }
            if !complete || token.is_some() {
                let job = page["jobReference"]["jobId"].as_str().ok_or_else(|| {
                    Error::fatal("BigQuery query: an unfinished answer names no job")
                })?;
                let token = token.as_deref().filter(|_| complete);
                self.page = Some(self.client.page(job, token, self.page_rows).await?);
            }
            if !complete {
                continue;
            }
            let rows: Vec<Vec<Json>> = page["rows"]
                .as_array()
                .map(|rows| {
                    rows.iter()
                        .map(|r| {
                            r["f"]
                                .as_array()
                                .map(|cells| cells.iter().map(|c| c["v"].clone()).collect())
                                .unwrap_or_default()
                        })
                        .collect()
                })
                .unwrap_or_default();
            return Ok(Some(rows));
        }
    }
}

/// Google's REST API.
const GOOGLE: &str = "https://bigquery.googleapis.com";

/// The REST client.
#[derive(Clone)]
pub struct BqClient {
    http: reqwest::Client,
    endpoint: BqEndpoint,
    tokens: TokenSource,
}

impl std::fmt::Debug for BqClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BqClient")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// How long one request may take (a query or load polls in steps of this).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long BigQuery may hold a `jobs.query` / `getQueryResults` call waiting for a job.
const WAIT_MS: u64 = 10_000;

impl BqClient {
    /// A client for `endpoint`.
    pub fn new(endpoint: BqEndpoint) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| Error::with_source(migrate_core::ErrorKind::Config, "HTTP client", e))?;
        let tokens = TokenSource::new(endpoint.auth.clone());
        Ok(BqClient {
            http,
            endpoint,
            tokens,
        })
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/bigquery/v2/projects/{}/{path}",
            self.endpoint.rest.trim_end_matches('/'),
            self.endpoint.project
        )
    }

    /// Sends `req` and reads the answer: JSON on success, a classified error otherwise.
    async fn send(&self, mut req: reqwest::RequestBuilder, what: &str) -> Result<Json> {
        if let Some(token) = self.tokens.token().await? {
            req = req.bearer_auth(token.as_str());
        }
        let resp = req.send().await.map_err(|e| {
            let kind = match e.is_timeout() {
                true => migrate_core::ErrorKind::Timeout,
                false => migrate_core::ErrorKind::Transient,
            };
            Error::with_source(kind, format!("BigQuery {what}: request failed"), e)
        })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.text().await.map_err(|e| {
            Error::with_source(
                migrate_core::ErrorKind::Transient,
                format!("BigQuery {what}: reading the answer"),
                e,
            )
        })?;
        if !(200..300).contains(&status) {
            return Err(
                BqError::from_response(status, &body, retry_after.as_deref()).into_error(what),
            );
        }
        if body.trim().is_empty() {
            return Ok(Json::Null);
        }
        serde_json::from_str(&body).map_err(|e| {
            Error::with_source(
                migrate_core::ErrorKind::Fatal,
                format!("BigQuery {what}: the answer is not JSON"),
                e,
            )
        })
    }

    /// Creates `dataset` (in the endpoint's location); `false` if it existed.
    pub async fn create_dataset(&self, dataset: &str) -> Result<bool> {
        let mut body =
            json!({"datasetReference": {"projectId": self.endpoint.project, "datasetId": dataset}});
        if let Some(l) = &self.endpoint.location {
            body["location"] = json!(l);
        }
        let what = format!("creating dataset {dataset}");
        created(
            self.send(self.http.post(self.url("datasets")).json(&body), &what)
                .await,
        )
    }

    /// Creates `dataset.table` with `fields` (a `TableSchema`'s `fields`); `false` if it
    /// existed.
    pub async fn create_table(&self, dataset: &str, table: &str, fields: Json) -> Result<bool> {
        self.create_table_keyed(dataset, table, fields, &[]).await
    }

    /// [`Self::create_table`] with a primary key declared (BigQuery records it, does not
    /// enforce it).
    pub async fn create_table_keyed(
        &self,
        dataset: &str,
        table: &str,
        fields: Json,
        key: &[&str],
    ) -> Result<bool> {
        let mut body = json!({
            "tableReference": {"projectId": self.endpoint.project, "datasetId": dataset, "tableId": table},
            "schema": {"fields": fields},
        });
        if !key.is_empty() {
            body["tableConstraints"] = json!({"primaryKey": {"columns": key}});
        }
        let what = format!("creating table {dataset}.{table}");
        let url = self.url(&format!("datasets/{dataset}/tables"));
        created(self.send(self.http.post(url).json(&body), &what).await)
    }

    /// Declares `dataset.table`'s keys (`tables.patch` of its `tableConstraints`, which
    /// replaces any declared before, so declaring again changes nothing): the primary key
    /// `key` (none when empty) and `foreign_keys` as [`foreign_key`] makes them. BigQuery
    /// records them, does not enforce them, and uses them to plan joins.
    pub async fn set_constraints(
        &self,
        dataset: &str,
        table: &str,
        key: &[&str],
        foreign_keys: Vec<Json>,
    ) -> Result<()> {
        let mut constraints = json!({"foreignKeys": foreign_keys});
        if !key.is_empty() {
            constraints["primaryKey"] = json!({"columns": key});
        }
        let body = json!({"tableConstraints": constraints});
        let url = self.url(&format!("datasets/{dataset}/tables/{table}"));
        let what = format!("declaring the keys of {dataset}.{table}");
        self.send(self.http.patch(url).json(&body), &what)
            .await
            .map(drop)
    }

    /// `dataset.table`'s resource (schema, row count), or `None` when it does not exist.
    pub async fn get_table(&self, dataset: &str, table: &str) -> Result<Option<Json>> {
        let url = self.url(&format!("datasets/{dataset}/tables/{table}"));
        match self
            .send(self.http.get(url), &format!("reading {dataset}.{table}"))
            .await
        {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == migrate_core::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The ids of `dataset`'s tables, every page of them.
    pub async fn list_tables(&self, dataset: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut req = self
                .http
                .get(self.url(&format!("datasets/{dataset}/tables")));
            if let Some(t) = &token {
                req = req.query(&[("pageToken", t)]);
            }
            let page = self.send(req, &format!("listing {dataset}")).await?;
            out.extend(
                page["tables"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t["tableReference"]["tableId"].as_str().map(str::to_string)),
            );
            token = page["nextPageToken"].as_str().map(str::to_string);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// The project the client works in.
    pub fn project(&self) -> &str {
        &self.endpoint.project
    }

    /// Drops `dataset.table`; `false` if it was not there.
    pub async fn delete_table(&self, dataset: &str, table: &str) -> Result<bool> {
        let url = self.url(&format!("datasets/{dataset}/tables/{table}"));
        match self
            .send(
                self.http.delete(url),
                &format!("dropping {dataset}.{table}"),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == migrate_core::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Runs one GoogleSQL statement and reads all its rows, page by page.
    pub async fn query(&self, sql: &str) -> Result<QueryResult> {
        let mut pages = self.pages(sql, None).await?;
        let mut out = QueryResult::default();
        while let Some(rows) = pages.next().await? {
            out.rows.extend(rows);
        }
        out.affected = pages.affected;
        Ok(out)
    }

    /// Runs one GoogleSQL statement whose rows are then read a page (of at most `page_rows`)
    /// at a time, as the caller asks for them: memory holds one page.
    pub async fn pages(&self, sql: &str, page_rows: Option<usize>) -> Result<QueryPages> {
        // Timestamps as integer microseconds, exact (the default renders float seconds).
        let mut body = json!({"query": sql, "useLegacySql": false, "timeoutMs": WAIT_MS,
                              "formatOptions": {"useInt64Timestamp": true}});
        if let Some(n) = page_rows {
            body["maxResults"] = json!(n);
        }
        if let Some(l) = &self.endpoint.location {
            body["location"] = json!(l);
        }
        let page = self
            .send(self.http.post(self.url("queries")).json(&body), "query")
            .await?;
        Ok(QueryPages {
            client: self.clone(),
            page: Some(page),
            page_rows,
            affected: None,
        })
    }

    /// The next page of job `job` (from `token`; without one, the job's first once done).
    async fn page(&self, job: &str, token: Option<&str>, page_rows: Option<usize>) -> Result<Json> {
        let mut req = self.http.get(self.url(&format!("queries/{job}"))).query(&[
            ("timeoutMs", WAIT_MS.to_string()),
            ("formatOptions.useInt64Timestamp", "true".into()),
        ]);
        if let Some(t) = token {
            req = req.query(&[("pageToken", t)]);
        }
        if let Some(n) = page_rows {
            req = req.query(&[("maxResults", n.to_string())]);
        }
        if let Some(l) = &self.endpoint.location {
            req = req.query(&[("location", l)]);
        }
        self.send(req, "reading query results").await
    }

    /// Loads newline-delimited JSON `data` into `dataset.table` (created with `fields` if
    /// missing, its rows replaced otherwise) with one load job from a multipart upload; waits
    /// for the job and returns the rows it loaded. A load job is atomic: the table holds all
    /// of `data` or none of it.
    pub async fn load_ndjson(
        &self,
        dataset: &str,
        table: &str,
        fields: Json,
        data: Vec<u8>,
    ) -> Result<u64> {
        let what = format!("loading {dataset}.{table}");
        let mut job = json!({"configuration": {"load": {
            "destinationTable": {"projectId": self.endpoint.project, "datasetId": dataset, "tableId": table},
            "sourceFormat": "NEWLINE_DELIMITED_JSON",
            "schema": {"fields": fields},
            "createDisposition": "CREATE_IF_NEEDED",
            "writeDisposition": "WRITE_TRUNCATE",
            "maxBadRecords": 0,
        }}});
        if let Some(l) = &self.endpoint.location {
            job["jobReference"] = json!({"projectId": self.endpoint.project, "location": l});
        }
        let boundary = format!("migrate-{:016x}", fastrand::u64(..));
        let mut body = format!(
            "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{job}\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(&data);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let url = format!(
            "{}/upload/bigquery/v2/projects/{}/jobs?uploadType=multipart",
            self.endpoint.rest.trim_end_matches('/'),
            self.endpoint.project
        );
        let req = self
            .http
            .post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/related; boundary={boundary}"),
            )
            .body(body);
        let mut job = self.send(req, &what).await?;
        loop {
            if job["status"]["errorResult"].is_object() {
                return Err(BqError::from_response(200, &job.to_string(), None).into_error(&what));
            }
            if job["status"]["state"].as_str() == Some("DONE") {
                return Ok(count(&job["statistics"]["load"]["outputRows"]).unwrap_or(0));
            }
            let id = job["jobReference"]["jobId"]
                .as_str()
                .ok_or_else(|| Error::fatal(format!("BigQuery {what}: the job has no id")))?
                .to_string();
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut req = self.http.get(self.url(&format!("jobs/{id}")));
            if let Some(l) = &self.endpoint.location {
                req = req.query(&[("location", l)]);
            }
            job = self.send(req, &what).await?;
        }
    }
}

/// One foreign key in `tableConstraints.foreignKeys` form: `name`, the columns `pairs`
/// (referencing, referenced) and the parent `dataset.table` in `project`.
pub fn foreign_key(
    name: &str,
    project: &str,
    dataset: &str,
    parent: &str,
    pairs: &[(&str, &str)],
) -> Json {
    let columns: Vec<Json> = pairs
        .iter()
        .map(|(from, to)| json!({"referencingColumn": from, "referencedColumn": to}))
        .collect();
    json!({
        "name": name,
        "referencedTable": {"projectId": project, "datasetId": dataset, "tableId": parent},
        "columnReferences": columns,
    })
}

/// A create's answer: created, or there already (`duplicate`).
fn created(answer: Result<Json>) -> Result<bool> {
    match answer {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == migrate_core::ErrorKind::Constraint => Ok(false),
        Err(e) => Err(e),
    }
}

/// A query answer that reports failure with a success status (the emulator's `jobs.query`
/// puts a failed statement's errors at the top level; BigQuery lists warnings there too, so
/// only an answer with nothing else in it is a failure).
fn query_failed(page: &Json) -> Result<()> {
    let errors = page["errors"].as_array().is_some_and(|e| !e.is_empty());
    // (The emulator sends an empty schema along with the errors of a failed statement.)
    let answered = page["schema"]["fields"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
        || page.get("numDmlAffectedRows").is_some();
    if errors && !answered {
        return Err(BqError::from_response(200, &page.to_string(), None).into_error("query"));
    }
    Ok(())
}

/// A count BigQuery sends as a string (`"42"`) or a number.
fn count(v: &Json) -> Option<u64> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_project_dataset_endpoint_and_location() {
        let (e, d) =
            BqEndpoint::from_url("bigquery://proj/ds?endpoint=http://127.0.0.1:9050/&location=EU")
                .unwrap();
        assert_eq!(
            (
                e.rest.as_str(),
                e.project.as_str(),
                e.location.as_deref(),
                d.as_str()
            ),
            ("http://127.0.0.1:9050", "proj", Some("EU"), "ds")
        );
        assert_eq!(e.auth, BqAuth::None);
        // Google's endpoint: application-default credentials, or the key file named.
        let (e, _) = BqEndpoint::from_url("bigquery://proj/ds").unwrap();
        assert_eq!(e.rest, "https://bigquery.googleapis.com");
        assert_eq!(e.auth, BqAuth::ApplicationDefault);
        let (e, _) = BqEndpoint::from_url("bigquery://proj/ds?credentials=/k.json").unwrap();
        assert_eq!(e.auth, BqAuth::KeyFile("/k.json".into()));
        assert_eq!(e.rest, "https://bigquery.googleapis.com");
        // A foreign key as tables.patch takes it.
        assert_eq!(
            foreign_key("orders_fk", "p", "d", "customers", &[("customer_id", "id")]),
            json!({"name": "orders_fk",
                   "referencedTable": {"projectId": "p", "datasetId": "d", "tableId": "customers"},
                   "columnReferences": [{"referencingColumn": "customer_id", "referencedColumn": "id"}]})
        );
        for bad in [
            "bigquery://proj",
            "bigquery:///ds",
            "bigquery://proj/a/b",
            "bigquery://proj/ds?credentials=",
            "bigquery://proj/ds?colour=red",
            "postgres://proj/ds",
        ] {
            let e = BqEndpoint::from_url(bad).unwrap_err();
            assert_eq!(e.kind(), migrate_core::ErrorKind::Config, "{bad}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }
}
