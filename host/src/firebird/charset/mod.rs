//! Text a unit's charset cannot hold, caught before the write and named: a change whose value
//! has a character outside the target column's charset (WIN1252, ISO8859_1 ...) would fail at
//! the server with "Cannot transliterate character between character sets", which names neither
//! the column nor the value. Before a change's statements run, each text parameter that feeds a
//! column (`col = ?`, a VALUES item that is `?`) is held against that column's charset, read
//! from the unit's RDB$ catalog and cached per table; the first that does not fit fails the
//! change with the table, the column, the value and the character. A value the check cannot map
//! (fed through an expression, a MERGE, a charset without an encoder) still reaches the server;
//! its transliteration error is then explained the same way from the statement's columns.

mod holds;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rsfbclient::prelude::*;
use rsfbclient::FbError;

pub use holds::{holds, holds_everything, Held};

use super::apply::Prepared;
use super::connect::FbConn;
use crate::model::{Statement, Value};
use crate::transform::{column_uses, Dialect};

/// How long a table's charsets are trusted before they are read again (a vendor's DDL).
const FRESH_FOR: Duration = Duration::from_secs(60);
/// Tables remembered at most (a bound on memory; the cache starts over past it).
const MAX_TABLES: usize = 1_024;

/// Column -> charset of one table's text columns whose charset cannot hold every character.
type Narrow = BTreeMap<String, String>;

/// Per connection: the narrow text columns of each table the applier has written, and the
/// connection charset (every text parameter passes through it too).
#[derive(Debug, Clone)]
pub struct TextColumns {
    connection: String,
    tables: HashMap<String, (Instant, Narrow)>,
}

impl Default for TextColumns {
    fn default() -> Self {
        TextColumns::new("UTF8")
    }
}

impl TextColumns {
    /// An empty cache for connections opened with `connection_charset`.
    pub fn new(connection_charset: &str) -> TextColumns {
        TextColumns {
            connection: connection_charset.to_ascii_uppercase(),
            tables: HashMap::new(),
        }
    }

    /// Forgets every table (after a reconnect, or a transliteration error the cache missed).
    pub fn forget(&mut self) {
        self.tables.clear();
    }

    /// The narrow text columns of `table`, from the cache or the catalog.
    fn of(&mut self, conn: &mut FbConn, table: &str) -> Result<&Narrow, FbError> {
        let fresh = self
            .tables
            .get(table)
            .is_some_and(|(at, _)| at.elapsed() < FRESH_FOR);
        if !fresh {
            if self.tables.len() >= MAX_TABLES {
                self.tables.clear();
            }
            let narrow = narrow_columns(conn, table)?;
            self.tables
                .insert(table.to_string(), (Instant::now(), narrow));
        }
        self.tables
            .get(table)
            .map(|(_, n)| n)
            .ok_or_else(|| FbError::Other(format!("charsets of {table} were not kept")))
    }
}

/// Reads the CHAR/VARCHAR/text BLOB columns of `table` whose charset cannot hold everything.
fn narrow_columns(conn: &mut FbConn, table: &str) -> Result<Narrow, FbError> {
    let rows: Vec<(String, String)> = conn.query(
        "SELECT TRIM(RF.RDB$FIELD_NAME), TRIM(CS.RDB$CHARACTER_SET_NAME) \
         FROM RDB$RELATION_FIELDS RF JOIN RDB$FIELDS F ON F.RDB$FIELD_NAME = RF.RDB$FIELD_SOURCE \
         JOIN RDB$CHARACTER_SETS CS \
         ON CS.RDB$CHARACTER_SET_ID = COALESCE(F.RDB$CHARACTER_SET_ID, 0) \
         WHERE RF.RDB$RELATION_NAME = ? AND (F.RDB$FIELD_TYPE IN (14, 37) \
           OR (F.RDB$FIELD_TYPE = 261 AND F.RDB$FIELD_SUB_TYPE = 1))",
        (table.to_string(),),
    )?;
    Ok(rows
        .into_iter()
        .filter(|(_, charset)| !holds_everything(charset))
        .collect())
}

/// Why `change` cannot be written as it is: the first text value that its column's charset (or
/// the connection's) cannot hold. `None` when every mapped value fits.
pub(super) fn misfit(
    conn: &mut FbConn,
    columns: &mut TextColumns,
    change: &Prepared,
) -> Result<Option<String>, FbError> {
    for statement in &change.output.statements {
        let texts = || {
            statement
                .params
                .iter()
                .enumerate()
                .filter_map(|(i, v)| match v {
                    Value::Text(s) if !s.is_ascii() => Some((i, s.as_str())),
                    _ => None,
                })
        };
        if texts().next().is_none() {
            continue;
        }
        // An unmapped shape (MERGE) still has its text held against the connection charset.
        let (table, uses) = column_uses(&statement.sql, Dialect::Firebird)
            .unwrap_or_else(|| (change.table.clone(), Vec::new()));
        let narrow = if uses.is_empty() {
            Narrow::new()
        } else {
            columns.of(conn, &table)?.clone()
        };
        for (i, text) in texts() {
            // Written (`col = ?`, VALUES) or compared (`WHERE col = ?`): both pass the charset.
            let column = uses
                .iter()
                .find(|u| u.param == Some(i))
                .map(|u| u.column.as_str());
            if let Some(charset) = column.and_then(|c| narrow.get(c)) {
                if let Held::Not(c) = holds(charset, text) {
                    return Ok(Some(reason(&table, column, text, c, charset, "unit's")));
                }
            }
            if let Held::Not(c) = holds(&columns.connection, text) {
                return Ok(Some(reason(
                    &table,
                    column,
                    text,
                    c,
                    &columns.connection,
                    "connection's ([firebird] charset)",
                )));
            }
        }
    }
    Ok(None)
}

fn reason(
    table: &str,
    column: Option<&str>,
    text: &str,
    c: char,
    charset: &str,
    whose: &str,
) -> String {
    let column = column.map(|c| format!(" column {c}")).unwrap_or_default();
    format!(
        "table {table}{column}: value {} has character {} that the {whose} charset {charset} \
         cannot hold; change the value in PostgreSQL or give the column a charset that holds it \
         (UTF8)",
        holds::quote(text),
        holds::describe(c)
    )
}

/// Whether a server error is a transliteration failure.
pub(super) fn is_transliteration(message: &str) -> bool {
    message.to_ascii_lowercase().contains("transliterate")
}

/// Explains a transliteration error of `change` (the check could not map the value): for each
/// statement, the text values its narrow columns cannot hold, naming the columns that may have
/// received them. Falls back to the server's message with the table's narrow columns.
pub(super) fn explain(
    conn: &mut FbConn,
    columns: &mut TextColumns,
    change: &Prepared,
    server: &str,
) -> String {
    columns.forget();
    let mut seen = Vec::new();
    for statement in &change.output.statements {
        let Some((table, uses)) =
            column_uses(&statement.sql, Dialect::Firebird).or_else(|| target_only(statement))
        else {
            continue;
        };
        let Ok(narrow) = columns.of(conn, &table).cloned() else {
            continue;
        };
        // Columns written through an expression, else every narrow column of the table.
        let mut candidates: Vec<(&String, &String)> = narrow
            .iter()
            .filter(|(name, _)| {
                uses.iter()
                    .any(|u| u.written && u.param.is_none() && &u.column == *name)
            })
            .collect();
        if candidates.is_empty() {
            candidates = narrow.iter().collect();
        }
        for value in &statement.params {
            let Value::Text(text) = value else { continue };
            for (column, charset) in &candidates {
                if let Held::Not(c) = holds(charset, text) {
                    let names: Vec<&str> = candidates
                        .iter()
                        .filter(|(_, cs)| cs == charset)
                        .map(|(n, _)| n.as_str())
                        .collect();
                    let column = if names.len() == 1 {
                        column.to_string()
                    } else {
                        format!("one of {}", names.join(", "))
                    };
                    return format!(
                        "{} (Firebird: {})",
                        reason(&table, Some(column.as_str()), text, c, charset, "unit's"),
                        server.replace('\n', " ")
                    );
                }
            }
        }
        seen.extend(
            candidates
                .iter()
                .map(|(n, cs)| format!("{table}.{n} ({cs})")),
        );
    }
    let known = if seen.is_empty() {
        String::new()
    } else {
        format!(" into one of {}", seen.join(", "))
    };
    format!(
        "a text value could not be stored{known}: {}",
        server.replace('\n', " ")
    )
}

/// The target of a statement the column map does not cover (MERGE INTO T ...).
fn target_only(statement: &Statement) -> Option<(String, Vec<crate::transform::ColumnUse>)> {
    let mut words = statement.sql.split_whitespace();
    let first = words.next()?;
    let second = words.next()?;
    if !(first.eq_ignore_ascii_case("MERGE") && second.eq_ignore_ascii_case("INTO")) {
        return None;
    }
    let table = words.next()?;
    let table = match table.strip_prefix('"') {
        Some(quoted) => quoted.trim_end_matches('"').to_string(),
        None => table.to_ascii_uppercase(),
    };
    Some((table, Vec::new()))
}
