//! Periodic capture at a unit (`capture = "periodic"`), for sites whose vendor forbids new
//! triggers on its tables. There is no cursor that could skip a row: each round computes every
//! row's fingerprint inside the unit's Firebird (the two hash sums `ponte verify` uses, so no row
//! data crosses the link), compares it with the last captured one in SYNC_PERIODIC, and logs each
//! row that differs into SYNC_LOG, in one snapshot transaction with the fingerprint updates. The
//! capture publisher then sends those log rows like a trigger's. A recorded key whose row is gone
//! logs a D. Echo: ponte's own apply transaction refreshes the fingerprints of the rows it writes
//! (after logging, with the row locked, a local change it is about to overwrite). Why this is
//! correct: docs/upstream.md, "Periodic capture".

mod psql;
mod sql;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use rsfbclient::prelude::*;
use rsfbclient::FbError;

pub use sql::{PeriodicSql, RoundCount};

use super::shape::TableShape;
use crate::config::{Config, UnitCapture};
use crate::firebird::{FbConn, Prepared};

/// The periodic tables of the config: (Firebird table, every).
pub fn periodic_tables(config: &Config) -> Vec<(String, Duration)> {
    config
        .upstream
        .tables
        .iter()
        .filter(|(_, t)| t.capture == UnitCapture::Periodic)
        .map(|(name, t)| (name.clone(), t.every.unwrap_or(Duration::from_secs(300))))
        .collect()
}

/// The tables under periodic capture at this unit (seeded by `capture install`).
fn installed_tables(conn: &mut FbConn) -> Result<Vec<String>, FbError> {
    let rows: Vec<(String,)> =
        conn.query("SELECT TRIM(TABLE_NAME) FROM SYNC_PERIODIC_TABLE", ())?;
    Ok(rows.into_iter().map(|(t,)| t).collect())
}

/// Downstream table -> the periodic unit tables its changes write, with their change columns:
/// what the apply transaction keeps fingerprinted.
#[derive(Debug, Clone, Default)]
pub struct PeriodicTargets(BTreeMap<String, Vec<(String, Option<String>)>>);

impl PeriodicTargets {
    /// The periodic tables of `config`.
    pub fn of(config: &Config) -> PeriodicTargets {
        let mut map: BTreeMap<String, Vec<(String, Option<String>)>> = BTreeMap::new();
        for (name, t) in &config.upstream.tables {
            if t.capture == UnitCapture::Periodic {
                map.entry(t.downstream().to_string())
                    .or_default()
                    .push((name.clone(), t.change_column.clone()));
            }
        }
        PeriodicTargets(map)
    }
}

/// The fingerprint work of one apply transaction: the periodic rows its batch writes.
#[derive(Debug, Default)]
pub struct ApplyShadow {
    tables: Vec<PeriodicSql>,
    /// (index into `tables`, row key), each once, in batch order.
    rows: Vec<(usize, String)>,
}

impl ApplyShadow {
    /// The rows of `batch` that write a table under periodic capture at this unit (installed:
    /// seeded by `capture install`); reads their shapes.
    pub fn prepare(
        conn: &mut FbConn,
        targets: &PeriodicTargets,
        batch: &[Prepared],
    ) -> Result<ApplyShadow, FbError> {
        let mut shadow = ApplyShadow::default();
        if !batch.iter().any(|c| targets.0.contains_key(&c.table)) {
            return Ok(shadow);
        }
        let installed = installed_tables(conn)?;
        let mut by_table: BTreeMap<&str, usize> = BTreeMap::new();
        let mut seen: HashSet<(usize, &str)> = HashSet::new();
        for change in batch {
            let Some(units) = targets.0.get(&change.table) else {
                continue;
            };
            for (unit_table, change_column) in units {
                if !installed.contains(unit_table) {
                    continue;
                }
                let at = match by_table.get(unit_table.as_str()) {
                    Some(&at) => at,
                    None => {
                        let shape = TableShape::read(conn, unit_table)?;
                        let sql = PeriodicSql::new(&shape, &change.table, change_column.as_deref())
                            .map_err(FbError::Other)?;
                        shadow.tables.push(sql);
                        by_table.insert(unit_table, shadow.tables.len() - 1);
                        shadow.tables.len() - 1
                    }
                };
                if seen.insert((at, change.output.row_key.as_str())) {
                    shadow.rows.push((at, change.output.row_key.clone()));
                }
            }
        }
        Ok(shadow)
    }

    /// Before the batch writes: locks each row and logs a local change not yet captured.
    pub fn before_writes(&self, conn: &mut FbConn) -> Result<(), FbError> {
        for (at, key) in &self.rows {
            self.tables[*at].before_write(conn, key)?;
        }
        Ok(())
    }

    /// After the batch wrote: records each row's fingerprint as ponte left it.
    pub fn after_writes(&self, conn: &mut FbConn) -> Result<(), FbError> {
        for (at, key) in &self.rows {
            self.tables[*at].after_write(conn, key)?;
        }
        Ok(())
    }
}

/// What one round did at one unit.
#[derive(Debug, Default)]
pub struct RoundReport {
    /// Per table: what was logged.
    pub tables: Vec<(String, RoundCount)>,
    /// Periodic tables not installed at this unit (`ponte capture install` seeds them).
    pub not_installed: Vec<String>,
}

/// One round over `due` (Firebird table names) in one snapshot transaction: every change logged
/// into SYNC_LOG with its fingerprint recorded, or nothing (rolled back on any error).
pub fn run_round(
    conn: &mut FbConn,
    config: &Config,
    due: &[String],
) -> Result<RoundReport, FbError> {
    conn.begin_transaction_config(
        transaction_builder()
            .read_write()
            .with_concurrency()
            .no_wait()
            .build(),
    )?;
    let result = round_tables(conn, config, due);
    match result {
        Ok(report) => conn.commit().map(|()| report),
        Err(e) => {
            let _ = conn.rollback();
            Err(e)
        }
    }
}

fn round_tables(
    conn: &mut FbConn,
    config: &Config,
    due: &[String],
) -> Result<RoundReport, FbError> {
    let installed = installed_tables(conn)?;
    let mut report = RoundReport::default();
    for table in due {
        let Some(t) = config.upstream.tables.get(table) else {
            continue;
        };
        if !installed.contains(table) {
            report.not_installed.push(table.clone());
            continue;
        }
        let shape = TableShape::read(conn, table)?;
        let sql = PeriodicSql::new(&shape, t.downstream(), t.change_column.as_deref())
            .map_err(FbError::Other)?;
        report.tables.push((table.clone(), sql.round(conn)?));
    }
    Ok(report)
}
