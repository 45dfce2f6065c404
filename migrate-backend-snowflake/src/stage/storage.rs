//! Where a staged file is uploaded: the cloud storage behind the account's internal stage —
//! S3, GCS or Azure, by the account's cloud — reached with what the `PUT` answer's `stageInfo`
//! hands out (temporary credentials, a SAS token, an access token or a presigned URL). The
//! drivers report nothing back after the upload: `COPY` lists what the stage holds.

use chrono::{DateTime, Utc};
use migrate_core::{Error, ErrorKind, Result};
use serde_json::Value as Json;

use super::seal::Sealed;
use super::sigv4::{sign_put, uri_path, AwsCreds};

/// Which storage a stage lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    S3,
    Gcs,
    Azure,
    /// A directory on the server's own disk: unreachable from another machine.
    LocalFs,
}

/// A stage's `stageInfo`, read. Its credentials never reach `Debug` or logs.
pub(crate) struct Location {
    pub kind: Kind,
    bucket: String,
    /// The stage's directory in the bucket, ending with `/` (or empty).
    prefix: String,
    region: String,
    end_point: Option<String>,
    storage_account: Option<String>,
    presigned_url: Option<String>,
    regional: bool,
    virtual_host: bool,
    creds: Json,
}

/// One upload to send: where and with which headers (tokens among them: not `Debug`-printed).
pub(crate) struct Upload {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub kind: Kind,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A SAS token or a presigned URL's signature rides in the query string.
        let url = self.url.split('?').next().unwrap_or_default();
        f.debug_struct("Upload")
            .field("kind", &self.kind)
            .field("url", &url)
            .finish_non_exhaustive()
    }
}

impl Location {
    pub(crate) fn from_answer(info: &Json) -> Result<Location> {
        let text = |k: &str| {
            info[k]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let kind = match text("locationType")
            .unwrap_or_default()
            .to_ascii_uppercase()
            .as_str()
        {
            "S3" => Kind::S3,
            "GCS" => Kind::Gcs,
            "AZURE" => Kind::Azure,
            "LOCAL_FS" => Kind::LocalFs,
            other => {
                return Err(Error::unsupported(format!(
                "Snowflake's stage is in storage of type {other:?}, which migrate cannot upload to"
            )))
            }
        };
        let location = text("location").unwrap_or_default();
        let (bucket, path) = location.split_once('/').unwrap_or((&location, ""));
        let prefix = match path.is_empty() || path.ends_with('/') {
            true => path.to_string(),
            false => format!("{path}/"),
        };
        let flag = |k: &str| info[k].as_bool() == Some(true);
        Ok(Location {
            kind,
            bucket: bucket.to_string(),
            prefix,
            region: text("region").unwrap_or_default(),
            end_point: text("endPoint"),
            storage_account: text("storageAccount"),
            presigned_url: text("presignedUrl"),
            regional: flag("useS3RegionalUrl") || flag("useRegionalUrl"),
            virtual_host: flag("useVirtualUrl"),
            creds: info["creds"].clone(),
        })
    }

    fn cred(&self, k: &str) -> Option<&str> {
        self.creds[k].as_str().filter(|s| !s.is_empty())
    }

    /// The upload of the file `name` (its gzip's SHA-256 `digest`, base64), sealed when the
    /// stage encrypts client-side.
    pub(crate) fn request(
        &self,
        name: &str,
        digest: &str,
        sealed: Option<&Sealed>,
        now: DateTime<Utc>,
    ) -> Result<Upload> {
        let key = format!("{}{name}", self.prefix);
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        let mut headers = Vec::new();
        let url = match self.kind {
            Kind::S3 => {
                let host = match (&self.end_point, self.region.starts_with("cn-")) {
                    (Some(e), _) => format!("{}.{e}", self.bucket),
                    (None, true) => format!("{}.s3.{}.amazonaws.com.cn", self.bucket, self.region),
                    (None, false) => format!("{}.s3.{}.amazonaws.com", self.bucket, self.region),
                };
                headers.push(pair("x-amz-meta-sfc-digest", digest));
                if let Some(s) = sealed {
                    headers.push(pair("x-amz-meta-x-amz-iv", &s.iv));
                    headers.push(pair("x-amz-meta-x-amz-key", &s.key));
                    headers.push(pair("x-amz-meta-x-amz-matdesc", &s.matdesc));
                }
                headers.push(pair("content-type", "application/octet-stream"));
                let creds = AwsCreds {
                    key_id: self.cred("AWS_KEY_ID").or(self.cred("AWS_ID")).unwrap_or_default().to_string(),
                    secret: self.cred("AWS_SECRET_KEY").or(self.cred("AWS_KEY")).unwrap_or_default().to_string(),
                    token: self.cred("AWS_TOKEN").unwrap_or_default().to_string(),
                };
                if creds.key_id.is_empty() || creds.secret.is_empty() {
                    return Err(Error::new(ErrorKind::Auth, "Snowflake's PUT answer gave no credentials for its S3 stage"));
                }
                let path = uri_path(&key);
                let signed = sign_put(&creds, &self.region, &host, &path, &headers, now);
                headers.extend(signed);
                format!("https://{host}{path}")
            }
            Kind::Gcs => {
                // Blank, not gzip: GCS would otherwise hand the file back decompressed.
                headers.push(pair("content-encoding", ""));
                headers.push(pair("x-goog-meta-sfc-digest", digest));
                if let Some(s) = sealed {
                    headers.push(pair("x-goog-meta-encryptiondata", &encryption_data(s, "AES_CBC_256")));
                    headers.push(pair("x-goog-meta-matdesc", &s.matdesc));
                }
                match (self.cred("GCS_ACCESS_TOKEN"), &self.presigned_url) {
                    (Some(token), _) => {
                        headers.push(pair("authorization", &format!("Bearer {token}")));
                        let path = uri_path(&key);
                        match (&self.end_point, self.virtual_host, self.regional) {
                            (Some(e), _, _) => format!("https://{e}/{}{path}", self.bucket),
                            (None, true, _) => format!("https://{}.storage.googleapis.com{path}", self.bucket),
                            (None, false, true) => format!(
                                "https://storage.{}.rep.googleapis.com/{}{path}",
                                self.region.to_ascii_lowercase(),
                                self.bucket
                            ),
                            (None, false, false) => format!("https://storage.googleapis.com/{}{path}", self.bucket),
                        }
                    }
                    (None, Some(url)) => url.clone(),
                    (None, None) => {
                        return Err(Error::new(ErrorKind::Auth, "Snowflake's PUT answer gave neither a token nor a presigned URL for its GCS stage"))
                    }
                }
            }
            Kind::Azure => {
                let sas = self.cred("AZURE_SAS_TOKEN").ok_or_else(|| {
                    Error::new(ErrorKind::Auth, "Snowflake's PUT answer gave no SAS token for its Azure stage")
                })?;
                let account = self.storage_account.as_deref().unwrap_or_default();
                let suffix = self.end_point.as_deref().unwrap_or("blob.core.windows.net");
                let suffix = suffix.strip_prefix("blob.").unwrap_or(suffix);
                headers.push(pair("x-ms-blob-type", "BlockBlob"));
                headers.push(pair("content-encoding", "utf-8"));
                headers.push(pair("x-ms-meta-sfcdigest", digest));
                if let Some(s) = sealed {
                    headers.push(pair("x-ms-meta-encryptiondata", &encryption_data(s, "AES_CBC_128")));
                    headers.push(pair("x-ms-meta-matdesc", &s.matdesc));
                }
                format!(
                    "https://{account}.blob.{suffix}/{}{}?{}",
                    self.bucket,
                    uri_path(&key),
                    sas.trim_start_matches('?')
                )
            }
            Kind::LocalFs => {
                return Err(Error::unsupported(
                    "Snowflake put this stage on the server's own disk (LOCAL_FS), which a client on another machine cannot write",
                ))
            }
        };
        Ok(Upload {
            url,
            headers,
            kind: self.kind,
        })
    }
}

/// The `encryptiondata` metadata of GCS and Azure, spelled as the drivers spell it.
fn encryption_data(s: &Sealed, agent: &str) -> String {
    format!(
        "{{\"EncryptionMode\": \"FullBlob\", \"WrappedContentKey\": {{\"KeyId\": \"symmKey1\", \"EncryptedKey\": \"{}\", \"Algorithm\": \"AES_CBC_256\"}}, \"EncryptionAgent\": {{\"Protocol\": \"1.0\", \"EncryptionAlgorithm\": \"{agent}\"}}, \"ContentEncryptionIV\": \"{}\", \"KeyWrappingMetadata\": {{\"EncryptionLibrary\": \"Java 5.3.0\"}}}}",
        s.key, s.iv
    )
}

/// What became of an upload.
#[derive(Debug)]
pub(crate) enum Sent {
    Landed,
    /// The credentials or URL ran out: ask Snowflake for new ones (the `PUT` again).
    Expired,
}

/// Sends `up` with `body`; a refusal as migrate's error kind.
pub(crate) async fn send(http: &reqwest::Client, up: &Upload, body: Vec<u8>) -> Result<Sent> {
    let mut req = http.put(&up.url).body(body);
    for (k, v) in &up.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = req.send().await.map_err(|e| {
        let kind = match e.is_timeout() {
            true => ErrorKind::Timeout,
            false => ErrorKind::Transient,
        };
        // The URL carries a SAS token or a presigned signature: never in the message.
        Error::with_source(
            kind,
            "uploading a file to the Snowflake stage",
            e.without_url(),
        )
    })?;
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(Sent::Landed);
    }
    let body = resp.text().await.unwrap_or_default();
    Ok(match classify(up.kind, status, &body) {
        None => Sent::Expired,
        Some(kind) => {
            let head: String = body.chars().take(300).collect();
            return Err(Error::new(
                kind,
                format!(
                    "the Snowflake stage's storage refused an upload with HTTP {status}: {head}"
                ),
            ));
        }
    })
}

/// `None` for credentials that ran out (renewed by asking again), else the failure's kind.
fn classify(kind: Kind, status: u16, body: &str) -> Option<ErrorKind> {
    let expired = match kind {
        Kind::S3 => {
            status == 400 && body.contains("ExpiredToken")
                || status == 403 && body.contains("ExpiredToken")
        }
        Kind::Gcs => status == 401 || status == 400,
        Kind::Azure => {
            status == 403
                && (body.contains("Signature not valid in the specified time frame")
                    || body.contains("Server failed to authenticate the request"))
        }
        Kind::LocalFs => false,
    };
    match (expired, status) {
        (true, _) => None,
        (_, 408 | 429 | 500..=599) => Some(ErrorKind::Transient),
        (_, 401 | 403) => Some(ErrorKind::Permission),
        _ => Some(ErrorKind::Fatal),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn sealed() -> Sealed {
        Sealed {
            body: vec![1, 2, 3],
            key: "KEY=".into(),
            iv: "IV==".into(),
            matdesc: "{\"queryId\":\"q\",\"smkId\":\"1\",\"keySize\":\"128\"}".into(),
        }
    }

    fn header<'a>(u: &'a Upload, k: &str) -> Option<&'a str> {
        u.headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap()
    }

    /// The `stageInfo` shapes of Snowflake's JDBC driver fixtures (S3, Azure, GCS).
    #[test]
    fn each_storage_gets_the_url_and_metadata_the_drivers_send() {
        let s3 = Location::from_answer(&json!({
            "locationType": "S3", "location": "sfc-bucket/stage/location/foo/", "path": "tables/1/",
            "region": "us-west-2", "isClientSideEncrypted": true, "presignedUrl": null, "endPoint": null,
            "creds": {"AWS_KEY_ID": "AKID", "AWS_SECRET_KEY": "SECRET", "AWS_TOKEN": "TOKEN"}
        }))
        .unwrap();
        let u = s3
            .request("part-0.json.gz", "DIGEST", Some(&sealed()), now())
            .unwrap();
        assert_eq!(
            u.url,
            "https://sfc-bucket.s3.us-west-2.amazonaws.com/stage/location/foo/part-0.json.gz"
        );
        assert_eq!(header(&u, "x-amz-meta-sfc-digest"), Some("DIGEST"));
        assert_eq!(header(&u, "x-amz-meta-x-amz-key"), Some("KEY="));
        assert_eq!(header(&u, "x-amz-meta-x-amz-iv"), Some("IV=="));
        assert_eq!(header(&u, "x-amz-security-token"), Some("TOKEN"));
        let auth = header(&u, "authorization").unwrap();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKID/20261130/us-west-2/s3/aws4_request, SignedHeaders=content-type;host;"), "{auth}");
        let debug = format!("{u:?}");
        assert!(
            !debug.contains("SECRET") && !debug.contains("TOKEN"),
            "credentials are never shown: {debug}"
        );

        let azure = Location::from_answer(&json!({
            "locationType": "AZURE", "location": "container/path", "region": "westus",
            "endPoint": "blob.core.windows.net", "storageAccount": "acct",
            "creds": {"AZURE_SAS_TOKEN": "?sv=2020&sig=abc"}
        }))
        .unwrap();
        let u = azure
            .request("part-0.json.gz", "DIGEST", Some(&sealed()), now())
            .unwrap();
        assert_eq!(
            u.url,
            "https://acct.blob.core.windows.net/container/path/part-0.json.gz?sv=2020&sig=abc"
        );
        assert!(
            !format!("{u:?}").contains("sig=abc"),
            "the SAS token is not shown"
        );
        assert_eq!(header(&u, "x-ms-blob-type"), Some("BlockBlob"));
        assert_eq!(header(&u, "x-ms-meta-sfcdigest"), Some("DIGEST"));
        assert_eq!(
            header(&u, "x-ms-meta-encryptiondata"),
            Some("{\"EncryptionMode\": \"FullBlob\", \"WrappedContentKey\": {\"KeyId\": \"symmKey1\", \"EncryptedKey\": \"KEY=\", \"Algorithm\": \"AES_CBC_256\"}, \"EncryptionAgent\": {\"Protocol\": \"1.0\", \"EncryptionAlgorithm\": \"AES_CBC_128\"}, \"ContentEncryptionIV\": \"IV==\", \"KeyWrappingMetadata\": {\"EncryptionLibrary\": \"Java 5.3.0\"}}")
        );

        let gcs = Location::from_answer(&json!({
            "locationType": "GCS", "location": "foo/tables/9224/", "region": "US-WEST1",
            "creds": {}, "presignedUrl": "https://storage.googleapis.com/foo/tables/9224/part-0.json.gz?X-Goog-Signature=s"
        }))
        .unwrap();
        let u = gcs
            .request("part-0.json.gz", "DIGEST", None, now())
            .unwrap();
        assert_eq!(
            u.url,
            "https://storage.googleapis.com/foo/tables/9224/part-0.json.gz?X-Goog-Signature=s"
        );
        assert_eq!(header(&u, "content-encoding"), Some(""));
        assert_eq!(header(&u, "x-goog-meta-sfc-digest"), Some("DIGEST"));
        assert_eq!(
            header(&u, "x-goog-meta-encryptiondata"),
            None,
            "nothing sealed, nothing said"
        );

        let token = Location::from_answer(&json!({
            "locationType": "GCS", "location": "foo/tables/9224", "region": "US-WEST1",
            "creds": {"GCS_ACCESS_TOKEN": "ya29.token"}
        }))
        .unwrap();
        let u = token
            .request("part 0.json.gz", "DIGEST", Some(&sealed()), now())
            .unwrap();
        assert_eq!(
            u.url,
            "https://storage.googleapis.com/foo/tables/9224/part%200.json.gz"
        );
        assert_eq!(header(&u, "authorization"), Some("Bearer ya29.token"));
        assert!(header(&u, "x-goog-meta-encryptiondata")
            .unwrap()
            .contains("\"EncryptionAlgorithm\": \"AES_CBC_256\""));
    }

    #[test]
    fn a_stage_out_of_reach_or_without_credentials_is_refused_by_name() {
        let local =
            Location::from_answer(&json!({"locationType": "LOCAL_FS", "location": "/tmp/x/"}))
                .unwrap();
        let e = local.request("f.gz", "d", None, now()).unwrap_err();
        assert!(e.to_string().contains("LOCAL_FS"), "{e}");
        let s3 = Location::from_answer(
            &json!({"locationType": "S3", "location": "b/p/", "region": "us-east-1", "creds": {}}),
        )
        .unwrap();
        let e = s3.request("f.gz", "d", None, now()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
        let e = Location::from_answer(&json!({"locationType": "FTP"}))
            .err()
            .unwrap();
        assert!(e.to_string().contains("FTP"), "{e}");
    }

    #[test]
    fn expired_credentials_are_told_from_refusals() {
        let expired = "<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>";
        assert_eq!(classify(Kind::S3, 400, expired), None);
        assert_eq!(
            classify(Kind::S3, 403, "<Code>AccessDenied</Code>"),
            Some(ErrorKind::Permission)
        );
        assert_eq!(
            classify(Kind::S3, 503, "<Code>SlowDown</Code>"),
            Some(ErrorKind::Transient)
        );
        assert_eq!(classify(Kind::Gcs, 401, ""), None);
        assert_eq!(
            classify(
                Kind::Azure,
                403,
                "Signature not valid in the specified time frame"
            ),
            None
        );
        assert_eq!(
            classify(Kind::Azure, 404, "ContainerNotFound"),
            Some(ErrorKind::Fatal)
        );
    }
}
