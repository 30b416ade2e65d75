//! `ponte transform ...`: tooling for transform authors (scaffold, build, run on a fixture).
//! Startup-glue code: errors are `anyhow` with context, output goes to stdout.

mod check;
mod scaffold;
mod test_run;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// Subcommands of `ponte transform`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum TransformCommand {
    /// Scaffold a new transform crate from the template and add it to the transforms workspace.
    New {
        /// Crate and transform name: lower-case letters, digits and `_`, starting with a letter.
        name: String,
        /// The transforms workspace directory.
        #[arg(long, default_value = "transforms")]
        dir: PathBuf,
    },
    /// Build transform crates into wasm components (runs deploy/build-transforms.sh) and put
    /// them into the transforms directory (atomically: a running daemon reloads them).
    Build {
        /// Crates to build; all of them when none is given.
        crates: Vec<String>,
        /// Where the `.wasm` files go: the daemon's `transforms.dir`.
        #[arg(long, default_value = "var/transforms")]
        out: PathBuf,
    },
    /// Load a component, run its self-check and transform one JSON fixture; prints the
    /// statements with typed parameters, or the error (non-zero exit). No database needed.
    Test {
        /// The component (`.wasm`).
        file: PathBuf,
        /// The fixture: {"table", "op" ("I"/"U"/"D" or insert/update/delete), "payload" (object),
        /// optional "unit", "correlation_id", "sequence", "direction", "settings" (object)}.
        change: PathBuf,
        /// Per-table settings (a JSON object file); overrides the fixture's "settings".
        #[arg(long)]
        settings: Option<PathBuf>,
    },
    /// Hold a component against one unit's real Firebird schema (from the config): the tables
    /// it declares must exist; for each fixture, every statement must compile on the unit's
    /// server and every value bound to a column must fit it (length, range, scale, NOT NULL).
    /// Writes nothing. Non-zero exit when a problem is found.
    Check {
        /// The component (`.wasm`).
        file: PathBuf,
        /// Fixture files or directories of `*.json` fixtures (as for `transform test`).
        fixtures: Vec<PathBuf>,
        /// The unit whose database to check against.
        #[arg(long)]
        unit: i32,
        /// Per-table settings (a JSON object file) for every fixture; default: the fixture's
        /// own, else the table's `[tables.<name>.settings]` from the config.
        #[arg(long)]
        settings: Option<PathBuf>,
    },
}

/// Runs one `ponte transform` subcommand; `config` is read only by the ones that need it.
pub async fn run_command(cmd: TransformCommand, config: &Path) -> anyhow::Result<()> {
    match cmd {
        TransformCommand::New { name, dir } => {
            let done = scaffold::create(&name, &dir)?;
            println_out(&done)
        }
        TransformCommand::Build { crates, out } => build(&out, &crates).await,
        TransformCommand::Test {
            file,
            change,
            settings,
        } => {
            let report = tokio::task::spawn_blocking(move || {
                test_run::run(&file, &change, settings.as_deref())
            })
            .await
            .context("the test task failed")??;
            println_out(&report)
        }
        TransformCommand::Check {
            file,
            fixtures,
            unit,
            settings,
        } => {
            let config = crate::config::Config::load(config)?;
            let request = check::CheckRequest {
                file,
                unit,
                fixtures,
                settings,
            };
            let work = tokio::task::spawn_blocking(move || check::run(&config, &request));
            let report = tokio::time::timeout(CHECK_TIMEOUT, work)
                .await
                .map_err(|_| anyhow::anyhow!("the check did not finish within {CHECK_TIMEOUT:?} (is the unit's Firebird reachable?)"))?
                .context("the check task failed")??;
            println_out(&report.text)?;
            if report.problems > 0 {
                bail!(
                    "{} problem(s): the transform does not fit unit {unit}'s schema",
                    report.problems
                );
            }
            Ok(())
        }
    }
}

/// Bound on the whole check (connecting, reading the schema, compiling statements).
const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Writes the command's report to stdout (this is CLI output, not logging).
fn println_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").context("cannot write to stdout")
}

/// Runs deploy/build-transforms.sh from the repository root (found from the current directory
/// upwards) with the output directory and the crate names.
async fn build(out: &Path, crates: &[String]) -> anyhow::Result<()> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let script =
        find_upwards(&cwd, Path::new("deploy/build-transforms.sh")).with_context(|| {
            format!(
                "deploy/build-transforms.sh not found in {} or its parents",
                cwd.display()
            )
        })?;
    let status = tokio::process::Command::new("bash")
        .arg(&script)
        .arg(out)
        .args(crates)
        .status()
        .await
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !status.success() {
        bail!("{} failed with {status}", script.display());
    }
    Ok(())
}

fn find_upwards(start: &Path, relative: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join(relative))
        .find(|p| p.is_file())
}
