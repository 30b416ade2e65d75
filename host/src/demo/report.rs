//! The result of `ponte demo verify`: per unit, per table counts of matching, missing, extra and
//! differing rows with the first few examples; a structure for tests and a table for people.

use std::fmt;

use serde::Serialize;

/// The comparison of every verified unit.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// One entry per unit, in unit order.
    pub units: Vec<UnitReport>,
}

/// One unit's comparison.
#[derive(Debug, Clone, Serialize)]
pub struct UnitReport {
    /// Unit id.
    pub unit: i32,
    /// Set when the unit could not be read at all (connection, query); `tables` is then empty.
    pub error: Option<String>,
    /// Per table, parents first.
    pub tables: Vec<TableReport>,
}

/// One table of one unit.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableReport {
    /// PostgreSQL table.
    pub table: String,
    /// Firebird table.
    pub fb_table: String,
    /// Rows PostgreSQL says the unit must have.
    pub expected: usize,
    /// Rows the unit's Firebird has.
    pub found: usize,
    /// Rows equal on both sides.
    pub matching: usize,
    /// Keys in PostgreSQL and not in Firebird.
    pub missing: usize,
    /// Keys in Firebird and not in PostgreSQL.
    pub extra: usize,
    /// Keys on both sides whose values differ.
    pub differing: usize,
    /// The first few problems, one line each (`missing ID=5`, `differs ID=7: CIDADE ...`).
    pub samples: Vec<String>,
}

impl TableReport {
    /// Whether both sides hold exactly the same rows.
    pub fn is_match(&self) -> bool {
        self.missing == 0 && self.extra == 0 && self.differing == 0
    }
}

impl UnitReport {
    /// Whether the unit could be read and every table matches.
    pub fn is_match(&self) -> bool {
        self.error.is_none() && self.tables.iter().all(TableReport::is_match)
    }

    /// The report of one table.
    pub fn table(&self, table: &str) -> Option<&TableReport> {
        self.tables.iter().find(|t| t.table == table)
    }
}

impl VerifyReport {
    /// Whether every unit matches.
    pub fn is_match(&self) -> bool {
        !self.units.is_empty() && self.units.iter().all(UnitReport::is_match)
    }

    /// The units that do not match (unreadable or with differences).
    pub fn mismatched_units(&self) -> Vec<i32> {
        self.units
            .iter()
            .filter(|u| !u.is_match())
            .map(|u| u.unit)
            .collect()
    }

    /// One unit's report.
    pub fn unit(&self, unit: i32) -> Option<&UnitReport> {
        self.units.iter().find(|u| u.unit == unit)
    }

    /// Total rows compared equal, over all units and tables.
    pub fn matching_rows(&self) -> usize {
        self.units
            .iter()
            .flat_map(|u| &u.tables)
            .map(|t| t.matching)
            .sum()
    }
}

fn cell(t: &TableReport) -> String {
    if t.is_match() {
        format!("{}/{}", t.matching, t.expected)
    } else {
        format!(
            "{}/{} -{} +{} ~{}",
            t.matching, t.expected, t.missing, t.extra, t.differing
        )
    }
}

impl fmt::Display for VerifyReport {
    /// A table with one line per unit (`matching/expected`, and `-missing +extra ~differing` when
    /// not equal), then the details of every unit that does not match.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self
            .units
            .iter()
            .find(|u| !u.tables.is_empty())
            .map(|u| u.tables.iter().map(|t| t.table.as_str()).collect())
            .unwrap_or_default();
        let width = 22;
        write!(f, "{:>5}", "unit")?;
        for n in &names {
            write!(f, "  {n:<width$}")?;
        }
        writeln!(f, "  result")?;
        for u in &self.units {
            write!(f, "{:>5}", u.unit)?;
            if let Some(err) = &u.error {
                writeln!(f, "  UNREADABLE: {err}")?;
                continue;
            }
            for t in &u.tables {
                write!(f, "  {:<width$}", cell(t))?;
            }
            writeln!(f, "  {}", if u.is_match() { "ok" } else { "MISMATCH" })?;
        }
        for u in self
            .units
            .iter()
            .filter(|u| !u.is_match() && u.error.is_none())
        {
            writeln!(f, "unit {}:", u.unit)?;
            for t in u.tables.iter().filter(|t| !t.is_match()) {
                writeln!(
                    f,
                    "  {} -> {}: expected {}, found {}, missing {}, extra {}, differing {}",
                    t.table, t.fb_table, t.expected, t.found, t.missing, t.extra, t.differing
                )?;
                for s in &t.samples {
                    writeln!(f, "    {s}")?;
                }
            }
        }
        let bad = self.mismatched_units();
        if self.units.is_empty() {
            writeln!(f, "no units verified")
        } else if bad.is_empty() {
            writeln!(
                f,
                "all {} units match ({} rows compared equal)",
                self.units.len(),
                self.matching_rows()
            )
        } else {
            writeln!(
                f,
                "{} of {} units do NOT match: {bad:?}",
                bad.len(),
                self.units.len()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_flags_mismatches() {
        let ok = TableReport {
            table: "customers".into(),
            expected: 2,
            found: 2,
            matching: 2,
            ..Default::default()
        };
        let bad = TableReport {
            missing: 1,
            matching: 1,
            samples: vec!["missing ID=5".into()],
            ..ok.clone()
        };
        let r = VerifyReport {
            units: vec![
                UnitReport {
                    unit: 1,
                    error: None,
                    tables: vec![ok.clone()],
                },
                UnitReport {
                    unit: 2,
                    error: None,
                    tables: vec![bad],
                },
                UnitReport {
                    unit: 3,
                    error: Some("connection refused".into()),
                    tables: vec![],
                },
            ],
        };
        assert!(!r.is_match());
        assert_eq!(r.mismatched_units(), vec![2, 3]);
        let text = r.to_string();
        assert!(text.contains("missing ID=5"), "{text}");
        assert!(text.contains("UNREADABLE"), "{text}");
        assert!(text.contains("2 of 3 units do NOT match"), "{text}");
    }
}
