//! The CLI's TOML configuration: every key documented in `templates/standard.toml`; `${VAR}`
//! replaced from the environment (for secrets); unknown keys and bad values refused with the
//! file, key and line. New capabilities add sections or keys; files written today stay valid.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use migrate_core::config_serde::{parse_bytes, parse_duration};
use migrate_core::executor::{IncrementalConfig, Mode, OnParentFailure};
use migrate_core::plan::Priority;
use migrate_core::{Error, ExecutorConfig, ExistingRows, TableFilter};
use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MigrationSection {
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Endpoint {
    url: Spanned<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointSection {
    url: Option<Spanned<String>>,
    schema: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TablesSection {
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    priority: BTreeMap<String, Spanned<String>>,
    allow_unmatched: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConstraintsSection {
    window: Option<Spanned<String>>,
    memory: Option<Spanned<String>>,
    bandwidth: Option<Spanned<String>>,
    bandwidth_cap: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecutionSection {
    mode: Option<Spanned<String>>,
    parallelism: Option<Spanned<usize>>,
    chunk_rows: Option<Spanned<u64>>,
    batch_rows: Option<usize>,
    stop_on_first_error: Option<bool>,
    chunk_timeout: Option<Spanned<String>>,
    lease: Option<Spanned<String>>,
    cursor_column: Option<String>,
    cursor_lookback: Option<Spanned<String>>,
    stream_interval: Option<Spanned<String>>,
    on_parent_failure: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetrySection {
    max_attempts: Option<u32>,
    initial_delay: Option<Spanned<String>>,
    max_delay: Option<Spanned<String>>,
    multiplier: Option<f64>,
    jitter: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrepareSection {
    existing_rows: Option<Spanned<String>>,
    backup: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifySection {
    checksums: Option<bool>,
    sample_size: Option<usize>,
    recheck_source: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaSection {
    create_extensions: Option<bool>,
    triggers: Option<bool>,
    policies: Option<bool>,
    grants: Option<bool>,
    owner: Option<bool>,
    index_jobs: Option<Spanned<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    migration: MigrationSection,
    source: Endpoint,
    target: Endpoint,
    #[serde(default)]
    checkpoint: CheckpointSection,
    #[serde(default)]
    tables: TablesSection,
    #[serde(default)]
    constraints: ConstraintsSection,
    #[serde(default)]
    execution: ExecutionSection,
    #[serde(default)]
    retry: RetrySection,
    #[serde(default)]
    prepare: PrepareSection,
    #[serde(default)]
    verify: VerifySection,
    #[serde(default)]
    schema: SchemaSection,
    #[serde(default)]
    transform: BTreeMap<String, Vec<Spanned<toml::Table>>>,
    #[serde(default)]
    mapping: BTreeMap<String, Vec<Spanned<toml::Table>>>,
    #[serde(default)]
    rejects: crate::transforms::RejectsSection,
    #[serde(default)]
    rule: Vec<Spanned<toml::Table>>,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Source URL.
    pub source_url: String,
    /// Target URL.
    pub target_url: String,
    /// Checkpoint store URL (`sqlite://FILE` or `postgres://…`).
    pub checkpoint_url: String,
    /// Schema for a Postgres checkpoint store.
    pub checkpoint_schema: String,
    /// Executor settings.
    pub executor: ExecutorConfig,
    /// What a Postgres target gets beyond tables (`[schema]`).
    pub pg_sink: migrate_backend_postgres::PgSinkOptions,
    /// Each table's transforms (`[[mapping."t"]]` first, then `[[transform."t"]]` in order).
    pub transforms: Vec<(migrate_core::TableName, Vec<crate::transforms::StepSpec>)>,
    /// Validation rules (`[[rule]]`), run after the load.
    pub rules: Vec<migrate_transform::rules::TableRule>,
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn bad<T>(&self, key: &str, v: &Spanned<T>, why: impl std::fmt::Display) -> Error {
        Error::config(format!(
            "{}: line {}: {key}: {why}",
            self.file,
            self.line(v.span().start)
        ))
    }

    fn duration(&self, key: &str, v: &Option<Spanned<String>>) -> Result<Option<Duration>, Error> {
        v.as_ref()
            .map(|s| parse_duration(s.get_ref()).map_err(|e| self.bad(key, s, e.message())))
            .transpose()
    }

    fn bytes(&self, key: &str, v: &Option<Spanned<String>>) -> Result<Option<u64>, Error> {
        v.as_ref()
            .map(|s| {
                parse_bytes(s.get_ref().trim_end_matches("/s"))
                    .map_err(|e| self.bad(key, s, e.message()))
            })
            .transpose()
    }
}

/// Where a line's comment starts (a `#` outside quotes), if it has one.
fn comment_start(line: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (i, ch) in line.char_indices() {
        match (quote, ch) {
            (None, '#') => return Some(i),
            (None, '"' | '\'') => quote = Some(ch),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
    }
    None
}

/// Replaces `${VAR}` outside comments with the environment's value; an unset variable is an
/// error naming it and its line.
fn substitute(text: &str, file: &str) -> Result<String, Error> {
    let mut out = String::with_capacity(text.len());
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let cut = comment_start(line).unwrap_or(line.len());
        let (mut code, comment) = line.split_at(cut);
        while let Some(i) = code.find("${") {
            out.push_str(&code[..i]);
            let after = &code[i + 2..];
            let end = after.find('}').ok_or_else(|| {
                Error::config(format!("{file}: line {}: unterminated ${{", n + 1))
            })?;
            let name = &after[..end];
            let value = std::env::var(name).map_err(|_| {
                Error::config(format!(
                    "{file}: line {}: environment variable {name} is not set",
                    n + 1
                ))
            })?;
            out.push_str(&value);
            code = &after[end + 1..];
        }
        out.push_str(code);
        out.push_str(comment);
    }
    Ok(out)
}

/// The `section.key` written on the line holding byte `offset` of `text`, if that line is a
/// `key = value` line (the parser's errors point into a line but do not name the key).
fn key_at(text: &str, offset: usize) -> Option<String> {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?;
    let key = line.split('=').next()?.trim().trim_matches('"');
    if key.is_empty() || key.starts_with('[') || !line.contains('=') {
        return None;
    }
    let section = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| {
            let header = l.split('#').next().unwrap_or(l).trim();
            header
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string()
        });
    Some(match section {
        Some(s) => format!("{s}.{key}"),
        None => key.to_string(),
    })
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Settings, Error> {
    let file = path.display().to_string();
    let raw = std::fs::read_to_string(path).map_err(|e| {
        Error::with_source(
            migrate_core::ErrorKind::Config,
            format!("cannot read config {file}"),
            e,
        )
    })?;
    parse(
        &raw,
        &file,
        path.file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("migration"),
    )
}

/// Parses configuration text; `file` names it in errors, `default_name` names the migration
/// when `[migration] name` is absent.
pub fn parse(raw: &str, file: &str, default_name: &str) -> Result<Settings, Error> {
    let text = substitute(raw, file)?;
    let f: File = toml::from_str(&text).map_err(|e| {
        let at = e.span().map_or(String::new(), |s| {
            let start = s.start.min(text.len());
            let line = text[..start].matches('\n').count() + 1;
            match key_at(&text, start) {
                Some(key) => format!(" line {line}: {key}:"),
                None => format!(" line {line}:"),
            }
        });
        Error::config(format!("{file}:{at} {}", e.message()))
    })?;
    let c = Ctx { file, text: &text };
    let mut x = ExecutorConfig {
        migration: f
            .migration
            .name
            .clone()
            .unwrap_or_else(|| default_name.to_string()),
        ..Default::default()
    };
    x.tables = TableFilter {
        include: f.tables.include.clone(),
        exclude: f.tables.exclude.clone(),
        allow_unmatched: f.tables.allow_unmatched.unwrap_or(false),
    };
    for (table, p) in &f.tables.priority {
        let level: Priority = p
            .get_ref()
            .parse()
            .map_err(|e: Error| c.bad(&format!("tables.priority.\"{table}\""), p, e.message()))?;
        x.priorities.insert(table.clone(), level);
    }
    x.window = c.duration("constraints.window", &f.constraints.window)?;
    if let Some(m) = c.bytes("constraints.memory", &f.constraints.memory)? {
        x.memory_budget = m;
    }
    x.bandwidth_target = c.bytes("constraints.bandwidth", &f.constraints.bandwidth)?;
    x.bandwidth_cap = c.bytes("constraints.bandwidth_cap", &f.constraints.bandwidth_cap)?;
    let e = &f.execution;
    if let Some(p) = &e.parallelism {
        if *p.get_ref() == 0 {
            return Err(c.bad("execution.parallelism", p, "must be at least 1"));
        }
        x.parallelism = *p.get_ref();
    }
    if let Some(n) = &e.chunk_rows {
        if *n.get_ref() == 0 {
            return Err(c.bad("execution.chunk_rows", n, "must be at least 1"));
        }
        x.chunk_rows = *n.get_ref();
    }
    if let Some(b) = e.batch_rows {
        x.batch_rows = b.max(1);
    }
    x.stop_on_first_error = e.stop_on_first_error.unwrap_or(false);
    if let Some(t) = c.duration("execution.chunk_timeout", &e.chunk_timeout)? {
        x.chunk_timeout = t;
    }
    if let Some(l) = &e.lease {
        let d = parse_duration(l.get_ref())
            .map_err(|err| c.bad("execution.lease", l, err.message()))?;
        // Renewed every third of it: much shorter and a busy worker loses its own chunks.
        if d < Duration::from_millis(300) {
            return Err(c.bad("execution.lease", l, "must be at least 300ms"));
        }
        x.lease = d;
    }
    if let Some(p) = &e.on_parent_failure {
        x.on_parent_failure = match p.get_ref().as_str() {
            "skip" => OnParentFailure::Skip,
            "continue" => OnParentFailure::Continue,
            other => {
                return Err(c.bad(
                    "execution.on_parent_failure",
                    p,
                    format!("{other:?} is not skip or continue"),
                ))
            }
        };
    }
    let incremental = IncrementalConfig {
        cursor_column: e.cursor_column.clone(),
        per_table: BTreeMap::new(),
        lookback: c.duration("execution.cursor_lookback", &e.cursor_lookback)?,
    };
    if let Some(m) = &e.mode {
        x.mode = match m.get_ref().as_str() {
            "full" => Mode::Full,
            "dry-run" | "dry_run" => Mode::DryRun,
            "incremental" | "stream" if e.cursor_column.is_none() => {
                return Err(c.bad(
                    "execution.mode",
                    m,
                    "incremental modes need execution.cursor_column",
                ));
            }
            "incremental" => Mode::Incremental(incremental),
            "stream" => Mode::Stream {
                incremental,
                interval: c
                    .duration("execution.stream_interval", &e.stream_interval)?
                    .unwrap_or(Duration::from_secs(60)),
            },
            other => {
                return Err(c.bad(
                    "execution.mode",
                    m,
                    format!("{other:?} is not full, incremental, stream or dry-run"),
                ))
            }
        };
    }
    let r = &f.retry;
    if let Some(n) = r.max_attempts {
        x.retry.max_attempts = n.max(1);
    }
    if let Some(d) = c.duration("retry.initial_delay", &r.initial_delay)? {
        x.retry.initial_delay = d;
    }
    if let Some(d) = c.duration("retry.max_delay", &r.max_delay)? {
        x.retry.max_delay = d;
    }
    if let Some(m) = r.multiplier {
        x.retry.multiplier = m;
    }
    if let Some(j) = r.jitter {
        x.retry.jitter = j;
    }
    if let Some(p) = &f.prepare.existing_rows {
        x.prepare.existing_rows = match p.get_ref().as_str() {
            "fail" => ExistingRows::Fail,
            "replace" => ExistingRows::Replace,
            "merge" => ExistingRows::Merge,
            other => {
                return Err(c.bad(
                    "prepare.existing_rows",
                    p,
                    format!("{other:?} is not fail, replace or merge"),
                ))
            }
        };
    }
    if let Some(b) = f.prepare.backup {
        x.prepare.backup = b;
    }
    if let Some(v) = f.verify.checksums {
        x.verify.checksums = v;
    }
    if let Some(v) = f.verify.sample_size {
        x.verify.sample_size = v;
    }
    if let Some(v) = f.verify.recheck_source {
        x.verify.recheck_source = v;
    }
    let checkpoint_url = match &f.checkpoint.url {
        Some(u) => u.get_ref().clone(),
        None => format!("sqlite://{default_name}.db"),
    };
    for (key, v) in [("source.url", &f.source.url), ("target.url", &f.target.url)] {
        if !v.get_ref().contains("://") && !v.get_ref().contains('=') {
            return Err(c.bad(
                key,
                v,
                format!(
                    "{:?} is not a URL",
                    migrate_backend_postgres::redact(v.get_ref())
                ),
            ));
        }
    }
    let mut pg_sink = migrate_backend_postgres::PgSinkOptions::default();
    let sch = &f.schema;
    pg_sink.create_extensions = sch.create_extensions.unwrap_or(true);
    // Index builds run beside the copy: as many at once as chunks, unless told otherwise.
    pg_sink.index_jobs = match &sch.index_jobs {
        Some(n) if *n.get_ref() == 0 => {
            return Err(c.bad("schema.index_jobs", n, "0 builds no index: use 1 or more"))
        }
        Some(n) => *n.get_ref(),
        None => x.parallelism.max(1),
    };
    pg_sink.copy = migrate_backend_postgres::CopyExtras {
        triggers: sch.triggers.unwrap_or(false),
        policies: sch.policies.unwrap_or(false),
        grants: sch.grants.unwrap_or(false),
        owner: sch.owner.unwrap_or(false),
    };
    let (keep, limits) = crate::transforms::rejects(&f.rejects, &|key, why| {
        Error::config(format!("{file}: {key}: {why}"))
    })?;
    x.keep_rejected_values = keep;
    x.reject_limits = limits;
    let mut transforms = Vec::new();
    let tables: std::collections::BTreeSet<&String> =
        f.transform.keys().chain(f.mapping.keys()).collect();
    for table in tables {
        let mut steps = Vec::new();
        if let Some(entries) = f.mapping.get(table) {
            let entries: Vec<(toml::Table, String)> = entries
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    let at = format!(
                        "{file}: line {}: mapping.\"{table}\"[{i}]",
                        c.line(e.span().start)
                    );
                    (e.get_ref().clone(), at)
                })
                .collect();
            let at = entries.first().map(|(_, a)| a.clone()).unwrap_or_default();
            steps.push(crate::transforms::mappings(&entries, at)?);
        }
        for (i, e) in f.transform.get(table).into_iter().flatten().enumerate() {
            let at = format!(
                "{file}: line {}: transform.\"{table}\"[{i}]",
                c.line(e.span().start)
            );
            steps.push(crate::transforms::step(e.get_ref(), at)?);
        }
        transforms.push((migrate_core::TableName::parse(table), steps));
    }
    let rules = f
        .rule
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let at = format!("{file}: line {}: rule[{i}]", c.line(e.span().start));
            crate::transforms::rule(e.get_ref(), at)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Settings {
        rules,
        transforms,
        source_url: f.source.url.into_inner(),
        target_url: f.target.url.into_inner(),
        checkpoint_url,
        checkpoint_schema: f.checkpoint.schema.unwrap_or_else(|| "migrate".into()),
        executor: x,
        pg_sink,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str =
        "[source]\nurl = \"postgres://a@h/src\"\n[target]\nurl = \"postgres://a@h/dst\"\n";

    #[test]
    fn the_minimum_parses_with_defaults() {
        let s = parse(MIN, "m.toml", "m").unwrap();
        assert_eq!(s.executor.migration, "m");
        assert_eq!(s.checkpoint_url, "sqlite://m.db");
        assert_eq!(s.executor.parallelism, 2);
    }

    #[test]
    fn priorities_are_read_in_any_case() {
        let s = parse(
            &format!("{MIN}[tables.priority]\n\"public.a\" = \"CRITICAL\"\n\"public.b\" = \"Deferrable\"\n"),
            "m.toml",
            "m",
        )
        .unwrap();
        assert_eq!(s.executor.priorities["public.a"], Priority::Critical);
        assert_eq!(s.executor.priorities["public.b"], Priority::Deferrable);
    }

    #[test]
    fn errors_name_file_key_and_line() {
        let e = parse(
            &format!("{MIN}[execution]\nparalelism = 2\n"),
            "m.toml",
            "m",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("m.toml") && e.contains("line 6") && e.contains("execution.paralelism:"),
            "{e}"
        );
        let e = parse(
            &format!("{MIN}[constraints]\nwindow = \"4 fortnights\"\n"),
            "m.toml",
            "m",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("line 6") && e.contains("constraints.window") && e.contains("fortnights"),
            "{e}"
        );
        let e = parse(
            &format!("{MIN}[execution]\nparallelism = \"two\"\n"),
            "m.toml",
            "m",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("line 6") && e.contains("execution.parallelism:"),
            "{e}"
        );
        let e = parse("[target]\nurl = \"postgres://a@h/dst\"\n", "m.toml", "m")
            .unwrap_err()
            .to_string();
        assert!(e.contains("source"), "{e}");
        let e = parse(
            &MIN.replace("postgres://a@h/src", "nonsense"),
            "m.toml",
            "m",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 2") && e.contains("source.url"), "{e}");
    }

    #[test]
    fn the_key_is_named_under_a_commented_section_header() {
        let e = parse(
            &format!("{MIN}[execution] # tuning\nparallelism = \"two\"\n"),
            "m.toml",
            "m",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 6: execution.parallelism:"), "{e}");
    }

    #[test]
    fn the_prepare_section_sets_the_existing_rows_policy_and_backups() {
        let s = parse(
            &format!("{MIN}[prepare]\nexisting_rows = \"merge\"\nbackup = true\n"),
            "m.toml",
            "m",
        )
        .unwrap();
        assert_eq!(s.executor.prepare.existing_rows, ExistingRows::Merge);
        assert!(s.executor.prepare.backup);
        assert_eq!(
            parse(MIN, "m.toml", "m")
                .unwrap()
                .executor
                .prepare
                .existing_rows,
            ExistingRows::Fail
        );
        let e = parse(
            &format!("{MIN}[prepare]\nexisting_rows = \"overwrite\"\n"),
            "m.toml",
            "m",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("line 6") && e.contains("prepare.existing_rows") && e.contains("overwrite"),
            "{e}"
        );
    }

    #[test]
    fn verification_and_index_builds_are_read_and_zero_jobs_refused() {
        let s = parse(MIN, "m.toml", "m").unwrap();
        assert!(!s.executor.verify.recheck_source);
        assert_eq!(s.pg_sink.index_jobs, s.executor.parallelism);
        let s = parse(
            &format!("{MIN}[verify]\nrecheck_source = true\n[schema]\nindex_jobs = 3\n"),
            "m.toml",
            "m",
        )
        .unwrap();
        assert!(s.executor.verify.recheck_source);
        assert_eq!(s.pg_sink.index_jobs, 3);
        let e = parse(&format!("{MIN}[schema]\nindex_jobs = 0\n"), "m.toml", "m")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("m.toml") && e.contains("line 6") && e.contains("schema.index_jobs"),
            "{e}"
        );
    }

    #[test]
    fn the_cursor_lookback_is_read_and_malformed_ones_refused() {
        let inc = "[execution]\nmode = \"incremental\"\ncursor_column = \"updated_at\"\n";
        let s = parse(
            &format!("{MIN}{inc}cursor_lookback = \"5m\"\n"),
            "m.toml",
            "m",
        )
        .unwrap();
        let want = Some(Duration::from_secs(300));
        assert_eq!(
            s.executor.mode.incremental().map(|i| i.lookback),
            Some(want)
        );
        let s = parse(&format!("{MIN}{inc}"), "m.toml", "m").unwrap();
        assert_eq!(
            s.executor.mode.incremental().map(|i| i.lookback),
            Some(None)
        );
        let e = parse(
            &format!("{MIN}{inc}cursor_lookback = \"5 fortnights\"\n"),
            "m.toml",
            "m",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("m.toml")
                && e.contains("line 8")
                && e.contains("execution.cursor_lookback")
                && e.contains("fortnights"),
            "{e}"
        );
    }

    #[test]
    fn lease_is_read_and_bounded() {
        assert_eq!(
            parse(MIN, "m.toml", "m").unwrap().executor.lease,
            Duration::from_secs(30)
        );
        let s = parse(
            &format!("{MIN}[execution]\nlease = \"2s\"\n"),
            "m.toml",
            "m",
        )
        .unwrap();
        assert_eq!(s.executor.lease, Duration::from_secs(2));
        let e = parse(
            &format!("{MIN}[execution]\nlease = \"10ms\"\n"),
            "m.toml",
            "m",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 6") && e.contains("execution.lease"), "{e}");
    }

    #[test]
    fn variables_are_substituted_and_missing_ones_named() {
        std::env::set_var("MIGRATE_TEST_SECRET_PW", "s3cret");
        let s = parse(
            &MIN.replace("a@h/src", "a:${MIGRATE_TEST_SECRET_PW}@h/src"),
            "m.toml",
            "m",
        )
        .unwrap();
        assert_eq!(s.source_url, "postgres://a:s3cret@h/src");
        let e = parse(
            &MIN.replace("a@h/dst", "a:${NO_SUCH_VAR_FOR_MIGRATE}@h/dst"),
            "m.toml",
            "m",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("NO_SUCH_VAR_FOR_MIGRATE") && e.contains("line 4"),
            "{e}"
        );
    }
}
