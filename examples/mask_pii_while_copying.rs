//! Copy a customers table while reshaping it for analysts: columns mapped to the target's
//! names, e-mails normalised and hashed under a key (equal inputs, equal hashes — joins still
//! work — and nothing reversible without the key), a segment computed by a Rust closure, rows
//! whose age does not convert rejected by key; then validation rules against what the target
//! holds. In memory, no services:
//!
//! ```text
//! MIGRATE_MASK_KEY=some-secret-of-16+-bytes cargo run --example mask_pii_while_copying
//! ```
//!
//! The same chain goes into a configuration file as `[[mapping."t"]]` and
//! `[[transform."t"]]` (see `migrate init --template transform`).

use std::sync::Arc;

use migrate_core::executor::{ExecutorConfig, RejectLimits};
use migrate_core::testing::{Faults, Fixture, MemoryCheckpointStore, MemorySink, MemorySource};
use migrate_core::{
    CheckpointStore, Column, DataType, Error, Migration, Schema, TableInfo, TableName, Value,
};
use migrate_transform::rules::{validate, Check, Severity, Sides, TableRule, ValidationRule};
use migrate_transform::{Chain, ColumnMapping, Compute, Mappings, Mask, MaskKind};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let name = TableName::new("public", "customers");
    let schema = Schema::new(
        vec![
            Column::new("id", DataType::Int64).not_null(),
            Column::new("email", DataType::text()),
            Column::new("age", DataType::text()),
        ],
        &["id"],
    )?;
    let rows: Vec<Vec<Value>> = (1..=200)
        .map(|i| {
            vec![
                Value::Int64(i),
                Value::Text(format!(" User{}@Example.COM ", i % 150)),
                Value::Text(if i % 50 == 0 {
                    "unknown".into()
                } else {
                    (18 + i % 60).to_string()
                }),
            ]
        })
        .collect();
    let fixture = Fixture {
        table: TableInfo::new(name.clone(), schema),
        rows,
    };

    // Mappings first (the target's names and types), then the mask and a computed segment.
    let key =
        std::env::var("MIGRATE_MASK_KEY").unwrap_or_else(|_| "example-key-of-16-bytes".into());
    let chain = Chain::new()
        .then(Mappings::new(vec![
            ColumnMapping::new("id", "customer_id"),
            ColumnMapping {
                source: None,
                expr: Some("lower(trim(email))".into()),
                ..ColumnMapping::new("", "email_hash")
            },
            ColumnMapping {
                data_type: Some(DataType::Int32),
                ..ColumnMapping::new("age", "age")
            },
        ]))
        .then(Mask::new("email_hash", MaskKind::hash_with(key.as_bytes())))
        .then(Compute::with("segment", DataType::text(), |row| {
            Ok(match row.get("age") {
                Some(Value::Int32(a)) if *a < 30 => Value::Text("young".into()),
                Some(Value::Int32(_)) => Value::Text("established".into()),
                _ => Value::Null,
            })
        }));

    let faults = Arc::new(Faults::new());
    let source = Arc::new(MemorySource::with_fixtures(
        std::slice::from_ref(&fixture),
        faults.clone(),
    ));
    let sink = Arc::new(MemorySink::new(faults));
    let store = Arc::new(MemoryCheckpointStore::new());
    let config = ExecutorConfig {
        migration: "customers-for-analysts".into(),
        // More than 5 % of the table rejected would fail it.
        reject_limits: [(
            "*".to_string(),
            RejectLimits {
                max_ratio: Some(0.05),
                ..Default::default()
            },
        )]
        .into(),
        ..Default::default()
    };
    let report = Migration::new(source.clone(), sink.clone(), store.clone())
        .with_config(config)
        .with_transform(Some(name.clone()), Arc::new(chain.clone()))
        .run()
        .await?;
    println!(
        "{:?}: {} rows written, {} rejected, verification passed: {}",
        report.status,
        report.results[0].rows,
        report.progress.failed_records,
        report.verification.passed
    );
    let run = store
        .latest_run("customers-for-analysts")
        .await?
        .ok_or_else(|| Error::fatal("the run is not in the store"))?;
    for r in store.rejected(&run.id).await? {
        println!("rejected {} {}: {} ({})", r.table, r.key, r.reason, r.rule);
    }

    // Rules against what the target holds, read back.
    let target_info = TableInfo {
        schema: migrate_core::Transform::output_schema(&chain, &fixture.table.schema)?,
        ..fixture.table.clone()
    };
    let target = MemorySource::with_fixtures(
        &[Fixture {
            table: target_info.clone(),
            rows: sink.rows(&name).unwrap_or_default(),
        }],
        Arc::new(Faults::new()),
    );
    let rule = |check: Check, severity: Severity| {
        Box::new(TableRule {
            name: format!("{check:?}"),
            table: name.clone(),
            check,
            severity,
        }) as Box<dyn ValidationRule>
    };
    let rules = [
        rule(Check::RowCount, Severity::Error),
        rule(
            Check::Completeness(vec!["email_hash".into()]),
            Severity::Error,
        ),
        rule(
            Check::Accuracy("age BETWEEN 18 AND 120".into()),
            Severity::Warning,
        ),
    ];
    let sides = Sides {
        source: &*source,
        target: &target,
        sink: &*sink,
        tables: vec![(
            fixture.table.clone(),
            target_info,
            report.results[0].rows,
            true,
        )],
    };
    for o in validate(&rules, &sides).await? {
        println!("[{}] {} {:?}: {}", o.severity, o.kind, o.passed, o.detail);
    }
    Ok(())
}
