//! # migrate-backend-bigquery
//!
//! BigQuery for migrate: [`BqSink`] and [`BqSource`] (see the crate's README for the design
//! that writes each chunk exactly once, and what was tested on the emulator versus recorded
//! answers). Its parts:
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
//!   upload), authenticated by [`auth`] for Google and not at all for the emulator;
//! - [`sink`], [`source`]: the backend itself.

pub mod auth;
pub mod cells;
pub mod client;
pub mod error;
mod read;
pub mod sink;
pub mod source;
pub mod sql;
pub mod stage;
pub mod types;

pub use auth::BqAuth;
pub use client::{BqClient, BqEndpoint};
pub use error::{append_outcome, AppendOutcome, BqError};
pub use sink::BqSink;
pub use source::BqSource;
pub use types::{check_value, column_type, BqColumn, BqType};
