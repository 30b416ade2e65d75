//! The apply transaction's ledger rows (SYNC_CONTROL): one per change, packed or one by one, and
//! what a colliding ledger insert means.

use rsfbclient::prelude::*;
use rsfbclient::FbError;

use super::apply::{BatchError, BatchOutcome, Prepared};
use super::block::{substitute, Block};
use super::connect::FbConn;
use super::error::{classify, FbFailure, FbFailureKind};
use crate::model::Value;

/// The ledger row of one change; both apply paths use this one text.
pub(super) const LEDGER_INSERT: &str =
    "INSERT INTO SYNC_CONTROL (CORRELATION_ID, OUTBOX_ID, TABLE_NAME, OP, OUTCOME, APPLIED_SEQ) \
     VALUES (?, ?, ?, ?, ?, GEN_ID(GEN_SYNC_APPLIED, 1))";

pub(super) fn pack_ledger(block: &mut Block, change: &Prepared, outcome: BatchOutcome) {
    let refs = [
        block.bind(&Value::Text(change.correlation_id.clone())),
        block.bind(&Value::Int(change.sequence)),
        block.bind(&Value::Text(change.table.clone())),
        block.bind(&Value::Text(change.op.code().to_string())),
        block.bind(&Value::Text(outcome_code(outcome).to_string())),
    ];
    block.push(&substitute(LEDGER_INSERT, &refs).unwrap_or_default());
}

pub(super) fn outcome_code(outcome: BatchOutcome) -> &'static str {
    if outcome == BatchOutcome::Stale {
        "S"
    } else {
        "A"
    }
}

pub(super) fn insert_ledger(
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
pub(super) fn ledger_error(e: FbError, index: usize) -> BatchError {
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
