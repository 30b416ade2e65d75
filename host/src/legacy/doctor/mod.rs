//! `ponte doctor --unit N`: what a legacy unit does on its own that breaks replication, before
//! it shows up as divergence or a dead letter. Per replicated table: the unit's triggers that fire
//! on ponte's writes and write replicated tables, stamp replicated columns or advance generators
//! ponte raises without testing the apply flag (`triggers`); generator-fed keys the config does
//! not declare; NOT NULLs and CHECKs the unit enforces and PostgreSQL does not, and text columns
//! whose charset cannot hold every character PostgreSQL can (`constraints`).

mod constraints;
mod triggers;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rsfbclient::FbError;

use super::pgcat::PgFacts;
use super::targets::{replicated, Replicated};
use crate::config::Config;
use crate::firebird::FbConn;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Replication diverges or dead-letters because of it: `doctor` exits 1.
    Finding,
    /// Worth knowing; replication is not at risk.
    Note,
}

/// One thing doctor found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Finding or note.
    pub severity: Severity,
    /// The `[tables]` entry.
    pub table: String,
    /// The unit object at fault (`trigger ITENS_AU`, `column ITENS.NOME`).
    pub subject: String,
    /// What happens and what to do.
    pub text: String,
}

/// Doctor's report on one unit.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Unit id.
    pub unit: i32,
    /// Lines about each table's triggers (what each writes), for the operator.
    pub inventory: Vec<String>,
    /// Everything found.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Findings that make `doctor` fail.
    pub fn problems(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Finding)
            .count()
    }

    /// The report as text.
    pub fn render(&self) -> String {
        let mut out = format!("unit {}\n", self.unit);
        for line in &self.inventory {
            let _ = writeln!(out, "  {line}");
        }
        for f in &self.findings {
            let tag = match f.severity {
                Severity::Finding => "FINDING",
                Severity::Note => "note",
            };
            let _ = writeln!(out, "{tag} [tables.{}] {}: {}", f.table, f.subject, f.text);
        }
        let _ = writeln!(
            out,
            "unit {}: {} finding(s), {} note(s)",
            self.unit,
            self.problems(),
            self.findings.len() - self.problems()
        );
        out
    }
}

/// Examines one unit (blocking). `pg`: PostgreSQL facts per `[tables]` entry.
pub fn examine(
    conn: &mut FbConn,
    config: &Config,
    unit: i32,
    pg: &BTreeMap<String, PgFacts>,
) -> Result<Report, FbError> {
    let tables: Vec<Replicated> = replicated(config);
    let mut report = Report {
        unit,
        ..Report::default()
    };
    for r in &tables {
        if crate::firebird::table_columns(conn, &r.unit_table)?.is_none() {
            report.findings.push(Finding {
                severity: Severity::Finding,
                table: r.name.clone(),
                subject: format!("table {}", r.unit_table),
                text: "does not exist on this unit".into(),
            });
            continue;
        }
        triggers::examine(conn, r, &tables, &mut report)?;
        let facts = pg.get(&r.name).cloned().unwrap_or_default();
        constraints::examine(conn, r, &facts, &mut report)?;
    }
    Ok(report)
}
