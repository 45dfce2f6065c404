//! Each built-in step with its edge cases: NULLs, unicode, overflow and precision on a cast,
//! empty strings, a lookup miss; keys kept by every step; rejected rows named by key and rule
//! with no value in the reason.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

use std::sync::Arc;

use migrate_core::{Batch, Column, DataType, Decimal, Schema, Transform, Value};
use migrate_transform::{
    Chain, ColumnMapping, Compute, Convert, Filter, Lookup, Map, Mappings, Mask, MaskKind, OnError,
    OnMiss, Reference,
};

fn schema() -> Arc<Schema> {
    Arc::new(
        Schema::new(
            vec![
                Column::new("id", DataType::Int64).not_null(),
                Column::new("name", DataType::text()),
                Column::new("age", DataType::text()),
                Column::new("country", DataType::text()),
                Column::new(
                    "amount",
                    DataType::Decimal {
                        precision: Some(12),
                        scale: Some(4),
                    },
                ),
            ],
            &["id"],
        )
        .unwrap(),
    )
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn dec(s: &str) -> Value {
    Value::Decimal(s.parse::<Decimal>().unwrap())
}

fn batch() -> Batch {
    Batch::new(
        schema(),
        vec![
            vec![
                Value::Int64(1),
                text("Zoë"),
                text("42"),
                text("FR"),
                dec("10.1250"),
            ],
            vec![
                Value::Int64(2),
                text(""),
                text("not a number"),
                text("XX"),
                dec("-0.0050"),
            ],
            vec![
                Value::Int64(3),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
            ],
            vec![
                Value::Int64(4),
                text("  Ana "),
                text("99999999999"),
                text("fr"),
                dec("99999999.9999"),
            ],
        ],
    )
}

#[test]
fn map_selects_renames_reorders_and_keeps_the_key() {
    let m = Map::columns([("name", "full_name"), ("id", "customer_id")]);
    let out = m.apply(batch()).unwrap();
    let s = out.batch.schema();
    assert_eq!(s.columns[0].name, "full_name");
    assert_eq!(s.primary_key_names(), ["customer_id"]);
    assert_eq!(out.batch.rows()[0], vec![text("Zoë"), Value::Int64(1)]);
    let e = Map::select(["name"]).output_schema(&schema()).unwrap_err();
    assert!(
        e.to_string().contains("key column `id` must be kept"),
        "{e}"
    );
    let e = Map::rename([("nope", "x")])
        .output_schema(&schema())
        .unwrap_err();
    assert!(e.to_string().contains("unknown column `nope`"), "{e}");
}

#[test]
fn convert_rejects_nulls_or_fails_as_told_without_values_in_reasons() {
    let to = DataType::Int32;
    let out = Convert::new("age", to.clone(), OnError::Reject)
        .apply(batch())
        .unwrap();
    assert_eq!(out.batch.len(), 2, "42 and NULL convert");
    assert_eq!(out.batch.rows()[0][2], Value::Int32(42));
    assert_eq!(out.batch.rows()[1][2], Value::Null);
    let keys: Vec<&Vec<Value>> = out.rejected.iter().map(|r| &r.key).collect();
    assert_eq!(keys, [&vec![Value::Int64(2)], &vec![Value::Int64(4)]]);
    assert_eq!(out.rejected[0].rule, "convert age");
    for r in &out.rejected {
        assert!(
            !r.reason.contains("not a number") && !r.reason.contains("99999999999"),
            "{:?}",
            r.reason
        );
    }
    assert!(out.rejected[1].reason.contains("out of range"), "overflow");

    let nulled = Convert::new("age", to.clone(), OnError::Null)
        .apply(batch())
        .unwrap();
    assert_eq!(nulled.batch.len(), 4);
    assert_eq!(nulled.batch.rows()[1][2], Value::Null);
    assert!(nulled.batch.schema().columns[2].nullable);

    let e = Convert::new("age", to, OnError::Fail)
        .apply(batch())
        .unwrap_err();
    assert!(e.to_string().contains("fail the table"), "{e}");

    // Precision: 4 decimals to 2, rounded half away from zero; too many digits rejected.
    let money = DataType::Decimal {
        precision: Some(6),
        scale: Some(2),
    };
    let out = Convert::new("amount", money, OnError::Reject)
        .apply(batch())
        .unwrap();
    assert_eq!(out.batch.rows()[0][4], dec("10.13"));
    assert_eq!(out.batch.rows()[1][4], dec("-0.01"));
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(out.rejected[0].key, vec![Value::Int64(4)]);

    let e = Convert::new("id", DataType::text(), OnError::Reject)
        .output_schema(&schema())
        .unwrap_err();
    assert!(e.to_string().contains("key column"), "{e}");
}

#[test]
fn compute_by_expression_and_by_closure() {
    let c = Compute::expr(
        "label",
        "concat(upper(trim(name)), '/', coalesce(country, '?'))",
        None,
    );
    let out = c.apply(batch()).unwrap();
    let label = |i: usize| out.batch.rows()[i][5].clone();
    assert_eq!(label(0), text("ZOË/FR"), "unicode upper-cased");
    assert_eq!(label(1), text("/XX"), "empty string stays empty");
    assert_eq!(label(2), text("/?"), "NULLs");
    assert_eq!(out.batch.schema().columns[5].data_type, DataType::text());

    let doubled = Compute::with("twice", DataType::Int64, |r| match r.get("id") {
        Some(Value::Int64(i)) => Ok(Value::Int64(i * 2)),
        _ => Err("no id".into()),
    });
    let out = doubled.apply(batch()).unwrap();
    assert_eq!(out.batch.rows()[3][5], Value::Int64(8));

    // A value the expression cannot compute rejects the row, not the batch.
    let c = Compute::expr("n", "CAST(age AS integer) * 2", None);
    let out = c.apply(batch()).unwrap();
    assert_eq!(out.batch.len(), 2);
    assert_eq!(out.rejected.len(), 2);
    assert_eq!(out.rejected[0].rule, "compute n");

    let e = Compute::expr("n", "nme || 'x'", None)
        .output_schema(&schema())
        .unwrap_err();
    assert!(
        e.to_string().contains(
            "compute n: expression `nme || 'x'` at line 1, column 1: unknown column `nme`"
        ),
        "{e}"
    );
}

#[test]
fn filter_leaves_rows_out_and_counts_them() {
    let f = Filter::new("country = 'FR' OR lower(country) = 'fr'");
    let out = f.apply(batch()).unwrap();
    assert_eq!(out.batch.len(), 2);
    assert_eq!(out.filtered, 2, "the NULL country does not hold");
    assert!(out.rejected.is_empty());
    let e = Filter::new("upper(name)")
        .output_schema(&schema())
        .unwrap_err();
    assert!(e.to_string().contains("not a condition"), "{e}");
}

#[test]
fn lookup_adds_columns_and_applies_its_miss_policy() {
    let data = Arc::new(Reference::from_pairs([
        (vec![text("FR")], vec![text("France")]),
        (vec![text("fr")], vec![text("France")]),
    ]));
    let adds = vec![Column::new("country_name", DataType::text())];
    let reject = Lookup::new(["country"], adds.clone(), data.clone(), OnMiss::Reject);
    let out = reject.apply(batch()).unwrap();
    assert_eq!(out.batch.len(), 2);
    assert_eq!(out.batch.rows()[0][5], text("France"));
    assert_eq!(out.rejected.len(), 2, "XX and NULL miss");
    assert_eq!(out.rejected[0].reason, "no reference row for the row's key");
    let default = Lookup::new(
        ["country"],
        adds.clone(),
        data.clone(),
        OnMiss::Default(vec![text("unknown")]),
    );
    let out = default.apply(batch()).unwrap();
    assert_eq!(out.batch.rows()[1][5], text("unknown"));
    let nulls = Lookup::new(["country"], adds, data, OnMiss::Null);
    assert_eq!(
        nulls.apply(batch()).unwrap().batch.rows()[2][5],
        Value::Null
    );
}

#[test]
fn integer_widths_match_in_a_lookup() {
    let data = Arc::new(Reference::from_pairs([(
        vec![Value::Int32(1)],
        vec![text("one")],
    )]));
    let l = Lookup::new(
        ["id"],
        vec![Column::new("word", DataType::text())],
        data,
        OnMiss::Null,
    );
    assert_eq!(l.apply(batch()).unwrap().batch.rows()[0][5], text("one"));
}

#[test]
fn mask_hashes_equal_inputs_equally_and_never_a_key() {
    let m = Mask::new("name", MaskKind::hash_with(b"0123456789abcdef-key"));
    let mut b = batch().into_rows();
    b[1][1] = text("Zoë");
    let out = m.apply(Batch::new(schema(), b)).unwrap();
    let h = |i: usize| out.batch.rows()[i][1].clone();
    assert_eq!(h(0), h(1), "equal inputs, equal hashes: joins still work");
    assert_ne!(h(0), h(3));
    assert_eq!(h(2), Value::Null);
    let Value::Text(hex) = h(0) else { panic!() };
    assert_eq!(hex.len(), 64);
    let other = Mask::new("name", MaskKind::hash_with(b"another-key-entirely"));
    assert_ne!(
        other.apply(batch()).unwrap().batch.rows()[0][1],
        h(0),
        "keyed"
    );
    let red = Mask::new("name", MaskKind::Redact("***".into()));
    assert_eq!(red.apply(batch()).unwrap().batch.rows()[0][1], text("***"));
    let e = Mask::new("id", MaskKind::Null)
        .output_schema(&schema())
        .unwrap_err();
    assert!(e.to_string().contains("key column"), "{e}");
    let e = MaskKind::hash_from_env("MIGRATE_TEST_NO_SUCH_KEY_VAR").unwrap_err();
    assert!(
        e.to_string().contains("MIGRATE_TEST_NO_SUCH_KEY_VAR"),
        "{e}"
    );
}

#[test]
fn column_mappings_type_require_and_default() {
    let m = Mappings::new(vec![
        ColumnMapping::new("id", "customer_id"),
        ColumnMapping {
            data_type: Some(DataType::Int64),
            ..ColumnMapping::new("age", "age_years")
        },
        ColumnMapping {
            required: true,
            ..ColumnMapping::new("name", "name")
        },
        ColumnMapping {
            default: Some(text("??")),
            ..ColumnMapping::new("country", "country_code")
        },
        ColumnMapping {
            source: None,
            expr: Some("length(name)".into()),
            ..ColumnMapping::new("", "name_length")
        },
    ]);
    let s = m.output_schema(&schema()).unwrap();
    let names: Vec<&str> = s.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "customer_id",
            "age_years",
            "name",
            "country_code",
            "name_length"
        ]
    );
    assert_eq!(s.primary_key_names(), ["customer_id"]);
    assert!(!s.columns[2].nullable);
    let out = m.apply(batch()).unwrap();
    assert_eq!(
        out.batch.rows()[0],
        vec![
            Value::Int64(1),
            Value::Int64(42),
            text("Zoë"),
            text("FR"),
            Value::Int64(3)
        ]
    );
    // Row 2: age does not convert; row 3: the required name is missing.
    let rules: Vec<(&Vec<Value>, &str)> = out
        .rejected
        .iter()
        .map(|r| (&r.key, r.rule.as_str()))
        .collect();
    assert_eq!(
        rules,
        [
            (&vec![Value::Int64(2)], "mapping age_years"),
            (&vec![Value::Int64(3)], "required name")
        ]
    );
    assert_eq!(out.batch.rows()[1][3], text("fr"));
    let no_key = Mappings::new(vec![ColumnMapping::new("name", "name")]);
    assert!(no_key.output_schema(&schema()).is_err());
    let bad_default = Mappings::new(vec![
        ColumnMapping::new("id", "id"),
        ColumnMapping {
            data_type: Some(DataType::Int32),
            default: Some(text("x")),
            ..ColumnMapping::new("age", "age")
        },
    ]);
    let e = bad_default.output_schema(&schema()).unwrap_err();
    assert!(e.to_string().contains("default is not a int32"), "{e}");
}

#[test]
fn a_chain_counts_every_step_once() {
    let chain = Chain::new()
        .then(Filter::new("id <> 4"))
        .then(Convert::new("age", DataType::Int32, OnError::Reject))
        .then(Map::rename([("age", "age_years")]));
    let out = chain.apply(batch()).unwrap();
    assert_eq!(
        (out.batch.len(), out.rejected.len(), out.filtered),
        (2, 1, 1)
    );
    assert_eq!(
        chain.output_schema(&schema()).unwrap().columns[2].name,
        "age_years"
    );
    assert_eq!(chain.name(), "chain(filter → convert age → map)");
    let r = &out.rejected[0];
    assert_eq!(
        r.row.as_ref().map(Vec::len),
        Some(5),
        "the row travels for an opt-in"
    );
    assert!(
        !format!("{r:?}").contains("not a number"),
        "Debug hides the row"
    );
}

#[tokio::test]
async fn a_lookup_table_is_read_once_from_the_source() {
    use migrate_core::testing::{Faults, Fixture, MemorySource};
    use migrate_core::{TableInfo, TableName};
    let countries = TableInfo::new(
        TableName::new("public", "countries"),
        Schema::new(
            vec![
                Column::new("code", DataType::text()).not_null(),
                Column::new("name", DataType::text()),
            ],
            &["code"],
        )
        .unwrap(),
    );
    let source = MemorySource::with_fixtures(
        &[Fixture {
            table: countries.clone(),
            rows: vec![
                vec![text("FR"), text("France")],
                vec![text("fr"), text("France (lower)")],
            ],
        }],
        Arc::new(Faults::new()),
    );
    let data = Reference::from_source(&source, &countries, &["code"], &["name"])
        .await
        .unwrap();
    assert_eq!(data.len(), 2);
    let l = Lookup::new(
        ["country"],
        vec![Column::new("country_name", DataType::text())],
        Arc::new(data),
        OnMiss::Null,
    );
    let out = l.apply(batch()).unwrap();
    assert_eq!(out.batch.rows()[0][5], text("France"));
    assert_eq!(out.batch.rows()[3][5], text("France (lower)"));
    assert_eq!(out.batch.rows()[1][5], Value::Null, "XX misses");
    let e = Reference::from_source(&source, &countries, &["nope"], &["name"])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("unknown column `nope`"), "{e}");
}
