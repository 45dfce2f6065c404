//! What `prepare` did, per table and run, kept in the target (`_migrate.prepared`, created with
//! the other state tables), so that preparing the same table again in the same run — another
//! worker, a resumed process — returns the first answer and changes nothing: a backup is taken
//! once, and the decision to merge or replace is the same for every worker.

use deadpool_postgres::GenericClient;
use migrate_core::{Error, ErrorKind, Prepared, Result, RunId};

use crate::error::pg_error;

async fn has_table(client: &impl GenericClient) -> Result<bool> {
    Ok(client
        .query_one("SELECT to_regclass('_migrate.prepared') IS NOT NULL", &[])
        .await
        .map_err(|e| pg_error(e, "looking for the sink's state tables"))?
        .get(0))
}

/// What `run` prepared for `target` (a quoted table name), if it did.
pub(crate) async fn load(
    client: &impl GenericClient,
    target: &str,
    run: &RunId,
) -> Result<Option<Prepared>> {
    if !has_table(client).await? {
        return Ok(None);
    }
    let row = client
        .query_opt(
            "SELECT prepared FROM _migrate.prepared WHERE target = $1 AND run = $2",
            &[&target, &run.0],
        )
        .await
        .map_err(|e| pg_error(e, "reading the table's preparation"))?;
    row.map(|r| {
        serde_json::from_str(r.get::<_, &str>(0)).map_err(|e| {
            Error::with_source(
                ErrorKind::Fatal,
                format!("the stored preparation of {target} is unreadable"),
                e,
            )
        })
    })
    .transpose()
}

/// Records what `run` prepared for `target`, in the preparing transaction.
pub(crate) async fn save(
    client: &impl GenericClient,
    target: &str,
    run: &RunId,
    prepared: &Prepared,
) -> Result<()> {
    let text = serde_json::to_string(prepared)
        .map_err(|e| Error::with_source(ErrorKind::Fatal, "encoding a preparation", e))?;
    client
        .execute(
            "INSERT INTO _migrate.prepared (target, run, prepared) VALUES ($1, $2, $3)
             ON CONFLICT (target, run) DO UPDATE SET prepared = EXCLUDED.prepared",
            &[&target, &run.0, &text],
        )
        .await
        .map_err(|e| pg_error(e, "recording the table's preparation"))?;
    Ok(())
}

/// Forgets every run's preparation of `target` (it was rolled back).
pub(crate) async fn forget(client: &impl GenericClient, target: &str) -> Result<()> {
    if has_table(client).await? {
        client
            .execute(
                "DELETE FROM _migrate.prepared WHERE target = $1",
                &[&target],
            )
            .await
            .map_err(|e| pg_error(e, "forgetting the table's preparation"))?;
    }
    Ok(())
}
