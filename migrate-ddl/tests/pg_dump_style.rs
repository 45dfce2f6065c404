//! What pg_dump writes apart from CREATE TABLE, converted: a serial column's default set by a
//! later `ALTER TABLE … ALTER COLUMN … SET DEFAULT` with its sequence created after the table,
//! partitions created as tables then attached, unnamed constraints named apart, and the
//! schema-changing ALTERs and DROPs a folder of migrations may hold refused by file and line
//! rather than skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

use std::path::Path;

use migrate_core::TableName;
use migrate_ddl::{convert, split, Converted, Options};

fn read(sql: &str) -> migrate_core::Result<Converted> {
    convert(&split(Path::new("05_x.sql"), sql)?, &Options::default())
}

#[test]
fn pg_dump_defaults_partitions_and_constraint_names() {
    let c = read(
        "\u{feff}CREATE TABLE sales.orders (id integer NOT NULL, qty integer, price numeric(8,2),\n\
           CHECK (qty > 0), CHECK (price > 0));\n\
         CREATE SEQUENCE sales.orders_id_seq AS integer START WITH 1 INCREMENT BY 1 CACHE 1;\n\
         ALTER TABLE ONLY sales.orders ALTER COLUMN id SET DEFAULT nextval('sales.orders_id_seq'::regclass);\n\
         CREATE TABLE public.ev (id bigint, at date) PARTITION BY RANGE (at);\n\
         CREATE TABLE public.ev_2025 (id bigint, at date);\n\
         ALTER TABLE ONLY public.ev ATTACH PARTITION public.ev_2025 FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');\n",
    )
    .unwrap();
    let names: Vec<String> = c.tables.iter().map(|t| t.info.name.to_string()).collect();
    assert_eq!(
        names,
        ["sales.orders", "public.ev"],
        "the attached partition folds in"
    );
    let orders = &c.tables[0].info;
    let id = &orders.schema.columns[0];
    assert_eq!(
        id.default.as_deref().map(str::to_lowercase).as_deref(),
        Some("nextval('sales.orders_id_seq'::regclass)")
    );
    assert_eq!(
        orders.objects.sequences.len(),
        1,
        "{:?}",
        orders.objects.sequences
    );
    assert_eq!(
        orders.objects.sequences[0].name,
        TableName::new("sales", "orders_id_seq")
    );
    let checks: Vec<&str> = orders
        .objects
        .constraints
        .iter()
        .map(|k| k.name.as_str())
        .collect();
    assert_eq!(checks, ["orders_check", "orders_check1"]);
    let ev = &c.tables[1].info;
    assert_eq!(
        ev.objects.partitioning.as_ref().unwrap().partitions.len(),
        1
    );
}

#[test]
fn schema_changing_alters_and_drops_are_refused_by_place() {
    for (sql, what) in [
        (
            "CREATE TABLE t (a int);\nALTER TABLE t ADD COLUMN b int;",
            "ADD COLUMN",
        ),
        (
            "CREATE TABLE t (a int);\nALTER TABLE t DROP COLUMN a;",
            "DROP COLUMN",
        ),
        (
            "CREATE TABLE t (a int);\nALTER TABLE t ALTER COLUMN a TYPE bigint;",
            "ALTER COLUMN a",
        ),
        ("CREATE TABLE t (a int);\nDROP TABLE t;", "DROP of a table"),
        ("CREATE TABLE t (a numeric(5,-2));", "NUMERIC(5,-2)"),
    ] {
        let e = read(sql).unwrap_err().to_string();
        assert!(e.contains("05_x.sql:"), "{sql}: {e}");
        assert!(e.contains(what), "{sql}: {e}");
    }
}
