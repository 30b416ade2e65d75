//! The command line: parses it, sets up logging, loads the config and hands over to the roles.
//! The `ponte` binary is just [`main`]; the test suites run the same entry point as a process.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

mod transform;

use tokio_util::sync::CancellationToken;

use crate::config::{Config, IdList};
use crate::daemon::{run, Roles};

#[derive(Parser)]
#[command(
    name = "ponte",
    version,
    about = "PostgreSQL <-> Firebird sync through an outbox, RabbitMQ and wasm transforms"
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
    /// Checks the configuration file and prints the line at fault.
    Config,
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
    /// Upstream conflicts recorded by the PG applier.
    #[command(subcommand)]
    Conflicts(ConflictsCommand),
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
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    if let Command::Transform(cmd) = cli.command {
        return transform::run_command(cmd, &cli.config).await;
    }
    let config = Config::load(&cli.config)?;
    match cli.command {
        Command::Run { role, units } => {
            let units = units
                .map(|u| IdList::parse(&u).map(|l| l.0))
                .transpose()
                .map_err(anyhow::Error::msg)?;
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
        } => crate::ops::migrate(&config, !firebird_only, !postgres_only).await,
        Command::Config => {
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
        Command::Dlq(cmd) => dlq(cmd, &config).await,
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
        Command::Conflicts(ConflictsCommand::List { all, limit }) => {
            crate::upstream::print_conflicts(&config, all, limit).await
        }
        Command::Transform(_) => Ok(()),
    }
}

async fn dlq(cmd: DlqCommand, config: &Config) -> anyhow::Result<()> {
    use crate::ops::dlq;
    match cmd {
        DlqCommand::List { limit } => {
            let letters = dlq::list(config, limit).await?;
            println!("{} dead letter(s) shown", letters.len());
            for l in letters {
                println!(
                    "{:>4}  {}  unit {:<4} {:<40} [{}] {}",
                    l.position, l.correlation_id, l.unit, l.routing_key, l.class, l.reason
                );
            }
            Ok(())
        }
        DlqCommand::Show { correlation_id } => {
            let letters = dlq::list(config, usize::MAX).await?;
            let Some(l) = letters
                .into_iter()
                .find(|l| l.correlation_id == correlation_id)
            else {
                anyhow::bail!("no dead letter with correlation id {correlation_id}");
            };
            println!("correlation id: {}\nrouting key:    {}\nunit:           {}\nclass:          {}\nreason:         {}\ndead at:        {}\nbody:\n{}", l.correlation_id, l.routing_key, l.unit, l.class, l.reason, l.dead_at, l.body);
            Ok(())
        }
        DlqCommand::Replay {
            correlation_ids,
            all,
        } => {
            let n = dlq::replay(config, &correlation_ids, all).await?;
            println!("{n} dead letter(s) replayed");
            Ok(())
        }
        DlqCommand::RequeueOutbox { id, unit } => {
            let n = dlq::requeue_outbox(config, id, unit).await?;
            println!("{n} outbox row(s) back to pending");
            Ok(())
        }
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
