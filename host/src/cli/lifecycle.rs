//! `ponte load`, `ponte verify` and `ponte repair` (docs/lifecycle.md).

use anyhow::bail;
use clap::Args;
use futures_util::stream::{self, StreamExt};

use crate::config::{Config, IdList, Unit};
use crate::lifecycle::{self, load::store, LoadOptions, Tools};
use crate::progress::Progress;
use crate::telemetry::LifecycleMetrics;

/// Units loaded at once by `ponte load --units`.
const PARALLEL_UNITS: usize = 4;

/// Which units a command acts on.
#[derive(Debug, Clone, Args)]
pub struct UnitArgs {
    /// One unit.
    #[arg(long, conflicts_with = "units")]
    unit: Option<i32>,
    /// Several units, e.g. "1-50" or "1-3,7".
    #[arg(long)]
    units: Option<String>,
}

/// `ponte load`.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    target: UnitArgs,
    /// Only these tables (repeatable; default: every configured table, parents first).
    #[arg(long = "table")]
    tables: Vec<String>,
    /// Delete the unit's rows that PostgreSQL does not have (default: count and keep them).
    #[arg(long)]
    delete_extra: bool,
    /// Show the progress of the latest load of each unit instead of loading.
    #[arg(long)]
    status: bool,
}

/// `ponte verify`.
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    target: UnitArgs,
    /// Every configured unit.
    #[arg(long, conflicts_with_all = ["unit", "units"])]
    all: bool,
    /// Only these tables (repeatable).
    #[arg(long = "table")]
    tables: Vec<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// `ponte repair`.
#[derive(Debug, Clone, Args)]
pub struct RepairArgs {
    /// The unit.
    #[arg(long)]
    unit: i32,
    /// Only these tables (repeatable).
    #[arg(long = "table")]
    tables: Vec<String>,
    /// Say what would be re-sent and deleted; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Delete the unit's extra rows too.
    #[arg(long)]
    delete_extra: bool,
}

fn select(config: &Config, args: &UnitArgs, all: bool) -> anyhow::Result<Vec<Unit>> {
    let configured = config.units();
    let wanted: Vec<i32> = match (args.unit, &args.units) {
        (Some(id), _) => vec![id],
        (None, Some(list)) => {
            IdList::parse(list)
                .map_err(|e| anyhow::anyhow!("--units: {e}"))?
                .0
        }
        (None, None) if all => return Ok(configured),
        (None, None) => bail!("say which units: --unit N or --units A-B (verify also takes --all)"),
    };
    wanted
        .into_iter()
        .map(|id| {
            configured
                .iter()
                .find(|u| u.id == id)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("unit {id} is not configured in [units] ids"))
        })
        .collect()
}

async fn tools(config: &Config) -> anyhow::Result<Tools> {
    Tools::open(config, LifecycleMetrics::detached()?).await
}

/// Runs `ponte load`.
pub async fn load(args: LoadArgs, config: &Config) -> anyhow::Result<()> {
    let pool = crate::demo::connect_pg(config, (PARALLEL_UNITS * 2) as u32).await?;
    if args.status {
        let units = match (&args.target.unit, &args.target.units) {
            (None, None) => None,
            _ => Some(
                select(config, &args.target, false)?
                    .iter()
                    .map(|u| u.id)
                    .collect::<Vec<_>>(),
            ),
        };
        print!("{}", store::status(&pool, units.as_deref()).await?);
        return Ok(());
    }
    let units = select(config, &args.target, false)?;
    let tools = tools(config).await?;
    let options = LoadOptions {
        tables: args.tables,
        delete_extra: args.delete_extra,
        skip_extra: false,
    };
    let progress = Progress::new();
    let results: Vec<_> = stream::iter(units.iter())
        .map(|unit| lifecycle::load_unit(&pool, config, &tools, unit, &options, &progress))
        .buffered(PARALLEL_UNITS)
        .collect()
        .await;
    let mut failed = Vec::new();
    for (unit, result) in units.iter().zip(results) {
        match result {
            Ok(done) => print!("{done}"),
            Err(e) => {
                println!("unit {}: load failed: {e:#}", unit.id);
                failed.push(unit.id);
            }
        }
    }
    if !failed.is_empty() {
        bail!("the load of units {failed:?} did not finish; run the same command again to resume");
    }
    Ok(())
}

/// Runs `ponte verify`; fails (exit 1) when any unit differs.
pub async fn verify(args: VerifyArgs, config: &Config) -> anyhow::Result<()> {
    let units = select(config, &args.target, args.all)?;
    let pool = crate::demo::connect_pg(config, 4).await?;
    let tools = tools(config).await?;
    let reports = lifecycle::verify_units(
        &pool,
        config,
        &tools,
        &units,
        &args.tables,
        &Progress::new(),
    )
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        for r in &reports {
            print!("{r}");
        }
    }
    let differing: Vec<i32> = reports
        .iter()
        .filter(|r| !r.is_clean())
        .map(|r| r.unit)
        .collect();
    if !differing.is_empty() {
        bail!(
            "units {differing:?} differ from PostgreSQL (`ponte repair --unit N` re-sends the rows)"
        );
    }
    let unsettled: Vec<i32> = reports
        .iter()
        .filter(|r| r.unsettled() > 0)
        .map(|r| r.unit)
        .collect();
    if !unsettled.is_empty() {
        bail!(
            "units {unsettled:?}: some rows could not be confirmed (changes still in flight); run \
             verify again once the units caught up"
        );
    }
    Ok(())
}

/// Runs `ponte repair`.
pub async fn repair(args: RepairArgs, config: &Config) -> anyhow::Result<()> {
    let units = select(
        config,
        &UnitArgs {
            unit: Some(args.unit),
            units: None,
        },
        false,
    )?;
    let pool = crate::demo::connect_pg(config, 4).await?;
    let tools = tools(config).await?;
    for unit in &units {
        let options = lifecycle::RepairOptions {
            tables: args.tables.clone(),
            dry_run: args.dry_run,
            delete_extra: args.delete_extra,
        };
        let done =
            lifecycle::repair_unit(&pool, config, &tools, unit, &options, &Progress::new()).await?;
        print!("{done}");
    }
    Ok(())
}
