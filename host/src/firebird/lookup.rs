//! What an apply transaction reads before it writes, in as few round trips as the server allows:
//! the host-write flag with the unit's id range, the batch's correlation ids already in the ledger,
//! and the last applied sequence of every row the batch touches.

use std::collections::{HashMap, HashSet};

use rsfbclient::prelude::*;
use rsfbclient::{FbError, SqlType};

use super::apply::{Prepared, HOST_WRITE_FLAG};
use super::connect::FbConn;

/// Correlation ids per ledger lookup: one query for a default batch of 500 changes (Firebird 2.5
/// allows 1,500 items in a list).
const LEDGER_CHUNK: usize = 500;
/// Row keys per version lookup: one UNION branch (one context) each; a statement holds 256 contexts.
const VERSION_CHUNK: usize = 200;

/// Sets the host-write flag for this transaction (capture triggers skip flagged writes) and
/// returns this unit's id range `[low, high)` when id ranges are installed (SYNC_CAPTURE_INFO,
/// docs/upstream.md): only ids inside it may raise INDICE, so an id from PostgreSQL or another
/// unit never pushes the local allocator into someone else's range. One round trip for both.
pub(super) fn flag_host_write(conn: &mut FbConn) -> Result<Option<(i64, i64)>, FbError> {
    let row: Option<(Option<i64>, Option<i64>, Option<i64>)> = conn.query_first(
        &format!(
            "SELECT FIRST 1 RDB$SET_CONTEXT('USER_TRANSACTION', '{HOST_WRITE_FLAG}', '1'), I.ID_LOW, I.ID_HIGH \
             FROM RDB$DATABASE LEFT JOIN SYNC_CAPTURE_INFO I ON I.ID_LOW IS NOT NULL"
        ),
        (),
    )?;
    Ok(row.and_then(|(_, low, high)| Some((low?, high?))))
}

/// Which of the batch's correlation ids are already in the ledger.
pub(super) fn ledger_lookup(
    conn: &mut FbConn,
    batch: &[Prepared],
) -> Result<HashSet<String>, FbError> {
    let mut found = HashSet::new();
    for chunk in batch.chunks(LEDGER_CHUNK) {
        let size = lookup_size(chunk.len(), LEDGER_CHUNK);
        let sql = format!(
            "SELECT CORRELATION_ID FROM SYNC_CONTROL WHERE CORRELATION_ID IN ({})",
            vec!["?"; size].join(", ")
        );
        // Padded with the last id: a repeated list item changes nothing.
        let params: Vec<SqlType> = (0..size)
            .map(|i| SqlType::Text(chunk[i.min(chunk.len() - 1)].correlation_id.clone()))
            .collect();
        let rows: Vec<(String,)> = conn.query(&sql, params)?;
        found.extend(rows.into_iter().map(|(id,)| id.trim().to_string()));
    }
    Ok(found)
}

/// The last applied sequence of every row the batch touches. One branch per key, each an exact
/// primary-key probe, returning the key's position instead of the key itself: a `ROW_KEY` is a
/// wide column (800 bytes in the row buffer) and fetching it back cost more than the probes.
pub(super) fn row_versions<'a>(
    conn: &mut FbConn,
    batch: &'a [Prepared],
) -> Result<HashMap<(&'a str, &'a str), i64>, FbError> {
    let mut seen = HashSet::new();
    let keys: Vec<(&str, &str)> = batch
        .iter()
        .map(|c| (c.table.as_str(), c.output.row_key.as_str()))
        .filter(|key| seen.insert(*key))
        .collect();
    let mut versions = HashMap::new();
    for chunk in keys.chunks(VERSION_CHUNK) {
        let size = lookup_size(chunk.len(), VERSION_CHUNK);
        let sql = (0..size)
            .map(|i| {
                format!(
                    "SELECT {i}, SEQ FROM SYNC_ROW_VERSION WHERE TABLE_NAME = ? AND ROW_KEY = ?"
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        // Padded with the last key: its row then comes back more than once, harmlessly.
        let params: Vec<SqlType> = (0..size)
            .flat_map(|i| {
                let (table, key) = chunk[i.min(chunk.len() - 1)];
                [
                    SqlType::Text(table.to_string()),
                    SqlType::Text(key.to_string()),
                ]
            })
            .collect();
        let rows: Vec<(i64, i64)> = conn.query(&sql, params)?;
        for (position, seq) in rows {
            if let Some(&key) = usize::try_from(position).ok().and_then(|p| chunk.get(p)) {
                versions.insert(key, seq);
            }
        }
    }
    Ok(versions)
}

/// Lookup statements come in a few sizes (chunks are padded up), so a batch of any size reuses
/// prepared statements instead of preparing a new text for every length.
fn lookup_size(len: usize, max: usize) -> usize {
    [1, 4, 16, 64]
        .into_iter()
        .find(|&s| len <= s)
        .unwrap_or(max)
        .min(max)
        .max(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_sizes_are_few_and_cover_the_chunk() {
        assert_eq!(lookup_size(1, 200), 1);
        assert_eq!(lookup_size(3, 200), 4);
        assert_eq!(lookup_size(17, 200), 64);
        assert_eq!(lookup_size(65, 200), 200);
        assert_eq!(lookup_size(65, 500), 500);
        assert_eq!(lookup_size(200, 200), 200);
    }
}
