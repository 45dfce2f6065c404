//! The sink's side of schema objects: what a run will create (plans), the objects tables
//! share (extensions, types, sequences), constraints after the data, sequence values,
//! triggers/policies/grants/owners when asked, and views at the end. Each step looks at what
//! the target already has first, so a resumed run or a second worker changes nothing twice.

use deadpool_postgres::{GenericClient, Object};
use migrate_core::objects::{all_objects, ObjectKind, ObjectOutcome, SequenceValue, View};
use migrate_core::{Error, Result, TableInfo};

use crate::ddl;
use crate::error::pg_error;
use crate::sink::CopyExtras;
use crate::sql::{ident, quote, table as qualified};

/// What the sink will do with each of `table`'s objects.
pub(crate) fn plan(table: &TableInfo, copy: &CopyExtras, create_fks: bool) -> Vec<ObjectOutcome> {
    let same = ddl::same_engine(table);
    all_objects(table)
        .into_iter()
        .map(|(kind, name)| {
            let reason: Option<String> = match kind {
                ObjectKind::Table | ObjectKind::PrimaryKey | ObjectKind::Index => None,
                ObjectKind::ForeignKey if !create_fks => {
                    Some("foreign keys are off (PgSinkOptions::create_foreign_keys)".into())
                }
                ObjectKind::ForeignKey => None,
                ObjectKind::Trigger
                | ObjectKind::Policy
                | ObjectKind::Grant
                | ObjectKind::Owner => {
                    let (yes, option) = copy.decides(kind);
                    (!yes).then(|| format!("not copied: set {option} to copy it"))
                }
                _ if !same => {
                    Some("the source is not Postgres: its definition does not apply".into())
                }
                _ => None,
            };
            ObjectOutcome {
                kind,
                name,
                table: Some(table.name.clone()),
                not_created: reason,
            }
        })
        .collect()
}

/// Extensions `table` needs that the target lacks, and why each cannot be created.
pub(crate) async fn missing_extensions(
    client: &impl GenericClient,
    table: &TableInfo,
    create: bool,
) -> Result<Vec<String>> {
    let wanted = &table.objects.extensions;
    if wanted.is_empty() || !ddl::same_engine(table) {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT x, EXISTS (SELECT 1 FROM pg_extension WHERE extname = x),
                    EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = x)
               FROM unnest($1::text[]) x",
            &[wanted],
        )
        .await
        .map_err(|e| pg_error(e, "looking for extensions"))?;
    let mut out = Vec::new();
    for r in rows {
        let (name, installed, available): (String, bool, bool) = (r.get(0), r.get(1), r.get(2));
        if installed || (create && available) {
            continue;
        }
        let why = if available {
            "the server offers it but creating extensions is off (schema.create_extensions = false)"
        } else {
            "the target server does not offer it (install it there)"
        };
        out.push(format!(
            "table {} needs extension {name}, which the target database lacks: {why}",
            table.name
        ));
    }
    Ok(out)
}

/// Creates what `table` shares with other tables before the table itself: schemas,
/// extensions, user types, sequences not owned by an identity column. Serialized across
/// workers by one advisory lock, each created only if missing; an enum that exists with other
/// labels is an error naming it.
pub(crate) async fn shared(
    conn: &mut Object,
    table: &TableInfo,
    create_extensions: bool,
) -> Result<()> {
    if !ddl::same_engine(table) {
        return Ok(());
    }
    let o = &table.objects;
    let tx = conn
        .transaction()
        .await
        .map_err(|e| pg_error(e, "creating shared schema objects"))?;
    let fail = |what: String| move |e| pg_error(e, &what);
    tx.batch_execute("SELECT pg_advisory_xact_lock(hashtext('migrate schema objects'))")
        .await
        .map_err(fail("locking schema objects".into()))?;
    for s in ddl::schemas(table) {
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {}", ident(&s)))
            .await
            .map_err(fail(format!("creating schema {s}")))?;
    }
    let missing = missing_extensions(&tx, table, create_extensions).await?;
    if !missing.is_empty() {
        return Err(Error::schema(missing.join("; ")).table(&table.name));
    }
    for e in &o.extensions {
        tx.batch_execute(&format!("CREATE EXTENSION IF NOT EXISTS {}", ident(e)))
            .await
            .map_err(fail(format!("creating extension {e}")))?;
    }
    // As pg_dump does: a function body may name tables not created yet.
    tx.batch_execute("SET LOCAL check_function_bodies = false")
        .await
        .map_err(fail("creating functions".into()))?;
    for t in &o.types {
        let name = qualified(&t.name);
        let found = tx
            .query_opt(
                "SELECT ARRAY(SELECT enumlabel::text FROM pg_enum WHERE enumtypid = t.oid ORDER BY enumsortorder),
                        t.typtype::text
                   FROM pg_type t WHERE t.oid = to_regtype($1)",
                &[&name],
            )
            .await
            .map_err(fail(format!("looking for type {}", t.name)))?;
        match found {
            None => {
                tx.batch_execute(&ddl::create_type(t))
                    .await
                    .map_err(fail(format!("creating type {}", t.name)))?;
                if let Some(c) = &t.comment {
                    let what =
                        if matches!(t.kind, migrate_core::objects::UserTypeKind::Domain { .. }) {
                            "DOMAIN"
                        } else {
                            "TYPE"
                        };
                    tx.batch_execute(&format!("COMMENT ON {what} {name} IS {}", quote(c)))
                        .await
                        .map_err(fail(format!("commenting type {}", t.name)))?;
                }
            }
            Some(r) => {
                if let migrate_core::objects::UserTypeKind::Enum { labels } = &t.kind {
                    add_enum_labels(&tx, table, t, labels, r.get(0)).await?;
                }
            }
        }
    }
    for f in &o.functions {
        tx.batch_execute(&f.definition)
            .await
            .map_err(fail(format!("creating function {}", f.name)))?;
    }
    tx.commit()
        .await
        .map_err(fail("creating shared schema objects".into()))
}

/// Brings an enum that exists in the target up to the source's values: the ones the source
/// added since are added in their place; a target whose values are not a subset of the
/// source's, in the same order, is an error naming both.
async fn add_enum_labels(
    tx: &impl GenericClient,
    table: &TableInfo,
    t: &migrate_core::objects::UserType,
    labels: &[String],
    there: Vec<String>,
) -> Result<()> {
    let kept: Vec<&String> = labels.iter().filter(|l| there.contains(l)).collect();
    if kept.len() != there.len() || kept.iter().zip(&there).any(|(a, b)| *a != b) {
        return Err(Error::schema(format!(
            "type {} exists in the target with values ({}) where the source has ({}): align it or drop it",
            t.name,
            there.join(", "),
            labels.join(", ")
        ))
        .table(&table.name));
    }
    for (i, l) in labels.iter().enumerate() {
        if there.contains(l) {
            continue;
        }
        let place = match i {
            0 => match labels.get(1) {
                Some(next) => format!(" BEFORE {}", quote(next)),
                None => String::new(),
            },
            _ => format!(" AFTER {}", quote(&labels[i - 1])),
        };
        tx.batch_execute(&format!(
            "ALTER TYPE {} ADD VALUE IF NOT EXISTS {}{place}",
            qualified(&t.name),
            quote(l)
        ))
        .await
        .map_err(|e| pg_error(e, &format!("adding value {l:?} to type {}", t.name)))?;
    }
    Ok(())
}

/// Keeps a target table that exists up with its source before a run writes into it (an
/// incremental run, say): enum values and partitions the source added since are added.
pub(crate) async fn evolve(conn: &mut Object, table: &TableInfo) -> Result<()> {
    if !ddl::same_engine(table) {
        return Ok(());
    }
    let o = &table.objects;
    let enums = o
        .types
        .iter()
        .any(|t| matches!(t.kind, migrate_core::objects::UserTypeKind::Enum { .. }));
    if !enums && o.partitioning.is_none() {
        return Ok(());
    }
    let fail = |e| pg_error(e, &format!("bringing {} up to its source", table.name));
    let tx = conn.transaction().await.map_err(fail)?;
    tx.batch_execute("SELECT pg_advisory_xact_lock(hashtext('migrate schema objects'))")
        .await
        .map_err(fail)?;
    for t in &o.types {
        let migrate_core::objects::UserTypeKind::Enum { labels } = &t.kind else {
            continue;
        };
        let there = tx
            .query_opt(
                "SELECT ARRAY(SELECT enumlabel::text FROM pg_enum WHERE enumtypid = t.oid ORDER BY enumsortorder)
                   FROM pg_type t WHERE t.oid = to_regtype($1)",
                &[&qualified(&t.name)],
            )
            .await
            .map_err(fail)?;
        if let Some(r) = there {
            add_enum_labels(&tx, table, t, labels, r.get(0)).await?;
        }
    }
    for p in o.partitioning.iter().flat_map(|p| &p.partitions) {
        let exists: bool = tx
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&qualified(&p.name)])
            .await
            .map_err(fail)?
            .get(0);
        if !exists {
            for statement in ddl::partition(p) {
                tx.batch_execute(&statement).await.map_err(fail)?;
            }
        }
    }
    tx.commit().await.map_err(fail)
}

/// Creates `table`'s sequences not behind an identity column, where missing, in the
/// transaction that creates the table (after a recreated table's old ones went), taking turns
/// with other tables that may share one.
pub(crate) async fn sequences(tx: &impl GenericClient, table: &TableInfo) -> Result<()> {
    if !ddl::same_engine(table) {
        return Ok(());
    }
    let free: Vec<_> = table
        .objects
        .sequences
        .iter()
        .filter(|s| s.identity_of.is_none())
        .collect();
    if free.is_empty() {
        return Ok(());
    }
    tx.batch_execute("SELECT pg_advisory_xact_lock(hashtext('migrate schema objects'))")
        .await
        .map_err(|e| pg_error(e, "locking schema objects"))?;
    for s in free {
        tx.batch_execute(&ddl::create_sequence(s))
            .await
            .map_err(|e| pg_error(e, &format!("creating sequence {}", s.name)))?;
    }
    Ok(())
}

/// CHECK, UNIQUE and exclusion constraints, after the data. One found under the same name with
/// the same definition counts as done; with another definition it is an error naming both.
pub(crate) async fn constraints(conn: &Object, table: &TableInfo) -> Result<Vec<ObjectOutcome>> {
    let mut out = Vec::new();
    let name = qualified(&table.name);
    for (cname, kind, sql) in ddl::constraints(table) {
        let def = &table
            .objects
            .constraints
            .iter()
            .find(|c| c.name == cname)
            .map(|c| c.definition.clone())
            .unwrap_or_default();
        let same = |there: &str| {
            let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
            if words(there) == words(def) {
                Ok(())
            } else {
                Err(Error::schema(format!(
                    "constraint {cname} on {} already exists as {there} where the source has {def}: drop or rename it in the target",
                    table.name
                ))
                .table(&table.name))
            }
        };
        if let Some(there) = constraint_def(conn, &name, &cname).await? {
            same(&there)?;
        } else if let Err(e) = conn.batch_execute(&sql).await {
            match constraint_def(conn, &name, &cname).await? {
                Some(there) => same(&there)?,
                None => {
                    return Err(pg_error(
                        e,
                        &format!("creating constraint {cname} on {}", table.name),
                    ))
                }
            }
        }
        let kind = match kind {
            migrate_core::objects::ConstraintKind::Check => ObjectKind::Check,
            migrate_core::objects::ConstraintKind::Unique => ObjectKind::Unique,
            migrate_core::objects::ConstraintKind::Exclusion => ObjectKind::Exclusion,
        };
        out.push(ObjectOutcome::created(kind, cname, Some(&table.name)));
    }
    Ok(out)
}

/// The definition of constraint `cname` on `table` (quoted), if there is one.
async fn constraint_def(conn: &Object, table: &str, cname: &str) -> Result<Option<String>> {
    conn.query_opt(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = $1::text::regclass AND conname = $2",
        &[&table, &cname],
    )
    .await
    .map(|r| r.map(|r| r.get::<_, String>(0)))
    .map_err(|e| pg_error(e, "checking constraints"))
}

/// Triggers, policies, grants and the owner: created where asked (after the data, so no
/// trigger fires on it), listed as not copied otherwise. A grant or owner naming a role the
/// target lacks is listed with that reason.
pub(crate) async fn extras(
    conn: &mut Object,
    table: &TableInfo,
    copy: &CopyExtras,
) -> Result<Vec<ObjectOutcome>> {
    let mut out = Vec::new();
    if !ddl::same_engine(table) {
        return Ok(out);
    }
    for x in &table.objects.extras {
        let (yes, option) = copy.decides(x.kind);
        if !yes {
            out.push(crate::catalog::not_asked(
                x.kind,
                &x.name,
                &table.name,
                option,
            ));
            continue;
        }
        // One object per transaction, workers taking turns (tables may share a trigger
        // function, and CREATE OR REPLACE FUNCTION races with itself).
        let fail = |e| {
            pg_error(
                e,
                &format!("copying {} {} of {}", x.kind, x.name, table.name),
            )
        };
        let tx = conn.transaction().await.map_err(fail)?;
        tx.batch_execute("SELECT pg_advisory_xact_lock(hashtext('migrate schema objects'))")
            .await
            .map_err(fail)?;
        let mut outcome = ObjectOutcome::created(x.kind, &x.name, Some(&table.name));
        if !already_there(&tx, table, x.kind, &x.name).await? {
            for statement in &x.statements {
                if let Err(e) = tx.batch_execute(statement).await {
                    if e.code() != Some(&tokio_postgres::error::SqlState::UNDEFINED_OBJECT) {
                        return Err(fail(e));
                    }
                    let why = e
                        .as_db_error()
                        .map(|d| d.message().to_string())
                        .unwrap_or_default();
                    outcome.not_created = Some(format!("not in the target: {why}"));
                    break;
                }
            }
        }
        if outcome.not_created.is_none() {
            tx.commit().await.map_err(fail)?;
        }
        out.push(outcome);
    }
    Ok(out)
}

/// Whether a trigger or policy of that name is already on the table (others are idempotent).
async fn already_there(
    conn: &impl GenericClient,
    table: &TableInfo,
    kind: ObjectKind,
    name: &str,
) -> Result<bool> {
    let q = match kind {
        ObjectKind::Trigger => "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = $1::text::regclass AND tgname = $2)",
        ObjectKind::Policy => "SELECT EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = $1::text::regclass AND polname = $2)",
        _ => return Ok(false),
    };
    Ok(conn
        .query_one(q, &[&qualified(&table.name), &name])
        .await
        .map_err(|e| pg_error(e, "looking for triggers and policies"))?
        .get(0))
}

/// Moves each sequence to the source's value (`setval`); one missing from the target is listed.
pub(crate) async fn set_sequences(
    conn: &Object,
    table: &TableInfo,
    values: &[SequenceValue],
) -> Result<Vec<ObjectOutcome>> {
    let mut out = Vec::new();
    for v in values {
        let name = qualified(&v.name);
        let set: bool = conn
            .query_one(
                "SELECT CASE WHEN to_regclass($1) IS NULL THEN false
                             ELSE setval(to_regclass($1), $2, $3) IS NOT NULL END",
                &[&name, &v.last_value, &v.is_called],
            )
            .await
            .map_err(|e| pg_error(e, &format!("setting sequence {}", v.name)))?
            .get(0);
        let shown = v.name.to_string();
        out.push(if set {
            ObjectOutcome::created(ObjectKind::SequenceValue, shown, Some(&table.name))
        } else {
            ObjectOutcome::skipped(
                ObjectKind::SequenceValue,
                shown,
                Some(&table.name),
                "the target has no such sequence",
            )
        });
    }
    Ok(out)
}

/// Creates `views` in order (a view: `CREATE OR REPLACE`; a materialized view: created, or
/// refreshed when it exists, then its indexes), with comments. A view the target refuses is
/// listed with the target's error; the data already migrated stays.
pub(crate) async fn create_views(
    conn: &mut Object,
    views: &[View],
    dry_run: bool,
) -> Result<Vec<ObjectOutcome>> {
    let mut out = Vec::new();
    for v in views {
        if dry_run {
            out.push(v.outcome(None));
            continue;
        }
        let name = qualified(&v.name);
        let with = match v.options.is_empty() {
            true => String::new(),
            false => format!(" WITH ({})", v.options.join(", ")),
        };
        let mut statements = Vec::new();
        if let Some(s) = &v.name.schema {
            statements.push(format!("CREATE SCHEMA IF NOT EXISTS {}", ident(s)));
        }
        if v.materialized {
            statements.push(format!(
                "DO $$ BEGIN IF to_regclass({}) IS NOT NULL THEN REFRESH MATERIALIZED VIEW {name}; END IF; END $$",
                quote(&name)
            ));
            statements.push(format!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {name}{with} AS {} WITH DATA",
                v.definition
            ));
            for i in &v.indexes {
                statements.push(
                    i.replacen("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1)
                        .replacen(
                            "CREATE UNIQUE INDEX ",
                            "CREATE UNIQUE INDEX IF NOT EXISTS ",
                            1,
                        ),
                );
            }
        } else {
            statements.push(format!(
                "CREATE OR REPLACE VIEW {name}{with} AS {}",
                v.definition
            ));
        }
        if let Some(c) = &v.comment {
            let what = if v.materialized {
                "MATERIALIZED VIEW"
            } else {
                "VIEW"
            };
            statements.push(format!("COMMENT ON {what} {name} IS {}", quote(c)));
        }
        // One view per transaction, workers taking turns: a refused view leaves nothing behind.
        let tx = conn
            .transaction()
            .await
            .map_err(|e| pg_error(e, "creating views"))?;
        tx.batch_execute("SELECT pg_advisory_xact_lock(hashtext('migrate views'))")
            .await
            .map_err(|e| pg_error(e, "creating views"))?;
        let mut refused = None;
        for s in &statements {
            if let Err(e) = tx.batch_execute(s).await {
                let why = e
                    .as_db_error()
                    .map(|d| d.message().to_string())
                    .unwrap_or_else(|| e.to_string());
                tracing::warn!(view = %v.name, error = %why, "view not created");
                refused = Some(format!("the target refused it: {why}"));
                break;
            }
        }
        if refused.is_none() {
            tx.commit()
                .await
                .map_err(|e| pg_error(e, &format!("creating view {}", v.name)))?;
        }
        out.push(v.outcome(refused.as_deref()));
    }
    Ok(out)
}
