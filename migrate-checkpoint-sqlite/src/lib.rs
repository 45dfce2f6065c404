//! # migrate-checkpoint-sqlite
//!
//! [`SqliteCheckpointStore`], the embedded default [`migrate_core::CheckpointStore`]: one SQLite
//! file (bundled SQLite, no system library), WAL mode, `synchronous=FULL` by default, a busy
//! timeout, and blocking work kept on tokio's blocking pool.
//!
//! Chunks are rows of the `migration_control` progress table (phase `execution`, one row per
//! chunk, with its operator-facing columns plus what resume and leases need), so the operator
//! queries work on real data: [`SqliteCheckpointStore::progress_by_phase`],
//! [`table_status`](SqliteCheckpointStore::table_status),
//! [`error_analysis`](SqliteCheckpointStore::error_analysis),
//! [`performance`](SqliteCheckpointStore::performance),
//! [`incomplete_operations`](SqliteCheckpointStore::incomplete_operations). An operator can also
//! open the file with `sqlite3` and run them by hand.
//!
//! Several processes on one machine can share a file: claims are leases taken by one atomic
//! statement. The file is created owner-only (0600) and holds keys, counts, checksums and
//! messages — never row values.
//!
//! ```no_run
//! # async fn demo() -> migrate_core::Result<()> {
//! use migrate_checkpoint_sqlite::SqliteCheckpointStore;
//! let store = SqliteCheckpointStore::open("migration.db").await?;
//! for row in store.table_status(None).await? {
//!     println!("{} {} {:?}%", row.table_name, row.status, row.completion_percentage);
//! }
//! # Ok(()) }
//! ```

mod codec;
mod queries;
mod schema;
mod store;

pub use queries::{
    ErrorRow, IncompleteRow, PerformanceRow, PhaseProgress, RetentionOutcome, RetentionPolicy,
    TableStatusRow,
};
pub use schema::CURRENT_VERSION;
pub use store::{SqliteCheckpointStore, SqliteOptions, Synchronous};

/// Creates an empty store file at an older schema version (for upgrade tests and fixtures).
#[doc(hidden)]
pub fn create_store_at_version(path: &std::path::Path, version: i32) -> migrate_core::Result<()> {
    let conn = rusqlite::Connection::open(path).map_err(codec::sql_error)?;
    schema::create_at_version(&conn, version)
}
