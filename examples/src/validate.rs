//! `[[rule]]` validation rules: run after `migrate run` completes the load, and alone by
//! `migrate validate`. The target is read back as a source; findings name keys, never values.

use migrate_core::{Error, Result, TableInfo, Transform};
use migrate_transform::rules::{validate, RuleOutcome, Sides, ValidationRule};
use serde_json::json;

use crate::{backends, config, transforms};

/// Runs the configured rules against the latest run's tables; the outcomes.
pub async fn run_rules(s: &config::Settings) -> Result<Vec<RuleOutcome>> {
    if s.rules.is_empty() {
        return Ok(Vec::new());
    }
    let source = backends::source(&s.source_url)?;
    let sink = backends::sink(&s.target_url, &s.pg_sink)?;
    let target = backends::source(&s.target_url)?;
    let (store, _) = backends::store(&s.checkpoint_url, &s.checkpoint_schema).await?;
    let report = migrate_core::executor::stored_report(&*store, &s.executor.migration).await?;
    let tables = source.discover(&s.executor.tables).await?;
    let mut replayed = std::collections::BTreeMap::<String, u64>::new();
    if let Some(run) = store.latest_run(&s.executor.migration).await? {
        for e in store.events(&run.id).await? {
            if e.action != "rejected.replayed" {
                continue;
            }
            let (Some(t), Ok(detail)) = (
                e.table.as_ref(),
                serde_json::from_str::<serde_json::Value>(&e.detail),
            ) else {
                continue;
            };
            *replayed.entry(t.to_string()).or_insert(0) += detail["written"].as_u64().unwrap_or(0);
        }
    }
    let mut sides = Vec::new();
    for info in tables {
        let steps = s
            .transforms
            .iter()
            .find(|(t, _)| *t == info.name)
            .map(|(_, steps)| steps.as_slice())
            .unwrap_or_default();
        let chain = transforms::chain(&*source, steps).await?;
        let target_info = TableInfo {
            schema: chain.output_schema(&info.schema)?,
            ..info.clone()
        };
        // The run's rows, and those its replays wrote since.
        let written = report
            .as_ref()
            .and_then(|r| r.results.iter().find(|t| t.table == info.name))
            .map_or(0, |t| t.rows)
            + replayed.get(&info.name.to_string()).copied().unwrap_or(0);
        sides.push((info, target_info, written, !steps.is_empty()));
    }
    let rules: Vec<Box<dyn ValidationRule>> = s
        .rules
        .iter()
        .map(|r| Box::new(r.clone()) as Box<dyn ValidationRule>)
        .collect();
    validate(
        &rules,
        &Sides {
            source: &*source,
            target: &*target,
            sink: &*sink,
            tables: sides,
        },
    )
    .await
}

/// Prints outcomes; whether any fails the run.
pub fn print(outcomes: &[RuleOutcome], json_out: bool) -> bool {
    for o in outcomes {
        if json_out {
            println!("{}", json!({"event": "rule", "outcome": o}));
            continue;
        }
        let state = match o.passed {
            Some(true) => "passed",
            Some(false) => "FAILED",
            None => "NOT RUN",
        };
        println!(
            "[{}] {} {} ({}): {state} — {}{}",
            o.severity,
            o.kind,
            o.table.as_deref().unwrap_or(""),
            o.rule,
            o.detail,
            match o.sample_keys.is_empty() {
                true => String::new(),
                false => format!("; keys {}", o.sample_keys.join(" ")),
            }
        );
    }
    outcomes.iter().any(RuleOutcome::fails_run)
}

/// `migrate validate`: the rules alone; exit 1 when an ERROR or CRITICAL rule failed or could
/// not run.
pub async fn cmd(s: &config::Settings, json_out: bool) -> Result<u8> {
    if s.rules.is_empty() {
        return Err(Error::config("validate: the configuration has no [[rule]]"));
    }
    let outcomes = run_rules(s).await?;
    Ok(if print(&outcomes, json_out) { 1 } else { 0 })
}
