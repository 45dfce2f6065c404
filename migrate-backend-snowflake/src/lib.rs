//! # migrate-backend-snowflake
//!
//! Not built yet: this crate will hold `SfSource` and `SfSink` over Snowflake's SQL REST
//! protocol (staged files + `COPY INTO`, range replace in one transaction), with errors
//! classified by Snowflake error codes. It exports nothing until those exist: no placeholder
//! type pretends to work.
