//! Deleting a unit's extra rows (`load` / `repair` with `--delete-extra`): each key is checked
//! once more in PostgreSQL, then deleted at the unit with the statements the table's transform
//! makes for a delete, in a transaction flagged as the host's (capture does not echo it), and
//! only if no replicated change reached that row after the check (its row version).

use anyhow::Context;
use rsfbclient::prelude::*;
use rsfbclient::SqlType;
use sqlx::PgPool;

use super::fb::FbSlot;
use super::{pg, Tools};
use crate::config::{Config, Unit};
use crate::firebird::HOST_WRITE_FLAG;
use crate::lifecycle::catalog::PgTable;
use crate::model::{Change, Direction, Op, Output, Value};

fn is_integer(sql_type: &str) -> bool {
    matches!(sql_type, "smallint" | "integer" | "bigint")
}

/// The delete change's payload for a key (unit key texts = PostgreSQL key, column by column).
fn payload(table: &PgTable, key: &[String]) -> String {
    let mut map = serde_json::Map::new();
    for (col, text) in table.key.iter().zip(key) {
        let value = match text.parse::<i64>() {
            Ok(n) if is_integer(&col.sql_type) => serde_json::Value::from(n),
            _ => serde_json::Value::from(text.clone()),
        };
        map.insert(col.name.clone(), value);
    }
    serde_json::Value::Object(map).to_string()
}

fn param(v: &Value) -> SqlType {
    match v {
        Value::Null | Value::NewId(_) => SqlType::Null,
        Value::Int(i) => SqlType::Integer(*i),
        Value::Float(f) => SqlType::Floating(*f),
        Value::Decimal(s)
        | Value::Text(s)
        | Value::Date(s)
        | Value::Time(s)
        | Value::Timestamp(s) => SqlType::Text(s.clone()),
        Value::Blob(b) => SqlType::Binary(b.clone()),
    }
}

/// Deletes the extra rows `keys` (unit key texts) of `table` at `unit`; returns how many went.
pub async fn delete_extras(
    pool: &PgPool,
    config: &Config,
    tools: &Tools,
    unit: &Unit,
    table: &PgTable,
    keys: &[Vec<String>],
) -> anyhow::Result<u64> {
    if keys.is_empty() {
        return Ok(0);
    }
    if keys.iter().any(|k| k.len() != table.key.len()) {
        anyhow::bail!(
            "table {}: the unit's key does not match PostgreSQL's primary key column for column; \
             extra rows are reported but not deleted",
            table.name
        );
    }
    // PostgreSQL may have received the row since: those keys are not extra any more.
    let present: Vec<Vec<String>> = pg::by_keys(pool, table, unit.id, keys)
        .await?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let horizon = pg::horizon(pool, unit.id).await?.map_or(0, |(id, _)| id);
    let pinned = tools.pin(&table.name)?;
    let mut deletes: Vec<Output> = Vec::new();
    for key in keys.iter().filter(|k| !present.contains(k)) {
        let change = Change {
            table: table.name.clone(),
            op: Op::Delete,
            direction: Direction::Downstream,
            unit: unit.id,
            correlation_id: uuid::Uuid::nil().to_string(),
            sequence: horizon,
            payload: payload(table, key),
            settings: "{}".into(),
        };
        let p = pinned.clone();
        let output = tokio::task::spawn_blocking(move || p.call(&change))
            .await?
            .map_err(|e| {
                anyhow::anyhow!(
                    "table {}: the transform refuses deleting {key:?}: {e}",
                    table.name
                )
            })?;
        deletes.push(output);
    }
    if deletes.is_empty() {
        return Ok(0);
    }
    let mut fb = FbSlot::new(unit, &config.firebird);
    let name = table.name.clone();
    let deleted = fb
        .run(move |conn| {
            let mut deleted = 0u64;
            for batch in deletes.chunks(200) {
                deleted += delete_batch(conn, &name, batch, horizon).map_err(|e| e.to_string())?;
            }
            Ok(deleted)
        })
        .await
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("deleting extra rows of {} at unit {}", table.name, unit.id))?;
    tools.metrics.extras_deleted(unit.id, &table.name, deleted);
    Ok(deleted)
}

fn delete_batch(
    conn: &mut crate::firebird::FbConn,
    table: &str,
    batch: &[Output],
    horizon: i64,
) -> Result<u64, rsfbclient::FbError> {
    conn.begin_transaction()?;
    let result = (|| {
        let _flag: Option<(i64,)> = conn.query_first(
            &format!(
                "SELECT RDB$SET_CONTEXT('USER_TRANSACTION', '{HOST_WRITE_FLAG}', '1') \
                 FROM RDB$DATABASE"
            ),
            (),
        )?;
        let mut deleted = 0;
        for output in batch {
            let newer: Option<(i64,)> = conn.query_first(
                "SELECT COUNT(*) FROM SYNC_ROW_VERSION \
                 WHERE TABLE_NAME = ? AND ROW_KEY = ? AND SEQ > ?",
                (table.to_string(), output.row_key.clone(), horizon),
            )?;
            if newer.is_some_and(|(n,)| n > 0) {
                continue;
            }
            for s in &output.statements {
                let params: Vec<SqlType> = s.params.iter().map(param).collect();
                deleted += conn.execute(&s.sql, params)? as u64;
            }
        }
        Ok(deleted)
    })();
    match result {
        Ok(n) => conn.commit().map(|()| n),
        Err(e) => {
            let _ = conn.rollback();
            Err(e)
        }
    }
}
