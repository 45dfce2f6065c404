//! # migrate-backend-snowflake
//!
//! Snowflake for migrate: [`SfSink`] and [`SfSource`] over a client of Snowflake's connector
//! protocol. The crate's README says how each piece behaves and why; in brief:
//!
//! - [`sink`]: tables created with the lossless mapping of [`types`] (an unconstrained decimal
//!   sized from the data), each chunk staged — from bound JSON texts, or from gzipped files
//!   `PUT` to a stage and loaded by `COPY INTO` — and moved by one `MERGE` (atomic, no
//!   transaction held open); keys declared, zero-copy `CLONE` backups, rollback;
//! - [`source`]: discovery from `INFORMATION_SCHEMA` and `SHOW … KEYS`, key-range chunks, rows
//!   streamed one result chunk at a time, incremental reads;
//! - [`checksum_sql`]: the canonical checksum computed inside Snowflake where a self-check
//!   proves the server renders each type as migrate does, streamed otherwise;
//! - [`client`], [`pool`], [`rowset`]: sessions (sign-in with a password or a key pair —
//!   [`keypair`] — renewal, polling, chunk downloads), results as migrate's values from Arrow
//!   and JSON;
//! - [`catalog`], [`sql`], [`endpoint`], [`error`]: names, statements, the `snowflake://` URL,
//!   failures as migrate's error kinds by Snowflake's code.
//!
//! Snowflake → Snowflake inside one account copies each chunk in Snowflake (`INSERT … SELECT`
//! from the source's range, [`SfSink`]'s `write_chunk_from`): no row passes through the
//! process.
//!
//! The stage upload speaks what the drivers speak: the `PUT` answer's storage (S3 signed with
//! SigV4, GCS, Azure) and, where the answer carries key material, the file encrypted
//! client-side (AES-CBC, its key wrapped under the stage's master key).

pub mod catalog;
pub mod checksum_sql;
pub mod client;
pub mod endpoint;
pub mod error;
pub mod keypair;
pub mod pool;
mod prepared;
mod read;
pub mod rowset;
pub mod sink;
pub mod source;
pub mod sql;
mod stage;
pub mod types;

pub use client::{Binding, QueryResult, RowStream, SfClient, SfSession};
pub use endpoint::{Load, SfAuth, SfEndpoint};
pub use error::SfError;
pub use sink::SfSink;
pub use source::SfSource;
