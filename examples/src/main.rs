//! `migrate`: plan, run, resume, pause, cancel, inspect, verify, roll back and report
//! migrations described by a TOML file (see `migrate init`).
//!
//! Exit codes: 0 success; 1 finished with failed tables, a verification mismatch, every
//! table deferred, an infeasible plan, a declined rollback, or nothing to pause, unpause or
//! cancel; 2 bad configuration or usage (nothing is written); 3 interrupted (resumable: run the
//! same command again).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use clap::{Parser, Subcommand};
use migrate_core::{CheckpointStore, Control, Error, Migration, RunStatus};
use migrate_examples::{backends, config, output, rejected, schema, templates, validate};

const EXIT_CODES: &str = "Exit codes:
  0  success (also: a completed migration run again, nothing to do)
  1  failed tables, a verification mismatch, every table deferred, an infeasible plan,
     a declined rollback, nothing to pause/unpause/cancel
  2  bad configuration or usage, unreachable server, target tables holding rows the
     configuration does not say what to do with: nothing was written
  3  interrupted and resumable: run the same command again to continue";

const OK: u8 = 0;
const FAILED: u8 = 1;
const USAGE: u8 = 2;
const INTERRUPTED: u8 = 3;

/// Move tables between Postgres, BigQuery and Snowflake, planned, checkpointed, resumable and
/// verified.
#[derive(Parser)]
#[command(name = "migrate", version, after_help = EXIT_CODES)]
struct Cli {
    /// The migration's configuration file [default: migrate.toml]. For `init`, where to write
    /// it (the same as `--output`).
    #[arg(short, long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Discovery, schema drift, what the run will do to each target table, and the
    /// resource-aware plan; writes plan.md and plan.json. Writes nothing to the target.
    /// Exits 0 when the run would go ahead, 1 when it would not (infeasible, refused), 2 on
    /// bad configuration.
    Plan {
        /// Directory for plan.md and plan.json.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Execute. A stopped run of the same migration is continued automatically; a completed
    /// one is "nothing to do" (exit 0); one that deferred tables is followed up with exactly
    /// those. Ctrl-C pauses (in-flight chunks finish and are checkpointed) and exits 3: run
    /// the same command again to continue. Exits 0 on success, 1 on failed tables or
    /// verification, 2 on bad configuration (nothing written).
    Run {
        /// JSON-lines progress events instead of bars or plain lines.
        #[arg(long)]
        json: bool,
        /// Start a new run even if a stopped run has a different plan.
        #[arg(long)]
        force: bool,
        /// Copy everything again although the migration completed: the source's rows replace
        /// the rows earlier runs wrote. Without it a completed migration is not run again, and
        /// a run after deferrals loads only the tables that were deferred or failed.
        #[arg(long)]
        refresh: bool,
    },
    /// Continue a stopped run, like `run`, but exit 2 if there is none. (To let a paused run
    /// that a process is still running go on, use `unpause`.)
    Resume {
        /// JSON-lines progress events.
        #[arg(long)]
        json: bool,
    },
    /// Ask a running migration (any process) to pause after its in-flight chunks; `unpause`
    /// lets it go on. Exits 1 when no run is running.
    Pause,
    /// Let a paused migration go on (the process that runs it continues). Exits 1 when no run
    /// is paused. To continue a run whose process has stopped, use `run` (or `resume`).
    Unpause,
    /// Ask a running or paused migration (any process) to stop now; it stays resumable: `run`
    /// continues it. Exits 1 when no run is running or paused.
    Cancel,
    /// Progress of the latest run, read from the checkpoint store (works while another process
    /// runs it). Exits 0, also when there is no run yet.
    Status {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Compare whole tables, source vs target, by count and canonical checksum; the outcome is
    /// recorded and shown by `report`. Exits 0 when every table matches, 1 otherwise.
    Verify {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Undo the latest run: drop tables it created, empty tables it found empty, put back the
    /// rows of tables it backed up (prepare.backup). Shows every step and asks first. Exits 1
    /// when declined or not fully possible (without --partial).
    Rollback {
        /// Do not ask.
        #[arg(long)]
        yes: bool,
        /// Undo what can be undone even if some tables cannot be.
        #[arg(long)]
        partial: bool,
    },
    /// Run the configuration's `[[rule]]` validation rules against the target now (they also
    /// run after `migrate run` completes). Exits 0 when no ERROR or CRITICAL rule failed or
    /// could not run, 1 otherwise, 2 when there is no rule.
    Validate {
        /// JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The latest run's report, with any later `verify`. Exits 0 when the run succeeded and no
    /// later verification failed, 1 otherwise.
    Report {
        /// JSON instead of Markdown.
        #[arg(long)]
        json: bool,
    },
    /// Rows the latest run's transforms rejected (by key, rule and reason; values only if
    /// `[rejects] keep_values`), and their replay once the data or the rules are fixed.
    Rejected {
        #[command(subcommand)]
        action: RejectedAction,
    },
    /// Schema migrations from a folder of ordered DDL files (`00_*.sql`, `01_*.sql`, …): each
    /// CREATE TABLE converted for the target and created one table at a time, checkpointed,
    /// resumable. Needs no configuration file.
    Schema {
        #[command(subcommand)]
        action: SchemaAction,
    },
    /// Write a commented configuration from a template (to --output, or --config). Exits 2 if
    /// the file exists.
    Init {
        /// standard, incremental, bulk or transform.
        #[arg(long, default_value = "standard")]
        template: String,
        /// Where to write it [default: --config, else migrate.toml].
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum RejectedAction {
    /// Every rejected row not resolved yet, with a count per table and rule. Exits 0.
    List {
        /// Only this table (`schema.table` or `table`).
        #[arg(long)]
        table: Option<String>,
        /// JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Read the rejected keys again from the source, through the table's current transforms,
    /// write those that pass (by key: running it twice writes nothing twice) and mark them
    /// resolved; rows still rejected stay listed. Stopped midway, run it again. Exits 0, or 1
    /// when a table or key could not be replayed.
    Replay {
        /// JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SchemaAction {
    /// Create the folder's tables in the target in file order, one at a time, each
    /// checkpointed; a second run starts at the first table not completed (and redoes a table
    /// the target lost). Exits 0 when every table is complete, 1 when any failed, 2 on bad
    /// input (nothing created).
    Apply {
        /// The folder of .sql files, run in the order of the numbers their names start with.
        #[arg(long)]
        dir: PathBuf,
        /// Where to create the tables: postgres://…, bigquery://…, snowflake://… (as the
        /// configuration's `[target] url`).
        #[arg(long)]
        target: String,
        /// The checkpoint store: sqlite://FILE or postgres://….
        #[arg(long, default_value = "sqlite://migrate-schema.db")]
        checkpoint: String,
        /// The dialect of the files (only postgres).
        #[arg(long, default_value = "postgres")]
        from: String,
        /// Print each converted table and what the target cannot carry; touch nothing.
        #[arg(long)]
        dry_run: bool,
        /// Refuse when the target cannot carry an object of a table (a CHECK, an index …).
        #[arg(long)]
        strict: bool,
        /// List statements the parser cannot read (never a CREATE TABLE) instead of stopping.
        #[arg(long)]
        skip_unreadable: bool,
        /// Recreate a table the target has with other columns (else: a drift error).
        #[arg(long)]
        replace: bool,
        /// How long one attempt at one table may take.
        #[arg(long, default_value = "5m", value_parser = duration_arg)]
        table_timeout: std::time::Duration,
        /// How long a claim on a table holds unrenewed: a run resumed after a crash waits at
        /// most this long for the dead process's table (at least 300ms).
        #[arg(long, default_value = "30s", value_parser = lease_arg)]
        lease: std::time::Duration,
        /// JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The schema migration's progress, read from the checkpoint store (the target is not
    /// contacted; it names which migration of the folder to show).
    Status {
        /// The folder of .sql files.
        #[arg(long)]
        dir: PathBuf,
        /// The target the folder was applied to (as given to `apply`).
        #[arg(long)]
        target: String,
        /// The checkpoint store.
        #[arg(long, default_value = "sqlite://migrate-schema.db")]
        checkpoint: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// A duration argument (`300ms`, `30s`, `5m`).
fn duration_arg(s: &str) -> Result<std::time::Duration, String> {
    migrate_core::config_serde::parse_duration(s).map_err(|e| e.message().to_string())
}

/// A lease: renewed every third of it, so much shorter and a busy worker loses its own claim.
fn lease_arg(s: &str) -> Result<std::time::Duration, String> {
    let d = duration_arg(s)?;
    if d < std::time::Duration::from_millis(300) {
        return Err("must be at least 300ms".into());
    }
    Ok(d)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("MIGRATE_LOG")
        .unwrap_or_else(|_| "warn".into());
    // Colour only on a terminal, and never under NO_COLOR (https://no-color.org).
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(USAGE);
        }
    };
    let code = rt.block_on(async {
        match dispatch(cli).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e}");
                USAGE
            }
        }
    });
    ExitCode::from(code)
}

async fn dispatch(cli: Cli) -> Result<u8, Error> {
    if let Command::Init { template, output } = &cli.command {
        let path = match (output, &cli.config) {
            (Some(o), Some(c)) if o != c => {
                return Err(Error::config(format!(
                    "init: --output {} and --config {} name two files; give one",
                    o.display(),
                    c.display()
                )))
            }
            (Some(p), _) | (None, Some(p)) => p.clone(),
            (None, None) => PathBuf::from("migrate.toml"),
        };
        return templates::write(template, &path).map(|()| OK);
    }
    if let Command::Schema { action } = &cli.command {
        return match action {
            SchemaAction::Apply {
                dir,
                target,
                checkpoint,
                from,
                dry_run,
                strict,
                skip_unreadable,
                replace,
                table_timeout,
                lease,
                json,
            } => {
                if from != "postgres" {
                    return Err(Error::config(format!(
                        "schema apply --from {from}: only postgres DDL is read"
                    )));
                }
                let args = schema::ApplyArgs {
                    dir,
                    target,
                    checkpoint,
                    dry_run: *dry_run,
                    strict: *strict,
                    skip_unreadable: *skip_unreadable,
                    replace: *replace,
                    table_timeout: *table_timeout,
                    lease: *lease,
                    json: *json,
                };
                schema::apply_cmd(&args).await
            }
            SchemaAction::Status {
                dir,
                target,
                checkpoint,
                json,
            } => schema::status_cmd(dir, target, checkpoint, *json).await,
        };
    }
    let settings = config::load(
        cli.config
            .as_deref()
            .unwrap_or(std::path::Path::new("migrate.toml")),
    )?;
    match cli.command {
        Command::Plan { out } => plan(&settings, &out).await,
        Command::Run {
            json,
            force,
            refresh,
        } => run(settings, json, force, refresh, false).await,
        Command::Resume { json } => run(settings, json, false, false, true).await,
        Command::Pause => control(&settings, Control::Pause).await,
        Command::Unpause => control(&settings, Control::Run).await,
        Command::Cancel => control(&settings, Control::Cancel).await,
        Command::Status { json } => status(&settings, json).await,
        Command::Verify { json } => verify(&settings, json).await,
        Command::Rollback { yes, partial } => rollback(&settings, yes, partial).await,
        Command::Report { json } => report(&settings, json).await,
        Command::Validate { json } => validate::cmd(&settings, json).await,
        Command::Rejected { action } => match action {
            RejectedAction::List { table, json } => {
                rejected::list(&settings, table.as_deref(), json).await
            }
            RejectedAction::Replay { json } => rejected::replay(&settings, json).await,
        },
        Command::Init { .. } | Command::Schema { .. } => Ok(OK),
    }
}

async fn migration(s: &config::Settings) -> Result<(Migration, Arc<dyn CheckpointStore>), Error> {
    let source = backends::source(&s.source_url)?;
    let sink = backends::sink(&s.target_url, &s.pg_sink)?;
    let (store, _) = backends::store(&s.checkpoint_url, &s.checkpoint_schema).await?;
    let mut m = Migration::new(source.clone(), sink, store.clone()).with_config(s.executor.clone());
    for (table, steps) in &s.transforms {
        let chain = migrate_examples::transforms::chain(&*source, steps).await?;
        m = m.with_transform(Some(table.clone()), Arc::new(chain));
    }
    Ok((m, store))
}

async fn plan(s: &config::Settings, out: &std::path::Path) -> Result<u8, Error> {
    let (m, _) = migration(s).await?;
    let planned = m.plan().await?;
    let md = planned.to_markdown();
    let json = planned.to_json();
    let ok = planned.ready;
    let write = |name: &str, text: String| {
        let p = out.join(name);
        std::fs::write(&p, text).map_err(|e| {
            Error::with_source(
                migrate_core::ErrorKind::Config,
                format!("cannot write {}", p.display()),
                e,
            )
        })
    };
    write("plan.md", md.clone())?;
    write(
        "plan.json",
        serde_json::to_string_pretty(&json).unwrap_or_default(),
    )?;
    println!("{md}");
    eprintln!(
        "wrote {} and {}",
        out.join("plan.md").display(),
        out.join("plan.json").display()
    );
    Ok(if ok { OK } else { FAILED })
}

async fn run(
    s: config::Settings,
    json: bool,
    force: bool,
    refresh: bool,
    require_resumable: bool,
) -> Result<u8, Error> {
    let mut s = s;
    s.executor.force = force;
    s.executor.refresh = refresh;
    let (m, store) = migration(&s).await?;
    if require_resumable {
        match store.latest_run(&s.executor.migration).await? {
            Some(r) if r.status.is_resumable() => {}
            _ => {
                return Err(Error::config(format!(
                    "migration {:?} has no stopped run to resume",
                    s.executor.migration
                )))
            }
        }
    }
    let handle = m.start();
    let controls = handle.controls();
    let interrupted = Arc::new(AtomicU8::new(0));
    {
        // First Ctrl-C: pause (in-flight chunks finish and are checkpointed), then stop.
        // Second Ctrl-C: cancel at once (in-flight chunks are redone next time).
        let (controls, interrupted) = (controls.clone(), interrupted.clone());
        let mut progress = handle.progress();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
            interrupted.store(1, Ordering::SeqCst);
            eprintln!("\npausing: in-flight chunks finish and are checkpointed (Ctrl-C again to stop now)");
            controls.pause();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = progress.wait_for(|p| p.paused && p.active_tables.is_empty()) => {}
            }
            interrupted.store(2, Ordering::SeqCst);
            controls.cancel();
        });
    }
    let ui = output::Progress::start(handle.progress(), json, std::io::stderr().is_terminal());
    let result = handle.wait().await;
    ui.finish().await;
    let report = result?;
    if json {
        println!(
            "{}",
            serde_json::json!({"event": "report", "report": report})
        );
    } else {
        println!("{}", report.to_markdown());
    }
    // A run that finished despite a Ctrl-C (it came as the last chunks committed) reports how
    // it finished; only a stopped run is "interrupted".
    if matches!(report.status, RunStatus::Cancelled | RunStatus::Paused) {
        eprintln!(
            "interrupted: everything done so far is checkpointed; run `migrate run` to continue"
        );
        return Ok(INTERRUPTED);
    }
    // Validation rules once every table is in.
    let mut rules_failed = false;
    if report.succeeded() && !s.rules.is_empty() {
        let outcomes = validate::run_rules(&s).await?;
        rules_failed = validate::print(&outcomes, json);
    }
    Ok(if report.succeeded() && !rules_failed {
        OK
    } else {
        FAILED
    })
}

async fn control(s: &config::Settings, c: Control) -> Result<u8, Error> {
    let (store, _) = backends::store(&s.checkpoint_url, &s.checkpoint_schema).await?;
    let latest = store.latest_run(&s.executor.migration).await?;
    // Only a running run can be paused, and only a running or paused one cancelled: a stopped,
    // failed or completed run has no process to act on the request.
    let acts = |st: RunStatus| match c {
        Control::Pause => st == RunStatus::Running,
        Control::Run => st == RunStatus::Paused,
        Control::Cancel => matches!(st, RunStatus::Running | RunStatus::Paused),
    };
    let what = match c {
        Control::Pause => "pause",
        Control::Run => "unpause",
        Control::Cancel => "cancel",
    };
    let Some(run) = latest.filter(|r| acts(r.status)) else {
        match store.latest_run(&s.executor.migration).await? {
            Some(r) => eprintln!(
                "nothing to {what}: run {} of migration {:?} is {}",
                r.id,
                s.executor.migration,
                r.status.as_str()
            ),
            None => eprintln!(
                "nothing to {what}: migration {:?} has no run",
                s.executor.migration
            ),
        }
        return Ok(FAILED);
    };
    store.set_control(&run.id, c).await?;
    store
        .append_event(
            &run.id,
            &migrate_core::AuditEvent::new(format!("operator.{what}"), "requested from the CLI"),
        )
        .await?;
    println!("{what} requested for run {}", run.id);
    Ok(OK)
}

async fn status(s: &config::Settings, json: bool) -> Result<u8, Error> {
    let (store, _) = backends::store(&s.checkpoint_url, &s.checkpoint_schema).await?;
    let v = &s.executor.verify;
    let verifying = v.checksums || v.sample_size > 0;
    let Some(st) = output::status(&*store, &s.executor.migration, verifying).await? else {
        println!("migration {:?} has no run yet", s.executor.migration);
        return Ok(OK);
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&st).unwrap_or_default());
    } else {
        print!("{}", st.to_text());
    }
    Ok(OK)
}

async fn verify(s: &config::Settings, json: bool) -> Result<u8, Error> {
    let (m, _) = migration(s).await?;
    let checked = m.verify().await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&checked).unwrap_or_default()
        );
    } else {
        print!("{}", checked.to_markdown());
    }
    Ok(if checked.passed { OK } else { FAILED })
}

async fn rollback(s: &config::Settings, yes: bool, partial: bool) -> Result<u8, Error> {
    let (m, _) = migration(s).await?;
    let plan = m.rollback_plan(None).await?;
    println!("rollback of run {}:", plan.run);
    for a in &plan.actions {
        match a {
            migrate_core::executor::RollbackAction::Drop { table } => {
                println!("  drop {table} (created by the run)")
            }
            migrate_core::executor::RollbackAction::Empty { table } => {
                println!("  empty {table} (it was empty before the run)")
            }
            migrate_core::executor::RollbackAction::Restore { table, backup } => {
                println!("  restore {table} from {backup}")
            }
            migrate_core::executor::RollbackAction::Impossible { table, reason } => {
                println!("  CANNOT undo {table}: {reason}")
            }
        }
    }
    if !plan.feasible && !partial {
        println!("not fully possible; pass --partial to undo what can be undone");
        return Ok(FAILED);
    }
    if !yes {
        eprint!("proceed? [y/N] ");
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !answer.trim().eq_ignore_ascii_case("y") {
            println!("nothing undone");
            return Ok(FAILED);
        }
    }
    m.rollback(None, partial).await?;
    println!("rolled back (recorded in the audit log)");
    Ok(OK)
}

async fn report(s: &config::Settings, json: bool) -> Result<u8, Error> {
    let (store, _) = backends::store(&s.checkpoint_url, &s.checkpoint_schema).await?;
    let Some(r) = migrate_core::executor::stored_report(&*store, &s.executor.migration).await?
    else {
        println!("migration {:?} has no run yet", s.executor.migration);
        return Ok(FAILED);
    };
    println!("{}", if json { r.to_json() } else { r.to_markdown() });
    Ok(if r.succeeded() { OK } else { FAILED })
}
