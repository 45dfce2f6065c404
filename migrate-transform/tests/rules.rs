//! Validation rules after a load on the in-memory backends: each passes on a faithful copy,
//! and each finds what it is for once the target is damaged — a missing row (ROW_COUNT,
//! CONSISTENCY), a NULL (COMPLETENESS), a broken predicate (ACCURACY), an orphan (INTEGRITY) —
//! naming keys; a rule that cannot run says so and fails the run at ERROR.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

use std::sync::Arc;

use migrate_core::testing::{Faults, Fixture, MemoryCheckpointStore, MemorySink, MemorySource};
use migrate_core::{
    Column, DataType, ExecutorConfig, ForeignKey, Migration, Schema, TableInfo, TableName, Value,
};
use migrate_transform::rules::{
    validate, Aggregate, Check, RuleOutcome, Severity, Sides, TableRule, ValidationRule,
};

fn fixtures() -> Vec<Fixture> {
    let parent = TableInfo::new(
        TableName::new("s", "customers"),
        Schema::new(
            vec![
                Column::new("id", DataType::Int64).not_null(),
                Column::new("name", DataType::text()),
            ],
            &["id"],
        )
        .unwrap(),
    );
    let mut child = TableInfo::new(
        TableName::new("s", "orders"),
        Schema::new(
            vec![
                Column::new("id", DataType::Int64).not_null(),
                Column::new("customer_id", DataType::Int64),
                Column::new(
                    "amount",
                    DataType::Decimal {
                        precision: Some(10),
                        scale: Some(2),
                    },
                ),
            ],
            &["id"],
        )
        .unwrap(),
    );
    child.foreign_keys = vec![ForeignKey {
        name: None,
        columns: vec!["customer_id".into()],
        referenced_table: parent.name.clone(),
        referenced_columns: vec!["id".into()],
        definition: None,
    }];
    let customers = (1..=20)
        .map(|i| vec![Value::Int64(i), Value::Text(format!("c{i}"))])
        .collect();
    let orders = (1..=60)
        .map(|i| {
            vec![
                Value::Int64(i),
                Value::Int64(i % 20 + 1),
                Value::Decimal(format!("{i}.25").parse().unwrap()),
            ]
        })
        .collect();
    vec![
        Fixture {
            table: parent,
            rows: customers,
        },
        Fixture {
            table: child,
            rows: orders,
        },
    ]
}

fn rules() -> Vec<Box<dyn ValidationRule>> {
    let t = |n: &str| TableName::new("s", n);
    let rule = |name: &str, table: &str, check: Check| {
        Box::new(TableRule {
            name: name.into(),
            table: t(table),
            check,
            severity: Severity::Error,
        }) as Box<dyn ValidationRule>
    };
    vec![
        rule("count", "orders", Check::RowCount),
        rule(
            "names",
            "customers",
            Check::Completeness(vec!["name".into()]),
        ),
        rule("positive", "orders", Check::Accuracy("amount > 0".into())),
        rule("fk", "orders", Check::Integrity),
        rule(
            "revenue",
            "orders",
            Check::Consistency {
                aggregate: Aggregate::Sum,
                column: "amount".into(),
                target_column: None,
            },
        ),
        rule("no-fk", "customers", Check::Integrity),
    ]
}

async fn check(source: &MemorySource, sink: &MemorySink, fx: &[Fixture]) -> Vec<RuleOutcome> {
    // The target read back: the sink's rows as a source.
    let target = MemorySource::with_fixtures(
        &fx.iter()
            .map(|f| Fixture {
                table: f.table.clone(),
                rows: sink.rows(&f.table.name).unwrap_or_default(),
            })
            .collect::<Vec<_>>(),
        Arc::new(Faults::new()),
    );
    let tables = fx
        .iter()
        .map(|f| (f.table.clone(), f.table.clone(), f.rows.len() as u64, false))
        .collect();
    validate(
        &rules(),
        &Sides {
            source,
            target: &target,
            sink,
            tables,
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn rules_pass_on_a_faithful_copy_and_find_each_kind_of_damage() {
    let fx = fixtures();
    let faults = Arc::new(Faults::new());
    let source = Arc::new(MemorySource::with_fixtures(&fx, faults.clone()));
    let sink = Arc::new(MemorySink::new(faults));
    let report = Migration::new(
        source.clone(),
        sink.clone(),
        Arc::new(MemoryCheckpointStore::new()),
    )
    .with_config(ExecutorConfig {
        migration: "rules".into(),
        ..Default::default()
    })
    .run()
    .await
    .unwrap();
    assert!(report.succeeded(), "{}", report.to_markdown());

    let ok = check(&source, &sink, &fx).await;
    let passed: Vec<Option<bool>> = ok.iter().map(|o| o.passed).collect();
    assert_eq!(
        passed,
        [
            Some(true),
            Some(true),
            Some(true),
            Some(true),
            Some(true),
            None
        ],
        "{ok:#?}"
    );
    assert!(
        ok[5].detail.contains("not run") && ok[5].fails_run(),
        "{:?}",
        ok[5]
    );
    assert!(ok[4].detail.contains("equal"), "{:?}", ok[4]);

    // Damage: a customer and an order gone, a name nulled, an amount negative.
    sink.delete_row(&TableName::new("s", "customers"), &[Value::Int64(3)]);
    sink.delete_row(&TableName::new("s", "orders"), &[Value::Int64(60)]);
    let mut customers = sink.rows(&TableName::new("s", "customers")).unwrap();
    customers[0][1] = Value::Null;
    let mut orders = sink.rows(&TableName::new("s", "orders")).unwrap();
    orders[4][2] = Value::Decimal("-1.00".parse().unwrap());
    sink.put_table(&fx[0].table, customers).unwrap();
    sink.put_table(&fx[1].table, orders).unwrap();

    let bad = check(&source, &sink, &fx).await;
    let by = |name: &str| bad.iter().find(|o| o.rule == name).unwrap();
    assert_eq!(by("count").passed, Some(false), "{:?}", by("count"));
    assert!(
        by("count").detail.contains("target 59 rows"),
        "{:?}",
        by("count")
    );
    assert_eq!(by("names").passed, Some(false));
    assert_eq!(by("names").sample_keys, ["(1)"]);
    assert_eq!(by("positive").passed, Some(false));
    assert_eq!(by("positive").sample_keys, ["(5)"]);
    assert_eq!(by("fk").passed, Some(false));
    assert_eq!(
        by("fk").sample_keys,
        ["(2)", "(22)", "(42)"],
        "orders of customer 3"
    );
    assert_eq!(by("revenue").passed, Some(false));
    assert!(bad.iter().all(|o| !o.detail.contains("60.25")), "no values");
}
