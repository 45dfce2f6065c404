//! The bulk path's upload: a gzipped file `PUT` to an internal stage the way the official
//! drivers do it. The `PUT` statement itself moves no bytes: Snowflake answers with where the
//! stage's files live ([`storage`]) and, for a stage encrypted client-side, the key material
//! ([`seal`]); the client uploads there and `COPY INTO` then reads the stage.
//!
//! Names are the caller's: each attempt uploads under a directory of its own, so a retried
//! attempt never meets a file an earlier one loaded (`COPY` skips a file it has loaded into the
//! same table before, for 64 days).

mod seal;
mod sigv4;
mod storage;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use migrate_core::{Error, ErrorKind, Result};
use tracing::debug;

use crate::client::SfSession;
use seal::Material;
use storage::{Kind, Location, Sent};

/// Uploads `gz` (gzip bytes) as `@<stage>/<dir>/<name>`.
pub(crate) async fn put(
    session: &SfSession,
    stage: &str,
    dir: &str,
    name: &str,
    gz: &[u8],
) -> Result<()> {
    // The local path is never read (the bytes are in memory): Snowflake takes the object's
    // name from its last part.
    let command = format!(
        "PUT 'file:///migrate/{name}' @{stage}/{dir}/ AUTO_COMPRESS=FALSE SOURCE_COMPRESSION=GZIP OVERWRITE=TRUE PARALLEL=1"
    );
    let digest = B64.encode(ring::digest::digest(&ring::digest::SHA256, gz));
    let mut renewed = false;
    loop {
        let data = session.transfer(&command).await?;
        if data["command"].as_str() != Some("UPLOAD") {
            return Err(Error::fatal(format!(
                "Snowflake answered a PUT with command {}, not UPLOAD",
                data["command"]
            )));
        }
        let location = Location::from_answer(&data["stageInfo"])?;
        let sealed = match Material::from_answer(&data["encryptionMaterial"])? {
            Some(m) if location.kind != Kind::LocalFs => Some(seal::seal(&m, gz)?),
            _ => None,
        };
        let upload = location.request(name, &digest, sealed.as_ref(), chrono::Utc::now())?;
        debug!(
            ?upload,
            encrypted = sealed.is_some(),
            bytes = gz.len(),
            "uploading a staged file"
        );
        let body = match sealed {
            Some(s) => s.body,
            None => gz.to_vec(),
        };
        match storage::send(session.http(), &upload, body).await? {
            Sent::Landed => return Ok(()),
            // The stage's credentials ran out between the answer and the upload: the same
            // PUT hands out fresh ones.
            Sent::Expired if !renewed => renewed = true,
            Sent::Expired => {
                return Err(Error::new(
                    ErrorKind::Auth,
                    "the Snowflake stage's storage refused fresh credentials as expired",
                ))
            }
        }
    }
}

/// Loads every file under `@<stage>/<dir>/` — `files` of them, each a gzipped JSON array of
/// rows — into `table` (one `VARIANT` column, a row each) and removes them from the stage
/// (`PURGE`); answers the rows loaded. A file not loaded whole fails the load, named by its
/// status, line and column (never its values).
pub(crate) async fn copy_json(
    session: &SfSession,
    stage: &str,
    dir: &str,
    table: &str,
    files: usize,
) -> Result<u64> {
    let r = session
        .query(
            &format!(
                "COPY INTO {table} FROM @{stage}/{dir}/ FILE_FORMAT = (TYPE = JSON STRIP_OUTER_ARRAY = TRUE) PURGE = TRUE"
            ),
            &[],
        )
        .await?;
    let at = |name: &str| r.column(name);
    let (Some(status), Some(loaded)) = (at("status"), at("rows_loaded")) else {
        return Err(Error::fatal(format!(
            "COPY INTO {table} found none of the {files} files uploaded to @{stage}/{dir}/"
        )));
    };
    let cell = |row: &[Option<String>], i: Option<usize>| -> String {
        i.and_then(|i| row.get(i).cloned().flatten())
            .unwrap_or_default()
    };
    let rows = r.texts();
    if rows.len() != files {
        return Err(Error::fatal(format!(
            "COPY INTO {table} read {} files of the {files} uploaded to @{stage}/{dir}/",
            rows.len()
        )));
    }
    let mut total = 0;
    for row in &rows {
        if !cell(row, Some(status)).eq_ignore_ascii_case("LOADED") {
            return Err(Error::fatal(format!(
                "COPY INTO {table}: file {} was {} (first error at line {}, column {})",
                cell(row, at("file")),
                cell(row, Some(status)),
                cell(row, at("first_error_line")),
                cell(row, at("first_error_column_name")),
            )));
        }
        total += cell(row, Some(loaded)).parse::<u64>().unwrap_or(0);
    }
    Ok(total)
}

/// `text` gzipped (no name, no time: the same rows give the same file).
pub(crate) fn gzip(text: &str) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut gz = flate2::GzBuilder::new().mtime(0).write(
        Vec::with_capacity(text.len() / 4),
        flate2::Compression::fast(),
    );
    gz.write_all(text.as_bytes())
        .and_then(|_| gz.finish())
        .map_err(|e| Error::with_source(ErrorKind::Fatal, "compressing a staged file", e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::client::SfClient;
    use crate::endpoint::SfEndpoint;
    use serde_json::json;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const MASTER: [u8; 16] = [7; 16];

    async fn session(server: &MockServer) -> SfSession {
        let (host, port) = server
            .uri()
            .trim_start_matches("http://")
            .split_once(':')
            .map(|(h, p)| (h.to_string(), p.to_string()))
            .unwrap();
        Mock::given(method("POST"))
            .and(path("/session/v1/login-request"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "data": {"token": "session-1", "masterToken": "master-1"},
                "code": null, "message": null, "success": true})))
            .mount(server)
            .await;
        let url = format!(
            "snowflake://loader:secret@myorg-acct/DB/S?host={host}&port={port}&protocol=http"
        );
        SfClient::new(SfEndpoint::from_url(&url).unwrap())
            .unwrap()
            .session()
            .await
            .unwrap()
    }

    fn header(r: &wiremock::Request, k: &str) -> String {
        r.headers
            .get(k)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    /// A GCS stage with key material (a GCP account): Snowflake's `PUT` answer hands out a
    /// presigned URL; the first upload finds it expired (400), so the `PUT` is asked again and
    /// the file uploaded under the fresh URL — sealed, its wrapped key and digest beside it.
    #[tokio::test]
    async fn a_sealed_upload_is_sent_where_put_says_and_an_expired_url_asked_for_again() {
        let server = MockServer::start().await;
        let s = session(&server).await;
        let object = "/bucket/stages/x/a1/part-0.json.gz";
        let answer = json!({"data": {
            "command": "UPLOAD", "src_locations": ["/migrate/part-0.json.gz"],
            "autoCompress": false, "sourceCompression": "gzip", "overwrite": true,
            "stageInfo": {"locationType": "GCS", "location": "bucket/stages/x/", "region": "US-WEST1",
                          "creds": {}, "presignedUrl": format!("{}{object}?X-Goog-Signature=s", server.uri())},
            "encryptionMaterial": {"queryStageMasterKey": B64.encode(MASTER), "queryId": "01b2-put", "smkId": 77}},
            "code": null, "message": null, "success": true});
        Mock::given(method("POST"))
            .and(path("/queries/v1/query-request"))
            .respond_with(ResponseTemplate::new(200).set_body_json(answer))
            .expect(2)
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .and(path(object))
            .respond_with(ResponseTemplate::new(400).set_body_string("ExpiredToken"))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .and(path(object))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        let gz = gzip("[[1,\"a\"],[2,\"b\"]]").unwrap();
        put(&s, "_MIGRATE_STAGE", "a1", "part-0.json.gz", &gz)
            .await
            .unwrap();

        let requests = server.received_requests().await.unwrap();
        let puts: Vec<&wiremock::Request> = requests
            .iter()
            .filter(|r| r.method.as_str() == "POST" && r.url.path() == "/queries/v1/query-request")
            .collect();
        let sql =
            serde_json::from_slice::<serde_json::Value>(&puts[0].body).unwrap()["sqlText"].clone();
        assert_eq!(
            sql,
            "PUT 'file:///migrate/part-0.json.gz' @_MIGRATE_STAGE/a1/ AUTO_COMPRESS=FALSE SOURCE_COMPRESSION=GZIP OVERWRITE=TRUE PARALLEL=1"
        );
        let upload = requests
            .iter()
            .rfind(|r| r.method.as_str() == "PUT")
            .unwrap();
        let data: serde_json::Value =
            serde_json::from_str(&header(upload, "x-goog-meta-encryptiondata")).unwrap();
        let key = data["WrappedContentKey"]["EncryptedKey"].as_str().unwrap();
        let iv = data["ContentEncryptionIV"].as_str().unwrap();
        assert_eq!(
            seal::open(&MASTER, key, iv, &upload.body),
            gz,
            "the body decrypts to the file"
        );
        assert_eq!(
            header(upload, "x-goog-meta-matdesc"),
            "{\"queryId\":\"01b2-put\",\"smkId\":\"77\",\"keySize\":\"128\"}"
        );
        assert_eq!(
            header(upload, "x-goog-meta-sfc-digest"),
            B64.encode(ring::digest::digest(&ring::digest::SHA256, &gz))
        );
        assert!(
            upload.headers.get("authorization").is_none(),
            "a presigned URL needs no token (and the session's is never sent to storage)"
        );
    }

    /// An S3 stage: the upload goes to the bucket's regional host, signed with the temporary
    /// credentials, the wrapped key, IV and material description as object metadata.
    #[tokio::test]
    async fn an_s3_upload_arrives_signed_with_its_key_beside_it() {
        let server = MockServer::start().await;
        Mock::given(method("PUT"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        let location = Location::from_answer(&json!({
            "locationType": "S3", "location": "sfc-bucket/stages/x/", "region": "eu-west-1",
            "creds": {"AWS_KEY_ID": "AKID", "AWS_SECRET_KEY": "SECRET", "AWS_TOKEN": "TOKEN"}}))
        .unwrap();
        let material = Material::from_answer(&json!({
            "queryStageMasterKey": B64.encode(MASTER), "queryId": "q", "smkId": 1}))
        .unwrap()
        .unwrap();
        let gz = gzip("[[1]]").unwrap();
        let sealed = seal::seal(&material, &gz).unwrap();
        let mut up = location
            .request(
                "part-0.json.gz",
                "DIGEST",
                Some(&sealed),
                chrono::Utc::now(),
            )
            .unwrap();
        let host = "https://sfc-bucket.s3.eu-west-1.amazonaws.com";
        assert!(up.url.starts_with(host), "{}", up.url);
        // The same request, to the local server.
        up.url = up.url.replacen(host, &server.uri(), 1);
        let sent = storage::send(&reqwest::Client::new(), &up, sealed.body.clone())
            .await
            .unwrap();
        assert!(matches!(sent, Sent::Landed));
        let got = &server.received_requests().await.unwrap()[0];
        assert_eq!(got.url.path(), "/stages/x/part-0.json.gz");
        assert!(header(got, "authorization").starts_with("AWS4-HMAC-SHA256 Credential=AKID/"));
        assert_eq!(header(got, "x-amz-security-token"), "TOKEN");
        assert_eq!(header(got, "x-amz-content-sha256"), "UNSIGNED-PAYLOAD");
        let opened = seal::open(
            &MASTER,
            &header(got, "x-amz-meta-x-amz-key"),
            &header(got, "x-amz-meta-x-amz-iv"),
            &got.body,
        );
        assert_eq!(opened, gz);
        assert!(
            !got.headers
                .values()
                .any(|v| v.to_str().unwrap_or_default().contains("SECRET")),
            "the secret key signs; it is never sent"
        );
    }
}
