//! The PSQL of periodic capture for one table: the round's changes and deletes passes, the
//! baseline, and the keyed passes the apply transaction runs around its writes (Firebird 2.5).

use rsfbclient::prelude::*;
use rsfbclient::{FbError, SqlType};

use super::psql::Builder;
use crate::capture::shape::{split_key, ColumnKind, TableShape};
use crate::firebird::FbConn;

/// Firebird 2.5's limit on a statement's text.
const MAX_STATEMENT: usize = 65_000;

/// What one round of one table logged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundCount {
    /// Rows logged as I or U.
    pub changed: i64,
    /// Keys logged as D.
    pub deleted: i64,
}

/// The statements of one periodic table.
#[derive(Debug, Clone)]
pub struct PeriodicSql {
    table: String,
    changes: String,
    deletes: String,
    seed_changes: String,
    seed_deletes: String,
    keyed_log: String,
    keyed_refresh: String,
    lock: String,
    key_parts: usize,
}

impl PeriodicSql {
    /// The statements for `shape`, whose changes write SYNC_ROW_VERSION rows of `downstream`;
    /// `change_column` gives each change its time. Refuses a table whose statements would pass
    /// Firebird's 64 KB limit.
    pub fn new(
        shape: &TableShape,
        downstream: &str,
        change_column: Option<&str>,
    ) -> Result<PeriodicSql, String> {
        if let Some(c) = change_column {
            let column = shape.columns.iter().find(|col| col.name == c);
            if !column.is_some_and(|col| col.kind == ColumnKind::Temporal) {
                return Err(format!(
                    "table {}: change_column {c} is not a DATE or TIMESTAMP column of it",
                    shape.table
                ));
            }
        }
        let b = Builder {
            shape,
            downstream: downstream.replace('\'', "''"),
            change_column,
        };
        let key_parts = shape.pk.len();
        let keyed_where = (0..key_parts).map(|i| format!("Q{i}")).collect::<Vec<_>>();
        let sql = PeriodicSql {
            table: shape.table.clone(),
            changes: b.block(&b.changes(None, true), "", &[]),
            deletes: b.block("", &b.deletes(None, true), &[]),
            seed_changes: b.block(&b.changes(None, false), "", &[]),
            seed_deletes: b.block("", &b.deletes(None, false), &[]),
            keyed_log: b.block(
                &b.changes(Some(&keyed_where), true),
                &b.deletes(Some(&keyed_where), true),
                &keyed_where,
            ),
            keyed_refresh: b.block(
                &b.changes(Some(&keyed_where), false),
                &b.deletes(Some(&keyed_where), false),
                &keyed_where,
            ),
            lock: format!(
                "SELECT 1 FROM \"{}\" t WHERE {} WITH LOCK",
                shape.table,
                b.key_match(&vec!["?".to_string(); key_parts])
            ),
            key_parts,
        };
        let longest = [&sql.changes, &sql.keyed_log, &sql.keyed_refresh]
            .iter()
            .map(|s| s.len())
            .max()
            .unwrap_or(0);
        if longest > MAX_STATEMENT {
            return Err(format!(
                "table {}: its {} columns make a periodic capture statement of {longest} bytes, \
                 past Firebird's 64 KB; use capture = \"trigger\" for it",
                shape.table,
                shape.columns.len()
            ));
        }
        Ok(sql)
    }

    /// One round: logs every changed row (I/U) and, when the counts say a recorded row is gone,
    /// every deleted key (D). The caller runs it in a snapshot transaction and commits.
    pub fn round(&self, conn: &mut FbConn) -> Result<RoundCount, FbError> {
        let changed = count(conn, &self.changes, Vec::new())?;
        let deleted = if self.recorded_rows_gone(conn)? {
            count(conn, &self.deletes, Vec::new())?
        } else {
            0
        };
        conn.execute(
            "UPDATE SYNC_PERIODIC_TABLE SET LAST_ROUND_AT = CURRENT_TIMESTAMP, \
             ROUNDS = ROUNDS + 1, ROWS_LOGGED = ROWS_LOGGED + ? WHERE TABLE_NAME = ?",
            (changed + deleted, self.table.clone()),
        )?;
        Ok(RoundCount { changed, deleted })
    }

    /// Records every row's fingerprint without logging (the baseline `capture install` takes once:
    /// like a trigger, periodic capture sees only changes made after it). Returns whether it
    /// seeded now (false: the table was already under periodic capture).
    pub fn seed(&self, conn: &mut FbConn) -> Result<bool, FbError> {
        let seeded: Option<(i64,)> = conn.query_first(
            "SELECT COUNT(*) FROM SYNC_PERIODIC_TABLE WHERE TABLE_NAME = ?",
            (self.table.clone(),),
        )?;
        if seeded.is_some_and(|(n,)| n > 0) {
            return Ok(false);
        }
        count(conn, &self.seed_changes, Vec::new())?;
        count(conn, &self.seed_deletes, Vec::new())?;
        conn.execute(
            "INSERT INTO SYNC_PERIODIC_TABLE (TABLE_NAME) VALUES (?)",
            (self.table.clone(),),
        )?;
        Ok(true)
    }

    /// Inside an apply transaction, before it writes the row `row_key`: locks the row (so no
    /// local write slips in between) and logs a local change the rounds have not captured yet,
    /// which the write would otherwise overwrite unseen.
    pub fn before_write(&self, conn: &mut FbConn, row_key: &str) -> Result<(), FbError> {
        let parts = self.parts(row_key);
        let _: Vec<(i32,)> = conn.query(&self.lock, parts.clone())?;
        self.keyed(conn, &self.keyed_log, row_key, parts)
    }

    /// Inside an apply transaction, after its writes: records the fingerprint of the row as ponte
    /// left it (or forgets a deleted row), so no round sends ponte's own write back.
    pub fn after_write(&self, conn: &mut FbConn, row_key: &str) -> Result<(), FbError> {
        let parts = self.parts(row_key);
        self.keyed(conn, &self.keyed_refresh, row_key, parts)
    }

    fn keyed(
        &self,
        conn: &mut FbConn,
        sql: &str,
        row_key: &str,
        parts: Vec<SqlType>,
    ) -> Result<(), FbError> {
        let mut params = vec![SqlType::Text(row_key.to_string())];
        params.extend(parts);
        count(conn, sql, params).map(|_| ())
    }

    fn parts(&self, row_key: &str) -> Vec<SqlType> {
        let mut parts: Vec<SqlType> = split_key(row_key).into_iter().map(SqlType::Text).collect();
        parts.resize(self.key_parts, SqlType::Null);
        parts
    }

    /// Whether SYNC_PERIODIC holds more keys of this table than the table has rows: after the
    /// changes pass every row has its entry, so more entries means recorded rows are gone.
    fn recorded_rows_gone(&self, conn: &mut FbConn) -> Result<bool, FbError> {
        let row: Option<(i64, i64)> = conn.query_first(
            &format!(
                "SELECT (SELECT COUNT(*) FROM \"{}\"), (SELECT COUNT(*) FROM SYNC_PERIODIC \
                 WHERE TABLE_NAME = ?) FROM RDB$DATABASE",
                self.table
            ),
            (self.table.clone(),),
        )?;
        Ok(row.is_some_and(|(rows, entries)| entries > rows))
    }
}

/// Runs an EXECUTE BLOCK that returns how many rows it logged or recorded.
fn count(conn: &mut FbConn, sql: &str, params: Vec<SqlType>) -> Result<i64, FbError> {
    let row: Option<(i64,)> = conn.query_first(sql, params)?;
    Ok(row.map(|(n,)| n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::shape::FbColumn;
    use crate::lifecycle::verify::canon::Kind;

    fn shape(pk: Vec<usize>) -> TableShape {
        let col = |name: &str, kind, canon| FbColumn {
            name: name.into(),
            kind,
            chars: 10,
            canon: Some(canon),
        };
        TableShape {
            table: "ITENS".into(),
            columns: vec![
                col("PEDIDO", ColumnKind::Int, Kind::Int),
                col("LINHA", ColumnKind::Varchar, Kind::Varchar(10)),
                col("VALOR", ColumnKind::Scaled, Kind::Decimal(2)),
            ],
            pk,
        }
    }

    #[test]
    fn statements_are_firebird_25_psql() {
        let mut with_stamp = shape(vec![0, 1]);
        with_stamp.columns.push(FbColumn {
            name: "ALTERADO".into(),
            kind: ColumnKind::Temporal,
            chars: 0,
            canon: Some(Kind::Timestamp),
        });
        let err = PeriodicSql::new(&with_stamp, "items", Some("VALOR")).unwrap_err();
        assert!(err.contains("ITENS") && err.contains("VALOR"), "{err}");
        let sql = PeriodicSql::new(&with_stamp, "items", Some("ALTERADO")).unwrap();
        assert!(sql
            .changes
            .starts_with("EXECUTE BLOCK RETURNS (N BIGINT) AS\n"));
        assert!(sql
            .changes
            .contains("DECLARE VARIABLE C2 TYPE OF COLUMN \"ITENS\".\"VALOR\";"));
        assert!(sql
            .changes
            .contains("COALESCE(t.\"ALTERADO\", CURRENT_TIMESTAMP)"));
        assert!(sql
            .changes
            .contains("WHERE TABLE_NAME = 'items' AND ROW_KEY = :K"));
        assert!(sql.keyed_log.starts_with(
            "EXECUTE BLOCK (RK VARCHAR(200) CHARACTER SET UTF8 = ?, Q0 VARCHAR(200) CHARACTER SET UTF8 = ?, Q1"
        ));
        assert!(sql
            .keyed_log
            .contains("WHERE t.\"PEDIDO\" = :Q0 AND t.\"LINHA\" = :Q1 INTO"));
        assert!(!sql.keyed_refresh.contains("INSERT INTO SYNC_LOG"));
        assert!(sql.deletes.contains("IF (J = 1) THEN P1 = P;"));
        assert_eq!(
            sql.lock,
            "SELECT 1 FROM \"ITENS\" t WHERE t.\"PEDIDO\" = ? AND t.\"LINHA\" = ? WITH LOCK"
        );
        for banned in ["BOOLEAN", "IF NOT EXISTS", "OFFSET", "FETCH", "IDENTITY"] {
            assert!(
                !sql.changes.contains(banned),
                "{banned} is not Firebird 2.5"
            );
        }
        let single = PeriodicSql::new(&shape(vec![1]), "items", None).unwrap();
        assert!(single
            .deletes
            .contains("P0 = REPLACE(REPLACE(K, '\\|', '|'), '\\\\', '\\');"));
    }
}
