//! The unit's own triggers on one replicated table: what each writes (source and
//! RDB$DEPENDENCIES), which of them fire on ponte's writes with effects PostgreSQL already sends,
//! and the generator that feeds the table's key.

use std::collections::BTreeSet;

use rsfbclient::FbError;

use super::{Finding, Report, Severity};
use crate::firebird::{FbConn, HOST_WRITE_FLAG};
use crate::legacy::catalog::{dependencies, primary_key, triggers_on, UnitTrigger};
use crate::legacy::psql::{effects, Effects};
use crate::legacy::targets::Replicated;

/// What one trigger does that replication cares about.
#[derive(Debug, Default)]
struct Harm {
    replicated_writes: Vec<String>,
    stamped: Vec<String>,
    raised_generators: Vec<String>,
}

impl Harm {
    fn is_empty(&self) -> bool {
        self.replicated_writes.is_empty()
            && self.stamped.is_empty()
            && self.raised_generators.is_empty()
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.replicated_writes.is_empty() {
            parts.push(format!(
                "writes replicated table(s) {}",
                self.replicated_writes.join(", ")
            ));
        }
        if !self.stamped.is_empty() {
            parts.push(format!(
                "overwrites replicated column(s) {}",
                self.stamped.join(", ")
            ));
        }
        if !self.raised_generators.is_empty() {
            parts.push(format!(
                "advances generator(s) ponte raises {}",
                self.raised_generators.join(", ")
            ));
        }
        parts.join("; ")
    }
}

fn harm(e: &Effects, r: &Replicated, all: &[Replicated]) -> Harm {
    let replicated_tables: BTreeSet<String> = all.iter().map(|t| t.unit_table.clone()).collect();
    let raised: BTreeSet<String> = all.iter().filter_map(|t| t.generator.clone()).collect();
    let is_replicated_column = |c: &str| {
        r.columns
            .as_ref()
            .is_none_or(|cols| cols.contains_key(&c.to_ascii_uppercase()))
    };
    Harm {
        replicated_writes: e
            .writes
            .iter()
            .filter(|w| replicated_tables.contains(&w.to_ascii_uppercase()))
            .cloned()
            .collect(),
        stamped: e
            .assigns
            .iter()
            .filter(|a| !a.only_if_null && is_replicated_column(&a.column))
            .map(|a| format!("{}.{}", r.unit_table, a.column))
            .collect(),
        raised_generators: e
            .generators
            .iter()
            .filter(|g| raised.contains(&g.to_ascii_uppercase()))
            .cloned()
            .collect(),
    }
}

fn inventory_line(t: &UnitTrigger, e: Option<&Effects>, deps: &[(String, i64)]) -> String {
    let state = if t.active { "" } else { " INACTIVE" };
    let mut line = format!(
        "{} {} ({} POSITION {}{state})",
        t.relation,
        t.name,
        t.describe(),
        t.position
    );
    let generators: Vec<&str> = deps
        .iter()
        .filter(|(_, kind)| *kind == 14)
        .map(|(n, _)| n.as_str())
        .collect();
    match e {
        Some(e) => {
            let writes: Vec<&str> = e.writes.iter().map(String::as_str).collect();
            let assigns: Vec<String> = e
                .assigns
                .iter()
                .map(|a| format!("NEW.{}", a.column))
                .collect();
            line.push_str(&format!(
                ": writes [{}], assigns [{}], generators [{}]{}",
                writes.join(", "),
                assigns.join(", "),
                generators.join(", "),
                if e.tests_flag {
                    ", tests ponte's flag"
                } else {
                    ""
                }
            ));
        }
        None => line.push_str(": no source stored"),
    }
    line
}

/// Adds the trigger findings of one replicated table to `report`.
pub(super) fn examine(
    conn: &mut FbConn,
    r: &Replicated,
    all: &[Replicated],
    report: &mut Report,
) -> Result<(), FbError> {
    let key = primary_key(conn, &r.unit_table)?;
    let mut key_generators: Vec<(String, String)> = Vec::new();
    for t in triggers_on(conn, &r.unit_table)? {
        let deps = dependencies(conn, &t.name)?;
        let read = t.source.as_deref().map(|s| effects(s, HOST_WRITE_FLAG));
        let parsed = match &read {
            Some(Ok(e)) => Some(e),
            _ => None,
        };
        report.inventory.push(inventory_line(&t, parsed, &deps));
        if !t.active {
            continue;
        }
        let finding = |text: String| Finding {
            severity: Severity::Finding,
            table: r.name.clone(),
            subject: format!("trigger {}", t.name),
            text,
        };
        let e = match read {
            None => {
                let writes: Vec<String> = deps
                    .iter()
                    .filter(|(n, kind)| *kind == 0 && all.iter().any(|a| &a.unit_table == n))
                    .map(|(n, _)| n.clone())
                    .collect();
                report.findings.push(finding(format!(
                    "{} fires on ponte's writes and has no stored source: what it writes cannot \
                     be read (it depends on {writes:?}) and it cannot be guarded; ask the vendor \
                     for its source",
                    t.describe()
                )));
                continue;
            }
            Some(Err(why)) => {
                report
                    .findings
                    .push(finding(format!("its source cannot be read: {why}")));
                continue;
            }
            Some(Ok(e)) => e,
        };
        for a in &e.assigns {
            if let Some(g) = &a.generator {
                if key.iter().any(|k| k.eq_ignore_ascii_case(&a.column)) {
                    key_generators.push((g.to_ascii_uppercase(), t.name.clone()));
                }
            }
        }
        if e.tests_flag {
            continue;
        }
        let harm = harm(&e, r, all);
        let how = if r.guard {
            "`unit_triggers = \"guard\"` is set: run `ponte migrate` to apply it".to_string()
        } else {
            format!(
                "guard it: `ponte unit-triggers guard --unit {} --trigger {}` or \
                 `unit_triggers = \"guard\"` in [tables.{}]",
                report.unit, t.name, r.name
            )
        };
        if !harm.is_empty() {
            report.findings.push(finding(format!(
                "{} fires on ponte's writes and {}, without testing ponte's apply flag: every \
                 replicated change repeats that at the unit on top of what PostgreSQL sends, and \
                 the unit diverges; {how}",
                t.describe(),
                harm.describe()
            )));
        } else if e.dynamic_sql {
            report.findings.push(finding(format!(
                "{} fires on ponte's writes and runs EXECUTE STATEMENT: what it writes cannot be \
                 read from its source; {how}",
                t.describe()
            )));
        } else if !e.writes.is_empty() || !e.procedures.is_empty() {
            let procs: Vec<&str> = e.procedures.iter().map(String::as_str).collect();
            let writes: Vec<&str> = e.writes.iter().map(String::as_str).collect();
            report.findings.push(Finding {
                severity: Severity::Note,
                table: r.name.clone(),
                subject: format!("trigger {}", t.name),
                text: format!(
                    "fires on ponte's writes; writes local (not replicated) table(s) [{}], calls \
                     procedure(s) [{}] (not analysed)",
                    writes.join(", "),
                    procs.join(", ")
                ),
            });
        }
    }
    for (generator, trigger) in key_generators {
        if r.generator.as_deref() != Some(generator.as_str()) {
            report.findings.push(Finding {
                severity: Severity::Finding,
                table: r.name.clone(),
                subject: format!("key {}.{}", r.unit_table, key.join(", ")),
                text: format!(
                    "is fed by generator {generator} (trigger {trigger}) and the config does not \
                     declare it: after replicated rows arrive the generator stays behind them \
                     and the site's next insert collides; add `generator = \"{generator}\"` to \
                     [tables.{}]",
                    r.name
                ),
            });
        }
    }
    Ok(())
}
