//! `ponte transform check <file.wasm> --unit N [fixtures...]`: holds a transform against one
//! unit's real Firebird schema before it goes live. Every table the transform declares must
//! exist; for each fixture, each statement must compile on the unit's server (the server itself
//! resolves tables and columns, inside a block that never runs the statement), and each value
//! bound to a column must fit it (length, range, scale, NOT NULL). Nothing is written.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};

use super::test_run::{call, load_file, read_fixture, read_text};
use crate::config::Config;
use crate::firebird::{compile_check, connect, table_columns, Column, FbConn};
use crate::model::{Output, Value};
use crate::transform::{column_uses, Dialect, TableName};

/// What to check.
pub(crate) struct CheckRequest {
    pub(crate) file: PathBuf,
    pub(crate) unit: i32,
    /// Fixture files, or directories whose `*.json` files are fixtures.
    pub(crate) fixtures: Vec<PathBuf>,
    pub(crate) settings: Option<PathBuf>,
}

/// The report, and whether the transform passed.
pub(crate) struct CheckReport {
    pub(crate) text: String,
    pub(crate) problems: usize,
}

/// Runs the check (blocking: Firebird and wasm work).
pub(crate) fn run(config: &Config, request: &CheckRequest) -> anyhow::Result<CheckReport> {
    let loaded = load_file(&request.file)?;
    let unit = config
        .units()
        .into_iter()
        .find(|u| u.id == request.unit)
        .ok_or_else(|| anyhow!("unit {} is not configured in [units] ids", request.unit))?;
    let fixtures = expand(&request.fixtures)?;
    let settings = request.settings.as_deref().map(read_text).transpose()?;
    let mut conn = connect(&unit.database, &config.firebird)
        .with_context(|| format!("cannot connect to unit {} ({})", unit.id, unit.database))?;

    let mut check = Check {
        conn: &mut conn,
        tables: BTreeMap::new(),
        text: String::new(),
        problems: 0,
    };
    let _ = writeln!(
        check.text,
        "{}: loaded, self-check passed",
        loaded.describe()
    );
    let _ = writeln!(check.text, "unit {} ({})", unit.id, unit.database);
    for declared in loaded.info().writes.iter().filter(|w| w.as_str() != "*") {
        let table = TableName::parse(declared)
            .map_err(|e| anyhow!(e))?
            .folded(Dialect::Firebird);
        match check.columns(&table)? {
            Some(columns) => {
                let n = columns.len();
                check.line(&format!("writes {table}: exists, {n} columns"));
            }
            None => check.problem(&format!(
                "writes {table}: no such table on unit {}",
                unit.id
            )),
        }
    }
    if fixtures.is_empty() {
        check.line("no fixtures given: statements not checked (pass fixture files or a fixtures directory)");
    }
    let mut statements = 0;
    for path in &fixtures {
        let (change, fixture_settings) = read_fixture(path)?;
        let settings_json = settings.clone().unwrap_or_else(|| {
            if fixture_settings.trim() == "{}" {
                config.table_settings_json(&change.table)
            } else {
                fixture_settings
            }
        });
        check.line(&format!(
            "fixture {} ({} {:?}):",
            path.display(),
            change.table,
            change.op
        ));
        match call(&loaded, &change, settings_json) {
            Ok(output) => statements += check.output(&output)?,
            Err(e) => check.problem(&format!("  the transform failed: {e}")),
        }
    }
    let verdict = if check.problems == 0 {
        "ok".to_string()
    } else {
        format!("{} problem(s)", check.problems)
    };
    let _ = write!(
        check.text,
        "{statements} statement(s) from {} fixture(s) checked against unit {}: {verdict}",
        fixtures.len(),
        unit.id
    );
    Ok(CheckReport {
        text: check.text,
        problems: check.problems,
    })
}

/// Fixture files in the order given; a directory contributes its `*.json` files, sorted.
fn expand(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot list {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json") && !is_settings(p))
                .collect();
            found.sort();
            files.extend(found);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            bail!("fixture {} does not exist", path.display());
        }
    }
    Ok(files)
}

fn is_settings(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(".settings.json"))
}

struct Check<'a> {
    conn: &'a mut FbConn,
    /// Columns per table, read once (None: the table does not exist).
    tables: BTreeMap<String, Option<Vec<Column>>>,
    text: String,
    problems: usize,
}

impl Check<'_> {
    fn line(&mut self, line: &str) {
        let _ = writeln!(self.text, "{line}");
    }

    fn problem(&mut self, line: &str) {
        self.problems += 1;
        let _ = writeln!(self.text, "{line}  <-- PROBLEM");
    }

    fn columns(&mut self, table: &str) -> anyhow::Result<Option<Vec<Column>>> {
        if !self.tables.contains_key(table) {
            let columns = table_columns(self.conn, table)
                .with_context(|| format!("reading the columns of {table}"))?;
            self.tables.insert(table.to_string(), columns);
        }
        Ok(self.tables.get(table).cloned().flatten())
    }

    /// Checks one fixture's statements; returns how many there were.
    fn output(&mut self, output: &Output) -> anyhow::Result<usize> {
        for (i, statement) in output.statements.iter().enumerate() {
            self.line(&format!("  statement {}: {}", i + 1, statement.sql));
            match compile_check(self.conn, &statement.sql, &statement.params) {
                Ok(()) => self.line("    compiles on the unit's server"),
                Err(e) => self.problem(&format!(
                    "    the unit's server refuses it: {}",
                    one_line(&e.to_string())
                )),
            }
            let Some((table, uses)) = column_uses(&statement.sql, Dialect::Firebird) else {
                self.line(
                    "    (shape not mapped column by column; the compile check above covers it)",
                );
                continue;
            };
            let Some(columns) = self.columns(&table)? else {
                self.problem(&format!("    table {table} does not exist on this unit"));
                continue;
            };
            self.values(&table, &columns, &uses, &statement.params);
            if statement
                .sql
                .trim_start()
                .to_ascii_uppercase()
                .starts_with("INSERT")
                || statement
                    .sql
                    .trim_start()
                    .to_ascii_uppercase()
                    .starts_with("UPDATE OR INSERT")
            {
                for missing in columns
                    .iter()
                    .filter(|c| c.not_null && !c.has_default && !c.computed)
                {
                    if !uses.iter().any(|u| u.written && u.column == missing.name) {
                        self.line(&format!(
                            "    warning: NOT NULL column {} {} gets no value (fine only if a trigger sets it)",
                            missing.name,
                            missing.type_text()
                        ));
                    }
                }
            }
        }
        Ok(output.statements.len())
    }

    fn values(
        &mut self,
        table: &str,
        columns: &[Column],
        uses: &[crate::transform::ColumnUse],
        params: &[Value],
    ) {
        let mut fitting = 0;
        for column_use in uses {
            let Some(column) = columns.iter().find(|c| c.name == column_use.column) else {
                self.problem(&format!(
                    "    column {} does not exist in {table}",
                    column_use.column
                ));
                continue;
            };
            let value = column_use.param.and_then(|p| params.get(p));
            match value
                .filter(|_| column_use.written)
                .and_then(|v| column.misfit(v))
            {
                Some(why) => self.problem(&format!(
                    "    ?{}: {why}",
                    column_use.param.map_or(0, |p| p + 1)
                )),
                None => fitting += 1,
            }
        }
        self.line(&format!(
            "    {fitting} of {} column uses fit {table}'s column types",
            uses.len()
        ));
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
