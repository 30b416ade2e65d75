//! What one replicated table's unit enforces that PostgreSQL does not: NOT NULL columns fed by
//! nullable PostgreSQL columns (or by nothing), CHECKs PostgreSQL has no counterpart for (a CHECK
//! with a subquery never has one), and text columns in a charset narrower than PostgreSQL's.

use std::collections::BTreeSet;

use rsfbclient::FbError;

use super::{Finding, Report, Severity};
use crate::firebird::{holds_everything, table_columns, FbConn};
use crate::legacy::catalog::{checks, text_charsets};
use crate::legacy::pgcat::PgFacts;
use crate::legacy::psql::{tokenize, Tok};
use crate::legacy::targets::Replicated;

/// The identifiers an expression mentions, upper case.
fn words(text: &str) -> BTreeSet<String> {
    tokenize(text)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| match t.tok {
            Tok::Word(w) => Some(w),
            Tok::Quoted(q) => Some(q.to_ascii_uppercase()),
            _ => None,
        })
        .collect()
}

/// The PostgreSQL column that feeds unit column `column`.
fn pg_source<'a>(
    r: &Replicated,
    facts: &'a PgFacts,
    column: &str,
) -> Option<&'a crate::legacy::pgcat::PgColumn> {
    let key = match &r.columns {
        Some(map) => map.get(column)?.clone(),
        None => column.to_string(),
    };
    facts
        .columns
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(&key))
}

/// Adds the constraint findings of one replicated table to `report`.
pub(super) fn examine(
    conn: &mut FbConn,
    r: &Replicated,
    facts: &PgFacts,
    report: &mut Report,
) -> Result<(), FbError> {
    let Some(columns) = table_columns(conn, &r.unit_table)? else {
        return Ok(());
    };
    let mut push = |severity, subject: String, text: String| {
        report.findings.push(Finding {
            severity,
            table: r.name.clone(),
            subject,
            text,
        })
    };
    let known = !facts.columns.is_empty();
    for c in columns.iter().filter(|c| c.not_null && !c.computed) {
        let subject = format!("column {}.{}", r.unit_table, c.name);
        match pg_source(r, facts, &c.name) {
            Some(pg) if pg.nullable => push(
                Severity::Finding,
                subject,
                format!(
                    "the unit enforces NOT NULL and PostgreSQL column {}.{} allows NULL: a change \
                     with NULL there is dead-lettered; add NOT NULL in PostgreSQL or drop it at \
                     the unit",
                    r.pg_table, pg.name
                ),
            ),
            None if known && !c.has_default && r.columns.is_some() => push(
                Severity::Finding,
                subject,
                "is NOT NULL without a default and nothing replicated feeds it: every insert \
                 ponte makes fails; map it or give it a default"
                    .into(),
            ),
            _ => {}
        }
    }
    let pg_checks: Vec<BTreeSet<String>> = facts.checks.iter().map(|c| words(c)).collect();
    let names: BTreeSet<String> = columns.iter().map(|c| c.name.clone()).collect();
    for (name, source) in checks(conn, &r.unit_table)? {
        let used = words(&source);
        let subject = format!("check {name}");
        if used.contains("SELECT") {
            push(
                Severity::Finding,
                subject,
                format!(
                    "`{}` reads other rows (a subquery); PostgreSQL cannot enforce the same, so a \
                     change it refuses is dead-lettered at this unit only. Make sure the data \
                     PostgreSQL sends satisfies it, or relax it at the unit",
                    source.trim()
                ),
            );
            continue;
        }
        let cols: BTreeSet<String> = used.intersection(&names).cloned().collect();
        let covered = pg_checks.iter().any(|p| {
            cols.iter().all(|c| {
                let pg = pg_source(r, facts, c).map(|p| p.name.to_ascii_uppercase());
                pg.is_some_and(|n| p.contains(&n))
            })
        });
        if !covered {
            push(
                Severity::Finding,
                subject,
                format!(
                    "the unit enforces `{}` and PostgreSQL has no CHECK on {}: a change breaking \
                     it is dead-lettered at the unit; add the same CHECK in PostgreSQL",
                    source.trim(),
                    cols.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
    for (column, charset) in text_charsets(conn, &r.unit_table)? {
        if holds_everything(&charset) || pg_source(r, facts, &column).is_none() {
            continue;
        }
        push(
            Severity::Note,
            format!("column {}.{column}", r.unit_table),
            format!(
                "is {charset}: PostgreSQL text can hold characters {charset} cannot (e.g. emoji, \
                 CJK); a change with one is dead-lettered naming this column, the value and the \
                 character. Keep such characters out in PostgreSQL (a CHECK), or make the column \
                 UTF8 at the unit"
            ),
        );
    }
    Ok(())
}
