//! One error type for the whole library, classified by [`ErrorKind`] so that the retry policy
//! can act on *what went wrong* rather than on which backend said it.

use std::fmt;
use std::time::Duration;

/// Boxed source error kept inside [`Error`] (never flattened to a string).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Shorthand for `Result<T, migrate_core::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is; the retry policy and the executor decide on this alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Network blips, deadlocks, serialization failures: retry with backoff.
    Transient,
    /// The service asked us to slow down; `retry_after` says for how long when it knows.
    RateLimited {
        /// Delay the service asked for, if it named one.
        #[serde(with = "opt_duration_ms")]
        retry_after: Option<Duration>,
    },
    /// A quota is exhausted: retry with progressive delays (30 s, 60 s, 120 s).
    Quota,
    /// A value or record is invalid for the target: mark failed and continue with other work.
    Validation,
    /// A constraint (unique, foreign key, not null) was violated.
    Constraint,
    /// Schemas are incompatible or a type cannot be mapped.
    Schema,
    /// The credentials are valid but lack a privilege: stop the run.
    Permission,
    /// The credentials were rejected: stop the run.
    Auth,
    /// The configuration is wrong (bad URL, unknown key, bad value).
    Config,
    /// A table, dataset, run or file that should exist does not.
    NotFound,
    /// Resource exhaustion on a machine (disk full, out of memory).
    System,
    /// Anything else that makes continuing pointless.
    Fatal,
    /// The operation was cancelled by the operator.
    Cancelled,
    /// The operation ran past its deadline.
    Timeout,
}

impl ErrorKind {
    /// Short stable name, used in reports, checkpoints and metrics labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorKind::Transient => "transient",
            ErrorKind::RateLimited { .. } => "rate_limited",
            ErrorKind::Quota => "quota",
            ErrorKind::Validation => "validation",
            ErrorKind::Constraint => "constraint",
            ErrorKind::Schema => "schema",
            ErrorKind::Permission => "permission",
            ErrorKind::Auth => "auth",
            ErrorKind::Config => "config",
            ErrorKind::NotFound => "not_found",
            ErrorKind::System => "system",
            ErrorKind::Fatal => "fatal",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Timeout => "timeout",
        }
    }

    /// Whether trying the same operation again can succeed without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ErrorKind::Transient
                | ErrorKind::RateLimited { .. }
                | ErrorKind::Quota
                | ErrorKind::Timeout
        )
    }

    /// Whether this failure must stop the whole run at once (no point trying other tables).
    pub fn stops_run(&self) -> bool {
        matches!(
            self,
            ErrorKind::Permission
                | ErrorKind::Auth
                | ErrorKind::Config
                | ErrorKind::System
                | ErrorKind::Fatal
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::RateLimited {
                retry_after: Some(d),
            } => write!(f, "rate_limited (retry after {} ms)", d.as_millis()),
            other => f.write_str(other.as_str()),
        }
    }
}

/// Where an error happened: operation, table and chunk. Never row values.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorContext {
    /// What was being done, e.g. `write_chunk`, `discover`, `connect`.
    pub operation: Option<String>,
    /// Qualified table name.
    pub table: Option<String>,
    /// Chunk index within the table.
    pub chunk: Option<u32>,
}

/// The library's error: a kind, a message, where it happened, and the native error it wraps.
#[derive(thiserror::Error)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    context: ErrorContext,
    #[source]
    source: Option<BoxError>,
}

impl Error {
    /// A new error of `kind` with a human-readable message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            context: ErrorContext::default(),
            source: None,
        }
    }

    /// Wraps a native error, keeping it as [`std::error::Error::source`].
    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Error {
            source: Some(source.into()),
            ..Error::new(kind, message)
        }
    }

    /// A transient error.
    pub fn transient(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Transient, message)
    }

    /// A configuration error.
    pub fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, message)
    }

    /// A schema error.
    pub fn schema(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Schema, message)
    }

    /// A validation error.
    pub fn validation(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Validation, message)
    }

    /// A not-found error.
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::NotFound, message)
    }

    /// A fatal error.
    pub fn fatal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Fatal, message)
    }

    /// The operation was cancelled.
    pub fn cancelled(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Cancelled, message)
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether the same operation may succeed if tried again.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    /// The delay a rate-limiting service asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.kind {
            ErrorKind::RateLimited { retry_after } => retry_after,
            _ => None,
        }
    }

    /// The message, without context.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where the error happened.
    pub fn context(&self) -> &ErrorContext {
        &self.context
    }

    /// Records the operation (keeps an operation set closer to the failure).
    pub fn operation(mut self, operation: impl Into<String>) -> Self {
        self.context
            .operation
            .get_or_insert_with(|| operation.into());
        self
    }

    /// Records the table.
    pub fn table(mut self, table: impl fmt::Display) -> Self {
        self.context.table.get_or_insert_with(|| table.to_string());
        self
    }

    /// Records the chunk index.
    pub fn chunk(mut self, chunk: u32) -> Self {
        self.context.chunk.get_or_insert(chunk);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind.as_str())?;
        let c = &self.context;
        if let Some(op) = &c.operation {
            write!(f, " in {op}")?;
        }
        if let Some(t) = &c.table {
            write!(f, " on table {t}")?;
        }
        if let Some(n) = c.chunk {
            write!(f, " chunk {n}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(src) = &self.source {
            write!(f, ": {src}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("context", &self.context)
            .field("source", &self.source)
            .finish()
    }
}

mod opt_duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn keeps_source_and_context() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let e = Error::with_source(ErrorKind::Transient, "read failed", io)
            .operation("read_chunk")
            .table("public.orders")
            .chunk(7);
        assert!(e.is_retryable());
        let src = e.source().expect("source kept");
        assert!(src.downcast_ref::<std::io::Error>().is_some());
        let shown = e.to_string();
        assert_eq!(
            shown,
            "transient in read_chunk on table public.orders chunk 7: read failed: reset by peer"
        );
    }

    #[test]
    fn classification() {
        let rl = Error::new(
            ErrorKind::RateLimited {
                retry_after: Some(Duration::from_secs(3)),
            },
            "slow down",
        );
        assert_eq!(rl.retry_after(), Some(Duration::from_secs(3)));
        assert!(rl.is_retryable());
        assert!(!Error::schema("x").is_retryable());
        assert!(ErrorKind::Auth.stops_run());
        assert!(!ErrorKind::Validation.stops_run());
        let json = serde_json::to_string(&rl.kind()).unwrap();
        let back: ErrorKind = serde_json::from_str(&json).unwrap();
        assert_eq!(back, rl.kind());
    }
}
