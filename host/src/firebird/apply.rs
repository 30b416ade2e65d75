//! One Firebird transaction that applies a batch of translated changes, in order: the ledger
//! (SYNC_CONTROL) makes each correlation id take effect once, the row-version table skips a change
//! older than what a row already has, INDICE stays ahead of every id replication writes, and the
//! host's context flag keeps the capture triggers from echoing these writes back.
//!
//! The batch is optimistic: no savepoints. When a statement fails, the whole transaction rolls back
//! and the error names the message at fault, so the caller can set that one aside and re-run the rest.

use std::collections::{HashMap, HashSet};

use rsfbclient::prelude::*;
use rsfbclient::FbError;

use super::block::{blockable, message_bytes, substitute, Block};
use super::charset::{self, TextColumns};
use super::connect::FbConn;
use super::error::{classify, FbFailure, FbFailureKind};
use super::generator::raise_generators;
use super::hooks::UnitHooks;
use super::ledger::{insert_ledger, ledger_error, pack_ledger};
use super::lookup::{flag_host_write, ledger_lookup, row_versions, HostWrite};
use super::statements::{
    apply_one, footprint, in_range, pack_change, pack_claims, CLAIM_CONTEXTS, INDICE_PARAM_BYTES,
};
use crate::capture::periodic::ApplyShadow;
use crate::model::{Op, Output, Value};

/// Name of the transaction context variable set while the host writes; capture triggers skip it.
pub const HOST_WRITE_FLAG: &str = "PONTE_APPLY";

/// A row's first version and a later one: the packed path knows from its lookup which applies.
const ROW_VERSION_INSERT: &str =
    "INSERT INTO SYNC_ROW_VERSION (TABLE_NAME, ROW_KEY, SEQ, UPDATED_AT) \
     VALUES (?, ?, ?, CURRENT_TIMESTAMP)";
const ROW_VERSION_UPDATE: &str =
    "UPDATE SYNC_ROW_VERSION SET SEQ = ?, UPDATED_AT = CURRENT_TIMESTAMP \
     WHERE TABLE_NAME = ? AND ROW_KEY = ?";

/// The last applied sequence of one row, in the statement-by-statement path.
const ROW_VERSION_UPSERT: &str =
    "UPDATE OR INSERT INTO SYNC_ROW_VERSION (TABLE_NAME, ROW_KEY, SEQ, UPDATED_AT) \
     VALUES (?, ?, ?, CURRENT_TIMESTAMP) MATCHING (TABLE_NAME, ROW_KEY)";

/// A change ready to apply: its identity and the transform's output.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Correlation id (UUID text).
    pub correlation_id: String,
    /// Outbox id: the per-row sequence.
    pub sequence: i64,
    /// Source table.
    pub table: String,
    /// Operation.
    pub op: Op,
    /// Statements, row key, id claims.
    pub output: Output,
}

/// What happened to each message of a committed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Its statements ran and it is in the ledger now.
    Applied,
    /// Already in the ledger: nothing done (redelivery, replay).
    Duplicate,
    /// Older than the row's last applied change: skipped, recorded in the ledger.
    Stale,
}

/// A failed batch: rolled back; `index` is the message at fault when one is.
#[derive(Debug, Clone, thiserror::Error)]
#[error("batch rolled back{}: {failure}", index.map(|i| format!(" at message {i}")).unwrap_or_default())]
pub struct BatchError {
    /// Position in the batch of the message whose statement failed.
    pub index: Option<usize>,
    /// The classified error.
    pub failure: FbFailure,
}

/// Why a batch was not applied on a connection whose unit's triggers changed since it last
/// applied (PONTE_TRIGGER_EPOCH): it must reconnect and apply the batch again.
pub const TRIGGERS_CHANGED: &str = "the unit's triggers changed since this connection prepared \
     its statements (ponte unit-triggers guard/unguard); reconnect and apply again";

impl BatchError {
    /// Whether the batch must be re-applied on a new connection (nothing was written).
    pub fn needs_new_connection(&self) -> bool {
        self.index.is_none() && self.failure.message == TRIGGERS_CHANGED
    }
}

/// Applies `batch` in one transaction and commits. On error everything is rolled back. The batch
/// first runs packed into EXECUTE BLOCKs; if that fails, it is re-run statement by statement, so
/// an error names the message at fault and a packing problem can never stall a unit.
/// A text value its column's charset cannot hold fails its change before anything is written,
/// naming table, column and value (`charset`).
pub fn apply_batch(conn: &mut FbConn, batch: &[Prepared]) -> Result<Vec<BatchOutcome>, BatchError> {
    apply_batch_with(
        conn,
        batch,
        &UnitHooks::default(),
        &mut TextColumns::default(),
    )
}

/// [`apply_batch`], also raising the legacy key generators past the ids the batch writes and
/// keeping periodic capture's fingerprints (`hooks`); `columns` caches the unit's text column
/// charsets across batches of one connection.
pub fn apply_batch_with(
    conn: &mut FbConn,
    batch: &[Prepared],
    hooks: &UnitHooks,
    columns: &mut TextColumns,
) -> Result<Vec<BatchOutcome>, BatchError> {
    match in_transaction(conn, |c| run(c, batch, Mode::Blocks, hooks, columns)) {
        Err(e) if !e.needs_new_connection() => {
            tracing::info!(error = %e, "Packed apply failed; re-running statement by statement to find the change at fault.");
            in_transaction(conn, |c| run(c, batch, Mode::Statements, hooks, columns))
        }
        ok => ok,
    }
}

/// How the batch's work reaches the server.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Packed into EXECUTE BLOCKs: few round trips.
    Blocks,
    /// One statement at a time: every error names its message.
    Statements,
}

fn in_transaction(
    conn: &mut FbConn,
    work: impl FnOnce(&mut FbConn) -> Result<Vec<BatchOutcome>, BatchError>,
) -> Result<Vec<BatchOutcome>, BatchError> {
    let whole = |e: FbError| BatchError {
        index: None,
        failure: classify(&e),
    };
    conn.begin_transaction_config(
        transaction_builder()
            .read_write()
            .with_read_commited(TrRecordVersion::RecordVersion)
            .wait(10)
            .build(),
    )
    .map_err(whole)?;
    match work(conn) {
        Ok(outcomes) => match conn.commit() {
            Ok(()) => Ok(outcomes),
            Err(e) => {
                let _ = conn.rollback();
                Err(whole(e))
            }
        },
        Err(e) => {
            let _ = conn.rollback();
            Err(e)
        }
    }
}

fn run(
    conn: &mut FbConn,
    batch: &[Prepared],
    mode: Mode,
    hooks: &UnitHooks,
    columns: &mut TextColumns,
) -> Result<Vec<BatchOutcome>, BatchError> {
    let whole = |e: FbError| BatchError {
        index: None,
        failure: classify(&e),
    };
    let range = match flag_host_write(conn).map_err(whole)? {
        HostWrite::Flagged(range) => range,
        HostWrite::TriggersChanged => {
            return Err(BatchError {
                index: None,
                failure: FbFailure {
                    kind: FbFailureKind::Connection,
                    message: TRIGGERS_CHANGED.into(),
                },
            })
        }
    };
    let applied = ledger_lookup(conn, batch).map_err(whole)?;
    // Periodic capture: a local change to a row this batch overwrites is logged first.
    let shadow = ApplyShadow::prepare(conn, &hooks.periodic, batch).map_err(whole)?;
    shadow.before_writes(conn).map_err(whole)?;
    // Each row's last applied sequence before this batch, and its newest one within it.
    let versions = row_versions(conn, batch).map_err(whole)?;
    let mut written: HashMap<(&str, &str), i64> = HashMap::new();
    let mut in_batch: HashSet<&str> = HashSet::new();
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut block = Block::default();
    let mut in_block = 0usize;
    // INDICE raises are kept per key and written once (before any new id is allocated, and at
    // the end), instead of updating the same INDICE row once per change.
    let mut claims: Vec<(String, i64)> = Vec::new();
    for (i, change) in batch.iter().enumerate() {
        let fail = |e: FbError| BatchError {
            index: Some(i),
            failure: classify(&e),
        };
        // A redelivered copy can share a batch with its original (a broker outage returns a
        // message that was stored but not confirmed, and the relay publishes it again): the
        // first copy applies, later ones are duplicates like those already in the ledger.
        if applied.contains(change.correlation_id.as_str())
            || !in_batch.insert(change.correlation_id.as_str())
        {
            outcomes.push(BatchOutcome::Duplicate);
            continue;
        }
        let key = (change.table.as_str(), change.output.row_key.as_str());
        let last = written.get(&key).or(versions.get(&key));
        let stale = matches!(last, Some(&seq) if seq >= change.sequence);
        let outcome = if stale {
            BatchOutcome::Stale
        } else {
            BatchOutcome::Applied
        };
        if !stale {
            if let Some(reason) = charset::misfit(conn, columns, change).map_err(whole)? {
                return Err(BatchError {
                    index: Some(i),
                    failure: FbFailure {
                        kind: FbFailureKind::Permanent,
                        message: reason,
                    },
                });
            }
        }
        let packable = mode == Mode::Blocks
            && change
                .output
                .statements
                .iter()
                .all(|s| s.params.iter().all(blockable));
        if packable {
            let (sql_len, mut bytes, mut contexts) = footprint(change);
            if allocates_ids(change) {
                // The pending INDICE raises go in first.
                contexts += claims.len() * CLAIM_CONTEXTS;
                bytes += claims.len() * INDICE_PARAM_BYTES;
            }
            if in_block >= MAX_CHANGES_PER_BLOCK || !block.has_room(sql_len, bytes, contexts) {
                flush(conn, &mut block).map_err(whole)?;
                in_block = 0;
            }
            if !stale {
                if allocates_ids(change) {
                    pack_claims(&mut block, &mut claims);
                }
                pack_change(&mut block, change).map_err(whole)?;
                for claim in change
                    .output
                    .id_claims
                    .iter()
                    .filter(|c| in_range(range, c.id))
                {
                    match claims.iter_mut().find(|(k, _)| *k == claim.indice_key) {
                        Some((_, id)) => *id = (*id).max(claim.id),
                        None => claims.push((claim.indice_key.clone(), claim.id)),
                    }
                }
            }
            pack_ledger(&mut block, change, outcome);
            in_block += 1;
        } else {
            pack_claims(&mut block, &mut claims);
            flush(conn, &mut block).map_err(whole)?;
            in_block = 0;
            if !stale {
                if let Err(e) = apply_one(conn, change, range) {
                    let mut failure = fail(e);
                    if charset::is_transliteration(&failure.failure.message) {
                        failure.failure.message =
                            charset::explain(conn, columns, change, &failure.failure.message);
                    }
                    return Err(failure);
                }
            }
            insert_ledger(conn, change, outcome).map_err(|e| ledger_error(e, i))?;
        }
        if !stale {
            written.insert(key, change.sequence);
        }
        outcomes.push(outcome);
    }
    // Row versions in the order the batch first wrote each row, so block texts repeat across
    // batches of the same shape. A row with a version before the batch gets an UPDATE.
    for change in batch {
        let key = (change.table.as_str(), change.output.row_key.as_str());
        let Some(seq) = written.remove(&key) else {
            continue;
        };
        if mode == Mode::Blocks {
            let (table, row_key, seq) = (
                Value::Text(key.0.to_string()),
                Value::Text(key.1.to_string()),
                Value::Int(seq),
            );
            let bytes = message_bytes(&table) + message_bytes(&row_key) + message_bytes(&seq);
            if !block.has_room(ROW_VERSION_UPDATE.len(), bytes, 2) {
                flush(conn, &mut block).map_err(whole)?;
            }
            let sql = if versions.contains_key(&key) {
                let refs = [block.bind(&seq), block.bind(&table), block.bind(&row_key)];
                substitute(ROW_VERSION_UPDATE, &refs)
            } else {
                let refs = [block.bind(&table), block.bind(&row_key), block.bind(&seq)];
                substitute(ROW_VERSION_INSERT, &refs)
            };
            block.push(&sql.unwrap_or_default());
        } else {
            conn.execute(
                ROW_VERSION_UPSERT,
                (key.0.to_string(), key.1.to_string(), seq),
            )
            .map_err(whole)?;
        }
    }
    if !block.has_room(
        claims.len() * 200,
        claims.len() * INDICE_PARAM_BYTES,
        claims.len() * CLAIM_CONTEXTS,
    ) {
        flush(conn, &mut block).map_err(whole)?;
    }
    pack_claims(&mut block, &mut claims);
    flush(conn, &mut block).map_err(whole)?;
    raise_generators(conn, &hooks.generators, batch, range).map_err(whole)?;
    shadow.after_writes(conn).map_err(whole)?;
    Ok(outcomes)
}

fn allocates_ids(change: &Prepared) -> bool {
    change
        .output
        .statements
        .iter()
        .flat_map(|s| s.params.iter())
        .any(|v| matches!(v, Value::NewId(_)))
}

/// Changes per EXECUTE BLOCK at most (bounds the compiled request's size).
const MAX_CHANGES_PER_BLOCK: usize = 100;

fn flush(conn: &mut FbConn, block: &mut Block) -> Result<(), FbError> {
    if block.is_empty() {
        return Ok(());
    }
    let (sql, params) = block.take();
    conn.execute(&sql, params).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::super::ledger::LEDGER_INSERT;
    use super::*;

    #[test]
    fn shared_statement_texts_take_the_parameters_both_paths_bind() {
        let refs = |n: usize| (0..n).map(|i| format!(":p{i}")).collect::<Vec<_>>();
        assert!(substitute(LEDGER_INSERT, &refs(5)).is_some());
        assert!(substitute(ROW_VERSION_UPSERT, &refs(3)).is_some());
        assert!(substitute(ROW_VERSION_INSERT, &refs(3)).is_some());
        assert!(substitute(ROW_VERSION_UPDATE, &refs(3)).is_some());
    }
}
