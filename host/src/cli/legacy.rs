//! `ponte doctor`, `ponte unit-triggers guard|unguard` and `ponte tables scaffold`: the legacy
//! site commands (docs/legacy.md).

use std::path::Path;

use anyhow::bail;
use clap::{Args, Subcommand};

use crate::config::Config;
use crate::legacy::GuardOutcome;

/// `ponte doctor`.
#[derive(Args)]
pub(crate) struct DoctorArgs {
    /// The unit to examine.
    #[arg(long)]
    unit: i32,
}

/// `ponte unit-triggers`.
#[derive(Subcommand)]
pub(crate) enum UnitTriggersCommand {
    /// Rewrites the unit's own triggers so their body is skipped inside ponte's apply
    /// transactions; the original source is kept for `unguard` (idempotent).
    Guard(TriggerArgs),
    /// Restores guarded triggers to their original source, byte for byte.
    Unguard(TriggerArgs),
}

/// Which triggers.
#[derive(Args)]
pub(crate) struct TriggerArgs {
    /// The unit.
    #[arg(long)]
    unit: i32,
    /// Only these triggers (default: every active trigger of the replicated tables).
    #[arg(long = "trigger")]
    triggers: Vec<String>,
}

/// `ponte tables`.
#[derive(Subcommand)]
pub(crate) enum TablesCommand {
    /// Prints the `[tables.T]` block of the generic transform for a PostgreSQL table and its
    /// unit table, every column setting filled in and every mismatch commented.
    Scaffold {
        /// The PostgreSQL table (`schema.table` or a name in `public`).
        #[arg(long, required_unless_present = "all")]
        pg_table: Option<String>,
        /// The unit whose schema is read (default: the first configured unit).
        #[arg(long)]
        unit: Option<i32>,
        /// The unit table (default: the PostgreSQL name, case-insensitive).
        #[arg(long, conflicts_with = "all")]
        target: Option<String>,
        /// Appends the blocks to the config file (validated; unchanged when invalid).
        #[arg(long)]
        write: bool,
        /// Every PostgreSQL table with a unit table of the same name (not yet configured).
        #[arg(long)]
        all: bool,
    },
}

/// `ponte doctor --unit N`: prints the report; fails (exit 1) when there are findings.
pub(crate) async fn doctor(args: DoctorArgs, config: &Config) -> anyhow::Result<()> {
    let report = crate::legacy::doctor(config, args.unit).await?;
    print!("{}", report.render());
    if report.problems() > 0 {
        bail!(
            "unit {}: {} finding(s); see above",
            args.unit,
            report.problems()
        );
    }
    Ok(())
}

/// `ponte unit-triggers guard|unguard`: one line per trigger; fails when one was refused.
pub(crate) async fn unit_triggers(cmd: UnitTriggersCommand, config: &Config) -> anyhow::Result<()> {
    let (args, guard) = match cmd {
        UnitTriggersCommand::Guard(a) => (a, true),
        UnitTriggersCommand::Unguard(a) => (a, false),
    };
    let outcomes = crate::legacy::unit_triggers(config, args.unit, args.triggers, guard).await?;
    let mut refused = 0;
    for (name, outcome) in &outcomes {
        if matches!(outcome, GuardOutcome::Refused(_)) {
            refused += 1;
        }
        println!("unit {}: trigger {name}: {outcome}", args.unit);
    }
    if outcomes.is_empty() {
        println!("unit {}: no triggers on the replicated tables", args.unit);
    }
    if refused > 0 {
        bail!("{refused} trigger(s) refused; see the reasons above");
    }
    Ok(())
}

/// `ponte tables scaffold`.
pub(crate) async fn tables(cmd: TablesCommand, config: &Config, path: &Path) -> anyhow::Result<()> {
    let TablesCommand::Scaffold {
        pg_table,
        unit,
        target,
        write,
        all,
    } = cmd;
    let request = crate::legacy::scaffold::Request {
        pg_table,
        unit,
        target,
        all,
    };
    let (blocks, skipped) = crate::legacy::scaffold::scaffold(config, &request).await?;
    for s in &skipped {
        eprintln!("skipped {s}");
    }
    if write {
        crate::legacy::scaffold::write(path, &blocks)?;
        eprintln!("{}: written and validated", path.display());
    }
    print!("{blocks}");
    Ok(())
}
