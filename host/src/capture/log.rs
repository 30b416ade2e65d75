//! Reading and pruning a unit's SYNC_LOG (blocking; runs on the unit's Firebird thread). Rows are
//! read in ID order with the JSON image their trigger wrote; without one, the row is read now,
//! and a row deleted since then publishes nothing for its I/U (its D entry follows). Generator
//! ids can commit out of order, so there is no watermark: whatever is still in the log is pending,
//! and rows are deleted after the confirm.

use std::collections::HashMap;

use rsfbclient::prelude::*;
use rsfbclient::{FbError, SqlType};
use serde_json::{Map, Value as Json};

use super::shape::{split_key, ColumnKind, TableShape};
use crate::firebird::FbConn;
use crate::model::{correlation_id, UpstreamEnvelope, UPSTREAM_VERSION};

/// One SYNC_LOG row and what to publish for it.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// SYNC_LOG id.
    pub id: i64,
    /// The message; None when the row is gone (superseded by a later D entry).
    pub envelope: Option<UpstreamEnvelope>,
    /// Milliseconds since the change (Firebird's clock on both sides).
    pub age_ms: i64,
}

/// Reads the log of one unit, caching table shapes and the capture epoch.
#[derive(Debug, Default)]
pub struct LogReader {
    epoch: Option<String>,
    shapes: HashMap<String, TableShape>,
    /// Firebird table -> downstream table (SYNC_ROW_VERSION.TABLE_NAME).
    downstream: HashMap<String, String>,
}

type LogRow = (
    i64,
    String,
    String,
    String,
    Option<i64>,
    String,
    i64,
    Option<String>,
);

impl LogReader {
    /// A reader; `downstream` maps each captured table to its downstream table name.
    pub fn new(downstream: HashMap<String, String>) -> LogReader {
        LogReader {
            downstream,
            ..LogReader::default()
        }
    }

    /// Forgets cached metadata (after a reconnect or a failed read: the schema may have changed).
    pub fn reset(&mut self) {
        self.epoch = None;
        self.shapes.clear();
    }

    /// The oldest `limit` log rows with their messages.
    pub fn read(
        &mut self,
        conn: &mut FbConn,
        unit: i32,
        limit: u32,
    ) -> Result<Vec<LogEntry>, FbError> {
        let epoch = match &self.epoch {
            Some(e) => e.clone(),
            None => {
                let row: Option<(String,)> =
                    conn.query_first("SELECT FIRST 1 EPOCH FROM SYNC_CAPTURE_INFO", ())?;
                let e = row.map(|(e,)| e.trim().to_string()).ok_or_else(|| {
                    FbError::Other(
                        "capture is not installed on this unit; run `ponte capture install`".into(),
                    )
                })?;
                self.epoch = Some(e.clone());
                e
            }
        };
        let rows: Vec<LogRow> = conn.query(
            &format!(
                "SELECT FIRST {limit} ID, TABLE_NAME, OP, ROW_KEY, BASE_SEQ, CAST(CHANGED_AT AS VARCHAR(24)), \
                 CAST(DATEDIFF(MILLISECOND FROM CHANGED_AT TO CURRENT_TIMESTAMP) AS BIGINT), IMAGE FROM SYNC_LOG ORDER BY ID"
            ),
            (),
        )?;
        let mut entries = Vec::with_capacity(rows.len());
        for (id, table, op, row_key, base_seq, changed_at, age_ms, image) in rows {
            let table = table.trim().to_string();
            let op = op.trim().to_string();
            if !self.shapes.contains_key(&table) {
                let shape = TableShape::read(conn, &table)?;
                self.shapes.insert(table.clone(), shape);
            }
            let Some(shape) = self.shapes.get(&table) else {
                continue;
            };
            // The trigger's image is the unit's own change; reading the row now is the fallback
            // (a log written before images, or an image that is not valid JSON).
            let logged = image
                .and_then(|t| serde_json::from_str::<Json>(&t).ok())
                .filter(Json::is_object);
            let (payload, read_now) = match (op.as_str(), logged) {
                ("D", _) => (Some(key_image(shape, &row_key)), false),
                (_, Some(image)) => (Some(image), false),
                (_, None) => (row_image(conn, shape, &row_key)?, true),
            };
            // A row read now may carry a PostgreSQL change applied over the unit's since: its
            // version then is past BASE_SEQ, and the applier keeps PostgreSQL's state.
            let seq_now: Option<(i64,)> = match self.downstream.get(&table) {
                Some(down) if read_now => conn.query_first(
                    "SELECT SEQ FROM SYNC_ROW_VERSION WHERE TABLE_NAME = ? AND ROW_KEY = ?",
                    (down.clone(), row_key.clone()),
                )?,
                _ => None,
            };
            let envelope = payload.map(|payload| UpstreamEnvelope {
                v: UPSTREAM_VERSION,
                correlation_id: correlation_id(&epoch, unit, id, &changed_at),
                unit,
                table: table.clone(),
                op: op.clone(),
                log_id: id,
                row_key: row_key.clone(),
                base_seq,
                seq_at_publish: seq_now.map(|(s,)| s),
                changed_at: changed_at.clone(),
                changed_at_utc: Some(
                    (chrono::Utc::now() - chrono::Duration::milliseconds(age_ms.max(0)))
                        .to_rfc3339(),
                ),
                payload,
            });
            entries.push(LogEntry {
                id,
                envelope,
                age_ms,
            });
        }
        Ok(entries)
    }
}

/// Deletes published log rows, in one transaction.
pub fn prune(conn: &mut FbConn, ids: &[i64]) -> Result<(), FbError> {
    if ids.is_empty() {
        return Ok(());
    }
    conn.begin_transaction()?;
    let done = ids.chunks(50).try_for_each(|chunk| {
        let marks = vec!["?"; chunk.len()].join(", ");
        let params: Vec<SqlType> = chunk.iter().map(|&id| SqlType::Integer(id)).collect();
        conn.execute(
            &format!("DELETE FROM SYNC_LOG WHERE ID IN ({marks})"),
            params,
        )
        .map(|_| ())
    });
    match done {
        Ok(()) => conn.commit(),
        Err(e) => {
            let _ = conn.rollback();
            Err(e)
        }
    }
}

/// The key columns only (for D): integers as numbers, the rest as text.
fn key_image(shape: &TableShape, row_key: &str) -> Json {
    let mut map = Map::new();
    for (&at, value) in shape.pk.iter().zip(split_key(row_key)) {
        let c = &shape.columns[at];
        let v = match (c.kind, value.parse::<i64>()) {
            (ColumnKind::Int, Ok(i)) => Json::from(i),
            _ => Json::String(value),
        };
        map.insert(c.name.clone(), v);
    }
    Json::Object(map)
}

/// The current row image keyed by column, or None when the row no longer exists.
fn row_image(
    conn: &mut FbConn,
    shape: &TableShape,
    row_key: &str,
) -> Result<Option<Json>, FbError> {
    let (sql, columns) = shape.select_by_key();
    let params: Vec<SqlType> = split_key(row_key).into_iter().map(SqlType::Text).collect();
    let row: Option<rsfbclient::Row> = conn.query_first(&sql, params)?;
    let Some(row) = row else { return Ok(None) };
    let mut map = Map::new();
    for (c, col) in columns.iter().zip(row.cols) {
        let v = match col.value {
            SqlType::Null => Json::Null,
            SqlType::Integer(i) => Json::from(i),
            SqlType::Floating(f) => serde_json::Number::from_f64(f)
                .map(Json::Number)
                .unwrap_or(Json::Null),
            SqlType::Text(s) if c.kind == ColumnKind::Char => {
                Json::String(s.trim_end_matches(' ').to_string())
            }
            SqlType::Text(s) => Json::String(s),
            SqlType::Binary(b) => Json::String(String::from_utf8_lossy(&b).into_owned()),
            SqlType::Timestamp(t) => Json::String(t.format("%Y-%m-%d %H:%M:%S%.4f").to_string()),
            other => Json::String(format!("{other:?}")),
        };
        map.insert(c.name.clone(), v);
    }
    Ok(Some(Json::Object(map)))
}
