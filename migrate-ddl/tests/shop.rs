//! The shop fixture (14 files, 30 tables, pg_dump-style: domains, enums, serial and identity
//! keys, a partitioned table, self-referencing and cyclic foreign keys, views, a trigger
//! function) read, split and converted: every table in file order, its columns in the model's
//! types, its keys and objects; every other statement listed as skipped; and a statement the
//! parser cannot read an error naming its file and line unless skipping is allowed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

mod common;

use migrate_core::objects::{ConstraintKind, Identity, UserTypeKind};
use migrate_core::{DataType, TableName};
use migrate_ddl::{read_dir, Options};

#[test]
fn every_table_converts_in_file_order() {
    let c = read_dir(common::fixture(), &common::lenient()).unwrap();
    let expected: Vec<(String, String)> =
        std::fs::read_to_string(common::fixture().join("tables.txt"))
            .unwrap()
            .lines()
            .map(|l| {
                let (f, t) = l.split_once('\t').unwrap();
                (f.to_string(), t.to_string())
            })
            .collect();
    let got: Vec<(String, String)> = c
        .tables
        .iter()
        .map(|t| {
            let file = t.file.file_name().unwrap().to_string_lossy().into_owned();
            (file, t.info.name.to_string())
        })
        .collect();
    assert_eq!(got, expected);
    assert_eq!(c.tables.len(), 30);
}

#[test]
fn columns_keys_and_objects_arrive_as_discovery_reports_them() {
    let c = read_dir(common::fixture(), &common::lenient()).unwrap();
    let table = |n: &str| {
        c.tables
            .iter()
            .find(|t| t.info.name == TableName::new("public", n))
            .unwrap_or_else(|| panic!("no table {n}"))
            .info
            .clone()
    };
    let events = table("events");
    let col = |t: &migrate_core::TableInfo, n: &str| {
        t.schema.columns[t.schema.index_of(n).unwrap_or_else(|| panic!("{n}"))].clone()
    };
    assert_eq!(events.primary_key(), ["id", "occurred_at"]);
    assert_eq!(col(&events, "occurred_at").data_type, DataType::TimestampTz);
    assert_eq!(
        col(&events, "properties").source_type.as_deref(),
        Some("jsonb")
    );
    assert_eq!(
        events.objects.identity,
        vec![("id".to_string(), Identity::Always)]
    );
    let parts = events.objects.partitioning.as_ref().unwrap();
    assert_eq!(parts.key, "RANGE (occurred_at)");
    assert_eq!(
        parts
            .partitions
            .iter()
            .map(|p| p.name.name.as_str())
            .collect::<Vec<_>>(),
        ["events_2025", "events_2026"]
    );
    assert!(
        parts.partitions[0].bound.contains("'2025-01-01'"),
        "{parts:?}"
    );

    // A domain column is its base type, the domain carried for targets that keep it.
    let customers = table("customers");
    let email = col(&customers, "email");
    assert_eq!(email.data_type, DataType::text());
    assert!(customers.objects.types.iter().any(|t| t.sql_name == "email"
        && matches!(&t.kind, UserTypeKind::Domain { checks, .. } if !checks.is_empty())));
    // serial: an integer, not null, drawing from its own sequence.
    let id = col(&customers, "id");
    assert!(!id.nullable, "{id:?}");
    assert!(
        id.default
            .as_deref()
            .unwrap_or_default()
            .starts_with("nextval("),
        "{id:?}"
    );
    assert!(customers
        .objects
        .sequences
        .iter()
        .any(|s| s.owned_by.as_deref() == Some("id")));

    // An enum column is text; the enum is carried with its labels.
    let orders = table("orders");
    let status = orders
        .schema
        .columns
        .iter()
        .find(|c| c.source_type.as_deref() == Some("order_status"))
        .expect("an order_status column");
    assert_eq!(status.data_type, DataType::text());
    assert!(orders
        .objects
        .types
        .iter()
        .any(|t| matches!(&t.kind, UserTypeKind::Enum { labels } if labels.len() == 6)));

    // Self-reference, and the cycle's second edge added by a later file's ALTER TABLE.
    let categories = table("categories");
    assert!(categories
        .foreign_keys
        .iter()
        .any(|f| f.referenced_table == categories.name));
    let departments = table("departments");
    assert!(
        departments
            .foreign_keys
            .iter()
            .any(|f| f.referenced_table.name == "employees" && f.referenced_columns == ["id"]),
        "{:?}",
        departments.foreign_keys
    );
    // CHECK and UNIQUE constraints, indexes and comments land on their tables.
    let all = || c.tables.iter().map(|t| &t.info);
    assert!(all().any(|t| t
        .objects
        .constraints
        .iter()
        .any(|k| k.kind == ConstraintKind::Check)));
    assert!(all().any(|t| t
        .objects
        .constraints
        .iter()
        .any(|k| k.kind == ConstraintKind::Unique)));
    assert!(all().map(|t| t.indexes.len()).sum::<usize>() >= 2);
    assert!(all().any(|t| t
        .objects
        .comment
        .as_deref()
        .is_some_and(|c| c.contains(';'))));
    // The quoted mixed-case name keeps its case.
    assert!(all().any(|t| t.name.name == "UserPrefs"));
}

#[test]
fn other_statements_are_listed_and_an_unreadable_one_is_named() {
    let c = read_dir(common::fixture(), &common::lenient()).unwrap();
    let what: Vec<&str> = c.skipped.iter().map(|s| s.what.as_str()).collect();
    for kind in [
        "CREATE VIEW",
        "CREATE FUNCTION",
        "CREATE TRIGGER",
        "CREATE SEQUENCE",
        "SET",
    ] {
        assert!(
            what.iter().any(|w| w.starts_with(kind)),
            "{kind} listed: {what:#?}"
        );
    }
    assert!(
        c.skipped.iter().any(|s| s.what.contains("events_2025") && s.why.contains("partition of public.events")),
        "{:#?}",
        c.skipped
    );
    assert!(
        c.skipped.iter().all(|s| s.at.contains(".sql:")),
        "each names its place"
    );
    // Strict: the first statement sqlparser cannot read stops the reading, named.
    let e = read_dir(common::fixture(), &Options::default()).unwrap_err();
    assert!(e.to_string().contains("00_foundation_tables.sql:"), "{e}");
    assert!(e.to_string().contains("cannot read the statement"), "{e}");
}
