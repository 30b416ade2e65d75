//! What a unit should hold for a PostgreSQL row: the row is run through the table's transform
//! (as an update: the full image), and the values its insert-shaped statement binds become the
//! expected Firebird row, column by column, in canonical form ([`super::canon`]).

use std::cmp::Ordering;

use rsfbclient::prelude::*;
use rsfbclient::FbError;

use super::canon::{self, Kind};
use crate::firebird::{table_columns, FbConn};
use crate::model::{Change, Direction, Op, Output};
use crate::transform::{column_uses, Dialect, Pinned};

/// One compared Firebird column.
#[derive(Debug, Clone)]
pub struct FbColumn {
    /// Column name.
    pub name: String,
    /// Its canonical form.
    pub kind: Kind,
    /// Which parameter of the mapped statement feeds it.
    pub param: usize,
}

/// How a table's rows map onto the unit's table.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// The source table (`[tables.X]`).
    pub table: String,
    /// The Firebird table written.
    pub fb_table: String,
    /// Which of the transform's statements writes it.
    pub statement: usize,
    /// Compared columns (those fed by exactly one parameter).
    pub columns: Vec<FbColumn>,
    /// Positions in `columns` of the Firebird primary key, in key order.
    pub key: Vec<usize>,
}

/// A primary-key value at the unit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyVal {
    /// Integer key column.
    Int(i64),
    /// Any other key column, by its canonical text.
    Text(String),
}

impl KeyVal {
    /// The canonical text.
    pub fn text(&self) -> String {
        match self {
            KeyVal::Int(v) => v.to_string(),
            KeyVal::Text(s) => s.clone(),
        }
    }
}

impl PartialOrd for KeyVal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for KeyVal {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (KeyVal::Int(a), KeyVal::Int(b)) => a.cmp(b),
            (a, b) => a.text().cmp(&b.text()),
        }
    }
}

/// A unit row key.
pub type FbKey = Vec<KeyVal>;

/// A row in canonical form (either side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonRow {
    /// Its key at the unit.
    pub key: FbKey,
    /// One value per compared column (None: NULL).
    pub values: Vec<Option<Vec<u8>>>,
}

impl CanonRow {
    /// The key text the checksums prefix (key values joined with `|`).
    pub fn key_text(&self) -> Vec<u8> {
        key_text(&self.key)
    }

    /// The row's two checksum terms.
    pub fn sums(&self, mapping: &Mapping) -> (i64, i64) {
        let key = self.key_text();
        let mut sums = (0i64, 0i64);
        for (i, (col, value)) in mapping.columns.iter().zip(&self.values).enumerate() {
            let text = canon::hashed_text(&key, i, value.as_deref());
            let (a, b) = canon::terms(col.kind, &text);
            sums.0 = sums.0.wrapping_add(a);
            sums.1 = sums.1.wrapping_add(b);
        }
        sums
    }
}

/// Key values joined with `|`.
pub fn key_text(key: &[KeyVal]) -> Vec<u8> {
    key.iter()
        .map(KeyVal::text)
        .collect::<Vec<_>>()
        .join("|")
        .into_bytes()
}

/// Runs the transform on one row image (as an update of `unit`).
pub fn transform(pinned: &Pinned, table: &str, unit: i32, payload: &str) -> Result<Output, String> {
    let change = Change {
        table: table.to_string(),
        op: Op::Update,
        direction: Direction::Downstream,
        unit,
        correlation_id: uuid::Uuid::nil().to_string(),
        sequence: 0,
        payload: payload.to_string(),
        settings: "{}".into(),
    };
    pinned.call(&change).map_err(|e| e.to_string())
}

/// Learns the mapping from one sample row: the first statement that writes a table by plain
/// `?` values, and that table's columns and primary key at the unit.
pub fn discover(
    conn: &mut FbConn,
    pinned: &Pinned,
    table: &str,
    unit: i32,
    sample: &str,
) -> Result<Mapping, String> {
    let output = transform(pinned, table, unit, sample)
        .map_err(|e| format!("table {table}: the transform refuses a sample row: {e}"))?;
    let (statement, fb_table, uses) = output
        .statements
        .iter()
        .enumerate()
        .find_map(|(i, s)| {
            let (t, uses) = column_uses(&s.sql, Dialect::Firebird)?;
            let written = uses.iter().any(|u| u.written && u.param.is_some());
            written.then_some((i, t, uses))
        })
        .ok_or_else(|| {
            format!(
                "table {table}: no statement of transform {} writes plain `?` values \
                 (verify compares INSERT / UPDATE OR INSERT / UPDATE shapes)",
                pinned.version()
            )
        })?;
    let described = table_columns(conn, &fb_table)
        .map_err(|e| format!("reading the columns of {fb_table}: {e}"))?
        .ok_or_else(|| format!("table {table}: the unit has no table {fb_table}"))?;
    let mut columns = Vec::new();
    for u in uses.iter().filter(|u| u.written) {
        let (Some(param), Some(c)) = (u.param, described.iter().find(|c| c.name == u.column))
        else {
            continue;
        };
        let Some(kind) = Kind::of(c.field_type, c.sub_type, c.scale, c.char_length) else {
            continue;
        };
        if columns.iter().all(|k: &FbColumn| k.name != c.name) {
            columns.push(FbColumn {
                name: c.name.clone(),
                kind,
                param,
            });
        }
    }
    let pk =
        primary_key(conn, &fb_table).map_err(|e| format!("reading the key of {fb_table}: {e}"))?;
    if pk.is_empty() {
        return Err(format!(
            "table {table}: the unit's table {fb_table} has no primary key"
        ));
    }
    let mut key = Vec::new();
    for name in &pk {
        let at = columns
            .iter()
            .position(|c| &c.name == name)
            .ok_or_else(|| {
                format!("table {table}: the transform does not write key column {fb_table}.{name}")
            })?;
        key.push(at);
    }
    Ok(Mapping {
        table: table.to_string(),
        fb_table,
        statement,
        columns,
        key,
    })
}

/// The primary key columns of a Firebird table, in key order.
fn primary_key(conn: &mut FbConn, table: &str) -> Result<Vec<String>, FbError> {
    let rows: Vec<(String,)> = conn.query(
        "SELECT TRIM(S.RDB$FIELD_NAME) FROM RDB$RELATION_CONSTRAINTS C \
         JOIN RDB$INDEX_SEGMENTS S ON S.RDB$INDEX_NAME = C.RDB$INDEX_NAME \
         WHERE C.RDB$RELATION_NAME = ? AND C.RDB$CONSTRAINT_TYPE = 'PRIMARY KEY' \
         ORDER BY S.RDB$FIELD_POSITION",
        (table.to_string(),),
    )?;
    Ok(rows.into_iter().map(|(n,)| n).collect())
}

impl Mapping {
    /// The canonical row the unit should hold for one PostgreSQL image.
    pub fn expected(&self, pinned: &Pinned, unit: i32, payload: &str) -> Result<CanonRow, String> {
        let output = transform(pinned, &self.table, unit, payload)?;
        let statement = output.statements.get(self.statement).ok_or_else(|| {
            "the transform returned fewer statements than for the sample".to_string()
        })?;
        let mut values = Vec::with_capacity(self.columns.len());
        for col in &self.columns {
            let value = statement
                .params
                .get(col.param)
                .ok_or_else(|| format!("no parameter for column {}", col.name))?;
            let canon = col
                .kind
                .canon(value)
                .map_err(|e| format!("column {}.{}: {e}", self.fb_table, col.name))?;
            values.push(canon);
        }
        let key = self.key_of(&values)?;
        Ok(CanonRow { key, values })
    }

    /// The key of a row from its canonical values.
    pub fn key_of(&self, values: &[Option<Vec<u8>>]) -> Result<FbKey, String> {
        self.key
            .iter()
            .map(|&i| {
                let col = &self.columns[i];
                let text = values
                    .get(i)
                    .and_then(|v| v.as_deref())
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .ok_or_else(|| format!("key column {} is NULL", col.name))?;
                Ok(match col.kind {
                    Kind::Int => KeyVal::Int(
                        text.parse()
                            .map_err(|_| format!("key column {} = `{text}`", col.name))?,
                    ),
                    _ => KeyVal::Text(text),
                })
            })
            .collect()
    }

    /// `name=value` of a key, for reports.
    pub fn show_key(&self, key: &[KeyVal]) -> String {
        self.key
            .iter()
            .zip(key)
            .map(|(&i, v)| format!("{}={}", self.columns[i].name, v.text()))
            .collect::<Vec<_>>()
            .join(",")
    }
}
