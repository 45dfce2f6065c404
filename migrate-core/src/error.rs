//! One error type for the whole library, classified by [`ErrorKind`] so that the retry policy
//! can act on *what went wrong* rather than on which backend said it.

use std::fmt;
use std::sync::Arc;
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
    /// An optional operation this backend does not offer (`describe`, `fetch_rows`, `upsert`):
    /// callers that can do without it skip it, unlike a [`ErrorKind::Config`] error, which
    /// means the configuration itself is wrong.
    Unsupported,
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
            ErrorKind::Unsupported => "unsupported",
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
                | ErrorKind::Unsupported
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
///
/// Cloning shares the source, so the executor can keep an error in its report and still return
/// it without flattening it to a string. `std::error::Error` is implemented by hand below:
/// `thiserror`'s `#[source]` would hand out the shared `Arc` itself, which callers cannot
/// downcast to the native error.
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    context: ErrorContext,
    /// Boxed: rare, and `Error` stays small enough to return by value everywhere.
    retries: Option<Box<Exhausted>>,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

/// How long an operation was retried before giving up (see [`Error::exhausted`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted {
    /// Attempts made, the first included.
    pub attempts: u32,
    /// Time from the first attempt to the last failure, backoff delays included.
    pub elapsed: Duration,
}

impl Error {
    /// A new error of `kind` with a human-readable message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            context: ErrorContext::default(),
            retries: None,
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
            source: Some(Arc::from(source.into())),
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

    /// An optional operation a backend does not offer.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Unsupported, message)
    }

    /// Whether the same operation may succeed if tried again: false once its retries are
    /// [exhausted](Error::exhausted), whatever the kind.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable() && self.retries.is_none()
    }

    /// Marks the error as the last of `attempts` tries spread over `elapsed`: the retry budget
    /// is spent, so reports must not call it retriable. The kind is kept (it still says what
    /// went wrong).
    pub fn exhausted(mut self, attempts: u32, elapsed: Duration) -> Self {
        self.retries = Some(Box::new(Exhausted { attempts, elapsed }));
        self
    }

    /// The attempts and time spent when the retries ran out, if they did.
    pub fn retries(&self) -> Option<Exhausted> {
        self.retries.as_deref().copied()
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
        if let Some(r) = &self.retries {
            write!(
                f,
                " (gave up after {} attempt{} over {:.1} s)",
                r.attempts,
                if r.attempts == 1 { "" } else { "s" },
                r.elapsed.as_secs_f64()
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("context", &self.context)
            .field("retries", &self.retries)
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
    fn a_clone_keeps_the_source_and_annotating_wraps_it() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let e = Error::with_source(ErrorKind::Transient, "read failed", io).table("t");
        let copy = e.clone();
        assert_eq!(copy.to_string(), e.to_string());
        let src = copy.source().expect("source kept by the clone");
        assert!(src.downcast_ref::<std::io::Error>().is_some());
        let wrapped = Error::with_source(e.kind(), "stop_on_first_error", e);
        let inner = wrapped.source().expect("annotated error kept as source");
        let inner = inner.downcast_ref::<Error>().expect("the original error");
        assert!(inner.source().is_some(), "and its own source");
    }

    #[test]
    fn exhausted_retries_are_not_retriable_and_say_how_long() {
        let e = Error::transient("reset").exhausted(3, Duration::from_millis(2500));
        assert_eq!(e.kind(), ErrorKind::Transient);
        assert!(!e.is_retryable());
        assert_eq!(e.retries().map(|r| r.attempts), Some(3));
        assert_eq!(
            e.to_string(),
            "transient: reset (gave up after 3 attempts over 2.5 s)"
        );
    }

    #[test]
    fn unsupported_is_its_own_kind() {
        let e = Error::unsupported("no describe");
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert_ne!(e.kind(), ErrorKind::Config);
        assert!(!e.is_retryable());
        assert_eq!(e.kind().as_str(), "unsupported");
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
