//! Property: whatever chain of built-in steps, every row comes out exactly once — passed,
//! left out by a filter, or rejected — under its own key; and the same input gives the same
//! output (a rewritten chunk rejects the same rows again).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

use std::collections::BTreeSet;
use std::sync::Arc;

use migrate_core::{Batch, Column, DataType, Schema, Transform, Value};
use migrate_transform::{
    Chain, Compute, Convert, Filter, Lookup, Map, Mask, MaskKind, OnError, OnMiss, Reference,
};
use proptest::prelude::*;

fn schema() -> Arc<Schema> {
    Arc::new(
        Schema::new(
            vec![
                Column::new("id", DataType::Int64).not_null(),
                Column::new("code", DataType::text()),
                Column::new("qty", DataType::Int32),
                Column::new("note", DataType::text()),
            ],
            &["id"],
        )
        .unwrap(),
    )
}

fn step(i: u8) -> Arc<dyn Transform> {
    let data = Arc::new(Reference::from_pairs(
        ["a", "b"].map(|c| (vec![Value::Text(c.into())], vec![Value::Int64(1)])),
    ));
    match i % 8 {
        0 => Arc::new(Convert::new("code", DataType::Int32, OnError::Reject)),
        1 => Arc::new(Convert::new(
            "note",
            DataType::Text { max_len: Some(3) },
            OnError::Null,
        )),
        2 => Arc::new(Compute::expr("x", "qty * 1000 + length(note)", None)),
        3 => Arc::new(Filter::new("qty % 3 <> 0")),
        4 => Arc::new(Mask::new(
            "note",
            MaskKind::hash_with(b"property-test-key!"),
        )),
        5 => Arc::new(Map::rename([("qty", "quantity")])),
        6 => Arc::new(Compute::expr("y", "CAST(qty AS numeric(4,0)) / 7", None)),
        _ => Arc::new(Lookup::new(
            ["note"],
            vec![Column::new("hit", DataType::Int64)],
            data,
            OnMiss::Reject,
        )),
    }
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        "[a-c0-9]{0,5}".prop_map(Value::Text),
        "\\PC{0,4}".prop_map(Value::Text),
    ]
}

fn rows() -> impl Strategy<Value = Vec<Vec<Value>>> {
    prop::collection::vec(
        (value(), prop::option::of(-20_000i32..20_000), value()),
        0..40,
    )
    .prop_map(|rs| {
        rs.into_iter()
            .enumerate()
            .map(|(i, (code, qty, note))| {
                vec![
                    Value::Int64(i as i64),
                    code,
                    qty.map_or(Value::Null, Value::Int32),
                    note,
                ]
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn every_row_comes_out_once_under_its_key(
        rows in rows(),
        steps in prop::collection::vec(any::<u8>(), 0..5),
    ) {
        let mut chain = Chain::new();
        for s in &steps {
            chain.push(step(*s));
        }
        // A chain a table cannot take (a column an earlier step renamed) is refused up front.
        let Ok(out_schema) = chain.output_schema(&schema()) else {
            return Ok(());
        };
        let input = Batch::new(schema(), rows.clone());
        let out = chain.apply(input).unwrap();
        prop_assert_eq!(out.batch.schema(), &out_schema);
        let passed: Vec<Value> = out.batch.rows().iter().map(|r| r[0].clone()).collect();
        let rejected: Vec<Value> = out.rejected.iter().map(|r| r.key[0].clone()).collect();
        prop_assert_eq!(
            passed.len() + rejected.len() + out.filtered as usize,
            rows.len(),
            "rows out = rows in − filtered − rejected"
        );
        let all: BTreeSet<i64> = passed.iter().chain(&rejected).filter_map(Value::as_i64).collect();
        prop_assert_eq!(all.len(), passed.len() + rejected.len(), "no key twice");
        for r in out.batch.rows() {
            prop_assert!(out_schema.check_row(r).is_ok(), "rows fit the declared schema");
        }
        // Deterministic: the same chunk again rejects the same rows.
        let again = chain.apply(Batch::new(schema(), rows)).unwrap();
        prop_assert_eq!(again.batch.rows(), out.batch.rows());
        let again_rejected: Vec<Value> = again.rejected.iter().map(|r| r.key[0].clone()).collect();
        prop_assert_eq!(again_rejected, rejected);
    }
}
