//! `ponte outbox install|remove`: the PostgreSQL capture triggers of the tables configured with
//! `outbox = "trigger"` (docs/capture.md).

use clap::{Args, Subcommand};

use crate::config::Config;

/// `ponte outbox`.
#[derive(Subcommand)]
pub(crate) enum OutboxCommand {
    /// Creates or replaces the outbox triggers of the `outbox = "trigger"` tables (idempotent:
    /// a second run reports "no change"); with no --table, also drops those of tables no longer
    /// trigger-captured. All in one transaction.
    Install(OutboxArgs),
    /// Drops the outbox triggers and their functions; the tables' data and the outbox rows stay.
    Remove(OutboxArgs),
}

/// Which tables, and whether to change anything.
#[derive(Args)]
pub(crate) struct OutboxArgs {
    /// Only this table (repeatable; the `[tables]` name).
    #[arg(long = "table")]
    tables: Vec<String>,
    /// Print the plan and its SQL; change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Runs `ponte outbox ...`; prints one line per table.
pub(crate) async fn run(cmd: OutboxCommand, config: &Config) -> anyhow::Result<()> {
    let report = match cmd {
        OutboxCommand::Install(a) => {
            crate::outbox_capture::install(config, &a.tables, a.dry_run).await?
        }
        OutboxCommand::Remove(a) => {
            crate::outbox_capture::remove(config, &a.tables, a.dry_run).await?
        }
    };
    print!("{report}");
    Ok(())
}

/// The catalog part of `ponte config`: fails with one line per problem.
pub(crate) async fn check(config: &Config) -> anyhow::Result<()> {
    let mut problems = crate::outbox_capture::check(config).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot check the outbox = \"trigger\" tables against PostgreSQL: {e} (`ponte config \
             --offline` checks the file alone)"
        )
    })?;
    if !crate::config::periodic_tables(config).is_empty() {
        let pool = crate::pg::connect(&config.postgres).await.map_err(|e| {
            anyhow::anyhow!("cannot check the outbox = \"periodic\" tables against PostgreSQL: {e}")
        })?;
        if let Err(e) = crate::periodic::resolve(&pool, config).await {
            problems.push(format!("{e:#}"));
        }
        pool.close().await;
    }
    if problems.is_empty() {
        return Ok(());
    }
    for p in &problems {
        eprintln!("{p}");
    }
    anyhow::bail!(
        "{} problem(s) with the outbox = \"trigger\" / \"periodic\" tables",
        problems.len()
    )
}
