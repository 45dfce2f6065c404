//! Sessions kept open between statements: signing in costs a round trip (and, on a real
//! account, a few hundred milliseconds), and every chunk needs a session of its own for its
//! transaction. A session that failed inside a transaction is closed, never reused: whatever
//! Snowflake made of its transaction ends with it.

use std::sync::Mutex;

use migrate_core::{DataType, ErrorKind, Result};

use crate::checksum_sql::SqlChecksums;
use crate::client::{Binding, QueryResult, RowStream, SfClient, SfSession};

/// Idle sessions kept at most (more are closed when given back).
const MAX_IDLE: usize = 16;

/// Sessions on one account, reused.
#[derive(Debug)]
pub struct SessionPool {
    client: SfClient,
    idle: Mutex<Vec<SfSession>>,
    /// What the server proved it renders for checksums in SQL, checked once.
    sql_checksums: tokio::sync::OnceCell<SqlChecksums>,
}

impl SessionPool {
    /// A pool opening its sessions with `client`.
    pub fn new(client: SfClient) -> Self {
        SessionPool {
            client,
            idle: Mutex::new(Vec::new()),
            sql_checksums: tokio::sync::OnceCell::new(),
        }
    }

    /// Which types this server's checksums can be computed in SQL for (the self-check of
    /// [`crate::checksum_sql`], run once per pool).
    pub async fn sql_checksums(&self) -> Result<&SqlChecksums> {
        self.sql_checksums
            .get_or_try_init(|| async {
                let found = crate::checksum_sql::self_check(self).await?;
                tracing::info!(rendered = ?found.rendered, why_not = ?found.why_not, "Snowflake checksums in SQL");
                Ok(found)
            })
            .await
    }

    /// The client sessions are opened with.
    pub fn client(&self) -> &SfClient {
        &self.client
    }

    /// An idle session, or a new one.
    pub async fn take(&self) -> Result<SfSession> {
        let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
        match idle {
            Some(s) => Ok(s),
            None => self.client.session().await,
        }
    }

    /// Back to the pool, outside any transaction.
    pub async fn give_back(&self, session: SfSession) {
        let extra = match self.idle.lock() {
            Ok(mut idle) if idle.len() < MAX_IDLE => {
                idle.push(session);
                None
            }
            _ => Some(session),
        };
        if let Some(s) = extra {
            s.close().await;
        }
    }

    /// Runs one statement (autocommitted) on a pooled session.
    pub async fn query(&self, sql: &str, bindings: &[Binding]) -> Result<QueryResult> {
        let s = self.take().await?;
        let r = s.query(sql, bindings).await;
        self.settle(s, &r).await;
        r
    }

    /// Runs one statement on a pooled session and streams its rows, read as `types`: the
    /// session goes back to the pool at once (result chunks download without it).
    pub async fn stream(&self, sql: &str, types: Vec<DataType>) -> Result<RowStream> {
        let s = self.take().await?;
        let r = s.stream(sql, &[], Some(types)).await;
        match &r {
            Ok(_) => self.give_back(s).await,
            Err(e) => self.settle_err(s, e).await,
        }
        r
    }

    /// Runs `statements` in one transaction on a session of its own, then `check` on their
    /// results before committing: all of them commit, or none does. On any failure (of a
    /// statement or of `check`) the transaction is rolled back and the session closed.
    pub async fn transaction<F>(
        &self,
        statements: &[(String, Vec<Binding>)],
        check: F,
    ) -> Result<Vec<QueryResult>>
    where
        F: FnOnce(&[QueryResult]) -> Result<()> + Send,
    {
        let s = self.take().await?;
        let mut out = Vec::with_capacity(statements.len());
        let done: Result<()> = async {
            s.query("BEGIN", &[]).await?;
            let signins = s.signins();
            // A session signed in again mid-transaction lost it: what follows would run
            // outside it, so the transaction fails whole (and is retried whole).
            let same = |s: &SfSession| match s.signins() == signins {
                true => Ok(()),
                false => Err(migrate_core::Error::transient(
                    "the Snowflake session signed in again mid-transaction: its work was lost",
                )),
            };
            for (sql, bindings) in statements {
                let r = s.query(sql, bindings).await?;
                same(&s)?;
                out.push(r);
            }
            check(&out)?;
            same(&s)?;
            s.query("COMMIT", &[]).await?;
            Ok(())
        }
        .await;
        match done {
            Ok(()) => {
                self.give_back(s).await;
                Ok(out)
            }
            Err(e) => {
                // Best effort: closing the session ends the transaction anyway.
                let _ = s.query("ROLLBACK", &[]).await;
                s.close().await;
                Err(e)
            }
        }
    }

    async fn settle(&self, s: SfSession, r: &Result<QueryResult>) {
        match r {
            Ok(_) => self.give_back(s).await,
            Err(e) => self.settle_err(s, e).await,
        }
    }

    /// After a failed statement: a session whose connection failed is closed; one that
    /// answered with an error is fine to reuse.
    async fn settle_err(&self, s: SfSession, e: &migrate_core::Error) {
        match e.kind() {
            ErrorKind::Transient | ErrorKind::Timeout | ErrorKind::Auth => s.close().await,
            _ => self.give_back(s).await,
        }
    }
}
