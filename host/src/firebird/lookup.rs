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

/// Session variable holding the trigger epoch a connection last saw (PONTE_TRIGGER_EPOCH).
const SEEN_EPOCH: &str = "PONTE_TRIGGER_EPOCH";

/// What the first statement of an apply transaction found.
pub(super) enum HostWrite {
    /// Flagged; this unit's id range `[low, high)` when id ranges are installed.
    Flagged(Option<(i64, i64)>),
    /// A trigger of the unit changed since this connection last applied: its cached statements
    /// would run the old trigger bodies, so nothing may be written on it.
    TriggersChanged,
}

/// Sets the host-write flag for this transaction (capture triggers and guarded legacy triggers
/// skip flagged writes), locks the trigger epoch row and returns this unit's id range when id
/// ranges are installed (SYNC_CAPTURE_INFO, docs/upstream.md): only ids inside it may raise
/// INDICE, so an id from PostgreSQL or another unit never pushes the local allocator into
/// someone else's range. One round trip for all three. The lock makes `unit-triggers guard`
/// wait for the batch in flight, and a raised epoch means the guard committed since this
/// connection's statements were prepared (migrations/firebird/0004_trigger_epoch.sql).
pub(super) fn flag_host_write(conn: &mut FbConn) -> Result<HostWrite, FbError> {
    type Row = (i64, Option<String>, Option<i64>, Option<i64>, Option<i64>);
    let row: Option<Row> = conn.query_first(
        &format!(
            "SELECT E.EPOCH, RDB$GET_CONTEXT('USER_SESSION', '{SEEN_EPOCH}'), \
             RDB$SET_CONTEXT('USER_TRANSACTION', '{HOST_WRITE_FLAG}', '1'), \
             (SELECT FIRST 1 I.ID_LOW FROM SYNC_CAPTURE_INFO I WHERE I.ID_LOW IS NOT NULL), \
             (SELECT FIRST 1 I.ID_HIGH FROM SYNC_CAPTURE_INFO I WHERE I.ID_LOW IS NOT NULL) \
             FROM PONTE_TRIGGER_EPOCH E WHERE E.ID = 1 WITH LOCK"
        ),
        (),
    )?;
    let Some((epoch, seen, _, low, high)) = row else {
        return Err(FbError::Other(
            "the unit's PONTE_TRIGGER_EPOCH row (ID = 1) is missing, so the host cannot tell \
             whether its triggers changed; restore it with INSERT INTO PONTE_TRIGGER_EPOCH \
             (ID, EPOCH) VALUES (1, 0)"
                .into(),
        ));
    };
    let range = low.zip(high);
    match seen.map(|s| s.trim().parse::<i64>()) {
        Some(Ok(seen)) if seen == epoch => Ok(HostWrite::Flagged(range)),
        Some(_) => Ok(HostWrite::TriggersChanged),
        None => {
            // This connection's first apply: nothing it prepared before wrote a unit table.
            let _: Option<(i64,)> = conn.query_first(
                &format!(
                    "SELECT RDB$SET_CONTEXT('USER_SESSION', '{SEEN_EPOCH}', ?) FROM RDB$DATABASE"
                ),
                (epoch.to_string(),),
            )?;
            Ok(HostWrite::Flagged(range))
        }
    }
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
