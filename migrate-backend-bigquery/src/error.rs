//! BigQuery's failures as migrate's error kinds — by the `reason` BigQuery names, not by the
//! HTTP status alone: a 403 is a rate limit (`rateLimitExceeded`), an exhausted quota
//! (`quotaExceeded`) or a missing permission (`accessDenied`), and each needs a different
//! response (wait briefly, wait with the quota delays, stop the run).
//!
//! BigQuery reports an error in one of three places, all read here: the REST error body
//! (`{"error": {"code", "message", "errors": [{"reason", "message"}], "status"}}`), a job's
//! `status.errorResult` (a failed job is fetched with HTTP 200), and — from the emulator, whose
//! `jobs.query` answers a failed query with HTTP 200 — a top-level `errors` array.
//!
//! | reason (or status without one) | kind |
//! | --- | --- |
//! | `rateLimitExceeded`, `jobRateLimitExceeded` (arrives as 400), HTTP 429 | rate-limited, honouring `Retry-After` |
//! | `quotaExceeded` | quota (the retry policy's progressive delays) |
//! | `backendError`, `internalError`, `badGateway`, HTTP 500/502/503/504 | transient |
//! | `invalidQuery` "… due to concurrent update" (a conflicting DML transaction) | transient |
//! | `accessDenied`, HTTP 403 | permission (stops the run) |
//! | HTTP 401, `authError` | auth (stops the run) |
//! | `notFound`, HTTP 404 | not found |
//! | `invalidQuery` | schema (the statement does not fit the table) |
//! | `invalid`, `outOfRange`, HTTP 400 | validation |
//! | `duplicate`, `alreadyExists`, HTTP 409 | already exists ([`BqError::already_exists`]) |
//! | `timeout`, `stopped` | timeout |

use std::time::Duration;

use migrate_core::{Error, ErrorKind};
use serde_json::Value as Json;

/// A BigQuery failure as the service described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BqError {
    /// HTTP status (200 for a failed job or an emulator query error).
    pub status: u16,
    /// BigQuery's `reason`, when it named one.
    pub reason: Option<String>,
    /// BigQuery's message (never row values: BigQuery names columns and positions).
    pub message: String,
    /// `Retry-After`, when the response carried one.
    pub retry_after: Option<Duration>,
}

impl BqError {
    /// Reads a response: its status, body and `Retry-After` header (seconds, or an HTTP date).
    pub fn from_response(status: u16, body: &str, retry_after: Option<&str>) -> BqError {
        let json: Json = serde_json::from_str(body).unwrap_or(Json::Null);
        let first = [
            &json["error"]["errors"][0],
            &json["status"]["errorResult"],
            &json["errors"][0],
        ]
        .into_iter()
        .find(|e| e.is_object())
        .cloned()
        .unwrap_or(Json::Null);
        let reason = first["reason"]
            .as_str()
            .map(str::to_string)
            .filter(|r| !r.is_empty());
        let message = json["error"]["message"]
            .as_str()
            .or_else(|| first["message"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| {
                let text: String = body.chars().take(300).collect();
                match text.trim().is_empty() {
                    true => format!("HTTP {status}"),
                    false => text,
                }
            });
        BqError {
            status,
            reason,
            message,
            retry_after: retry_after.and_then(migrate_core::retry::parse_retry_after),
        }
    }

    /// Whether the thing being created exists already (`duplicate`, 409): a create that finds
    /// its table or dataset there has nothing left to do.
    pub fn already_exists(&self) -> bool {
        matches!(self.reason.as_deref(), Some("duplicate" | "alreadyExists"))
            || (self.reason.is_none() && self.status == 409)
    }

    /// The kind the retry policy and the executor act on.
    pub fn kind(&self) -> ErrorKind {
        let rate_limited = ErrorKind::RateLimited {
            retry_after: self.retry_after,
        };
        match self.reason.as_deref() {
            Some("rateLimitExceeded" | "jobRateLimitExceeded") => rate_limited,
            Some("quotaExceeded") => ErrorKind::Quota,
            Some("backendError" | "internalError" | "badGateway") => ErrorKind::Transient,
            Some("invalidQuery") if self.message.contains("due to concurrent update") => {
                ErrorKind::Transient
            }
            Some("accessDenied") => ErrorKind::Permission,
            Some("authError") => ErrorKind::Auth,
            Some("notFound") => ErrorKind::NotFound,
            Some("invalidQuery") => ErrorKind::Schema,
            Some("invalid" | "outOfRange") => ErrorKind::Validation,
            Some("duplicate" | "alreadyExists") => ErrorKind::Constraint,
            Some("timeout" | "stopped") => ErrorKind::Timeout,
            _ => match self.status {
                401 => ErrorKind::Auth,
                403 => ErrorKind::Permission,
                404 => ErrorKind::NotFound,
                409 => ErrorKind::Constraint,
                429 => rate_limited,
                500..=599 => ErrorKind::Transient,
                400..=499 => ErrorKind::Validation,
                _ => ErrorKind::Fatal,
            },
        }
    }

    /// As migrate's error, saying what was being done (`what`).
    pub fn into_error(self, what: &str) -> Error {
        let reason = self
            .reason
            .as_deref()
            .map_or(String::new(), |r| format!(" ({r})"));
        Error::new(
            self.kind(),
            format!(
                "BigQuery {what}: HTTP {}{reason}: {}",
                self.status, self.message
            ),
        )
    }
}

/// What a Storage Write API call's gRPC status means for a chunk's append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Written (or written before: a re-sent offset is `ALREADY_EXISTS`, which is exactly
    /// the exactly-once guarantee doing its job).
    Written,
    /// Failed, as this kind.
    Failed(ErrorKind),
}

/// The outcome of an append that ended with gRPC status `code` (see
/// <https://grpc.github.io/grpc/core/md_doc_statuscodes.html>).
pub fn append_outcome(code: i32) -> AppendOutcome {
    let kind = match code {
        0 | 6 => return AppendOutcome::Written, // OK, ALREADY_EXISTS
        // RESOURCE_EXHAUSTED: throughput or connection quota; back off and retry.
        8 => ErrorKind::RateLimited { retry_after: None },
        // UNAVAILABLE, ABORTED, INTERNAL, UNKNOWN, CANCELLED (by the server)
        14 | 10 | 13 | 2 | 1 => ErrorKind::Transient,
        // OUT_OF_RANGE: the offset is past the stream's end — an earlier append was lost, so
        // the chunk is written again from its start.
        11 => ErrorKind::Transient,
        4 => ErrorKind::Timeout, // DEADLINE_EXCEEDED
        7 => ErrorKind::Permission,
        16 => ErrorKind::Auth,
        5 => ErrorKind::NotFound,
        3 | 9 => ErrorKind::Validation, // INVALID_ARGUMENT, FAILED_PRECONDITION
        12 => ErrorKind::Unsupported,   // UNIMPLEMENTED
        _ => ErrorKind::Fatal,
    };
    AppendOutcome::Failed(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Error bodies as BigQuery sends them (from its documentation and from clients' issue
    /// reports), each with the kind it must become.
    const RECORDED: &[(u16, &str, &str)] = &[
        (
            403,
            r#"{"error":{"code":403,"message":"Exceeded rate limits: too many table update operations for this table. For more information, see https://cloud.google.com/bigquery/docs/troubleshoot-quotas","errors":[{"message":"Exceeded rate limits: too many table update operations for this table.","domain":"usageLimits","reason":"rateLimitExceeded"}],"status":"PERMISSION_DENIED"}}"#,
            "rate_limited",
        ),
        (
            400,
            r#"{"error":{"code":400,"message":"Job exceeded rate limits: Your project_and_region exceeded quota for concurrent queries.","errors":[{"message":"Job exceeded rate limits","domain":"global","reason":"jobRateLimitExceeded"}],"status":"INVALID_ARGUMENT"}}"#,
            "rate_limited",
        ),
        (
            403,
            r#"{"error":{"code":403,"message":"Quota exceeded: Your table exceeded quota for Number of partition modifications to a column partitioned table.","errors":[{"message":"Quota exceeded","domain":"usageLimits","reason":"quotaExceeded"}],"status":"PERMISSION_DENIED"}}"#,
            "quota",
        ),
        (
            403,
            r#"{"error":{"code":403,"message":"Access Denied: Table p:d.t: Permission bigquery.tables.updateData denied on table p:d.t (or it may not exist).","errors":[{"message":"Access Denied","domain":"global","reason":"accessDenied"}],"status":"PERMISSION_DENIED"}}"#,
            "permission",
        ),
        (
            401,
            r#"{"error":{"code":401,"message":"Request is missing required authentication credential.","errors":[{"message":"Login Required.","domain":"global","reason":"required","location":"Authorization","locationType":"header"}],"status":"UNAUTHENTICATED"}}"#,
            "auth",
        ),
        (
            503,
            r#"{"error":{"code":503,"message":"Error encountered during execution. Retrying may solve the problem.","errors":[{"message":"Error encountered during execution.","domain":"global","reason":"backendError"}],"status":"UNAVAILABLE"}}"#,
            "transient",
        ),
        (
            500,
            r#"{"error":{"code":500,"message":"An internal error occurred and the request could not be completed.","errors":[{"message":"An internal error occurred","domain":"global","reason":"internalError"}],"status":"INTERNAL"}}"#,
            "transient",
        ),
        (
            404,
            r#"{"error":{"code":404,"message":"Not found: Table p:d.missing","errors":[{"message":"Not found: Table p:d.missing","domain":"global","reason":"notFound"}],"status":"NOT_FOUND"}}"#,
            "not_found",
        ),
        (
            400,
            r#"{"error":{"code":400,"message":"Unrecognized name: colum_x at [1:8]","errors":[{"message":"Unrecognized name: colum_x at [1:8]","domain":"global","reason":"invalidQuery","location":"q","locationType":"parameter"}],"status":"INVALID_ARGUMENT"}}"#,
            "schema",
        ),
        (
            400,
            r#"{"error":{"code":400,"message":"Transaction is aborted due to concurrent update against table p:d.t. Transaction ID: 1234","errors":[{"message":"Transaction is aborted due to concurrent update against table p:d.t.","domain":"global","reason":"invalidQuery"}],"status":"INVALID_ARGUMENT"}}"#,
            "transient",
        ),
        (
            400,
            r#"{"error":{"code":400,"message":"Invalid NUMERIC value: 1.2345678901","errors":[{"message":"Invalid NUMERIC value","domain":"global","reason":"invalid"}],"status":"INVALID_ARGUMENT"}}"#,
            "validation",
        ),
        (
            409,
            r#"{"error":{"code":409,"message":"Already Exists: Table p:d.t","errors":[{"message":"Already Exists: Table p:d.t","domain":"global","reason":"duplicate"}],"status":"ALREADY_EXISTS"}}"#,
            "constraint",
        ),
        // A failed job, fetched with HTTP 200.
        (
            200,
            r#"{"kind":"bigquery#job","status":{"state":"DONE","errorResult":{"reason":"invalid","message":"Error while reading data, error message: JSON table encountered too many errors"},"errors":[{"reason":"invalid","message":"JSON parsing error in row starting at position 0"}]}}"#,
            "validation",
        ),
        // The emulator's failed jobs.query: HTTP 200, top-level errors.
        (
            200,
            r#"{"kind":"bigquery#queryResponse","jobComplete":true,"errors":[{"reason":"invalidQuery","message":"Table not found: d.nope","location":"query"}]}"#,
            "schema",
        ),
        // No body a client can read: the status decides.
        (502, "<html>Bad Gateway</html>", "transient"),
        (429, "", "rate_limited"),
    ];

    #[test]
    fn recorded_error_bodies_become_their_kinds() {
        for (status, body, want) in RECORDED {
            let e = BqError::from_response(*status, body, None);
            assert_eq!(e.kind().as_str(), *want, "HTTP {status}: {body}");
            let err = e.clone().into_error("loading chunk 3 of public.t");
            assert!(
                err.to_string().contains("loading chunk 3 of public.t"),
                "{err}"
            );
            if let Some(r) = &e.reason {
                assert!(err.to_string().contains(r.as_str()), "{err}");
            }
        }
    }

    #[test]
    fn duplicates_are_creates_with_nothing_left_to_do() {
        let (status, body, _) = RECORDED[11];
        assert!(BqError::from_response(status, body, None).already_exists());
        let (status, body, _) = RECORDED[7];
        assert!(!BqError::from_response(status, body, None).already_exists());
    }

    #[test]
    fn retry_after_is_honoured_in_seconds_or_as_a_date() {
        let (status, body, _) = RECORDED[0];
        let e = BqError::from_response(status, body, Some("17"));
        assert_eq!(
            e.kind(),
            ErrorKind::RateLimited {
                retry_after: Some(Duration::from_secs(17))
            }
        );
        assert_eq!(
            e.into_error("x").retry_after(),
            Some(Duration::from_secs(17))
        );
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(40)).to_rfc2822();
        let e = BqError::from_response(429, "", Some(&soon));
        let d = e.retry_after.unwrap();
        assert!(
            d > Duration::from_secs(35) && d <= Duration::from_secs(40),
            "{d:?}"
        );
        assert_eq!(
            BqError::from_response(429, "", Some("soon")).retry_after,
            None
        );
    }

    #[test]
    fn storage_write_statuses_treat_a_resent_offset_as_written() {
        assert_eq!(append_outcome(6), AppendOutcome::Written);
        assert_eq!(append_outcome(0), AppendOutcome::Written);
        assert_eq!(
            append_outcome(8),
            AppendOutcome::Failed(ErrorKind::RateLimited { retry_after: None })
        );
        assert_eq!(
            append_outcome(14),
            AppendOutcome::Failed(ErrorKind::Transient)
        );
        assert_eq!(
            append_outcome(11),
            AppendOutcome::Failed(ErrorKind::Transient)
        );
        assert_eq!(
            append_outcome(7),
            AppendOutcome::Failed(ErrorKind::Permission)
        );
        assert_eq!(append_outcome(16), AppendOutcome::Failed(ErrorKind::Auth));
    }
}
