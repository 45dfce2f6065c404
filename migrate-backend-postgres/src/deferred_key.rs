//! Primary keys built after the data, and the bookkeeping that keeps that sound.
//!
//! Maintaining a primary key row by row roughly doubled the load time of the Postgres
//! benchmark; building it once at the end is one sort (pgcopydb does the same). But a chunk
//! write normally starts by deleting its key range (so a retried chunk replaces, never
//! duplicates), and without the key that `DELETE` scans the whole table. So a table this sink
//! created is *loading* until `finalize`, and while it is, each chunk's first committed write
//! leaves a marker: a write that finds no marker skips the `DELETE` (its range cannot hold
//! rows), one that finds a marker clears the range as usual.
//!
//! Soundness rests on Postgres row locks, not on the executor's leases: the marker is inserted
//! in the chunk's own transaction, so two workers writing the same chunk (one whose lease
//! lapsed) serialize on it and the later one sees the earlier one's rows; the write holds a
//! share lock on the table's loading row, so building the key waits for writes in flight and
//! writes after it take the usual path. The state lives in the target, in schema `_migrate`.
//!
//! An existing table that is empty when prepared loads the same way, with nothing to build at
//! the end: its range `DELETE`s would scan it whole wherever it has no index on the key yet.
//! Unlike a table created in the preparing transaction, an existing one can be written by
//! another worker between the emptiness check and the start of loading; so every chunk write
//! leaves its marker, loading or not, and starting to load an existing table keeps the
//! markers. A chunk is then taken for a first write only if no write of it ever committed.

use deadpool_postgres::{GenericClient, Object, Transaction};
use migrate_core::{Error, Result, TableInfo};

use crate::error::pg_error;
use crate::sql::{self, ident};

/// Creates the state tables if missing (serialized: concurrent `CREATE … IF NOT EXISTS` can
/// still collide in the catalogs).
pub(crate) async fn ensure_state(conn: &mut Object) -> Result<()> {
    let tx = conn
        .transaction()
        .await
        .map_err(|e| pg_error(e, "creating the sink's state tables"))?;
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(hashtext('migrate sink state'));
         CREATE SCHEMA IF NOT EXISTS _migrate;
         CREATE TABLE IF NOT EXISTS _migrate.loading (target text PRIMARY KEY, add_key text NOT NULL);
         CREATE TABLE IF NOT EXISTS _migrate.written (target text, chunk integer, PRIMARY KEY (target, chunk));
         CREATE TABLE IF NOT EXISTS _migrate.prepared (target text, run text, prepared text NOT NULL, PRIMARY KEY (target, run));
         CREATE TABLE IF NOT EXISTS _migrate.set_aside (target text, name text, definition text NOT NULL, PRIMARY KEY (target, name));",
    )
    .await
    .map_err(|e| pg_error(e, "creating the sink's state tables"))?;
    tx.commit()
        .await
        .map_err(|e| pg_error(e, "creating the sink's state tables"))
}

/// The statement that builds `table`'s primary key, or `None` for a keyless table.
pub(crate) fn add_key_sql(table: &TableInfo) -> Option<String> {
    let pk = table.primary_key();
    (!pk.is_empty()).then(|| {
        format!(
            "ALTER TABLE {} ADD PRIMARY KEY ({})",
            sql::table(&table.name),
            pk.iter().map(|k| ident(k)).collect::<Vec<_>>().join(", ")
        )
    })
}

/// Marks `target`, just created without its key in `tx` (or found existing and empty, with
/// `add_key` empty: nothing to build), as loading.
///
/// `forget_markers` is for a table created in `tx`: markers can only be a dropped namesake's.
/// An existing table keeps its markers — a chunk may have been written into it, by another
/// worker, between the emptiness check and this call, and its marker is what sends that
/// chunk's retries down the clearing path.
pub(crate) async fn start(
    tx: &Transaction<'_>,
    target: &str,
    add_key: &str,
    forget_markers: bool,
) -> Result<()> {
    if forget_markers {
        tx.execute("DELETE FROM _migrate.written WHERE target = $1", &[&target])
            .await
            .map_err(|e| pg_error(e, "recording the table as loading"))?;
    }
    tx.execute(
        "INSERT INTO _migrate.loading (target, add_key) VALUES ($1, $2)
         ON CONFLICT (target) DO UPDATE SET add_key = EXCLUDED.add_key",
        &[&target, &add_key],
    )
    .await
    .map_err(|e| pg_error(e, "recording the table as loading"))?;
    Ok(())
}

/// In a chunk's write transaction: whether this is the chunk's first write into a loading
/// table (so its range is empty and needs no `DELETE`). Every write leaves the chunk's marker,
/// loading or not — an existing table can start loading while other workers write into it,
/// and a chunk written just before must still take the clearing path when retried — and waits
/// for a concurrent write of the same chunk to finish first.
pub(crate) async fn first_write(tx: &Transaction<'_>, target: &str, chunk: u32) -> Result<bool> {
    let chunk = i32::try_from(chunk).map_err(|_| Error::fatal("chunk index out of range"))?;
    let failed = |e| pg_error(e, "recording the chunk write");
    // Held until commit: building the key (which ends loading) waits for this write.
    let loading = tx
        .query_opt(
            "SELECT 1 FROM _migrate.loading WHERE target = $1 FOR SHARE",
            &[&target],
        )
        .await
        .map_err(failed)?
        .is_some();
    let marked = tx
        .execute(
            "INSERT INTO _migrate.written (target, chunk) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&target, &chunk],
        )
        .await
        .map_err(failed)?;
    // Writers of the same chunk take turns on its marker, also when it existed already (two
    // workers whose leases overlapped): the later one's range DELETE then sees the earlier
    // one's committed rows, instead of both inserting the range and one failing on the key.
    tx.execute(
        "SELECT 1 FROM _migrate.written WHERE target = $1 AND chunk = $2 FOR UPDATE",
        &[&target, &chunk],
    )
    .await
    .map_err(failed)?;
    Ok(loading && marked == 1)
}

/// Ends `target`'s loading state, building its primary key; a no-op when it is not loading
/// (already built, created with its key, or not created by this sink). Safe to call from
/// several workers at once, for the table itself or as a child's parent: the first takes the
/// loading row and builds in the same transaction; the others wait on that row's lock, then
/// find it gone and build nothing (or, if the builder failed and rolled back, build).
pub(crate) async fn build(conn: &mut Object, target: &str) -> Result<()> {
    let failed = |e| pg_error(e, &format!("building the primary key of {target}"));
    // Without the state tables nothing is loading.
    if !has_state(&*conn).await? {
        return Ok(());
    }
    let tx = conn.transaction().await.map_err(failed)?;
    let row = tx
        .query_opt(
            "DELETE FROM _migrate.loading WHERE target = $1 RETURNING add_key",
            &[&target],
        )
        .await
        .map_err(failed)?;
    if let Some(row) = row {
        let add_key: String = row.get(0);
        // The table may have been dropped under us (then there is nothing to build).
        let exists: bool = tx
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&target])
            .await
            .map_err(failed)?
            .get(0);
        // Empty: an existing table loaded with markers, which has nothing to build.
        if exists && !add_key.is_empty() {
            tx.batch_execute(&add_key).await.map_err(failed)?;
        }
        tx.execute("DELETE FROM _migrate.written WHERE target = $1", &[&target])
            .await
            .map_err(failed)?;
    }
    tx.commit().await.map_err(failed)
}

/// Forgets `target`'s loading state without building anything (its table is being dropped).
pub(crate) async fn forget(tx: &impl GenericClient, target: &str) -> Result<()> {
    if has_state(tx).await? {
        tx.execute("DELETE FROM _migrate.loading WHERE target = $1", &[&target])
            .await
            .map_err(|e| pg_error(e, "forgetting the table's load state"))?;
        tx.execute("DELETE FROM _migrate.written WHERE target = $1", &[&target])
            .await
            .map_err(|e| pg_error(e, "forgetting the table's load state"))?;
    }
    Ok(())
}

/// Whether the target has the state tables (a target this sink never created a table in has
/// none, and then nothing is loading).
async fn has_state(client: &impl GenericClient) -> Result<bool> {
    Ok(client
        .query_one("SELECT to_regclass('_migrate.loading') IS NOT NULL", &[])
        .await
        .map_err(|e| pg_error(e, "looking for the sink's state tables"))?
        .get(0))
}
