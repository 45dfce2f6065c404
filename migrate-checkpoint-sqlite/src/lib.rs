//! # migrate-checkpoint-sqlite
//!
//! Not built yet: this crate will hold `SqliteCheckpointStore`, the embedded default
//! [`migrate_core::CheckpointStore`] (bundled SQLite, WAL, `synchronous=FULL`), with seed 004's
//! `migration_control` table and operator queries. It exports nothing until it exists.
