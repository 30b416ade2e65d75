//! Trigger capture in PostgreSQL (`[tables.T] outbox = "trigger"`): `ponte outbox install`
//! creates one PL/pgSQL function and one AFTER ROW trigger per table that write the table's
//! `pg_sync_outbox` rows in the business transaction itself, so a change and its event commit
//! together by construction and the relay is unchanged. `remove` drops them and leaves data and
//! outbox rows alone. Design: docs/capture.md.
//!
//! - `catalog`: the table, its primary key and routing as PostgreSQL has them.
//! - `body`: the generated PL/pgSQL (versioned, hashed).
//! - `plan`: installed state against the config, step by step.

mod body;
mod catalog;
mod plan;

use std::fmt;

use sqlx::{Connection, PgConnection};

pub use body::{generate, Generated, PREFIX, VERSION};
pub use catalog::{Route, TableSpec};
pub use plan::{Action, Step};

use crate::config::{trigger_tables, Config};

/// Why trigger capture could not be checked, installed or removed.
#[derive(Debug, thiserror::Error)]
pub enum OutboxCaptureError {
    /// PostgreSQL failed or refused.
    #[error("PostgreSQL: {0}")]
    Db(#[from] sqlx::Error),
    /// A configured table does not fit trigger capture (named, with what to do).
    #[error("table {table}: {message}")]
    Table {
        /// The `[tables]` name.
        table: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A command-line argument names nothing ponte can act on.
    #[error("{0}")]
    Usage(String),
    /// ponte's own PostgreSQL tables are missing.
    #[error("PostgreSQL lacks {0}: run `ponte migrate` first")]
    NotMigrated(String),
}

impl OutboxCaptureError {
    /// Whether retrying may succeed without an operator (a lock wait, a lost connection).
    pub fn is_retriable(&self) -> bool {
        match self {
            OutboxCaptureError::Db(sqlx::Error::Database(d)) => d
                .code()
                .is_some_and(|c| c.starts_with("40") || c.starts_with("55P03") || c == "57014"),
            OutboxCaptureError::Db(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut) => true,
            _ => false,
        }
    }
}

/// What install or remove did (or, with `dry_run`, would do).
#[derive(Debug, Clone)]
pub struct Report {
    /// One step per table.
    pub steps: Vec<Step>,
    /// Nothing was changed.
    pub dry_run: bool,
}

impl Report {
    /// Tables whose step changes something.
    pub fn changed(&self) -> usize {
        self.steps.iter().filter(|s| s.changes()).count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = if self.dry_run { "would " } else { "" };
        for s in &self.steps {
            let detail = if s.detail.is_empty() {
                String::new()
            } else {
                format!(" [{}]", s.detail)
            };
            match (&s.action, s.changes()) {
                (Action::Unchanged, false) | (Action::Absent, _) => {
                    writeln!(f, "table {}: {}{detail}", s.table, s.action)?
                }
                (Action::Unchanged, true) => writeln!(
                    f,
                    "table {}: no change (record {prefix}be written){detail}",
                    s.table
                )?,
                (action, _) => writeln!(f, "table {}: {prefix}{action}{detail}", s.table)?,
            }
            if self.dry_run {
                for sql in &s.sql {
                    writeln!(f, "    {};", sql.replace('\n', "\n    "))?;
                }
            }
        }
        let n = self.changed();
        let verb = if self.dry_run {
            "would change"
        } else {
            "changed"
        };
        writeln!(
            f,
            "{n} table(s) {verb}{}",
            if self.dry_run {
                "; nothing was changed (--dry-run)"
            } else {
                ""
            }
        )
    }
}

/// Opens one connection with the config's timeouts.
async fn connect(config: &Config) -> Result<PgConnection, OutboxCaptureError> {
    let timeout = config.postgres.timeout();
    let options: sqlx::postgres::PgConnectOptions = config.postgres.url.parse()?;
    let options = options
        .options([("statement_timeout", format!("{}", timeout.as_millis()))])
        .application_name("ponte outbox");
    match tokio::time::timeout(timeout, PgConnection::connect_with(&options)).await {
        Ok(conn) => Ok(conn?),
        Err(_) => Err(OutboxCaptureError::Db(sqlx::Error::PoolTimedOut)),
    }
}

/// The names `filter` selects among the trigger-captured tables (all when empty).
fn selected(config: &Config, filter: &[String]) -> Result<Vec<String>, OutboxCaptureError> {
    let captured = trigger_tables(config);
    for name in filter {
        if !captured.contains(&name.as_str()) {
            let why = if config.tables.contains_key(name) {
                format!("[tables.{name}] does not say outbox = \"trigger\"")
            } else {
                format!("there is no [tables.{name}]")
            };
            return Err(OutboxCaptureError::Usage(format!(
                "--table {name}: {why} (trigger-captured: {})",
                if captured.is_empty() {
                    "none".to_string()
                } else {
                    captured.join(", ")
                }
            )));
        }
    }
    Ok(captured
        .into_iter()
        .filter(|n| filter.is_empty() || filter.iter().any(|f| f == n))
        .map(str::to_string)
        .collect())
}

/// Checks every trigger-captured table against PostgreSQL's catalog and what is installed;
/// returns one line per problem (empty: all good). For `ponte config`.
pub async fn check(config: &Config) -> Result<Vec<String>, OutboxCaptureError> {
    let names = selected(config, &[])?;
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut conn = connect(config).await?;
    let schema = catalog::outbox_schema(&mut conn).await?;
    let installed = plan::Installed::read(&mut conn).await?;
    let units: Vec<i32> = config.units.ids.0.clone();
    let mut problems = Vec::new();
    for name in &names {
        match catalog::resolve(&mut conn, config, name).await {
            Ok(spec) => {
                let g = generate(&spec, &schema, &units);
                let step = installed.install_step(name, &spec.relation, &g, String::new());
                if step.action != Action::Unchanged {
                    problems.push(format!(
                        "table {name}: the installed trigger is not current ({}): run `ponte \
                         outbox install`",
                        step.action
                    ));
                }
            }
            Err(OutboxCaptureError::Table { table, message }) => {
                problems.push(format!("table {table}: {message}"))
            }
            Err(other) => return Err(other),
        }
    }
    let _ = conn.close().await;
    Ok(problems)
}

/// What a transaction does.
enum Mode {
    /// Install these tables; `all`: drop the stale ones too.
    Install { names: Vec<String>, all: bool },
    /// Remove these tables (every installed one when empty).
    Remove { filter: Vec<String> },
}

/// Works out the steps and runs them in one transaction (rolled back for a dry run), under a
/// lock timeout and an advisory lock so two installs never interleave.
async fn transact(
    config: &Config,
    dry_run: bool,
    mode: Mode,
) -> Result<Report, OutboxCaptureError> {
    let mut conn = connect(config).await?;
    let mut tx = conn.begin().await?;
    let ms = config.postgres.timeout().as_millis();
    sqlx::query(&format!("SET LOCAL lock_timeout = '{ms}ms'"))
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('ponte outbox install'))")
        .execute(&mut *tx)
        .await?;
    let schema = catalog::outbox_schema(&mut tx).await?;
    let installed = plan::Installed::read(&mut tx).await?;
    let steps = match mode {
        Mode::Install { names, all } => {
            install_steps(&mut tx, config, &schema, &installed, &names, all).await?
        }
        Mode::Remove { filter } => remove_steps(config, &installed, filter)?,
    };
    if dry_run {
        tx.rollback().await?;
    } else {
        for step in &steps {
            for sql in &step.sql {
                sqlx::raw_sql(sql).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
    }
    let _ = conn.close().await;
    Ok(Report { steps, dry_run })
}

async fn install_steps(
    conn: &mut PgConnection,
    config: &Config,
    schema: &str,
    installed: &plan::Installed,
    names: &[String],
    all: bool,
) -> Result<Vec<Step>, OutboxCaptureError> {
    let units: Vec<i32> = config.units.ids.0.clone();
    let mut steps = Vec::new();
    for name in names {
        let spec = catalog::resolve(conn, config, name).await?;
        let g = generate(&spec, schema, &units);
        let detail = format!(
            "trigger {} on {}, {}, version {VERSION}",
            g.trigger,
            spec.relation,
            match &spec.route {
                Route::All => format!("every unit ({})", body::ranges(&units)),
                other => format!("{} of units {}", other.describe(), body::ranges(&units)),
            }
        );
        steps.push(installed.install_step(name, &spec.relation, &g, detail));
    }
    if all {
        for stale in installed.tables() {
            if !names.contains(&stale) {
                steps.push(installed.remove_step(&stale, "no longer outbox = \"trigger\""));
            }
        }
    }
    Ok(steps)
}

fn remove_steps(
    config: &Config,
    installed: &plan::Installed,
    filter: Vec<String>,
) -> Result<Vec<Step>, OutboxCaptureError> {
    let known = installed.tables();
    let captured = trigger_tables(config);
    for name in &filter {
        if !known.contains(name) && !captured.contains(&name.as_str()) {
            return Err(OutboxCaptureError::Usage(format!(
                "--table {name}: no ponte outbox trigger is installed for it (installed: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
    }
    let names = if filter.is_empty() { known } else { filter };
    Ok(names
        .iter()
        .map(|n| installed.remove_step(n, "removed"))
        .collect())
}

/// `ponte outbox install [--table T ..] [--dry-run]`: creates or replaces the triggers of the
/// selected tables (all trigger-captured tables when `filter` is empty, and then drops those of
/// tables no longer trigger-captured). Every table is checked before anything changes; all
/// changes commit together.
pub async fn install(
    config: &Config,
    filter: &[String],
    dry_run: bool,
) -> Result<Report, OutboxCaptureError> {
    let names = selected(config, filter)?;
    if names.is_empty() {
        return Err(OutboxCaptureError::Usage(
            "no table says outbox = \"trigger\" in [tables]; nothing to install (`ponte outbox \
             remove` drops triggers installed before)"
                .into(),
        ));
    }
    let all = filter.is_empty();
    transact(config, dry_run, Mode::Install { names, all }).await
}

/// `ponte outbox remove [--table T ..] [--dry-run]`: drops the triggers and functions of the
/// selected tables (every installed one when `filter` is empty); data and outbox rows stay.
pub async fn remove(
    config: &Config,
    filter: &[String],
    dry_run: bool,
) -> Result<Report, OutboxCaptureError> {
    let filter = filter.to_vec();
    transact(config, dry_run, Mode::Remove { filter }).await
}
