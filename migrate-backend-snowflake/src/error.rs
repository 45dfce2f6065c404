//! Snowflake's failures as migrate's error kinds — by Snowflake's error code first, the HTTP
//! status when there is none. Snowflake answers a failed statement with HTTP 200 and
//! `{"success": false, "code": "002003", "message": …, "data": {"errorCode", "sqlState",
//! "queryId"}}`; transport and gateway failures come as HTTP statuses.
//!
//! | code (or status without one) | kind |
//! | --- | --- |
//! | `390112` session token expired, `390114` master token expired, `390104` must log in again, `390103` token not found | session: renew (or log in again) and retry ([`SfError::session_expired`]) |
//! | `390100` wrong user or password, `390144` JWT invalid, other `3901xx`/`3902xx`, HTTP 401 | auth (stops the run) |
//! | `003001` insufficient privileges, HTTP 403 | permission (stops the run) |
//! | `000606` no active warehouse | config (name one: `?warehouse=`) |
//! | `000630` statement timeout | timeout |
//! | `000604` statement cancelled | cancelled |
//! | `002003` object does not exist | not found |
//! | `001003`, `000904` and other `00[0-2]xxx` SQL compilation errors | schema |
//! | `100xxx` data errors (a value that does not convert) | validation |
//! | HTTP 429 | rate-limited, honouring `Retry-After` |
//! | HTTP 5xx | transient |

use std::time::Duration;

use migrate_core::{Error, ErrorKind};
use serde_json::Value as Json;

/// A Snowflake failure as the service described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfError {
    /// HTTP status (200 for a failed statement).
    pub status: u16,
    /// Snowflake's error code (`"002003"`), when it gave one.
    pub code: Option<String>,
    /// SQLSTATE, when given.
    pub sql_state: Option<String>,
    /// Snowflake's message (it names objects, not row values).
    pub message: String,
    /// `Retry-After`, when the response carried one.
    pub retry_after: Option<Duration>,
}

impl SfError {
    /// Reads a response: its status, body and `Retry-After` header.
    pub fn from_response(status: u16, body: &str, retry_after: Option<&str>) -> SfError {
        let json: Json = serde_json::from_str(body).unwrap_or(Json::Null);
        let text = |v: &Json| v.as_str().map(str::to_string).filter(|s| !s.is_empty());
        let code = text(&json["code"]).or_else(|| text(&json["data"]["errorCode"]));
        let message = text(&json["message"]).unwrap_or_else(|| {
            let head: String = body.chars().take(300).collect();
            match head.trim().is_empty() {
                true => format!("HTTP {status}"),
                false => head,
            }
        });
        SfError {
            status,
            code,
            sql_state: text(&json["data"]["sqlState"]),
            message,
            retry_after: retry_after.and_then(migrate_core::retry::parse_retry_after),
        }
    }

    /// The session's token expired or the session is gone: renew (or log in again) and send
    /// the request again.
    pub fn session_expired(&self) -> bool {
        matches!(
            self.code.as_deref(),
            Some("390112" | "390114" | "390104" | "390103")
        )
    }

    /// The kind the retry policy and the executor act on.
    pub fn kind(&self) -> ErrorKind {
        let code = self.code.as_deref().unwrap_or_default();
        let number: Option<u32> = code.parse().ok();
        match (code, number) {
            _ if self.session_expired() => ErrorKind::Auth,
            ("003001", _) => ErrorKind::Permission,
            ("000606", _) => ErrorKind::Config,
            ("000630", _) => ErrorKind::Timeout,
            ("000604", _) => ErrorKind::Cancelled,
            ("002003", _) => ErrorKind::NotFound,
            (_, Some(390_000..=390_999)) => ErrorKind::Auth,
            (_, Some(100_000..=100_999)) => ErrorKind::Validation,
            (_, Some(0..=2_999)) => ErrorKind::Schema,
            _ => match self.status {
                401 => ErrorKind::Auth,
                403 => ErrorKind::Permission,
                404 => ErrorKind::NotFound,
                408 | 500..=599 => ErrorKind::Transient,
                429 => ErrorKind::RateLimited {
                    retry_after: self.retry_after,
                },
                400..=499 => ErrorKind::Validation,
                _ => ErrorKind::Fatal,
            },
        }
    }

    /// As migrate's error, saying what was being done (`what`).
    pub fn into_error(self, what: &str) -> Error {
        let code = self
            .code
            .as_deref()
            .map_or(String::new(), |c| format!(" {c}"));
        // A data error quotes the value it choked on ("Numeric value 'abc' is not
        // recognized"): the kind and the column say enough, the value stays out of logs.
        let message = match self.kind() {
            ErrorKind::Validation => without_values(&self.message),
            _ => self.message.clone(),
        };
        Error::new(
            self.kind(),
            format!("Snowflake {what}:{code}: {}", shortened(&message)),
        )
    }
}

/// `message` with every single-quoted part (a value; names are double-quoted) replaced.
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut parts = message.split('\'');
    out.push_str(parts.next().unwrap_or_default());
    let rest: Vec<&str> = parts.collect();
    for (i, part) in rest.iter().enumerate() {
        match (i % 2, i + 1 == rest.len()) {
            // An unclosed quote at the end: the rest may be a value too.
            (0, true) => out.push_str("'…"),
            (0, false) => out.push_str("'…'"),
            _ => out.push_str(part),
        }
    }
    out
}

/// Longest service message kept in an error: Snowflake's own messages are a line or two; a
/// longer one (an emulator echoing the statement and its bound rows) would carry row values
/// into logs and reports.
const MAX_MESSAGE: usize = 400;

/// `message` cut at [`MAX_MESSAGE`] characters, saying how much was left out.
fn shortened(message: &str) -> String {
    match message.char_indices().nth(MAX_MESSAGE) {
        None => message.to_string(),
        Some((at, _)) => format!(
            "{}… ({} more characters left out)",
            &message[..at],
            message[at..].chars().count()
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_data_error_names_no_value() {
        let body = r#"{"data": {"errorCode": "100038", "sqlState": "22018"}, "code": "100038",
                       "message": "Numeric value 'card 4111-1111' is not recognized", "success": false}"#;
        let e = super::SfError::from_response(200, body, None).into_error("MERGE");
        assert_eq!(e.kind(), migrate_core::ErrorKind::Validation);
        assert!(!e.to_string().contains("4111"), "{e}");
        assert!(
            e.to_string()
                .contains("Numeric value '…' is not recognized"),
            "{e}"
        );
        assert_eq!(super::without_values("String 'x"), "String '…");
        assert_eq!(
            super::without_values("column \"AMOUNT\" is fine"),
            "column \"AMOUNT\" is fine"
        );
    }

    use super::*;

    fn kind(status: u16, body: &str) -> ErrorKind {
        SfError::from_response(status, body, None).kind()
    }

    #[test]
    fn long_messages_are_cut_so_rows_do_not_reach_the_logs() {
        // fakesnow answers a failed statement with the statement and its bound rows.
        let echoed = serde_json::json!({
            "code": "261000", "success": false,
            "message": format!("sql_text='MERGE …' params=('{}') Unhandled exception", "[\"secret\"],".repeat(500)),
        });
        let e =
            SfError::from_response(500, &echoed.to_string(), None).into_error("statement MERGE");
        assert!(e.to_string().len() < 600, "{e}");
        assert!(e.to_string().contains("more characters left out"), "{e}");
    }

    #[test]
    fn recorded_answers_become_their_kinds() {
        // Answers as Snowflake sends them (HTTP 200, success false), codes from its docs and
        // drivers.
        let failed = |code: &str, message: &str| {
            serde_json::json!({
                "data": {"internalError": false, "errorCode": code, "age": 0, "sqlState": "02000",
                         "queryId": "01b2c3d4-0000-1111-0000-000000000001", "line": -1, "pos": -1,
                         "type": "COMPILATION"},
                "code": code, "message": message, "success": false, "headers": null
            })
            .to_string()
        };
        let cases = [
            ("390100", "Incorrect username or password was specified.", ErrorKind::Auth),
            ("390144", "JWT token is invalid.", ErrorKind::Auth),
            ("003001", "SQL access control error:\nInsufficient privileges to operate on schema 'PUBLIC'", ErrorKind::Permission),
            ("000606", "No active warehouse selected in the current session.  Select an active warehouse with the 'use warehouse' command.\n", ErrorKind::Config),
            ("000630", "Statement reached its statement or warehouse timeout of 60 second(s) and was canceled.", ErrorKind::Timeout),
            ("000604", "SQL execution canceled", ErrorKind::Cancelled),
            ("002003", "SQL compilation error:\nTable 'NEW_DB.NEW_SCHEMA.ORDERS' does not exist or not authorized.", ErrorKind::NotFound),
            ("001003", "SQL compilation error:\nsyntax error line 1 at position 7 unexpected 'FORM'.", ErrorKind::Schema),
            ("000904", "SQL compilation error: error line 1 at position 7\ninvalid identifier 'TOTL'", ErrorKind::Schema),
            ("100038", "Numeric value 'abc' is not recognized", ErrorKind::Validation),
        ];
        for (code, message, want) in cases {
            let e = SfError::from_response(200, &failed(code, message), None);
            assert_eq!(e.kind(), want, "{code}");
            assert_eq!(e.code.as_deref(), Some(code));
            let shown = e.into_error("loading chunk 3 of public.orders").to_string();
            assert!(shown.contains(code) && shown.contains("chunk 3"), "{shown}");
        }
    }

    #[test]
    fn an_expired_session_is_renewed_not_fatal_and_gateways_are_transient() {
        let expired = r#"{"data": {"nextAction": "RENEW_SESSION"}, "code": "390112", "message": "Your session has expired. Please login again.", "success": false}"#;
        let e = SfError::from_response(200, expired, None);
        assert!(e.session_expired());
        let gone = r#"{"data": null, "code": "390104", "message": "User must login again to access the service.", "success": false, "headers": null}"#;
        assert!(SfError::from_response(401, gone, None).session_expired());
        assert!(!SfError::from_response(
            200,
            r#"{"code": "390100", "success": false, "message": "x"}"#,
            None
        )
        .session_expired());
        assert_eq!(
            kind(503, "<html>Service Unavailable</html>"),
            ErrorKind::Transient
        );
        assert_eq!(kind(502, ""), ErrorKind::Transient);
        assert_eq!(
            SfError::from_response(429, "", Some("7")).kind(),
            ErrorKind::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(kind(403, "Forbidden"), ErrorKind::Permission);
        assert_eq!(kind(401, ""), ErrorKind::Auth);
    }
}
