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

/// Refuses to replace the rows of `target` when deleting them would change rows of another
/// table through an `ON DELETE CASCADE / SET NULL / SET DEFAULT` foreign key.
pub(crate) async fn refuse_cascades(
    client: &impl GenericClient,
    target: &str,
    table: &migrate_core::TableName,
) -> Result<()> {
    let rows = client
        .query(
            "SELECT conname::text, conrelid::regclass::text FROM pg_constraint
             WHERE contype = 'f' AND confrelid = $1::text::regclass AND conrelid <> confrelid
               AND confdeltype IN ('c', 'n', 'd')",
            &[&target],
        )
        .await
        .map_err(|e| pg_error(e, &format!("looking at the foreign keys into {table}")))?;
    if rows.is_empty() {
        return Ok(());
    }
    let named: Vec<String> = rows
        .iter()
        .map(|r| format!("{} on {}", r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect();
    Err(Error::config(format!(
        "replacing the rows of target table {table} would change other tables' rows through ON DELETE actions ({}); use prepare.existing_rows = \"merge\", or drop those actions first",
        named.join(", ")
    ))
    .table(table))
}

/// Drops `target`'s foreign keys, keeping their definitions to put back: chunk writes of a
/// table being replaced delete its parents' rows before the children are rewritten.
pub(crate) async fn set_foreign_keys_aside(
    client: &impl GenericClient,
    target: &str,
) -> Result<()> {
    let failed = |e| pg_error(e, &format!("setting the foreign keys of {target} aside"));
    // Kept with every name qualified, so they mean the same whatever the search path.
    let path: String = client
        .query_one(
            "SELECT current_setting('search_path'), set_config('search_path', '', true)",
            &[],
        )
        .await
        .map_err(failed)?
        .get(0);
    let rows = client
        .query(
            "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint
             WHERE contype = 'f' AND conrelid = $1::text::regclass",
            &[&target],
        )
        .await
        .map_err(failed)?;
    client
        .execute("SELECT set_config('search_path', $1, true)", &[&path])
        .await
        .map_err(failed)?;
    for r in rows {
        let (name, definition): (String, String) = (r.get(0), r.get(1));
        client
            .execute(
                "INSERT INTO _migrate.set_aside (target, name, definition) VALUES ($1, $2, $3)
                 ON CONFLICT (target, name) DO NOTHING",
                &[&target, &name, &definition],
            )
            .await
            .map_err(failed)?;
        client
            .batch_execute(&format!(
                "ALTER TABLE {target} DROP CONSTRAINT {}",
                crate::sql::ident(&name)
            ))
            .await
            .map_err(failed)?;
    }
    Ok(())
}

/// Puts back the foreign keys [`set_foreign_keys_aside`] took off `target` (those not back
/// already), then forgets them.
pub(crate) async fn restore_foreign_keys(client: &impl GenericClient, target: &str) -> Result<()> {
    let failed = |e| pg_error(e, &format!("restoring the foreign keys of {target}"));
    let has: bool = client
        .query_one("SELECT to_regclass('_migrate.set_aside') IS NOT NULL", &[])
        .await
        .map_err(failed)?
        .get(0);
    if !has {
        return Ok(());
    }
    let rows = client
        .query(
            "SELECT s.name, s.definition, EXISTS (SELECT 1 FROM pg_constraint c
                 WHERE c.conrelid = to_regclass(s.target) AND c.conname = s.name)
             FROM _migrate.set_aside s WHERE s.target = $1 ORDER BY s.name",
            &[&target],
        )
        .await
        .map_err(failed)?;
    for r in rows {
        let (name, definition, back): (String, String, bool) = (r.get(0), r.get(1), r.get(2));
        if !back {
            client
                .batch_execute(&format!(
                    "ALTER TABLE {target} ADD CONSTRAINT {} {definition}",
                    crate::sql::ident(&name)
                ))
                .await
                .map_err(failed)?;
        }
    }
    client
        .execute(
            "DELETE FROM _migrate.set_aside WHERE target = $1",
            &[&target],
        )
        .await
        .map_err(failed)?;
    Ok(())
}

/// Renames what a table renamed to be a backup (`backup`, quoted) still holds under names its
/// replacement will need: owned sequences (serial, identity), partitions, and the indexes of
/// both. `name_for` gives each its new name.
pub(crate) async fn rename_dependents(
    client: &impl GenericClient,
    backup: &str,
    name_for: impl Fn(&migrate_core::TableName) -> migrate_core::TableName,
) -> Result<()> {
    let rows = client
        .query(
            "WITH tree AS (SELECT relid FROM pg_partition_tree($1::text::regclass)
                           UNION SELECT $1::text::regclass)
             SELECT DISTINCT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'i' THEN 'INDEX'
                                            WHEN 'I' THEN 'INDEX' ELSE 'TABLE' END,
                    n.nspname::text, c.relname::text
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('S', 'i', 'I', 'r', 'p') AND n.nspname NOT LIKE 'pg\\_%'
                AND ((c.oid IN (SELECT relid FROM tree) AND c.oid <> $1::text::regclass)
                 OR c.oid IN (SELECT i.indexrelid FROM pg_index i WHERE i.indrelid IN (SELECT relid FROM tree))
                 OR c.oid IN (SELECT d.objid FROM pg_depend d WHERE d.refobjid IN (SELECT relid FROM tree)
                                 AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
                                 AND d.refclassid = 'pg_class'::regclass))",
            &[&backup],
        )
        .await
        .map_err(|e| pg_error(e, &format!("listing what {backup} holds")))?;
    for r in rows {
        let kind: String = r.get(0);
        let old = migrate_core::TableName::new(r.get::<_, String>(1), r.get::<_, String>(2));
        let new = name_for(&old);
        let sql = format!(
            "ALTER {kind} {} RENAME TO {}",
            crate::sql::table(&old),
            crate::sql::ident(&new.name)
        );
        client
            .batch_execute(&sql)
            .await
            .map_err(|e| pg_error(e, &format!("renaming {old} of backup {backup}")))?;
    }
    Ok(())
}

/// Drops the views and materialized views that read `table` (quoted) or its partitions, and
/// the views over those: a rollback drops a table the run created, and the views the run
/// created over it go first (Postgres would refuse the drop).
pub(crate) async fn drop_views_over(client: &impl GenericClient, table: &str) -> Result<()> {
    let rows = client
        .query(
            "WITH RECURSIVE tree AS (SELECT relid FROM pg_partition_tree(to_regclass($1))
                                     UNION SELECT to_regclass($1)),
                  views(oid) AS (
               SELECT DISTINCT r.ev_class FROM pg_rewrite r
                 JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid IN (SELECT relid FROM tree)
                  AND r.ev_class NOT IN (SELECT relid FROM tree)
               UNION
               SELECT r.ev_class FROM views v
                 JOIN pg_depend d ON d.refobjid = v.oid AND d.classid = 'pg_rewrite'::regclass
                 JOIN pg_rewrite r ON r.oid = d.objid
                WHERE r.ev_class <> v.oid)
             SELECT CASE c.relkind WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'VIEW' END,
                    format('%I.%I', n.nspname, c.relname)
               FROM views v JOIN pg_class c ON c.oid = v.oid JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('v', 'm')",
            &[&table],
        )
        .await
        .map_err(|e| pg_error(e, &format!("listing the views over {table}")))?;
    for r in rows {
        let (kind, name): (String, String) = (r.get(0), r.get(1));
        client
            .batch_execute(&format!("DROP {kind} IF EXISTS {name} CASCADE"))
            .await
            .map_err(|e| pg_error(e, &format!("dropping {name}, which reads {table}")))?;
    }
    Ok(())
}
