//! What verify found, per unit and table: counts, the first keys and columns of each kind of
//! difference, the keys repair needs, and how much was read from the unit.

use serde::Serialize;

/// Keys kept per kind for repair (the counts go on past it).
pub const KEPT_KEYS: usize = 100_000;

/// One table of one unit.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableVerify {
    /// Source table.
    pub table: String,
    /// Firebird table.
    pub fb_table: String,
    /// Rows PostgreSQL says the unit must hold.
    pub expected: u64,
    /// Rows the unit holds.
    pub found: u64,
    /// Expected rows the unit lacks.
    pub missing: u64,
    /// Unit rows PostgreSQL does not have.
    pub extra: u64,
    /// Rows whose values differ.
    pub differing: u64,
    /// Rows still changing after the rechecks (a change in flight each time): not counted as
    /// differences.
    pub unsettled: u64,
    /// PostgreSQL rows the transform refuses (each also counted as missing or differing).
    pub unmappable: u64,
    /// First differences, one line each (`missing ID=5`, `differs ID=3: PRECO pg=.. fb=..`).
    pub samples: Vec<String>,
    /// PostgreSQL keys (text per column) of missing and differing rows, for repair.
    #[serde(skip)]
    pub repair_keys: Vec<Vec<String>>,
    /// Unit keys (text per column) of extra rows, for repair --delete-extra.
    #[serde(skip)]
    pub extra_keys: Vec<Vec<String>>,
    /// Checksum queries sent to the unit.
    pub unit_queries: u64,
    /// Bytes of values read back from the unit (checksums count 24 bytes each).
    pub unit_bytes: u64,
    /// A note on the recheck (e.g. the unit did not apply past a change in time).
    pub note: Option<String>,
    /// Why the table could not be verified.
    pub error: Option<String>,
    /// Wall time.
    pub seconds: f64,
}

impl TableVerify {
    /// No difference and no error.
    pub fn is_clean(&self) -> bool {
        self.error.is_none() && self.missing == 0 && self.extra == 0 && self.differing == 0
    }

    /// Records one sample line (bounded).
    pub fn sample(&mut self, max: usize, line: String) {
        if self.samples.len() < max {
            self.samples.push(line);
        }
    }
}

/// One unit.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UnitVerify {
    /// Unit id.
    pub unit: i32,
    /// Per table.
    pub tables: Vec<TableVerify>,
}

impl UnitVerify {
    /// Every table clean.
    pub fn is_clean(&self) -> bool {
        self.tables.iter().all(TableVerify::is_clean)
    }

    /// Rows that could not be confirmed either way (still changing, or the unit behind).
    pub fn unsettled(&self) -> u64 {
        self.tables.iter().map(|t| t.unsettled).sum()
    }
}

impl std::fmt::Display for UnitVerify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for t in &self.tables {
            if let Some(e) = &t.error {
                writeln!(f, "unit {} {:<20} ERROR {e}", self.unit, t.table)?;
                continue;
            }
            let verdict = if t.is_clean() { "ok" } else { "DIFFERS" };
            let rate = t.expected.max(t.found) as f64 / t.seconds.max(0.001);
            writeln!(
                f,
                "unit {} {:<20} {verdict}: expected {} found {} missing {} extra {} \
                 differing {}{}{} \
                 ({:.1}s, {:.0} rows/s, {} bytes from the unit)",
                self.unit,
                t.table,
                t.expected,
                t.found,
                t.missing,
                t.extra,
                t.differing,
                extra_count(" unsettled", t.unsettled),
                extra_count(" unmappable", t.unmappable),
                t.seconds,
                rate,
                t.unit_bytes
            )?;
            for s in &t.samples {
                writeln!(f, "    {s}")?;
            }
            if let Some(note) = &t.note {
                writeln!(f, "    note: {note}")?;
            }
        }
        Ok(())
    }
}

fn extra_count(label: &str, n: u64) -> String {
    if n > 0 {
        format!("{label} {n}")
    } else {
        String::new()
    }
}
