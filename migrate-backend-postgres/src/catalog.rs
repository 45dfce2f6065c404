//! The schema objects around tables — user types, sequences, constraints, partitions,
//! comments, extensions, triggers, policies, grants, views — read from the catalogs into
//! [`TableObjects`] and [`Views`], definitions in Postgres's own words (`pg_get_*def`).

use std::collections::{BTreeMap, BTreeSet};

use migrate_core::objects::{
    Constraint, ConstraintKind, ExtraObject, Function, ObjectKind, ObjectOutcome, Partition,
    Partitioning, Sequence, TableObjects, UserType, UserTypeKind, View, Views,
};
use migrate_core::{DataType, Result, TableName};
use tokio_postgres::Client;

use crate::error::pg_error;
use crate::sql::{ident, table as qualified};
use crate::types::map_type;

/// A type met while walking the column types: what it is and what it is built on.
struct TypeNode {
    /// `None` for types that are not created (built in, or an extension's).
    user: Option<UserType>,
    /// Extension the type belongs to.
    extension: Option<String>,
    /// Types it is built on (element, domain base, composite fields).
    needs: Vec<u32>,
}

/// Reads the objects of the tables `oids` (keyed by oid) into their [`TableObjects`].
/// `column_types` holds each table's column type oids.
pub(crate) async fn read_objects(
    client: &Client,
    names: &BTreeMap<u32, TableName>,
    column_types: &BTreeMap<u32, Vec<u32>>,
) -> Result<BTreeMap<u32, TableObjects>> {
    let oids: Vec<u32> = names.keys().copied().collect();
    let mut out: BTreeMap<u32, TableObjects> = oids
        .iter()
        .map(|o| {
            let objects = TableObjects {
                source_dialect: Some("postgres".into()),
                ..Default::default()
            };
            (*o, objects)
        })
        .collect();
    let types = walk_types(client, column_types.values().flatten().copied().collect()).await?;
    for (oid, cols) in column_types {
        let Some(o) = out.get_mut(oid) else { continue };
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        for t in cols {
            type_order(*t, &types, &mut seen, &mut order);
        }
        for t in order {
            let node = &types[&t];
            if let Some(e) = &node.extension {
                if !o.extensions.contains(e) {
                    o.extensions.push(e.clone());
                }
            }
            if let Some(u) = &node.user {
                o.types.push(u.clone());
            }
        }
    }
    definition_dependencies(client, &oids, &mut out).await?;
    sequences(client, &oids, &mut out).await?;
    constraints(client, &oids, &mut out).await?;
    partitions(client, &oids, &mut out).await?;
    comments(client, &oids, &mut out).await?;
    extras(client, &oids, names, &mut out).await?;
    Ok(out)
}

/// Depth-first: a type's dependencies before it.
fn type_order(
    t: u32,
    types: &BTreeMap<u32, TypeNode>,
    seen: &mut BTreeSet<u32>,
    out: &mut Vec<u32>,
) {
    if !seen.insert(t) {
        return;
    }
    if let Some(node) = types.get(&t) {
        for n in &node.needs {
            type_order(*n, types, seen, out);
        }
        out.push(t);
    }
}

/// Every type reachable from `start` through array elements, domain bases and composite
/// fields, stopping at built-in and extension types.
async fn walk_types(client: &Client, start: BTreeSet<u32>) -> Result<BTreeMap<u32, TypeNode>> {
    let mut found: BTreeMap<u32, TypeNode> = BTreeMap::new();
    let mut todo: Vec<u32> = start.into_iter().collect();
    while !todo.is_empty() {
        let rows = client
            .query(
                "SELECT t.oid, n.nspname::text, t.typname::text, format_type(t.oid, NULL), t.typtype::text,
                        t.typcategory::text, t.typelem, t.typbasetype,
                        (SELECT e.extname::text FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
                          WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e' LIMIT 1),
                        obj_description(t.oid, 'pg_type'),
                        ARRAY(SELECT l.enumlabel::text FROM pg_enum l WHERE l.enumtypid = t.oid ORDER BY l.enumsortorder),
                        format_type(t.typbasetype, t.typtypmod), t.typnotnull, t.typdefault,
                        ARRAY(SELECT c.conname::text FROM pg_constraint c WHERE c.contypid = t.oid AND c.contype = 'c' ORDER BY c.conname),
                        ARRAY(SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c WHERE c.contypid = t.oid AND c.contype = 'c' ORDER BY c.conname),
                        ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = t.typrelid AND t.typtype = 'c'
                                 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
                        ARRAY(SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = t.typrelid
                                 AND t.typtype = 'c' AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
                        ARRAY(SELECT a.atttypid FROM pg_attribute a WHERE a.attrelid = t.typrelid AND t.typtype = 'c'
                                 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
                        bt.typname::text, t.typtypmod,
                        COALESCE((SELECT c.relkind::text FROM pg_class c WHERE c.oid = t.typrelid), '')
                   FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   LEFT JOIN pg_type bt ON bt.oid = t.typbasetype
                  WHERE t.oid IN (SELECT unnest($1::oid[]))",
                &[&todo],
            )
            .await
            .map_err(|e| pg_error(e, "reading user types"))?;
        todo.clear();
        for r in rows {
            let oid: u32 = r.get(0);
            let schema: String = r.get(1);
            let kind: String = r.get(4);
            let category: String = r.get(5);
            let extension: Option<String> = r.get(8);
            let builtin = schema == "pg_catalog" || schema == "information_schema";
            let mut needs = Vec::new();
            let elem: u32 = r.get(6);
            let base: u32 = r.get(7);
            if category == "A" && elem != 0 {
                needs.push(elem);
            }
            let user_kind = match kind.as_str() {
                _ if builtin || extension.is_some() => None,
                "e" => Some(UserTypeKind::Enum { labels: r.get(10) }),
                "d" => {
                    needs.push(base);
                    let names: Vec<String> = r.get(14);
                    let defs: Vec<String> = r.get(15);
                    let base_name: Option<String> = r.get(19);
                    let base_type = base_name
                        .and_then(|b| map_type(&b, r.get(20), false))
                        .map_or_else(DataType::text, |(t, _, _)| t);
                    Some(UserTypeKind::Domain {
                        base_sql: r.get(11),
                        base: base_type,
                        not_null: r.get(12),
                        default: r.get(13),
                        checks: names
                            .into_iter()
                            .zip(defs)
                            .map(|(name, definition)| Constraint {
                                name,
                                kind: ConstraintKind::Check,
                                columns: Vec::new(),
                                definition,
                            })
                            .collect(),
                    })
                }
                // A table's or view's row type comes with its relation.
                "c" if r.get::<_, String>(21) != "c" => None,
                "c" => {
                    let names: Vec<String> = r.get(16);
                    let types: Vec<String> = r.get(17);
                    needs.extend(r.get::<_, Vec<u32>>(18));
                    Some(UserTypeKind::Composite {
                        fields: names.into_iter().zip(types).collect(),
                    })
                }
                _ => None,
            };
            let user = user_kind.map(|kind| UserType {
                name: TableName::new(schema, r.get::<_, String>(2)),
                sql_name: r.get(3),
                kind,
                comment: r.get(9),
            });
            for n in &needs {
                if !found.contains_key(n) && !todo.contains(n) {
                    todo.push(*n);
                }
            }
            found.insert(
                oid,
                TypeNode {
                    user,
                    extension,
                    needs,
                },
            );
        }
        todo.retain(|t| !found.contains_key(t));
    }
    Ok(found)
}

/// What the tables' defaults, generated columns, constraints and indexes use beyond their
/// column types: extensions (for functions, operators, operator classes, types) and user
/// functions, whose definitions are kept to be created before the table.
async fn definition_dependencies(
    client: &Client,
    oids: &[u32],
    out: &mut BTreeMap<u32, TableObjects>,
) -> Result<()> {
    let sql = "WITH refs AS (
               SELECT ad.adrelid AS rel, d.refclassid, d.refobjid
                 FROM pg_attrdef ad JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
                WHERE ad.adrelid IN (SELECT unnest($1::oid[]))
               UNION
               SELECT c.conrelid, d.refclassid, d.refobjid
                 FROM pg_constraint c JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass AND d.objid = c.oid
                WHERE c.conrelid IN (SELECT unnest($1::oid[]))
               UNION
               SELECT i.indrelid, d.refclassid, d.refobjid
                 FROM pg_index i JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
                WHERE i.indrelid IN (SELECT unnest($1::oid[])))
             SELECT DISTINCT r.rel, e.extname::text,
                    CASE WHEN e.oid IS NULL AND p.oid IS NOT NULL
                              AND pn.nspname NOT IN ('pg_catalog', 'information_schema')
                         THEN pg_get_functiondef(p.oid) END,
                    pn.nspname::text, p.proname::text
               FROM refs r
               LEFT JOIN pg_depend x ON x.classid = r.refclassid AND x.objid = r.refobjid AND x.deptype = 'e'
               LEFT JOIN pg_extension e ON e.oid = x.refobjid
               LEFT JOIN pg_proc p ON r.refclassid = 'pg_proc'::regclass AND p.oid = r.refobjid AND p.prokind = 'f'
               LEFT JOIN pg_namespace pn ON pn.oid = p.pronamespace
              WHERE r.refclassid IN ('pg_proc'::regclass, 'pg_opclass'::regclass, 'pg_operator'::regclass,
                                     'pg_type'::regclass, 'pg_opfamily'::regclass)
              ORDER BY 1, 2, 4, 5";
    per_table(
        client,
        sql,
        oids,
        "reading what the tables' definitions use",
        out,
        |o, r| {
            if let Some(e) = r.get::<_, Option<String>>(1) {
                if !o.extensions.contains(&e) {
                    o.extensions.push(e);
                }
            }
            if let Some(definition) = r.get::<_, Option<String>>(2) {
                let name = TableName::new(r.get::<_, String>(3), r.get::<_, String>(4));
                if !o.functions.iter().any(|f| f.definition == definition) {
                    o.functions.push(Function { name, definition });
                }
            }
        },
    )
    .await
}

/// Runs `sql` (the table oids as `$1`) and hands each row to `f` with the objects of the
/// table whose oid is the row's first column.
async fn per_table(
    client: &Client,
    sql: &str,
    oids: &[u32],
    what: &str,
    out: &mut BTreeMap<u32, TableObjects>,
    mut f: impl FnMut(&mut TableObjects, &tokio_postgres::Row),
) -> Result<()> {
    let rows = client
        .query(sql, &[&oids])
        .await
        .map_err(|e| pg_error(e, what))?;
    for r in &rows {
        if let Some(o) = out.get_mut(&r.get::<_, u32>(0)) {
            f(o, r);
        }
    }
    Ok(())
}

/// Sequences owned by the tables' columns (`serial`, identity) or named in their defaults.
async fn sequences(
    client: &Client,
    oids: &[u32],
    out: &mut BTreeMap<u32, TableObjects>,
) -> Result<()> {
    let sql = "WITH used AS (
               SELECT d.refobjid AS rel, d.objid AS seq, a.attname::text AS col, d.deptype = 'i' AS identity
                 FROM pg_depend d
                 JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
                  AND d.deptype IN ('a', 'i') AND d.refobjid IN (SELECT unnest($1::oid[]))
               UNION
               SELECT ad.adrelid, d.refobjid, NULL, false
                 FROM pg_attrdef ad
                 JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
                                 AND d.refclassid = 'pg_class'::regclass
                 JOIN pg_class sc ON sc.oid = d.refobjid AND sc.relkind = 'S'
                WHERE ad.adrelid IN (SELECT unnest($1::oid[]))
                  AND NOT EXISTS (SELECT 1 FROM pg_depend o WHERE o.objid = d.refobjid AND o.refobjid = ad.adrelid
                                     AND o.classid = 'pg_class'::regclass AND o.deptype IN ('a', 'i')))
             SELECT u.rel, n.nspname::text, c.relname::text, format_type(s.seqtypid, NULL),
                    s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle, u.col, u.identity
               FROM used u JOIN pg_sequence s ON s.seqrelid = u.seq
               JOIN pg_class c ON c.oid = u.seq JOIN pg_namespace n ON n.oid = c.relnamespace
              ORDER BY u.rel, 2, 3";
    per_table(client, sql, oids, "reading sequences", out, |o, r| {
        let owned_by: Option<String> = r.get(10);
        let identity: bool = r.get(11);
        o.sequences.push(Sequence {
            name: TableName::new(r.get::<_, String>(1), r.get::<_, String>(2)),
            data_type: r.get(3),
            start: r.get(4),
            increment: r.get(5),
            min: r.get(6),
            max: r.get(7),
            cache: r.get(8),
            cycle: r.get(9),
            identity_of: owned_by.clone().filter(|_| identity),
            owned_by,
        });
    })
    .await
}

/// CHECK, UNIQUE and exclusion constraints.
async fn constraints(
    client: &Client,
    oids: &[u32],
    out: &mut BTreeMap<u32, TableObjects>,
) -> Result<()> {
    let sql = "SELECT c.conrelid, c.conname::text, c.contype::text, pg_get_constraintdef(c.oid),
                    ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(n, ord)
                            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.ord)
               FROM pg_constraint c
              WHERE c.contype IN ('c', 'u', 'x') AND c.conrelid IN (SELECT unnest($1::oid[]))
              ORDER BY c.conrelid, c.conname";
    per_table(client, sql, oids, "reading constraints", out, |o, r| {
        let kind = match r.get::<_, String>(2).as_str() {
            "c" => ConstraintKind::Check,
            "u" => ConstraintKind::Unique,
            _ => ConstraintKind::Exclusion,
        };
        o.constraints.push(Constraint {
            name: r.get(1),
            kind,
            definition: r.get(3),
            columns: r.get(4),
        });
    })
    .await
}

/// Partition keys and every partition, parents before their sub-partitions.
async fn partitions(
    client: &Client,
    oids: &[u32],
    out: &mut BTreeMap<u32, TableObjects>,
) -> Result<()> {
    let sql = "WITH RECURSIVE tree(root, oid, parent, depth) AS (
               SELECT c.oid, c.oid, NULL::oid, 0 FROM pg_class c
                WHERE c.relkind = 'p' AND c.oid IN (SELECT unnest($1::oid[]))
               UNION ALL
               SELECT t.root, i.inhrelid, i.inhparent, t.depth + 1
                 FROM tree t JOIN pg_inherits i ON i.inhparent = t.oid)
             SELECT t.root, t.depth, n.nspname::text, c.relname::text, pn.nspname::text, pc.relname::text,
                    pg_get_expr(c.relpartbound, c.oid),
                    CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END
               FROM tree t JOIN pg_class c ON c.oid = t.oid JOIN pg_namespace n ON n.oid = c.relnamespace
               LEFT JOIN pg_class pc ON pc.oid = t.parent LEFT JOIN pg_namespace pn ON pn.oid = pc.relnamespace
              ORDER BY t.root, t.depth, 3, 4";
    per_table(client, sql, oids, "reading partitions", out, |o, r| {
        let key: Option<String> = r.get(7);
        if r.get::<_, i32>(1) == 0 {
            o.partitioning = Some(Partitioning {
                key: key.unwrap_or_default(),
                partitions: Vec::new(),
            });
            return;
        }
        if let Some(p) = o.partitioning.as_mut() {
            p.partitions.push(Partition {
                name: TableName::new(r.get::<_, String>(2), r.get::<_, String>(3)),
                parent: TableName::new(r.get::<_, String>(4), r.get::<_, String>(5)),
                bound: r.get::<_, Option<String>>(6).unwrap_or_default(),
                key,
            });
        }
    })
    .await
}

/// Table and column comments.
async fn comments(
    client: &Client,
    oids: &[u32],
    out: &mut BTreeMap<u32, TableObjects>,
) -> Result<()> {
    let sql = "SELECT d.objoid, d.objsubid, a.attname::text, d.description
               FROM pg_description d
               LEFT JOIN pg_attribute a ON a.attrelid = d.objoid AND a.attnum = d.objsubid AND d.objsubid > 0
              WHERE d.classoid = 'pg_class'::regclass AND d.objoid IN (SELECT unnest($1::oid[]))
              ORDER BY d.objoid, d.objsubid";
    per_table(client, sql, oids, "reading comments", out, |o, r| {
        match r.get::<_, Option<String>>(2) {
            Some(column) if r.get::<_, i32>(1) > 0 => {
                o.column_comments.push((column, r.get(3)));
            }
            _ => o.comment = Some(r.get(3)),
        }
    })
    .await
}

/// Triggers (with their functions), row-level security and its policies, grants and the owner.
async fn extras(
    client: &Client,
    oids: &[u32],
    names: &BTreeMap<u32, TableName>,
    out: &mut BTreeMap<u32, TableObjects>,
) -> Result<()> {
    let triggers = client
        .query(
            "SELECT t.tgrelid, t.tgname::text, pg_get_functiondef(t.tgfoid), pg_get_triggerdef(t.oid),
                    t.tgenabled::text, pn.nspname::text,
                    pn.nspname IN ('pg_catalog', 'information_schema')
                      OR EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                                    AND d.objid = p.oid AND d.deptype = 'e')
               FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace pn ON pn.oid = p.pronamespace
              WHERE NOT t.tgisinternal AND t.tgrelid IN (SELECT unnest($1::oid[])) AND t.tgparentid = 0
              ORDER BY t.tgrelid, t.tgname",
            &[&oids],
        )
        .await
        .map_err(|e| pg_error(e, "reading triggers"))?;
    for r in triggers {
        let oid: u32 = r.get(0);
        let (Some(o), Some(table)) = (out.get_mut(&oid), names.get(&oid)) else {
            continue;
        };
        let name: String = r.get(1);
        // A built-in or an extension's function is the target's already.
        let mut statements = if r.get::<_, bool>(6) {
            vec![r.get(3)]
        } else {
            vec![
                format!(
                    "CREATE SCHEMA IF NOT EXISTS {}",
                    ident(&r.get::<_, String>(5))
                ),
                r.get(2),
                r.get(3),
            ]
        };
        if r.get::<_, String>(4) == "D" {
            statements.push(format!(
                "ALTER TABLE {} DISABLE TRIGGER {}",
                qualified(table),
                ident(&name)
            ));
        }
        o.extras.push(ExtraObject {
            kind: ObjectKind::Trigger,
            name,
            statements,
        });
    }
    let rls = client
        .query(
            "SELECT c.oid, c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner)::text,
                    ARRAY(SELECT format('GRANT %s ON %s TO %s%s', a.privilege_type, $2::text,
                                        CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
                                        CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
                            FROM aclexplode(c.relacl) a WHERE a.grantee <> c.relowner
                           ORDER BY a.grantee, a.privilege_type),
                    ARRAY(SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END
                            FROM aclexplode(c.relacl) a WHERE a.grantee <> c.relowner
                           ORDER BY a.grantee, a.privilege_type)
               FROM pg_class c WHERE c.oid IN (SELECT unnest($1::oid[]))",
            &[&oids, &"%TABLE%"],
        )
        .await
        .map_err(|e| pg_error(e, "reading grants and row-level security"))?;
    for r in rls {
        let oid: u32 = r.get(0);
        let (Some(o), Some(table)) = (out.get_mut(&oid), names.get(&oid)) else {
            continue;
        };
        let t = qualified(table);
        if r.get::<_, bool>(1) {
            let mut statements = vec![format!("ALTER TABLE {t} ENABLE ROW LEVEL SECURITY")];
            if r.get::<_, bool>(2) {
                statements.push(format!("ALTER TABLE {t} FORCE ROW LEVEL SECURITY"));
            }
            o.extras.push(ExtraObject {
                kind: ObjectKind::Policy,
                name: "row level security".into(),
                statements,
            });
        }
        let owner: String = r.get(3);
        o.extras.push(ExtraObject {
            kind: ObjectKind::Owner,
            name: owner.clone(),
            statements: vec![format!("ALTER TABLE {t} OWNER TO {}", ident(&owner))],
        });
        let grants: Vec<String> = r.get(4);
        let grantees: Vec<String> = r.get(5);
        for (g, who) in grants.into_iter().zip(grantees) {
            let statement = g.replace("%TABLE%", &t);
            let name = format!("{} to {who}", statement.split(" ON ").next().unwrap_or(""));
            o.extras.push(ExtraObject {
                kind: ObjectKind::Grant,
                name: name.trim_start_matches("GRANT ").to_string(),
                statements: vec![statement],
            });
        }
    }
    let policies = client
        .query(
            "SELECT c.oid, p.polname::text,
                    format('CREATE POLICY %I ON %s AS %s FOR %s TO %s%s%s', p.polname, $2::text,
                           CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
                           CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                                         WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
                           CASE WHEN p.polroles = '{0}' THEN 'PUBLIC'
                                ELSE (SELECT string_agg(quote_ident(pg_get_userbyid(r)), ', ') FROM unnest(p.polroles) r) END,
                           ' USING (' || pg_get_expr(p.polqual, p.polrelid) || ')',
                           ' WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')')
               FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
              WHERE c.oid IN (SELECT unnest($1::oid[])) ORDER BY c.oid, p.polname",
            &[&oids, &"%TABLE%"],
        )
        .await
        .map_err(|e| pg_error(e, "reading policies"))?;
    for r in policies {
        let oid: u32 = r.get(0);
        let (Some(o), Some(table)) = (out.get_mut(&oid), names.get(&oid)) else {
            continue;
        };
        o.extras.push(ExtraObject {
            kind: ObjectKind::Policy,
            name: r.get(1),
            statements: vec![r.get::<_, String>(2).replace("%TABLE%", &qualified(table))],
        });
    }
    Ok(())
}

/// Views and materialized views reading any of `tables` (or their partitions): the ones that
/// read nothing else, dependencies first, and the others with the reason.
pub(crate) async fn views(client: &Client, tables: &[TableName]) -> Result<Views> {
    let old = crate::sql::empty_search_path(client).await?;
    let found = views_qualified(client, tables).await;
    crate::sql::restore_search_path(client, &old).await?;
    found
}

async fn views_qualified(client: &Client, tables: &[TableName]) -> Result<Views> {
    let rows = client
        .query(
            "SELECT v.oid, n.nspname::text, v.relname::text, v.relkind = 'm',
                    pg_get_viewdef(v.oid), obj_description(v.oid, 'pg_class'),
                    ARRAY(SELECT DISTINCT d.refobjid FROM pg_rewrite r
                            JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                                            AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> v.oid
                           WHERE r.ev_class = v.oid),
                    ARRAY(SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = v.oid
                           ORDER BY i.indexrelid),
                    COALESCE(v.reloptions, '{}')::text[]
               FROM pg_class v JOIN pg_namespace n ON n.oid = v.relnamespace
              WHERE v.relkind IN ('v', 'm')
                AND n.nspname NOT IN ('pg_catalog', 'information_schema', '_migrate')
              ORDER BY 2, 3",
            &[],
        )
        .await
        .map_err(|e| pg_error(e, "reading views"))?;
    // Every relation a view may read, by oid: name, and the table it stands for (a partition
    // stands for its root).
    let rels = client
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text,
                    (SELECT ARRAY[rn.nspname::text, r.relname::text] FROM pg_partition_ancestors(c.oid) a(oid)
                       JOIN pg_class r ON r.oid = a.oid JOIN pg_namespace rn ON rn.oid = r.relnamespace
                      WHERE NOT r.relispartition LIMIT 1)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
                AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
            &[],
        )
        .await
        .map_err(|e| pg_error(e, "reading views"))?;
    let migrated: BTreeSet<String> = tables.iter().map(|t| t.to_string()).collect();
    let mut rel_name: BTreeMap<u32, (TableName, String)> = BTreeMap::new();
    for r in rels {
        let name = TableName::new(r.get::<_, String>(1), r.get::<_, String>(2));
        let root: Option<Vec<String>> = r.get(3);
        let stands_for = match root.as_deref() {
            Some([schema, table]) => TableName::new(schema, table),
            _ => name.clone(),
        };
        rel_name.insert(r.get(0), (name, stands_for.to_string()));
    }
    struct Found {
        view: View,
        reads: Vec<(TableName, String)>,
    }
    let mut found: Vec<Found> = Vec::new();
    for r in rows {
        let name = TableName::new(r.get::<_, String>(1), r.get::<_, String>(2));
        let definition: String = r.get(4);
        let reads: Vec<(TableName, String)> = r
            .get::<_, Vec<u32>>(6)
            .iter()
            .filter_map(|o| rel_name.get(o).cloned())
            .collect();
        found.push(Found {
            view: View {
                name,
                materialized: r.get(3),
                definition: definition.trim().trim_end_matches(';').to_string(),
                // Partitions stand for their tables.
                depends_on: reads
                    .iter()
                    .map(|(n, s)| {
                        if *s == n.to_string() {
                            n.clone()
                        } else {
                            rel_by_text(&rel_name, s).unwrap_or_else(|| n.clone())
                        }
                    })
                    .collect(),
                comment: r.get(5),
                indexes: r.get(7),
                options: r.get(8),
            },
            reads,
        });
    }
    // Views over migrated tables, then views over those, until nothing changes.
    let view_names: BTreeSet<String> = found.iter().map(|f| f.view.name.to_string()).collect();
    let mut ok: Vec<View> = Vec::new();
    let mut ok_names: BTreeSet<String> = BTreeSet::new();
    let touches = |f: &Found| f.reads.iter().any(|(_, s)| migrated.contains(s));
    loop {
        let before = ok.len();
        for f in &found {
            let key = f.view.name.to_string();
            if ok_names.contains(&key) {
                continue;
            }
            let all_there = f
                .reads
                .iter()
                .all(|(_, s)| migrated.contains(s) || ok_names.contains(s));
            let reads_view = f.reads.iter().any(|(_, s)| ok_names.contains(s));
            if all_there && (touches(f) || reads_view) {
                ok_names.insert(key);
                ok.push(f.view.clone());
            }
        }
        if ok.len() == before {
            break;
        }
    }
    let mut left_out = Vec::new();
    for f in &found {
        if ok_names.contains(&f.view.name.to_string()) || !touches(f) {
            continue;
        }
        let missing: Vec<String> = f
            .reads
            .iter()
            .filter(|(_, s)| !migrated.contains(s) && !ok_names.contains(s))
            .map(|(n, s)| {
                if view_names.contains(s) {
                    format!("view {n}")
                } else {
                    n.to_string()
                }
            })
            .collect();
        let reason = format!(
            "it reads {}, which this run does not migrate",
            missing.join(", ")
        );
        left_out.push(f.view.outcome(Some(&reason)));
    }
    Ok(Views {
        over_tables: ok,
        left_out,
    })
}

/// The relation whose qualified name prints as `text`.
fn rel_by_text(rels: &BTreeMap<u32, (TableName, String)>, text: &str) -> Option<TableName> {
    rels.values()
        .find(|(n, _)| n.to_string() == text)
        .map(|(n, _)| n.clone())
}

/// The outcome for an object that is not copied unless asked, naming the option.
pub(crate) fn not_asked(
    kind: ObjectKind,
    name: &str,
    table: &TableName,
    option: &str,
) -> ObjectOutcome {
    ObjectOutcome::skipped(
        kind,
        name,
        Some(table),
        format!("not copied: set {option} to copy it"),
    )
}
