//! The unit's side of verify, inside its Firebird: checksums of a key range (count and the two
//! hash sums, computed by the server), the canonical rows or only the keys of a range, rows by
//! key, and whether the unit's ledger holds a change yet. Synchronous: run on a blocking thread.

use rsfbclient::prelude::*;
use rsfbclient::{FbError, SqlType};

use super::canon::{fb_terms, Kind};
use super::mapping::{CanonRow, FbKey, KeyVal, Mapping};
use crate::firebird::FbConn;

/// A key range at the unit: after `lo` (exclusive) up to `hi` (inclusive); `None` is open.
#[derive(Debug, Clone, Default)]
pub struct Range {
    /// Exclusive lower bound.
    pub lo: Option<FbKey>,
    /// Inclusive upper bound.
    pub hi: Option<FbKey>,
}

/// A range's checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sums {
    /// Rows.
    pub count: i64,
    /// Forward hash sum.
    pub a: i64,
    /// Second hash sum.
    pub b: i64,
}

impl Sums {
    /// The checksum of canonical rows computed on the host.
    pub fn of(rows: &[CanonRow], mapping: &Mapping) -> Sums {
        rows.iter().fold(Sums::default(), |s, r| {
            let (a, b) = r.sums(mapping);
            Sums {
                count: s.count + 1,
                a: s.a.wrapping_add(a),
                b: s.b.wrapping_add(b),
            }
        })
    }
}

fn col(mapping: &Mapping, i: usize) -> String {
    format!("\"{}\"", mapping.columns[i].name.replace('"', "\"\""))
}

fn table(mapping: &Mapping) -> String {
    format!("\"{}\"", mapping.fb_table.replace('"', "\"\""))
}

fn key_expr(mapping: &Mapping) -> String {
    mapping
        .key
        .iter()
        .map(|&i| mapping.columns[i].kind.fb_expr(&col(mapping, i)))
        .collect::<Vec<_>>()
        .join(" || '|' || ")
}

fn param(v: &KeyVal) -> SqlType {
    match v {
        KeyVal::Int(i) => SqlType::Integer(*i),
        KeyVal::Text(s) => SqlType::Text(s.clone()),
    }
}

/// `(k1 > ?) OR (k1 = ? AND k2 > ?)` style bounds, with their parameters.
fn bound(
    mapping: &Mapping,
    key: &[KeyVal],
    strict: &str,
    last: &str,
    out: &mut Vec<SqlType>,
) -> String {
    let mut ors = Vec::new();
    for i in 0..key.len() {
        let mut ands = Vec::new();
        for (j, v) in key.iter().enumerate().take(i) {
            ands.push(format!("{} = ?", col(mapping, mapping.key[j])));
            out.push(param(v));
        }
        let op = if i + 1 == key.len() { last } else { strict };
        ands.push(format!("{} {op} ?", col(mapping, mapping.key[i])));
        out.push(param(&key[i]));
        ors.push(format!("({})", ands.join(" AND ")));
    }
    format!("({})", ors.join(" OR "))
}

fn range_where(mapping: &Mapping, range: &Range, params: &mut Vec<SqlType>) -> String {
    let mut parts = Vec::new();
    if let Some(lo) = &range.lo {
        parts.push(bound(mapping, lo, ">", ">", params));
    }
    if let Some(hi) = &range.hi {
        parts.push(bound(mapping, hi, "<", "<=", params));
    }
    if parts.is_empty() {
        "1 = 1".into()
    } else {
        parts.join(" AND ")
    }
}

/// The checksum of a range, computed by the unit's server.
pub fn sums(conn: &mut FbConn, mapping: &Mapping, range: &Range) -> Result<Sums, FbError> {
    let key = key_expr(mapping);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (i, c) in mapping.columns.iter().enumerate() {
        let (x, y) = fb_terms(c.kind, &key, &col(mapping, i), i);
        a.push(x);
        b.push(y);
    }
    let mut params = Vec::new();
    let filter = range_where(mapping, range, &mut params);
    let sql = format!(
        "SELECT COUNT(*), SUM({}), SUM({}) FROM {} WHERE {filter}",
        a.join(" + "),
        b.join(" + "),
        table(mapping)
    );
    let row: Option<(i64, Option<i64>, Option<i64>)> = conn.query_first(&sql, params)?;
    let (count, a, b) = row.unwrap_or((0, None, None));
    Ok(Sums {
        count,
        a: a.unwrap_or(0),
        b: b.unwrap_or(0),
    })
}

fn select_list(mapping: &Mapping) -> String {
    mapping
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| c.kind.fb_expr(&col(mapping, i)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn order_by(mapping: &Mapping) -> String {
    mapping
        .key
        .iter()
        .map(|&i| col(mapping, i))
        .collect::<Vec<_>>()
        .join(", ")
}

fn read_rows(
    conn: &mut FbConn,
    mapping: &Mapping,
    sql: &str,
    params: Vec<SqlType>,
) -> Result<Vec<CanonRow>, FbError> {
    let rows: Vec<rsfbclient::Row> = conn.query(sql, params)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut values = Vec::with_capacity(mapping.columns.len());
        for (i, c) in mapping.columns.iter().enumerate() {
            let v: Option<Vec<u8>> = if c.kind == Kind::Blob {
                row.get::<Option<Vec<u8>>>(i)?
            } else {
                row.get::<Option<String>>(i)?.map(String::into_bytes)
            };
            values.push(v);
        }
        let key = mapping
            .key_of(&values)
            .map_err(|e| FbError::Other(format!("{}: {e}", mapping.fb_table)))?;
        out.push(CanonRow { key, values });
    }
    Ok(out)
}

/// The canonical rows of a range, in key order.
pub fn rows(conn: &mut FbConn, mapping: &Mapping, range: &Range) -> Result<Vec<CanonRow>, FbError> {
    let mut params = Vec::new();
    let filter = range_where(mapping, range, &mut params);
    let sql = format!(
        "SELECT {} FROM {} WHERE {filter} ORDER BY {}",
        select_list(mapping),
        table(mapping),
        order_by(mapping)
    );
    read_rows(conn, mapping, &sql, params)
}

/// Only the keys of a range, in key order.
pub fn keys(conn: &mut FbConn, mapping: &Mapping, range: &Range) -> Result<Vec<FbKey>, FbError> {
    let mut params = Vec::new();
    let filter = range_where(mapping, range, &mut params);
    let list: Vec<String> = mapping
        .key
        .iter()
        .map(|&i| mapping.columns[i].kind.fb_expr(&col(mapping, i)))
        .collect();
    let sql = format!(
        "SELECT {} FROM {} WHERE {filter} ORDER BY {}",
        list.join(", "),
        table(mapping),
        order_by(mapping)
    );
    let rows: Vec<rsfbclient::Row> = conn.query(&sql, params)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut key = Vec::with_capacity(mapping.key.len());
        for (n, &i) in mapping.key.iter().enumerate() {
            let text: String = row.get::<Option<String>>(n)?.unwrap_or_default();
            key.push(match mapping.columns[i].kind {
                Kind::Int => KeyVal::Int(text.parse().unwrap_or_default()),
                _ => KeyVal::Text(text),
            });
        }
        out.push(key);
    }
    Ok(out)
}

/// Rows by key (absent keys are simply not returned).
pub fn rows_by_keys(
    conn: &mut FbConn,
    mapping: &Mapping,
    keys: &[FbKey],
) -> Result<Vec<CanonRow>, FbError> {
    let mut out = Vec::new();
    for chunk in keys.chunks(50) {
        let mut params = Vec::new();
        let ors: Vec<String> = chunk
            .iter()
            .map(|key| {
                let ands: Vec<String> = key
                    .iter()
                    .enumerate()
                    .map(|(j, v)| {
                        params.push(param(v));
                        format!("{} = ?", col(mapping, mapping.key[j]))
                    })
                    .collect();
                format!("({})", ands.join(" AND "))
            })
            .collect();
        let sql = format!(
            "SELECT {} FROM {} WHERE {}",
            select_list(mapping),
            table(mapping),
            ors.join(" OR ")
        );
        out.extend(read_rows(conn, mapping, &sql, params)?);
    }
    Ok(out)
}

/// Whether the unit's ledger holds this correlation id (the unit applied it, or skipped it as
/// stale).
pub fn applied(conn: &mut FbConn, correlation_id: &str) -> Result<bool, FbError> {
    let row: Option<(i64,)> = conn.query_first(
        "SELECT COUNT(*) FROM SYNC_CONTROL WHERE CORRELATION_ID = ?",
        (correlation_id.to_string(),),
    )?;
    Ok(row.is_some_and(|(n,)| n > 0))
}
