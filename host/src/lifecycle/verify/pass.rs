//! The first pass over one chunk, on the unit's blocking thread: map the PostgreSQL rows through
//! the transform, compare checksums of the chunk's key range with the unit's, and bisect a
//! range that differs until it is small enough to read row by row. Its result is a list of
//! suspects, which [`super::recheck`] confirms.

use std::collections::HashSet;

use super::mapping::{CanonRow, FbKey, Mapping};
use super::unit::{self, Range, Sums};
use crate::firebird::FbConn;
use crate::transform::Pinned;

/// A key that may differ, with its PostgreSQL key when known.
#[derive(Debug, Clone)]
pub struct Suspect {
    /// Key at the unit.
    pub key: FbKey,
    /// PostgreSQL key (text per column); for a row only the unit has, the unit key's texts.
    pub pg_key: Option<Vec<String>>,
    /// `pg_key` is the unit key's texts (right when the table's keys map one to one).
    pub guessed: bool,
}

/// What one chunk's pass found.
#[derive(Debug, Default)]
pub struct ChunkResult {
    /// Rows expected.
    pub expected: u64,
    /// Rows the unit holds in the chunk's range.
    pub found: u64,
    /// Keys to recheck.
    pub suspects: Vec<Suspect>,
    /// PostgreSQL rows the transform refused: (PostgreSQL key, reason).
    pub unmappable: Vec<(Vec<String>, String)>,
    /// The last row's unit key (the next chunk's lower bound).
    pub last: Option<FbKey>,
    /// Every PostgreSQL key equals the unit key, column by column.
    pub identity: bool,
    /// Queries and bytes to and from the unit.
    pub queries: u64,
    /// Bytes of values read back.
    pub bytes: u64,
}

/// What to compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Values, by checksums and bisection.
    Full,
    /// Only which keys the unit holds beyond PostgreSQL's (load's extra count).
    Extras,
}

/// Inputs of one chunk's pass.
pub struct ChunkInput {
    /// PostgreSQL rows: key and image.
    pub rows: Vec<(Vec<String>, String)>,
    /// Exclusive lower unit key (the previous chunk's last).
    pub lo: Option<FbKey>,
    /// Whether this is the table's last chunk (its range is open above).
    pub last: bool,
    /// Unit id (for the transform).
    pub unit: i32,
    /// Rows at the bottom of a bisection.
    pub leaf: usize,
    /// Mode.
    pub mode: Mode,
}

/// Runs the pass of one chunk.
pub fn check(
    conn: &mut FbConn,
    mapping: &Mapping,
    pinned: &Pinned,
    input: ChunkInput,
) -> Result<ChunkResult, String> {
    let mut out = ChunkResult {
        identity: true,
        ..ChunkResult::default()
    };
    let mut expected: Vec<CanonRow> = Vec::with_capacity(input.rows.len());
    let mut pg_keys: Vec<Vec<String>> = Vec::with_capacity(input.rows.len());
    for (pg_key, image) in input.rows {
        match mapping.expected(pinned, input.unit, &image) {
            Ok(row) => {
                if let Some(prev) = expected.last() {
                    if prev.key >= row.key {
                        return Err(format!(
                            "table {}: the transform maps PostgreSQL keys to unit keys out of \
                             order \
                             ({} after {}); verify needs the unit key to follow the primary key",
                            mapping.table,
                            mapping.show_key(&row.key),
                            mapping.show_key(&prev.key)
                        ));
                    }
                }
                let texts: Vec<String> = row.key.iter().map(|k| k.text()).collect();
                out.identity &= texts == pg_key;
                expected.push(row);
                pg_keys.push(pg_key);
            }
            Err(e) => out.unmappable.push((pg_key, e)),
        }
    }
    out.expected = expected.len() as u64;
    out.last = expected.last().map(|r| r.key.clone()).or(input.lo.clone());
    let range = Range {
        lo: input.lo,
        hi: if input.last { None } else { out.last.clone() },
    };
    match input.mode {
        Mode::Extras => extras(conn, mapping, &expected, &range, &mut out)?,
        Mode::Full => bisect(
            conn, mapping, &expected, &pg_keys, range, input.leaf, &mut out,
        )?,
    }
    Ok(out)
}

fn extras(
    conn: &mut FbConn,
    mapping: &Mapping,
    expected: &[CanonRow],
    range: &Range,
    out: &mut ChunkResult,
) -> Result<(), String> {
    let keys = unit::keys(conn, mapping, range).map_err(|e| e.to_string())?;
    out.queries += 1;
    out.bytes += keys
        .iter()
        .map(|k| super::mapping::key_text(k).len() as u64)
        .sum::<u64>();
    out.found = keys.len() as u64;
    let wanted: HashSet<&FbKey> = expected.iter().map(|r| &r.key).collect();
    for key in keys.into_iter().filter(|k| !wanted.contains(k)) {
        let pg_key = Some(key.iter().map(|k| k.text()).collect());
        out.suspects.push(Suspect {
            key,
            pg_key,
            guessed: true,
        });
    }
    Ok(())
}

fn bisect(
    conn: &mut FbConn,
    mapping: &Mapping,
    expected: &[CanonRow],
    pg_keys: &[Vec<String>],
    range: Range,
    leaf: usize,
    out: &mut ChunkResult,
) -> Result<(), String> {
    let mut stack = vec![(range, 0, expected.len(), true)];
    while let Some((range, from, to, top)) = stack.pop() {
        let rows = &expected[from..to];
        let theirs = unit::sums(conn, mapping, &range).map_err(|e| e.to_string())?;
        out.queries += 1;
        out.bytes += 24;
        if top {
            out.found += theirs.count.max(0) as u64;
        }
        if Sums::of(rows, mapping) == theirs {
            continue;
        }
        if rows.len() > leaf.max(1) {
            let mid = rows.len() / 2;
            let split = rows[mid - 1].key.clone();
            stack.push((
                Range {
                    lo: Some(split.clone()),
                    hi: range.hi.clone(),
                },
                from + mid,
                to,
                false,
            ));
            stack.push((
                Range {
                    lo: range.lo,
                    hi: Some(split),
                },
                from,
                from + mid,
                false,
            ));
            continue;
        }
        let got = unit::rows(conn, mapping, &range).map_err(|e| e.to_string())?;
        out.queries += 1;
        out.bytes += got
            .iter()
            .flat_map(|r| r.values.iter())
            .map(|v| v.as_ref().map_or(1, |b| b.len() as u64))
            .sum::<u64>();
        let theirs: std::collections::HashMap<&FbKey, &CanonRow> =
            got.iter().map(|r| (&r.key, r)).collect();
        for (i, row) in rows.iter().enumerate() {
            if theirs.get(&row.key).is_none_or(|g| g.values != row.values) {
                out.suspects.push(Suspect {
                    key: row.key.clone(),
                    pg_key: Some(pg_keys[from + i].clone()),
                    guessed: false,
                });
            }
        }
        let ours: HashSet<&FbKey> = rows.iter().map(|r| &r.key).collect();
        for g in got.iter().filter(|g| !ours.contains(&g.key)) {
            out.suspects.push(Suspect {
                key: g.key.clone(),
                pg_key: Some(g.key.iter().map(|k| k.text()).collect()),
                guessed: true,
            });
        }
    }
    Ok(())
}
