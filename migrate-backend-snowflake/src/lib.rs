//! # migrate-backend-snowflake
//!
//! Snowflake for migrate — being built in parts, each complete and tested before the next.
//! Here now:
//!
//! - [`types`]: the lossless type mapping (`NUMBER(p, s)`, `TIMESTAMP_LTZ` for instants,
//!   `VARIANT`, `ARRAY`, …) and back, refusing — with table, column and the way out named —
//!   what Snowflake cannot hold exactly (a decimal without precision, intervals);
//! - [`error`]: Snowflake's failures as migrate's error kinds, by Snowflake's error code
//!   (an expired session renewed rather than fatal), tested on recorded answers.
//!
//! Not here yet: the client for Snowflake's connector protocol, `SfSink` and `SfSource` (see
//! the crate's README for the design they follow). No placeholder type pretends to work.

pub mod error;
pub mod types;

pub use error::SfError;
