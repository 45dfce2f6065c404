//! # migrate-backend-snowflake
//!
//! Snowflake for migrate — being built in parts, each complete and tested before the next.
//! Here now:
//!
//! - [`types`]: the lossless type mapping (`NUMBER(p, s)`, `TIMESTAMP_LTZ` for instants,
//!   `VARIANT`, `ARRAY`, …) and back, refusing — with table, column and the way out named —
//!   what Snowflake cannot hold exactly (a decimal without precision, intervals);
//! - [`error`]: Snowflake's failures as migrate's error kinds, by Snowflake's error code
//!   (an expired session renewed rather than fatal), tested on recorded answers;
//! - [`endpoint`]: `snowflake://USER:PASSWORD@ACCOUNT/DATABASE/SCHEMA?warehouse=&role=` (and
//!   `host=`, `port=`, `protocol=` for the emulator), the password never shown;
//! - [`client`]: sessions over Snowflake's connector protocol — sign-in, one statement per
//!   request with bound parameters, polling of statements still running, renewal of expired
//!   sessions, result chunks downloaded and gunzipped;
//! - [`rowset`]: results (Arrow IPC streams and JSON rowsets) as migrate's values;
//! - [`sql`]: quoting, literals, key-range predicates, and a chunk's rows inserted by one
//!   statement from one bound JSON text (`TABLE(FLATTEN(PARSE_JSON(?)))`).
//!
//! Not here yet: key-pair sign-in, `SfSink` and `SfSource`. No placeholder type pretends to
//! work.

pub mod catalog;
pub mod checksum_sql;
pub mod client;
pub mod endpoint;
pub mod error;
pub mod keypair;
pub mod pool;
mod read;
pub mod rowset;
pub mod sink;
pub mod source;
pub mod sql;
pub mod types;

pub use client::{Binding, QueryResult, RowStream, SfClient, SfSession};
pub use endpoint::{SfAuth, SfEndpoint};
pub use error::SfError;
pub use sink::SfSink;
pub use source::SfSource;
