//! # migrate-backend-bigquery
//!
//! Not built yet: this crate will hold `BqSource` (Storage Read API) and `BqSink` (Storage Write
//! API with committed-stream offsets or staged load + atomic swap, so that chunk writes are
//! idempotent), with errors classified by BigQuery's `reason` and not only the HTTP status.
//! It exports nothing until those exist: no placeholder type pretends to work.
