//! A change's statements on their way to the server: packed into an EXECUTE BLOCK with new INDICE
//! ids allocated in place, or one statement at a time with the ids read back; and the INDICE
//! raises of the ids a batch claimed.

use std::collections::HashMap;

use rsfbclient::prelude::*;
use rsfbclient::{FbError, SqlType};

use super::apply::Prepared;
use super::block::{contexts, message_bytes, substitute, Block};
use super::connect::FbConn;
use crate::model::Value;

/// Contexts one packed INDICE raise takes (an UPDATE and an INSERT).
pub(super) const CLAIM_CONTEXTS: usize = 3;
/// Message bytes of an INDICE key (text up to 64 characters) and an id bound into a block.
pub(super) const INDICE_PARAM_BYTES: usize = 270;

/// Writes the pending INDICE raises into the block (each key at least its highest claimed id).
pub(super) fn pack_claims(block: &mut Block, claims: &mut Vec<(String, i64)>) {
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

/// A change's statements with new ids allocated in place (its id claims are aggregated by the caller).
pub(super) fn pack_change(block: &mut Block, change: &Prepared) -> Result<(), FbError> {
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

/// Runs one change's statements with its placeholders resolved, then raises INDICE.
pub(super) fn apply_one(
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

pub(super) fn to_param(value: &Value) -> SqlType {
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
pub(super) fn next_indice_id(conn: &mut FbConn, key: &str) -> Result<i64, FbError> {
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

pub(super) fn in_range(range: Option<(i64, i64)>, id: i64) -> bool {
    range.is_none_or(|(low, high)| id >= low && id < high)
}

/// Makes INDICE's last id for `key` at least `id` (when `id` is in this unit's range).
pub(super) fn raise_indice(
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

/// Rough SQL bytes, parameter bytes and table contexts a change adds to a block.
pub(super) fn footprint(change: &Prepared) -> (usize, usize, usize) {
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
