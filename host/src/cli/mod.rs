//! The command line: parses it, sets up logging, loads the config and hands over to the roles.
//! The `ponte` binary is just [`main`]; the test suites run the same entry point as a process.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

mod dlq;
mod generated;
mod legacy;
mod lifecycle;
mod outbox;
mod transform;

use tokio_util::sync::CancellationToken;

use crate::config::{Config, IdList};
use crate::daemon::{run, Roles};

/// The exit codes, in `--help` and the man page.
const EXIT_STATUS: &str = "Exit status:
  0  success: the command did what it says (verify and doctor: nothing found)
  1  failure, or differences found (verify, doctor): the message says which
  2  bad usage or configuration: an unknown option, or the configuration file at fault";

#[derive(Parser)]
#[command(
    name = "ponte",
    version,
    about = "PostgreSQL <-> Firebird sync through an outbox, RabbitMQ and wasm transforms",
    after_long_help = EXIT_STATUS
)]
struct Cli {
    /// Configuration file.
    #[arg(
        long,
        short,
        env = "PONTE_CONFIG",
        default_value = "deploy/ponte.toml",
        global = true
    )]
    config: PathBuf,
    /// Log as JSON lines (default) or human-readable text.
    #[arg(long, value_parser = ["json", "text"], default_value = "json", global = true)]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the relay and the unit appliers until SIGTERM/SIGINT.
    Run {
        /// Which role: all, relay, apply, capture (unit SYNC_LOG -> broker) or upstream (-> PostgreSQL).
        #[arg(long, value_parser = ["all", "relay", "apply", "capture", "upstream"], default_value = "all")]
        role: String,
        /// Only these units' appliers, e.g. "1-3,7".
        #[arg(long)]
        units: Option<String>,
    },
    /// Applies the PostgreSQL and Firebird migrations (idempotent).
    Migrate {
        /// Only PostgreSQL.
        #[arg(long, conflicts_with = "firebird_only")]
        postgres_only: bool,
        /// Only the units' Firebird databases.
        #[arg(long)]
        firebird_only: bool,
    },
    /// Checks the configuration file and prints the line at fault; tables with
    /// `outbox = "trigger"` are also checked against PostgreSQL's catalog.
    Config {
        /// Check the file alone (no PostgreSQL).
        #[arg(long)]
        offline: bool,
    },
    /// Outbox backlog, leases, queue depths and each unit's Firebird, on one screen.
    Status,
    /// Dead letters: list, show, replay; requeue outbox rows marked dead.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// The demo application: write business changes (`load`), compare every unit (`verify`).
    #[command(subcommand)]
    Demo(crate::demo::DemoCommand),
    /// Transform authoring: new, build, test, check.
    #[command(subcommand)]
    Transform(transform::TransformCommand),
    /// Upstream capture triggers on the units: install or remove (docs/upstream.md).
    #[command(subcommand)]
    Capture(CaptureCommand),
    /// PostgreSQL outbox triggers of the `outbox = "trigger"` tables: install or remove
    /// (docs/capture.md).
    #[command(subcommand)]
    Outbox(outbox::OutboxCommand),
    /// Upstream conflicts recorded by the PG applier.
    #[command(subcommand)]
    Conflicts(ConflictsCommand),
    /// Brings units to PostgreSQL's current state through the pipeline (docs/lifecycle.md).
    Load(lifecycle::LoadArgs),
    /// Compares units with what PostgreSQL says they hold; exits 1 when any differs.
    Verify(lifecycle::VerifyArgs),
    /// Re-sends the rows verify finds missing or differing (and deletes extras on request).
    Repair(lifecycle::RepairArgs),
    /// The broker topology this configuration declares.
    #[command(subcommand)]
    Broker(BrokerCommand),
    /// A unit's own triggers, generators and constraints that break replication; exit 1 on
    /// findings (docs/legacy.md).
    Doctor(legacy::DoctorArgs),
    /// Guard or unguard a unit's own triggers against ponte's apply transactions.
    #[command(subcommand)]
    UnitTriggers(legacy::UnitTriggersCommand),
    /// Table onboarding: scaffold `[tables.T]` from both catalogs.
    #[command(subcommand)]
    Tables(legacy::TablesCommand),
    /// Prints the shell completion script (e.g. `ponte completions bash >
    /// /etc/bash_completion.d/ponte`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Prints the man page ponte(1), or writes every page (ponte-<command>.1 too) into --dir.
    Man {
        /// Write ponte.1 and one page per command here.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum BrokerCommand {
    /// Prints the RabbitMQ definitions (exchanges, queues with their arguments, bindings) that
    /// a host with this configuration declares, for `rabbitmqctl import_definitions`.
    Definitions {
        /// The virtual host to write into the definitions.
        #[arg(long, default_value = "/")]
        vhost: String,
    },
}

#[derive(Subcommand)]
enum CaptureCommand {
    /// Creates or replaces the SYNC_LOG triggers of [upstream.tables] and raises INDICE into the
    /// unit's id range (idempotent).
    Install {
        /// Only this unit (default: every configured unit).
        #[arg(long)]
        unit: Option<i32>,
    },
    /// Drops the capture triggers (the log and its pending rows stay).
    Remove {
        /// Only this unit (default: every configured unit).
        #[arg(long)]
        unit: Option<i32>,
    },
}

#[derive(Subcommand)]
enum ConflictsCommand {
    /// Lists conflicts as JSON lines, newest first: open (manual) ones unless --all.
    List {
        /// Resolved ones too.
        #[arg(long)]
        all: bool,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Lists dead letters (they stay in the queue).
    List {
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Shows one dead letter in full.
    Show {
        /// Its correlation id.
        correlation_id: String,
    },
    /// Republishes dead letters to their original routing key, then removes them.
    Replay {
        /// Correlation ids to replay.
        correlation_ids: Vec<String>,
        /// Replay every dead letter.
        #[arg(long)]
        all: bool,
    },
    /// Puts outbox rows marked dead back to pending (after fixing the cause).
    RequeueOutbox {
        /// Only this outbox id.
        #[arg(long)]
        id: Option<i64>,
        /// Only this unit.
        #[arg(long)]
        unit: Option<i32>,
    },
}

/// Runs the `ponte` command line and returns its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::telemetry::init_logging(cli.log_format == "json");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ponte: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ponte: {e:#}");
            if e.downcast_ref::<Usage>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Marks an error as bad usage or configuration: exit code 2 (see `EXIT_STATUS`).
#[derive(Debug)]
struct Usage;

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("bad usage or configuration")
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    use anyhow::Context;
    match cli.command {
        Command::Transform(cmd) => return transform::run_command(cmd, &cli.config).await,
        Command::Completions { shell } => {
            generated::completions(shell, &mut std::io::stdout());
            return Ok(());
        }
        Command::Man { dir: None } => return Ok(generated::man(&mut std::io::stdout())?),
        Command::Man { dir: Some(dir) } => {
            for file in generated::man_pages(&dir)? {
                println!("{}", dir.join(file).display());
            }
            return Ok(());
        }
        _ => {}
    }
    let config = Config::load(&cli.config).context(Usage)?;
    match cli.command {
        Command::Run { role, units } => {
            let units = units
                .map(|u| IdList::parse(&u).map(|l| l.0))
                .transpose()
                .map_err(anyhow::Error::msg)
                .context(Usage)?;
            let is = |r: &str| role == "all" || role == r;
            let roles = Roles {
                relay: is("relay"),
                apply: is("apply"),
                units,
                capture: is("capture"),
                upstream: is("upstream"),
            };
            let shutdown = CancellationToken::new();
            tokio::spawn(stop_on_signal(shutdown.clone()));
            run(Arc::new(config), roles, shutdown).await
        }
        Command::Migrate {
            postgres_only,
            firebird_only,
        } => {
            let progress = crate::progress::Progress::new();
            crate::ops::migrate_with(&config, !firebird_only, !postgres_only, Some(&progress)).await
        }
        Command::Config { offline } => {
            if !offline {
                outbox::check(&config).await?;
            }
            println!(
                "{}: ok ({} units, {} tables)",
                cli.config.display(),
                config.units().len(),
                config.tables.len()
            );
            Ok(())
        }
        Command::Status => {
            print!("{}", crate::ops::status::report(&config).await?);
            Ok(())
        }
        Command::Dlq(cmd) => dlq::dlq(cmd, &config).await,
        Command::Demo(cmd) => crate::demo::run_command(cmd, &config).await,
        Command::Capture(cmd) => {
            let (install, only) = match cmd {
                CaptureCommand::Install { unit } => (true, unit),
                CaptureCommand::Remove { unit } => (false, unit),
            };
            let units: Vec<_> = config
                .units()
                .into_iter()
                .filter(|u| only.is_none_or(|id| u.id == id))
                .collect();
            if units.is_empty() {
                anyhow::bail!("unit {only:?} is not configured in [units] ids");
            }
            crate::capture::run_command(&config, &units, install).await
        }
        Command::Outbox(cmd) => outbox::run(cmd, &config).await,
        Command::Conflicts(ConflictsCommand::List { all, limit }) => {
            crate::upstream::print_conflicts(&config, all, limit).await
        }
        Command::Broker(BrokerCommand::Definitions { vhost }) => {
            let defs = crate::amqp::Topology::of_host(&config).definitions(&vhost);
            println!("{}", serde_json::to_string_pretty(&defs)?);
            Ok(())
        }
        Command::Doctor(args) => legacy::doctor(args, &config).await,
        Command::UnitTriggers(cmd) => legacy::unit_triggers(cmd, &config).await,
        Command::Tables(cmd) => legacy::tables(cmd, &config, &cli.config).await,
        Command::Load(args) => lifecycle::load(args, &config).await,
        Command::Verify(args) => lifecycle::verify(args, &config).await,
        Command::Repair(args) => lifecycle::repair(args, &config).await,
        Command::Transform(_) | Command::Completions { .. } | Command::Man { .. } => Ok(()),
    }
}

/// Cancels the root token on SIGTERM or SIGINT.
async fn stop_on_signal(shutdown: CancellationToken) {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("Stop requested; draining.");
    shutdown.cancel();
}
