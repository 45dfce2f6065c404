//! # migrate-backend-bigquery
//!
//! BigQuery for migrate — being built in parts, each complete and tested before the next.
//! Here now:
//!
//! - [`types`]: the lossless type mapping (`NUMERIC(p, s)` where it holds the declared
//!   precision and scale, `BIGNUMERIC` otherwise, `REPEATED` for arrays, …) and the check that
//!   refuses, naming table, column and row, what BigQuery would lose (a decimal that does not
//!   fit, a NULL array or element, a JSON `null` document);
//! - [`error`]: BigQuery's failures as migrate's error kinds, by `reason` rather than HTTP
//!   status, `Retry-After` honoured, and the Storage Write API's gRPC statuses;
//! - [`sql`]: GoogleSQL quoting, literals, key-range predicates written out column by column,
//!   and the canonical row checksum computed inside BigQuery — equal to migrate's (and so to
//!   Postgres') figure for the same rows, checked on the emulator;
//! - [`stage`]: a chunk's rows as newline-delimited JSON for its staging table and the one
//!   `MERGE` that replaces the chunk's key range with them (exactly once, however often run);
//! - [`cells`]: query results read back into migrate's values, losslessly;
//! - [`client`]: a thin REST client (datasets, tables, paged queries, load jobs from an
//!   upload) — for the emulator; Google's endpoints need credentials it cannot send yet.
//!
//! Not here yet: `BqSink` and `BqSource` (see the crate's README for the design they follow).
//! No placeholder type pretends to work.

pub mod cells;
pub mod client;
pub mod error;
mod read;
pub mod sink;
pub mod source;
pub mod sql;
pub mod stage;
pub mod types;

pub use error::{append_outcome, AppendOutcome, BqError};
pub use sink::BqSink;
pub use source::BqSource;
pub use types::{check_value, column_type, BqColumn, BqType};
