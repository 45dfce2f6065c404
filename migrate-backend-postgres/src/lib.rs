//! # migrate-backend-postgres
//!
//! Postgres as a source ([`PgSource`]) and a target ([`PgSink`]), on tokio-postgres with COPY
//! BINARY both ways.
//!
//! - **Discovery** reads the catalogs: exact types (numeric(p,s), varchar(n), arrays, …;
//!   enums and text-like types read as text, domains as their base type), primary and foreign
//!   keys (composite too), row and size estimates without scanning, and the rest of the schema
//!   (types, sequences, constraints, generated and identity columns, partitions, comments,
//!   extensions, triggers, policies, grants; views through `Source::views`) into
//!   `TableInfo::objects`.
//! - **The whole schema** is recreated in a Postgres target when the source is Postgres: shared
//!   objects and the table before the data, constraints and indexes after it, sequences set to
//!   the source's values, views at the end (see [`PgSinkOptions`] and [`CopyExtras`]).
//! - **Chunking** splits integer keys arithmetically from min and max, other and composite keys
//!   at sampled boundaries; keyless tables are one chunk.
//! - **Reads** stream `COPY (SELECT … WHERE key range) TO STDOUT (FORMAT binary)` in batches,
//!   all inside one exported snapshot (see [`PgSource`] for what a resumed run sees).
//! - **Writes** delete the chunk's key range and `COPY … FROM STDIN (FORMAT binary)` in one
//!   transaction, so a retried chunk converges. Tables the sink creates get their primary key,
//!   foreign keys and indexes after the data; until then a chunk's first write skips the
//!   `DELETE`, made safe by markers in the target's `_migrate` schema (see the README's
//!   decisions). COPY BINARY is framed by [`copy_binary`], not per row through `ToSql`.
//! - **Postgres → Postgres** without transforms forwards the source's COPY BINARY tuples
//!   undecoded when the target's columns have the same wire types (see
//!   `migrate_core::encoded`); the executor still checksums every row, from the wire.
//! - **Checksums** are computed inside Postgres with the canonical encoding of
//!   `migrate_core::checksum` (MD5 per row, summed), or by streaming rows where a type has no
//!   exact SQL rendering (floats, json, intervals, arrays).
//! - **Errors** are classified by SQLSTATE (see [`error::kind_of_sqlstate`]).

mod advisory;
mod catalog;
mod checkpoint;
mod codec;
mod config;
pub mod copy_binary;
mod ddl;
mod deferred_key;
mod discovery;
pub mod error;
mod objects;
mod preparation;
mod reader;
mod sink;
mod source;
mod sql;
mod tls;
pub mod types;

pub use checkpoint::{PgCheckpointStore, PG_STORE_VERSION};
pub use codec::{decode_numeric, encode_numeric, PgParam, PgValue};
pub use config::{redact, PgConfig};
pub use sink::{CopyExtras, PgSink, PgSinkOptions};
pub use source::PgSource;
pub use tls::SslMode;
