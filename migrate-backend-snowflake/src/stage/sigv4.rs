//! AWS Signature Version 4 for the one request a stage upload makes to S3: a single-object
//! `PUT` with an unsigned payload, signed with the temporary credentials Snowflake hands out
//! in the `PUT` answer. (The `aws-sigv4` crate needs a newer compiler than this workspace and
//! brings the AWS SDK's runtime types; this one shape is a page of code, pinned by a vector
//! computed with botocore.)

use chrono::{DateTime, Utc};
use ring::{digest, hmac};

/// Temporary credentials of an S3 stage. Never printed.
pub(crate) struct AwsCreds {
    pub key_id: String,
    pub secret: String,
    pub token: String,
}

/// The headers to add to a `PUT` of `path` on `host`: `x-amz-date`, `x-amz-content-sha256`,
/// `x-amz-security-token` and `Authorization`, signing those and every one of `headers`
/// (lower-case names).
pub(crate) fn sign_put(
    creds: &AwsCreds,
    region: &str,
    host: &str,
    path: &str,
    headers: &[(String, String)],
    now: DateTime<Utc>,
) -> Vec<(String, String)> {
    let stamp = now.format("%Y%m%dT%H%M%SZ").to_string();
    let day = now.format("%Y%m%d").to_string();
    let mut added = vec![
        (
            "x-amz-content-sha256".to_string(),
            "UNSIGNED-PAYLOAD".to_string(),
        ),
        ("x-amz-date".to_string(), stamp.clone()),
        ("x-amz-security-token".to_string(), creds.token.clone()),
    ];
    let mut signed: Vec<(String, String)> = headers
        .iter()
        .chain(&added)
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .chain([("host".to_string(), host.to_string())])
        .collect();
    signed.sort();
    let names = signed
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_headers: String = signed.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let request = format!("PUT\n{path}\n\n{canonical_headers}\n{names}\nUNSIGNED-PAYLOAD");
    let scope = format!("{day}/{region}/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
        hex(digest::digest(&digest::SHA256, request.as_bytes()).as_ref())
    );
    let mut key = format!("AWS4{}", creds.secret).into_bytes();
    for part in [day.as_str(), region, "s3", "aws4_request"] {
        key = mac(&key, part.as_bytes());
    }
    let signature = hex(&mac(&key, to_sign.as_bytes()));
    added.push((
        "authorization".to_string(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={names}, Signature={signature}",
            creds.key_id
        ),
    ));
    added
}

/// A path as S3 canonicalizes it: every byte but the unreserved ones and `/` percent-encoded.
pub(crate) fn uri_path(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 1);
    if !key.starts_with('/') {
        out.push('/');
    }
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    /// botocore's `S3SigV4Auth` (payload signing off, clock fixed) signed the same request to
    /// this `Authorization`.
    #[test]
    fn an_upload_is_signed_as_botocore_signs_it() {
        let creds = AwsCreds {
            key_id: "AKIDEXAMPLE".into(),
            secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            token: "FQoGZXIvYXdzEXAMPLETOKEN".into(),
        };
        let headers: Vec<(String, String)> = [
            (
                "x-amz-meta-sfc-digest",
                "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=",
            ),
            ("x-amz-meta-x-amz-iv", "ICEiIyQlJicoKSorLC0uLw=="),
            (
                "x-amz-meta-x-amz-key",
                "B/7vdOHVA26QDu4RjpSSk5VPZPLk6G6e7oLSAhZoSJk=",
            ),
            (
                "x-amz-meta-x-amz-matdesc",
                "{\"queryId\":\"01b2-query-id\",\"smkId\":\"1234\",\"keySize\":\"128\"}",
            ),
            ("Content-Type", "application/octet-stream"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 8, 15, 30).unwrap();
        let path = uri_path("stages/abc/run 1/part-0.json.gz");
        assert_eq!(path, "/stages/abc/run%201/part-0.json.gz");
        let added = sign_put(
            &creds,
            "us-west-2",
            "sfc-bucket.s3.us-west-2.amazonaws.com",
            &path,
            &headers,
            now,
        );
        let get = |k: &str| added.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("x-amz-date"), Some("20261130T081530Z"));
        assert_eq!(
            get("x-amz-security-token"),
            Some("FQoGZXIvYXdzEXAMPLETOKEN")
        );
        assert_eq!(
            get("authorization"),
            Some("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261130/us-west-2/s3/aws4_request, SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-meta-sfc-digest;x-amz-meta-x-amz-iv;x-amz-meta-x-amz-key;x-amz-meta-x-amz-matdesc;x-amz-security-token, Signature=4dbef2e54a429b8d95d54c5041b28ed4fd9f5516adbdbb3817577f1ac7fd9300")
        );
    }
}
