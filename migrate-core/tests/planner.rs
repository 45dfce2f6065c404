//! The resource-aware planner on the sample dataset's manifest, and its invariants on random inputs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests assert by panicking

use std::collections::BTreeMap;
use std::time::Duration;

use migrate_core::plan::{plan, Constraints, Feasibility, Manifest, PlanTable, Priority};
use migrate_core::TableName;
use proptest::prelude::*;

fn sample(window: Duration) -> migrate_core::plan::Plan {
    let m = Manifest::parse(
        include_str!("fixtures/sample_manifest.json"),
        "sample_manifest.json",
    )
    .unwrap();
    let priorities: BTreeMap<String, Priority> = [
        ("customers", Priority::Critical),
        ("orders", Priority::Critical),
        ("products", Priority::Critical),
        ("transactions", Priority::Critical),
        ("inventory", Priority::Important),
        ("preferences", Priority::Important),
        ("audit_logs", Priority::Deferrable),
        ("user_sessions", Priority::Deferrable),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let c = Constraints {
        window,
        memory_budget: 2_000_000_000,
        bandwidth_target: 50_000_000,
        bandwidth_cap: Some(100_000_000),
        parallelism: 4,
    };
    plan(&m.tables(&priorities), &c).unwrap()
}

fn pos(p: &migrate_core::plan::Plan, t: &str) -> usize {
    p.order
        .iter()
        .position(|x| x == t)
        .unwrap_or_else(|| panic!("{t} not in {:?}", p.order))
}

#[test]
fn sample_tight_window_defers_audit_logs_and_user_sessions() {
    // 13 000 MB at 50 MB/s is 260 s; critical + important work is 4 500 MB = 90 s.
    let p = sample(Duration::from_secs(95));
    let deferred: Vec<&str> = p.deferred.iter().map(|d| d.table.as_str()).collect();
    assert_eq!(
        deferred,
        ["audit_logs", "user_sessions"],
        "{}",
        p.to_markdown()
    );
    assert!(p.feasible);
    assert_eq!(p.feasibility, Feasibility::Tight);
    assert!(
        (p.estimated_secs - 90.0).abs() < 0.01,
        "{}",
        p.estimated_secs
    );
    assert!(pos(&p, "customers") < pos(&p, "orders") && pos(&p, "products") < pos(&p, "orders"));
    assert!(pos(&p, "orders") < pos(&p, "transactions"));
    assert!(pos(&p, "products") < pos(&p, "inventory"));
    assert!(
        p.chunk_bytes * 4 <= 2_000_000_000,
        "chunks in flight fit the 2 GB budget"
    );
    assert!(
        p.deferred[0].reason.contains("deferrable"),
        "{}",
        p.deferred[0].reason
    );
    assert_eq!(p.critical_path, ["customers", "orders", "transactions"]);
    let json: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
    assert_eq!(json["feasible"], true);
    assert_eq!(json["deferred"][0]["table"], "audit_logs");
    assert!(json["deferred"][0]["reason"].is_string());
    assert_eq!(json["order"].as_array().unwrap().len(), 6);
    let md = p.to_markdown();
    assert!(
        md.contains("### Deferred to Follow-up") && md.contains("Feasibility: TIGHT"),
        "{md}"
    );
    assert!(p.checkpoints.iter().any(|c| c.label == "75% of window"));
}

#[test]
fn sample_loose_window_keeps_everything() {
    let p = sample(Duration::from_secs(4 * 3600));
    assert!(p.deferred.is_empty(), "{:?}", p.deferred);
    assert_eq!(p.order.len(), 8);
    assert_eq!(p.feasibility, Feasibility::Yes);
    assert!((p.estimated_secs - 260.0).abs() < 0.01);
    // The full estimate's checkpoint expects every table; earlier ones a prefix of the order.
    let last = p
        .checkpoints
        .iter()
        .find(|c| c.label == "100% of the estimate")
        .unwrap();
    assert_eq!(last.expected_done, p.order);
    let half = p
        .checkpoints
        .iter()
        .find(|c| c.label == "50% of the estimate")
        .unwrap();
    assert!(half.expected_done.len() < p.order.len());
    assert_eq!(half.expected_done[..], p.order[..half.expected_done.len()]);
}

#[test]
fn sample_too_short_for_critical_work_is_infeasible_by_its_shortfall() {
    let p = sample(Duration::from_secs(60));
    assert!(!p.feasible);
    assert_eq!(p.feasibility, Feasibility::No);
    assert!(p.margin_secs < 0.0);
    assert!((p.critical_secs - 88.7).abs() < 0.01, "{}", p.critical_secs);
    assert!(
        p.order.contains(&"transactions".to_string()),
        "critical work is never deferred"
    );
    assert!(p.to_markdown().contains("short by"));
    assert!(p.contingency.iter().any(|c| c.contains("Infeasible")));
}

#[test]
fn manifest_errors_name_the_file_and_table() {
    let e = Manifest::parse(
        r#"{"tables": [{"name": "a", "rows": 1, "size_mb": 1}], "dependencies": {"a": ["ghost"]}}"#,
        "m.json",
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("m.json") && e.to_string().contains("ghost"),
        "{e}"
    );
    let e = Manifest::parse(
        r#"{"tables": [{"name": "a", "rows": 1, "size_mb": 1, "colour": "red"}]}"#,
        "m.json",
    )
    .unwrap_err();
    assert!(e.to_string().contains("colour"), "{e}");
}

fn random_tables() -> impl Strategy<Value = Vec<PlanTable>> {
    proptest::collection::vec(
        (
            1u64..5_000,
            0u8..3,
            proptest::collection::vec(0usize..20, 0..3),
        ),
        1..14,
    )
    .prop_map(|ts| {
        ts.iter()
            .enumerate()
            .map(|(i, (mb, pr, deps))| PlanTable {
                name: TableName::bare(format!("t{i:02}")),
                rows: mb * 1000,
                bytes: mb * 1_000_000,
                depends_on: deps
                    .iter()
                    .filter(|&&d| d < i)
                    .map(|d| TableName::bare(format!("t{d:02}")))
                    .collect(),
                priority: [
                    Priority::Critical,
                    Priority::Important,
                    Priority::Deferrable,
                ][*pr as usize],
                measured_bytes_per_sec: None,
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn plans_respect_dependencies_priorities_and_the_window(tables in random_tables(), window in 1u64..400) {
        let c = Constraints { window: Duration::from_secs(window), ..Constraints::default() };
        let p = plan(&tables, &c).unwrap();
        let at: BTreeMap<&str, usize> = p.order.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        for t in &tables {
            let name = t.name.to_string();
            if t.priority == Priority::Critical {
                prop_assert!(at.contains_key(name.as_str()), "critical {name} deferred");
            }
            if let Some(&i) = at.get(name.as_str()) {
                for d in &t.depends_on {
                    let j = at.get(d.to_string().as_str());
                    prop_assert!(j.is_some(), "kept {name} depends on deferred {d}");
                    prop_assert!(*j.unwrap() < i, "{name} before its parent {d}");
                }
            }
        }
        prop_assert_eq!(p.order.len() + p.deferred.len(), tables.len());
        if p.feasible {
            prop_assert!(p.estimated_secs <= p.window_secs + 1e-9);
        } else if p.order.is_empty() {
            // Every table deferred: nothing would move, which is no plan that fits.
            prop_assert_eq!(p.deferred.len(), tables.len());
        } else {
            prop_assert!(p.margin_secs < 0.0, "an infeasible plan reports its shortfall");
            prop_assert!(p.critical_secs > 0.0);
        }
    }
}

#[test]
fn priorities_are_read_in_any_case_and_written_in_one() {
    use migrate_core::plan::Priority;
    for text in ["\"CRITICAL\"", "\"critical\"", "\"Critical\""] {
        let p: Priority = serde_json::from_str(text).unwrap();
        assert_eq!(p, Priority::Critical);
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"CRITICAL\"");
    }
    assert!(serde_json::from_str::<Priority>("\"urgent\"").is_err());
    assert_eq!(
        "Deferrable".parse::<Priority>().unwrap(),
        Priority::Deferrable
    );
}

#[test]
fn a_plan_that_defers_every_table_is_infeasible() {
    let tables = [PlanTable {
        name: TableName::parse("public.logs"),
        rows: 1_000_000,
        bytes: 100_000_000,
        depends_on: vec![],
        priority: Priority::Deferrable,
        measured_bytes_per_sec: None,
    }];
    let p = plan(
        &tables,
        &Constraints {
            window: Duration::ZERO,
            memory_budget: 1 << 30,
            bandwidth_target: 1_000_000,
            bandwidth_cap: None,
            parallelism: 1,
        },
    )
    .unwrap();
    assert_eq!(p.deferred.len(), 1);
    assert!(!p.feasible, "{}", p.to_markdown());
}
