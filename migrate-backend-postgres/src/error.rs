//! SQLSTATE → [`ErrorKind`]: the retry policy needs to know whether Postgres refused, broke, or
//! is merely busy.

use migrate_core::{Error, ErrorKind};
use tokio_postgres::error::SqlState;

/// The kind of a SQLSTATE code.
pub fn kind_of_sqlstate(code: &str) -> ErrorKind {
    match code {
        "57P01" | "57P02" | "57P03" | "40001" | "40P01" | "53300" | "55P03" | "57014" => {
            ErrorKind::Transient
        }
        "53100" | "53200" | "58030" => ErrorKind::System,
        "42501" => ErrorKind::Permission,
        "42P01" | "42703" | "42704" | "42804" | "42P07" | "3F000" => ErrorKind::Schema,
        _ => match &code[..2.min(code.len())] {
            "08" => ErrorKind::Transient,
            "28" => ErrorKind::Auth,
            "23" => ErrorKind::Constraint,
            "22" => ErrorKind::Validation,
            "42" => ErrorKind::Schema,
            "53" => ErrorKind::Transient,
            "57" => ErrorKind::Transient,
            "0A" => ErrorKind::Schema,
            "XX" => ErrorKind::Fatal,
            _ => ErrorKind::Fatal,
        },
    }
}

/// Wraps a driver error with its kind; a connection that closed or failed on I/O is transient
/// (a lost connection mid-chunk is retried).
pub fn pg_error(e: tokio_postgres::Error, what: &str) -> Error {
    let kind = match e.code() {
        Some(code) => kind_of_sqlstate(code.code()),
        None if e.is_closed() => ErrorKind::Transient,
        None => {
            let text = format!("{e} {:?}", std::error::Error::source(&e)).to_lowercase();
            if text.contains("password authentication failed") {
                ErrorKind::Auth
            } else if text.contains("certificate") || text.contains("server does not support tls") {
                // Trust problems do not fix themselves by retrying.
                ErrorKind::Config
            } else {
                // I/O errors, timeouts and protocol hiccups: the server may be back shortly.
                ErrorKind::Transient
            }
        }
    };
    let message = match e.as_db_error() {
        Some(db) => format!("{what}: {} (SQLSTATE {})", db.message(), db.code().code()),
        None => what.to_string(),
    };
    Error::with_source(kind, message, e)
}

/// Wraps a pool error, naming the server (password removed).
pub fn pool_error(e: deadpool_postgres::PoolError, server: &str) -> Error {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg_error(e, &format!("connecting to {server}")),
        other => Error::with_source(
            ErrorKind::Transient,
            format!("waiting for a connection to {server}"),
            other,
        ),
    }
}

/// Whether this is the "snapshot no longer exists" error a restarted server produces.
pub fn is_invalid_snapshot(e: &tokio_postgres::Error) -> bool {
    // 22023 "invalid snapshot identifier": the snapshot is gone; 55000 "could not import the
    // requested snapshot": its exporting transaction ended (a server restart) as it was read.
    (e.code() == Some(&SqlState::INVALID_PARAMETER_VALUE)
        || e.code() == Some(&SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE))
        && e.as_db_error()
            .is_some_and(|db| db.message().contains("snapshot"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_the_issue_table() {
        for (code, kind) in [
            ("08006", ErrorKind::Transient),
            ("08001", ErrorKind::Transient),
            ("57P01", ErrorKind::Transient),
            ("57P03", ErrorKind::Transient),
            ("40001", ErrorKind::Transient),
            ("40P01", ErrorKind::Transient),
            ("53300", ErrorKind::Transient),
            ("42501", ErrorKind::Permission),
            ("28P01", ErrorKind::Auth),
            ("28000", ErrorKind::Auth),
            ("23505", ErrorKind::Constraint),
            ("23503", ErrorKind::Constraint),
            ("22003", ErrorKind::Validation),
            ("22P02", ErrorKind::Validation),
            ("42P01", ErrorKind::Schema),
            ("42703", ErrorKind::Schema),
            ("53100", ErrorKind::System),
        ] {
            assert_eq!(kind_of_sqlstate(code), kind, "{code}");
        }
    }
}
