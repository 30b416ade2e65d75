//! One Firebird transaction that applies a batch of translated changes, in order: the ledger
//! (SYNC_CONTROL) makes each correlation id take effect once, the row-version table skips a change
//! older than what a row already has, INDICE stays ahead of every id replication writes, and the
//! host's context flag keeps the capture triggers from echoing these writes back.
//!
//! The batch is optimistic: no savepoints. When a statement fails, the whole transaction rolls back
//! and the error names the message at fault, so the caller can set that one aside and re-run the rest.

use std::collections::{HashMap, HashSet};

use rsfbclient::prelude::*;
use rsfbclient::{FbError, SqlType};

use super::block::{blockable, contexts, message_bytes, substitute, Block};
use super::charset::{self, TextColumns};
use super::connect::FbConn;
use super::error::{classify, FbFailure, FbFailureKind};
use super::generator::{raise_generators, Generators};
use super::lookup::{flag_host_write, ledger_lookup, row_versions, HostWrite};
use crate::model::{Op, Output, Value};

/// Name of the transaction context variable set while the host writes; capture triggers skip it.
pub const HOST_WRITE_FLAG: &str = "PONTE_APPLY";

/// The ledger row of one change; both apply paths use this one text.
const LEDGER_INSERT: &str =
    "INSERT INTO SYNC_CONTROL (CORRELATION_ID, OUTBOX_ID, TABLE_NAME, OP, OUTCOME, APPLIED_SEQ) \
     VALUES (?, ?, ?, ?, ?, GEN_ID(GEN_SYNC_APPLIED, 1))";

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
        &Generators::default(),
        &mut TextColumns::default(),
    )
}

/// [`apply_batch`], also raising the legacy key `generators` past the ids the batch writes;
/// `columns` caches the unit's text column charsets across batches of one connection.
pub fn apply_batch_with(
    conn: &mut FbConn,
    batch: &[Prepared],
    generators: &Generators,
    columns: &mut TextColumns,
) -> Result<Vec<BatchOutcome>, BatchError> {
    match in_transaction(conn, |c| run(c, batch, Mode::Blocks, generators, columns)) {
        Err(e) if !e.needs_new_connection() => {
            tracing::info!(error = %e, "Packed apply failed; re-running statement by statement to find the change at fault.");
            in_transaction(conn, |c| {
                run(c, batch, Mode::Statements, generators, columns)
            })
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
    generators: &Generators,
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
    raise_generators(conn, generators, batch, range).map_err(whole)?;
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

/// Contexts one packed INDICE raise takes (an UPDATE and an INSERT).
const CLAIM_CONTEXTS: usize = 3;
/// Message bytes of an INDICE key (text up to 64 characters) and an id bound into a block.
const INDICE_PARAM_BYTES: usize = 270;

/// Writes the pending INDICE raises into the block (each key at least its highest claimed id).
fn pack_claims(block: &mut Block, claims: &mut Vec<(String, i64)>) {
    for (key, id) in claims.drain(..) {
        let (k, m) = (block.bind(&Value::Text(key)), block.bind(&Value::Int(id)));
        block.push(&format!(
            "UPDATE INDICE SET ULTIMO_ID = MAXVALUE(ULTIMO_ID, {m}) WHERE TABELA = {k}"
        ));
        block.push(&format!(
            "IF (ROW_COUNT = 0) THEN INSERT INTO INDICE (TABELA, ULTIMO_ID) VALUES ({k}, {m})"
        ));
    }
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

/// Rough SQL bytes, parameter bytes and table contexts a change adds to a block.
fn footprint(change: &Prepared) -> (usize, usize, usize) {
    let new_ids = change
        .output
        .statements
        .iter()
        .flat_map(|s| s.params.iter())
        .filter(|v| matches!(v, Value::NewId(_)))
        .count();
    // Each new id: UPDATE INDICE (2), IF .. INSERT INDICE (1), SELECT .. FROM INDICE (1); the ledger INSERT (1).
    let contexts = change
        .output
        .statements
        .iter()
        .map(|s| contexts(&s.sql))
        .sum::<usize>()
        + 4 * new_ids
        + 1;
    let sql: usize = change
        .output
        .statements
        .iter()
        .map(|s| s.sql.len() + s.params.len() * 4 + 200)
        .sum();
    let bytes: usize = change
        .output
        .statements
        .iter()
        .flat_map(|s| s.params.iter())
        .map(message_bytes)
        .sum();
    // The ledger row's five values, and the new ids' INDICE keys.
    (
        sql + 300,
        bytes + 400 + INDICE_PARAM_BYTES * new_ids,
        contexts,
    )
}

/// A change's statements with new ids allocated in place (its id claims are aggregated by the caller).
fn pack_change(block: &mut Block, change: &Prepared) -> Result<(), FbError> {
    let mut new_ids: Vec<(&str, String)> = Vec::new();
    for statement in &change.output.statements {
        let mut refs = Vec::with_capacity(statement.params.len());
        for value in &statement.params {
            match value {
                Value::NewId(key) => {
                    let var = match new_ids.iter().find(|(k, _)| k == key) {
                        Some((_, var)) => var.clone(),
                        None => {
                            let var = block.variable();
                            let k = block.bind(&Value::Text(key.clone()));
                            block.push(&format!(
                                "UPDATE INDICE SET ULTIMO_ID = ULTIMO_ID + 1 WHERE TABELA = {k}"
                            ));
                            block.push(&format!("IF (ROW_COUNT = 0) THEN INSERT INTO INDICE (TABELA, ULTIMO_ID) VALUES ({k}, 1)"));
                            block.push(&format!(
                                "SELECT ULTIMO_ID FROM INDICE WHERE TABELA = {k} INTO :{var}"
                            ));
                            new_ids.push((key, var.clone()));
                            var
                        }
                    };
                    refs.push(format!(":{var}"));
                }
                other => refs.push(block.bind(other)),
            }
        }
        let sql = substitute(statement.sql.trim_end_matches(';'), &refs).ok_or_else(|| {
            FbError::Other(format!(
                "placeholder count does not match parameters in `{}`",
                statement.sql
            ))
        })?;
        block.push(&sql);
    }
    Ok(())
}

fn pack_ledger(block: &mut Block, change: &Prepared, outcome: BatchOutcome) {
    let refs = [
        block.bind(&Value::Text(change.correlation_id.clone())),
        block.bind(&Value::Int(change.sequence)),
        block.bind(&Value::Text(change.table.clone())),
        block.bind(&Value::Text(change.op.code().to_string())),
        block.bind(&Value::Text(outcome_code(outcome).to_string())),
    ];
    block.push(&substitute(LEDGER_INSERT, &refs).unwrap_or_default());
}

fn outcome_code(outcome: BatchOutcome) -> &'static str {
    if outcome == BatchOutcome::Stale {
        "S"
    } else {
        "A"
    }
}

fn insert_ledger(
    conn: &mut FbConn,
    change: &Prepared,
    outcome: BatchOutcome,
) -> Result<usize, FbError> {
    conn.execute(
        LEDGER_INSERT,
        (
            change.correlation_id.clone(),
            change.sequence,
            change.table.clone(),
            change.op.code().to_string(),
            outcome_code(outcome).to_string(),
        ),
    )
}

/// A ledger insert that collides means another applier committed this id meanwhile: re-running
/// the batch will skip it, so that is transient, not the message's fault.
fn ledger_error(e: FbError, index: usize) -> BatchError {
    match classify(&e) {
        f if f.message.contains("PK_SYNC_CONTROL") => BatchError {
            index: None,
            failure: FbFailure {
                kind: FbFailureKind::Transient,
                message: f.message,
            },
        },
        failure => BatchError {
            index: Some(index),
            failure,
        },
    }
}

/// Runs one change's statements with its placeholders resolved, then raises INDICE.
fn apply_one(
    conn: &mut FbConn,
    change: &Prepared,
    range: Option<(i64, i64)>,
) -> Result<(), FbError> {
    let mut new_ids: HashMap<&str, i64> = HashMap::new();
    for statement in &change.output.statements {
        let mut params = Vec::with_capacity(statement.params.len());
        for value in &statement.params {
            params.push(match value {
                Value::NewId(key) => {
                    let id = match new_ids.get(key.as_str()) {
                        Some(&id) => id,
                        None => {
                            let id = next_indice_id(conn, key)?;
                            new_ids.insert(key, id);
                            id
                        }
                    };
                    SqlType::Integer(id)
                }
                other => to_param(other),
            });
        }
        conn.execute(&statement.sql, params)?;
    }
    for claim in &change.output.id_claims {
        raise_indice(conn, &claim.indice_key, claim.id, range)?;
    }
    Ok(())
}

fn to_param(value: &Value) -> SqlType {
    match value {
        Value::Null => SqlType::Null,
        Value::Int(v) => SqlType::Integer(*v),
        Value::Float(v) => SqlType::Floating(*v),
        // Text forms: the server converts exactly into NUMERIC, DATE, TIME and TIMESTAMP columns.
        Value::Decimal(s)
        | Value::Text(s)
        | Value::Date(s)
        | Value::Time(s)
        | Value::Timestamp(s) => SqlType::Text(s.clone()),
        Value::Blob(b) => SqlType::Binary(b.clone()),
        Value::NewId(_) => SqlType::Null,
    }
}

/// Allocates the next id of an INDICE key the way local applications do (row lock, +1).
fn next_indice_id(conn: &mut FbConn, key: &str) -> Result<i64, FbError> {
    let updated = conn.execute(
        "UPDATE INDICE SET ULTIMO_ID = ULTIMO_ID + 1 WHERE TABELA = ?",
        (key.to_string(),),
    )?;
    if updated == 0 {
        conn.execute(
            "INSERT INTO INDICE (TABELA, ULTIMO_ID) VALUES (?, 1)",
            (key.to_string(),),
        )?;
    }
    let row: Option<(i64,)> = conn.query_first(
        "SELECT ULTIMO_ID FROM INDICE WHERE TABELA = ?",
        (key.to_string(),),
    )?;
    row.map(|(id,)| id)
        .ok_or_else(|| FbError::Other(format!("INDICE row `{key}` vanished")))
}

fn in_range(range: Option<(i64, i64)>, id: i64) -> bool {
    range.is_none_or(|(low, high)| id >= low && id < high)
}

/// Makes INDICE's last id for `key` at least `id` (when `id` is in this unit's range).
fn raise_indice(
    conn: &mut FbConn,
    key: &str,
    id: i64,
    range: Option<(i64, i64)>,
) -> Result<(), FbError> {
    if !in_range(range, id) {
        return Ok(());
    }
    let updated = conn.execute(
        "UPDATE INDICE SET ULTIMO_ID = MAXVALUE(ULTIMO_ID, ?) WHERE TABELA = ?",
        (id, key.to_string()),
    )?;
    if updated == 0 {
        conn.execute(
            "INSERT INTO INDICE (TABELA, ULTIMO_ID) VALUES (?, ?)",
            (key.to_string(), id),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
