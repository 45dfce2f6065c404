//! Session-level advisory locks that never go back to the pool with their connection.

use deadpool_postgres::Object;
use migrate_core::{Error, Result};

use crate::error::pg_error;

/// A pooled connection holding `pg_advisory_lock(hashtext(key))`, for work that spans several
/// statements (and transactions) and must not run twice at once, whichever process runs it.
///
/// Give it back with [`SessionLock::release`]. Dropped any other way — an early return, or the
/// future that holds it cancelled mid-statement, or the lock request itself failing — it takes
/// its connection out of the pool and closes it: ending the session is what releases the lock
/// then, so a pooled connection never goes back holding it (or still waiting for it).
pub(crate) struct SessionLock {
    /// `Some` until released or dropped.
    conn: Option<Object>,
    key: String,
}

impl SessionLock {
    /// Waits for the lock named `key` on `conn`'s session.
    pub(crate) async fn acquire(conn: Object, key: String) -> Result<Self> {
        let mut lock = SessionLock {
            conn: Some(conn),
            key,
        };
        let key = lock.key.clone();
        lock.conn()?
            .execute("SELECT pg_advisory_lock(hashtext($1))", &[&key])
            .await
            .map_err(|e| pg_error(e, &format!("taking the lock {key:?}")))?;
        Ok(lock)
    }

    /// The connection holding the lock.
    pub(crate) fn conn(&mut self) -> Result<&mut Object> {
        self.conn
            .as_mut()
            .ok_or_else(|| Error::fatal("advisory lock used after its release"))
    }

    /// Releases the lock and returns the connection to the pool (or, if unlocking fails,
    /// closes it, which releases the lock all the same).
    pub(crate) async fn release(mut self) -> Result<()> {
        let key = self.key.clone();
        self.conn()?
            .execute("SELECT pg_advisory_unlock(hashtext($1))", &[&key])
            .await
            .map_err(|e| pg_error(e, &format!("releasing the lock {key:?}")))?;
        // Unlocked: the connection may go back to the pool.
        drop(self.conn.take());
        Ok(())
    }
}

impl Drop for SessionLock {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Detached from the pool, the client closes its connection once any statement
            // still in flight is answered, and the server then drops the session's locks.
            drop(Object::take(conn));
        }
    }
}
