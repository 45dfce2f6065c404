//! The `_MIGRATE_PREPARED` table — what `prepare` decided for each target table and run — and
//! the lock a worker holds while it decides. Workers sharing a run call `prepare` for the same
//! table at once; were two to decide, the later would find the table the earlier created (and
//! perhaps already wrote chunks into) and drop it, clear it or refuse it. So a worker decides
//! only while it holds the table's lock for the run, and returns the recorded answer when there
//! is one.
//!
//! The lock is a table: `CREATE TABLE` of one name succeeds once, atomically, in Snowflake and
//! in the emulator (an `INSERT`-if-absent is not: concurrent inserts both land). Snowflake has
//! no lock that dies with its session (a transaction's outlives a killed process by hours), so
//! the holder renews a time in it every [`BEAT`], and a lock not renewed for [`STALE`] is taken
//! over — renamed away first, which only one contender can do: a worker killed mid-prepare
//! holds the table up for [`STALE`] at most.

use std::time::Duration;

use migrate_core::{Error, ErrorKind, Prepared, Result, RunId, TableName};
use serde_json::{json, Value as Json};

use crate::client::Binding;
use crate::pool::SessionPool;
use crate::sql::ident;

/// A lock not renewed for this long is taken over.
pub(crate) const STALE: Duration = Duration::from_secs(90);
/// How often the deciding worker renews its lock.
pub(crate) const BEAT: Duration = Duration::from_secs(15);

/// One target table's record and lock, for one run.
pub(crate) struct Ledger<'a> {
    pub pool: &'a SessionPool,
    /// `_MIGRATE_PREPARED`'s qualified name.
    pub table: String,
    /// The schema's qualified name (the lock lives there).
    pub schema: String,
    /// The Snowflake table's name.
    pub id: &'a str,
    pub run: &'a RunId,
    /// The source table landing there.
    pub source: &'a TableName,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Ledger<'_> {
    /// The lock table's qualified name: one per target table and run.
    fn lock(&self) -> String {
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            format!("{}\n{}", self.id, self.run.0).as_bytes(),
        );
        let tag: String = digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        format!("{}.{}", self.schema, ident(&format!("_MIGRATE_LOCK_{tag}")))
    }

    /// The recorded decision, refusing one another source table wrote (two source tables of
    /// one name would land in one Snowflake table).
    pub(crate) async fn read(&self) -> Result<Option<Prepared>> {
        let r = self
            .pool
            .query(
                &format!(
                    "SELECT \"PREPARED\" FROM {} WHERE \"TARGET\" = ? AND \"RUN\" = ?",
                    self.table
                ),
                &[Binding::text(self.id), Binding::text(&self.run.0)],
            )
            .await?;
        let Some(migrate_core::Value::Text(text)) = r.rows.first().and_then(|row| row.first())
        else {
            return Ok(None);
        };
        let unreadable = |e: serde_json::Error| {
            Error::fatal(format!(
                "the recorded preparation of {} does not read: {e}",
                self.id
            ))
        };
        let record: Json = serde_json::from_str(text).map_err(unreadable)?;
        let source = record["source"].as_str().unwrap_or_default();
        if source != self.source.to_string() {
            return Err(Error::config(format!(
                "tables {source} and {} both land in Snowflake table {}: migrate the source schemas into different target schemas (one run each)",
                self.source, self.id
            ))
            .table(self.source));
        }
        serde_json::from_value(record["prepared"].clone())
            .map(Some)
            .map_err(unreadable)
    }

    /// Records the decision (only the lock's holder does).
    pub(crate) async fn write(&self, p: &Prepared) -> Result<()> {
        let text = json!({"source": self.source.to_string(), "prepared": p}).to_string();
        self.pool
            .query(
                &format!(
                    "INSERT INTO {} (\"TARGET\", \"RUN\", \"PREPARED\") SELECT ?, ?, ?",
                    self.table
                ),
                &[
                    Binding::text(self.id),
                    Binding::text(&self.run.0),
                    Binding::text(text),
                ],
            )
            .await
            .map(drop)
    }

    /// Takes the lock if it is free or stale; `false` while another worker holds it.
    pub(crate) async fn try_lock(&self) -> Result<bool> {
        let lock = self.lock();
        // Created with its first beat in it: there is no moment without one.
        match self
            .pool
            .query(
                &format!(
                    "CREATE TABLE {lock} AS SELECT {}::NUMBER(19, 0) AS \"BEAT\"",
                    now()
                ),
                &[],
            )
            .await
        {
            Ok(_) => return Ok(true),
            // Taken (or being taken: the emulator reports a simultaneous create as a conflict).
            Err(e) if e.kind() != ErrorKind::Auth && e.kind() != ErrorKind::Permission => {}
            Err(e) => return Err(e),
        }
        let beat = self
            .pool
            .query(&format!("SELECT MAX(\"BEAT\") FROM {lock}"), &[])
            .await
            .map(|r| r.texts().first().and_then(|row| row[0].clone()))
            .unwrap_or(None);
        let age = now() - beat.and_then(|b| b.parse::<i64>().ok()).unwrap_or(now());
        if age <= STALE.as_secs() as i64 {
            return Ok(false);
        }
        // Stale: move it aside (one contender's rename succeeds), then contend again.
        let aside = ident(&format!("_MIGRATE_STALE_{:016X}", fastrand::u64(..)));
        if self
            .pool
            .query(
                &format!("ALTER TABLE {lock} RENAME TO {}.{aside}", self.schema),
                &[],
            )
            .await
            .is_ok()
        {
            let _ = self
                .pool
                .query(
                    &format!("DROP TABLE IF EXISTS {}.{aside}", self.schema),
                    &[],
                )
                .await;
        }
        Ok(false)
    }

    /// Renews the held lock (an error once it was taken over: its table is gone).
    pub(crate) async fn beat(&self) -> Result<()> {
        let lock = self.lock();
        self.pool
            .query(&format!("UPDATE {lock} SET \"BEAT\" = {}", now()), &[])
            .await
            .map(drop)
    }

    /// Drops the held lock.
    pub(crate) async fn unlock(&self) -> Result<()> {
        self.pool
            .query(&format!("DROP TABLE IF EXISTS {}", self.lock()), &[])
            .await
            .map(drop)
    }
}
