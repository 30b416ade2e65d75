//! What a unit's RDB$ catalog says about its own logic: the user triggers of a table (type,
//! position, state, source), what each depends on (RDB$DEPENDENCIES), generators, CHECK
//! constraints and the character set of text columns. Read-only.

use rsfbclient::prelude::*;
use rsfbclient::FbError;

use crate::firebird::FbConn;

/// One user trigger of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitTrigger {
    /// RDB$TRIGGER_NAME, trimmed.
    pub name: String,
    /// The table it is on.
    pub relation: String,
    /// RDB$TRIGGER_TYPE (phase and up to three actions).
    pub kind: i64,
    /// RDB$TRIGGER_SEQUENCE.
    pub position: i64,
    /// Not INACTIVE.
    pub active: bool,
    /// RDB$TRIGGER_SOURCE, from `AS`; None when the vendor shipped it without source.
    pub source: Option<String>,
}

impl UnitTrigger {
    /// `BEFORE` or `AFTER`.
    pub fn phase(&self) -> &'static str {
        if (self.kind + 1) & 1 == 0 {
            "BEFORE"
        } else {
            "AFTER"
        }
    }

    /// The operations it fires on (Firebird's TRIGGER_ACTION_SLOT encoding).
    pub fn actions(&self) -> Vec<&'static str> {
        (1..=3)
            .filter_map(|slot| match ((self.kind + 1) >> (slot * 2 - 1)) & 3 {
                1 => Some("INSERT"),
                2 => Some("UPDATE"),
                3 => Some("DELETE"),
                _ => None,
            })
            .collect()
    }

    /// `BEFORE INSERT OR UPDATE`.
    pub fn describe(&self) -> String {
        format!("{} {}", self.phase(), self.actions().join(" OR "))
    }
}

type TriggerRow = (String, String, i64, i64, i64, Option<String>);

const TRIGGER_SELECT: &str = "SELECT TRIM(RDB$TRIGGER_NAME), TRIM(RDB$RELATION_NAME), \
     RDB$TRIGGER_TYPE, COALESCE(RDB$TRIGGER_SEQUENCE, 0), COALESCE(RDB$TRIGGER_INACTIVE, 0), \
     RDB$TRIGGER_SOURCE FROM RDB$TRIGGERS WHERE COALESCE(RDB$SYSTEM_FLAG, 0) = 0 \
     AND RDB$RELATION_NAME IS NOT NULL";

fn trigger_of(row: TriggerRow) -> UnitTrigger {
    let (name, relation, kind, position, inactive, source) = row;
    UnitTrigger {
        name,
        relation,
        kind,
        position,
        active: inactive == 0,
        source,
    }
}

/// The user triggers of `table`, ponte's own capture triggers (`SYNC$`) left out, in firing
/// order.
pub fn triggers_on(conn: &mut FbConn, table: &str) -> Result<Vec<UnitTrigger>, FbError> {
    let rows: Vec<TriggerRow> = conn.query(
        &format!(
            "{TRIGGER_SELECT} AND RDB$RELATION_NAME = ? AND RDB$TRIGGER_NAME NOT STARTING WITH \
             'SYNC$' ORDER BY RDB$TRIGGER_SEQUENCE, RDB$TRIGGER_NAME"
        ),
        (table.to_string(),),
    )?;
    Ok(rows.into_iter().map(trigger_of).collect())
}

/// One user trigger by name.
pub fn trigger(conn: &mut FbConn, name: &str) -> Result<Option<UnitTrigger>, FbError> {
    let row: Option<TriggerRow> = conn.query_first(
        &format!("{TRIGGER_SELECT} AND RDB$TRIGGER_NAME = ?"),
        (name.to_string(),),
    )?;
    Ok(row.map(trigger_of))
}

/// What RDB$DEPENDENCIES records for a trigger: (object, type) with type 0 a table, 5 a
/// procedure, 14 a generator.
pub fn dependencies(conn: &mut FbConn, trigger: &str) -> Result<Vec<(String, i64)>, FbError> {
    let rows: Vec<(String, i64)> = conn.query(
        "SELECT DISTINCT TRIM(RDB$DEPENDED_ON_NAME), RDB$DEPENDED_ON_TYPE FROM RDB$DEPENDENCIES \
         WHERE RDB$DEPENDENT_NAME = ? AND RDB$DEPENDENT_TYPE = 2",
        (trigger.to_string(),),
    )?;
    Ok(rows)
}

/// The current value of generator `name`; None when it does not exist.
pub fn generator_value(conn: &mut FbConn, name: &str) -> Result<Option<i64>, FbError> {
    let exists: Option<(i64,)> = conn.query_first(
        "SELECT COUNT(*) FROM RDB$GENERATORS WHERE RDB$GENERATOR_NAME = ?",
        (name.to_string(),),
    )?;
    if exists.is_none_or(|(n,)| n <= 0) {
        return Ok(None);
    }
    // Only plain identifiers reach here (config validation); quoting keeps it exact anyway.
    let quoted = name.replace('"', "\"\"");
    let row: Option<(i64,)> = conn.query_first(
        &format!("SELECT GEN_ID(\"{quoted}\", 0) FROM RDB$DATABASE"),
        (),
    )?;
    Ok(row.map(|(v,)| v))
}

/// The CHECK constraints of `table`: (constraint name, source `CHECK (...)`).
pub fn checks(conn: &mut FbConn, table: &str) -> Result<Vec<(String, String)>, FbError> {
    let rows: Vec<(String, Option<String>)> = conn.query(
        "SELECT DISTINCT TRIM(RC.RDB$CONSTRAINT_NAME), T.RDB$TRIGGER_SOURCE \
         FROM RDB$RELATION_CONSTRAINTS RC \
         JOIN RDB$CHECK_CONSTRAINTS CC ON CC.RDB$CONSTRAINT_NAME = RC.RDB$CONSTRAINT_NAME \
         JOIN RDB$TRIGGERS T ON T.RDB$TRIGGER_NAME = CC.RDB$TRIGGER_NAME \
         WHERE RC.RDB$RELATION_NAME = ? AND RC.RDB$CONSTRAINT_TYPE = 'CHECK' \
         AND T.RDB$TRIGGER_TYPE = 1",
        (table.to_string(),),
    )?;
    Ok(rows
        .into_iter()
        .map(|(name, source)| (name, source.unwrap_or_default()))
        .collect())
}

/// The character set of each CHAR/VARCHAR/text BLOB column of `table`: (column, charset).
pub fn text_charsets(conn: &mut FbConn, table: &str) -> Result<Vec<(String, String)>, FbError> {
    let rows: Vec<(String, String)> = conn.query(
        "SELECT TRIM(RF.RDB$FIELD_NAME), TRIM(CS.RDB$CHARACTER_SET_NAME) \
         FROM RDB$RELATION_FIELDS RF JOIN RDB$FIELDS F ON F.RDB$FIELD_NAME = RF.RDB$FIELD_SOURCE \
         JOIN RDB$CHARACTER_SETS CS \
         ON CS.RDB$CHARACTER_SET_ID = COALESCE(F.RDB$CHARACTER_SET_ID, 0) \
         WHERE RF.RDB$RELATION_NAME = ? AND (F.RDB$FIELD_TYPE IN (14, 37) \
           OR (F.RDB$FIELD_TYPE = 261 AND F.RDB$FIELD_SUB_TYPE = 1)) \
         ORDER BY RF.RDB$FIELD_POSITION",
        (table.to_string(),),
    )?;
    Ok(rows)
}

/// The ARRAY columns of `table` (RDB$DIMENSIONS set).
pub fn array_columns(conn: &mut FbConn, table: &str) -> Result<Vec<String>, FbError> {
    let rows: Vec<(String,)> = conn.query(
        "SELECT TRIM(RF.RDB$FIELD_NAME) FROM RDB$RELATION_FIELDS RF \
         JOIN RDB$FIELDS F ON F.RDB$FIELD_NAME = RF.RDB$FIELD_SOURCE \
         WHERE RF.RDB$RELATION_NAME = ? AND F.RDB$DIMENSIONS IS NOT NULL",
        (table.to_string(),),
    )?;
    Ok(rows.into_iter().map(|(n,)| n).collect())
}

/// The primary key columns of `table`, in key order.
pub fn primary_key(conn: &mut FbConn, table: &str) -> Result<Vec<String>, FbError> {
    let rows: Vec<(String,)> = conn.query(
        "SELECT TRIM(S.RDB$FIELD_NAME) FROM RDB$RELATION_CONSTRAINTS RC \
         JOIN RDB$INDEX_SEGMENTS S ON S.RDB$INDEX_NAME = RC.RDB$INDEX_NAME \
         WHERE RC.RDB$RELATION_NAME = ? AND RC.RDB$CONSTRAINT_TYPE = 'PRIMARY KEY' \
         ORDER BY S.RDB$FIELD_POSITION",
        (table.to_string(),),
    )?;
    Ok(rows.into_iter().map(|(n,)| n).collect())
}

/// Every user table of the unit (no system tables, no views).
pub fn user_tables(conn: &mut FbConn) -> Result<Vec<String>, FbError> {
    let rows: Vec<(String,)> = conn.query(
        "SELECT TRIM(RDB$RELATION_NAME) FROM RDB$RELATIONS WHERE COALESCE(RDB$SYSTEM_FLAG, 0) = 0 \
         AND RDB$VIEW_BLR IS NULL ORDER BY RDB$RELATION_NAME",
        (),
    )?;
    Ok(rows.into_iter().map(|(n,)| n).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(kind: i64) -> UnitTrigger {
        UnitTrigger {
            name: "T".into(),
            relation: "R".into(),
            kind,
            position: 0,
            active: true,
            source: None,
        }
    }

    #[test]
    fn trigger_types_decode_like_firebird() {
        assert_eq!(kind(1).describe(), "BEFORE INSERT");
        assert_eq!(kind(4).describe(), "AFTER UPDATE");
        assert_eq!(kind(6).describe(), "AFTER DELETE");
        assert_eq!(kind(17).describe(), "BEFORE INSERT OR UPDATE");
        assert_eq!(kind(114).describe(), "AFTER INSERT OR UPDATE OR DELETE");
    }
}
