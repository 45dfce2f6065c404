//! # migrate-backend-postgres
//!
//! Not built yet: this crate will hold `PgSource` (catalog discovery, key-range chunking,
//! `COPY … TO STDOUT (FORMAT binary)` reads under one exported snapshot, incremental reads),
//! `PgSink` (idempotent chunk writes: delete the range and `COPY … FROM STDIN (FORMAT binary)`
//! in one transaction; upsert for incremental runs) and `PgCheckpointStore` (the
//! `migration_control` tables in Postgres, so several machines can share one migration).
//! It exports nothing until those exist: no placeholder type pretends to work.
