//! `ponte demo verify`: reads what PostgreSQL says each unit must hold and what each unit's
//! Firebird holds, both in the canonical text form of [`super::canon`], and compares them as
//! sorted sets of rows. Used by `deploy/demo.sh` and by the end-to-end tests.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::stream::{self, StreamExt};
use rsfbclient::prelude::*;
use sqlx::{PgPool, Row as _};

use super::canon::{keyed, RowSet, Scope, TableSpec, TABLES};
use super::report::{TableReport, UnitReport, VerifyReport};
use crate::config::{Config, FirebirdConfig, Unit};

/// Time zone used when a table's settings name none (the transforms' default too).
pub const DEFAULT_TIMEZONE: &str = "America/Sao_Paulo";

/// How many units are read from Firebird at once.
const PARALLEL_UNITS: usize = 8;

/// What PostgreSQL says the units must hold, per table.
enum Expected {
    /// The same rows for every unit.
    All(Arc<RowSet>),
    /// Rows per unit id.
    PerUnit(HashMap<i32, RowSet>),
}

/// The time zone of a table's timestamps: its `settings.timezone`, else [`DEFAULT_TIMEZONE`].
pub fn table_timezone(config: &Config, table: &str) -> String {
    config
        .tables
        .get(table)
        .and_then(|t| t.settings.as_ref())
        .and_then(|s| s.get("timezone"))
        .and_then(|v| v.as_str())
        .unwrap_or(DEFAULT_TIMEZONE)
        .to_string()
}

async fn read_pg(pool: &PgPool, spec: &TableSpec, timezone: &str) -> anyhow::Result<Expected> {
    let mut query = sqlx::query(spec.pg_sql);
    if spec.pg_sql.contains("$1") {
        query = query.bind(timezone);
    }
    let rows = query.fetch_all(pool).await.with_context(|| {
        format!(
            "reading PostgreSQL table {} (is deploy/demo/postgres-app.sql applied?)",
            spec.pg_table
        )
    })?;
    let mut all = RowSet::new();
    let mut per_unit: HashMap<i32, RowSet> = HashMap::new();
    for row in rows {
        let unit: Option<i32> = row.try_get(0)?;
        let mut raw = Vec::with_capacity(spec.cols.len());
        for i in 0..spec.cols.len() {
            raw.push(row.try_get::<Option<String>, _>(i + 1)?);
        }
        let (key, values) = keyed(spec, raw);
        match (spec.scope, unit) {
            (Scope::OwnUnit, Some(u)) => {
                per_unit.entry(u).or_default().insert(key, values);
            }
            _ => {
                all.insert(key, values);
            }
        }
    }
    Ok(match spec.scope {
        Scope::AllUnits => Expected::All(Arc::new(all)),
        Scope::OwnUnit => Expected::PerUnit(per_unit),
    })
}

/// Reads every demo table of one unit (blocking; run on a blocking thread).
fn read_unit(database: &str, config: &FirebirdConfig) -> Result<Vec<RowSet>, String> {
    let mut conn = crate::firebird::connect(database, config)
        .map_err(|e| format!("cannot connect to {database}: {e}"))?;
    let mut tables = Vec::with_capacity(TABLES.len());
    for spec in TABLES {
        let rows: Vec<rsfbclient::Row> = conn
            .query(spec.fb_sql, ())
            .map_err(|e| format!("reading {} of {database}: {e}", spec.fb_table))?;
        let mut set = RowSet::new();
        for row in rows {
            let mut raw = Vec::with_capacity(spec.cols.len());
            for i in 0..spec.cols.len() {
                let v: Option<String> = row
                    .get(i)
                    .map_err(|e| format!("{}.{}: {e}", spec.fb_table, spec.cols[i].name))?;
                raw.push(v);
            }
            let (key, values) = keyed(spec, raw);
            set.insert(key, values);
        }
        tables.push(set);
    }
    Ok(tables)
}

fn show(v: &Option<String>) -> String {
    match v {
        None => "NULL".into(),
        Some(s) if s.chars().count() > 60 => {
            format!("{:?}...", s.chars().take(60).collect::<String>())
        }
        Some(s) => format!("{s:?}"),
    }
}

fn key_text(spec: &TableSpec, key: &str) -> String {
    spec.cols
        .iter()
        .take(spec.key_len)
        .map(|c| c.name)
        .zip(key.split('|'))
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Compares one table: `expected` (PostgreSQL) against `found` (Firebird).
pub(crate) fn compare(
    spec: &TableSpec,
    expected: &RowSet,
    found: &RowSet,
    samples: usize,
) -> TableReport {
    let mut report = TableReport {
        table: spec.pg_table.to_string(),
        fb_table: spec.fb_table.to_string(),
        expected: expected.len(),
        found: found.len(),
        ..TableReport::default()
    };
    for (key, want) in expected {
        match found.get(key) {
            None => {
                report.missing += 1;
                if report.samples.len() < samples {
                    report
                        .samples
                        .push(format!("missing {}", key_text(spec, key)));
                }
            }
            Some(got) if got == want => report.matching += 1,
            Some(got) => {
                report.differing += 1;
                if report.samples.len() < samples {
                    let cols: Vec<String> = spec
                        .cols
                        .iter()
                        .zip(want.iter().zip(got.iter()))
                        .filter(|(_, (w, g))| w != g)
                        .map(|(c, (w, g))| format!("{} pg={} fb={}", c.name, show(w), show(g)))
                        .collect();
                    report.samples.push(format!(
                        "differs {}: {}",
                        key_text(spec, key),
                        cols.join("; ")
                    ));
                }
            }
        }
    }
    for key in found.keys().filter(|k| !expected.contains_key(*k)) {
        report.extra += 1;
        if report.samples.len() < samples {
            report
                .samples
                .push(format!("extra {}", key_text(spec, key)));
        }
    }
    report
}

/// Compares every given unit's Firebird rows with what PostgreSQL says it must hold.
/// `samples` bounds the example lines kept per table. A unit that cannot be read is reported
/// (with its error), never skipped.
pub async fn verify(
    pool: &PgPool,
    config: &Config,
    units: &[Unit],
    samples: usize,
) -> anyhow::Result<VerifyReport> {
    let mut expected = Vec::with_capacity(TABLES.len());
    for spec in TABLES {
        let tz = table_timezone(config, spec.pg_table);
        expected.push(read_pg(pool, spec, &tz).await?);
    }
    let expected = Arc::new(expected);
    let empty = Arc::new(RowSet::new());
    let deadline = Duration::from_millis(config.firebird.timeout_ms.saturating_mul(4).max(10_000));
    let reports = stream::iter(units.iter().cloned())
        .map(|unit| {
            let fb = config.firebird.clone();
            let expected = Arc::clone(&expected);
            let empty = Arc::clone(&empty);
            async move {
                let database = unit.database.clone();
                let read = tokio::task::spawn_blocking(move || read_unit(&database, &fb));
                let found = match tokio::time::timeout(deadline, read).await {
                    Ok(Ok(result)) => result,
                    Ok(Err(join)) => Err(format!("reader task failed: {join}")),
                    Err(_) => Err(format!(
                        "no answer from {} within {deadline:?}",
                        unit.database
                    )),
                };
                // One line per unit in the report: the client's messages span several lines.
                let found = found.map_err(|e| e.replace('\n', " / "));
                let found = match found {
                    Ok(found) => found,
                    Err(error) => {
                        return UnitReport {
                            unit: unit.id,
                            error: Some(error),
                            tables: vec![],
                        }
                    }
                };
                let tables = TABLES
                    .iter()
                    .zip(expected.iter())
                    .zip(found.iter())
                    .map(|((spec, exp), got)| {
                        let want = match exp {
                            Expected::All(rows) => Arc::clone(rows),
                            Expected::PerUnit(map) => match map.get(&unit.id) {
                                Some(rows) => Arc::new(rows.clone()),
                                None => Arc::clone(&empty),
                            },
                        };
                        compare(spec, &want, got, samples)
                    })
                    .collect();
                UnitReport {
                    unit: unit.id,
                    error: None,
                    tables,
                }
            }
        })
        .buffered(PARALLEL_UNITS)
        .collect::<Vec<_>>()
        .await;
    Ok(VerifyReport { units: reports })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(rows: &[(&str, &[Option<&str>])]) -> RowSet {
        rows.iter()
            .map(|(k, r)| {
                (
                    k.to_string(),
                    r.iter().map(|v| v.map(str::to_string)).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn compare_counts_missing_extra_and_differing() {
        let spec = &TABLES[1];
        let a = [
            Some("1"),
            Some("SKU-1"),
            Some("Café"),
            Some("1.00"),
            Some("3"),
            Some("0"),
        ];
        let b = [
            Some("2"),
            Some("SKU-2"),
            Some("Açaí"),
            Some("2.00"),
            Some("3"),
            Some("0"),
        ];
        let b2 = [
            Some("2"),
            Some("SKU-2"),
            Some("Acai"),
            Some("2.00"),
            Some("3"),
            Some("0"),
        ];
        let c = [
            Some("3"),
            Some("SKU-3"),
            Some("Pão"),
            Some("3.00"),
            Some("3"),
            None,
        ];
        let pg = set(&[("1", &a), ("2", &b), ("3", &c)]);
        let fb = set(&[("2", &b2), ("3", &c), ("4", &a)]);
        let r = compare(spec, &pg, &fb, 5);
        assert_eq!((r.expected, r.found, r.matching), (3, 3, 1));
        assert_eq!((r.missing, r.extra, r.differing), (1, 1, 1));
        assert!(
            r.samples
                .iter()
                .any(|s| s.contains("DESCRICAO pg=\"Açaí\" fb=\"Acai\"")),
            "{:?}",
            r.samples
        );
        assert!(!r.is_match());
    }
}
