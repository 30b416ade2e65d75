//! `ponte capture install|remove` on one unit (blocking, Firebird 2.5 DDL): the host schema
//! (SYNC_LOG, GEN_SYNC_LOG, SYNC_CAPTURE_INFO via the migrations), the capture epoch and id range,
//! one generated AFTER INSERT/UPDATE/DELETE trigger per configured table, and INDICE raised into
//! the unit's id range. Re-running converges: CREATE OR ALTER, stale triggers dropped.

use rsfbclient::prelude::*;
use rsfbclient::FbError;

use super::periodic::PeriodicSql;
use super::shape::TableShape;
use crate::config::{Config, UnitCapture, UpstreamTable};
use crate::firebird::{migrate_unit, FbConn, HOST_WRITE_FLAG};

/// Characters of SYNC_LOG.ROW_KEY and of the trigger's key variables.
const ROW_KEY_CHARS: usize = 200;

/// Prefix of the generated trigger names (`SYNC$CLIENTES`).
pub const TRIGGER_PREFIX: &str = "SYNC$";

/// What an install did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallReport {
    /// Tables whose trigger was created or replaced.
    pub tables: Vec<String>,
    /// Stale triggers dropped (tables no longer configured).
    pub dropped: Vec<String>,
    /// INDICE keys raised to the unit's range start, with the new value.
    pub indice: Vec<(String, i64)>,
    /// Declared generators raised to the unit's range start: (name, old, new).
    pub generators: Vec<crate::legacy::GeneratorMove>,
    /// `unit_triggers = "guard"` applied: (trigger, outcome).
    pub guarded: Vec<(String, String)>,
    /// Tables under periodic capture (no trigger), with whether their baseline was taken now.
    pub periodic: Vec<(String, bool)>,
}

/// The trigger of one table: logs the key, the base version, the time and (I/U) the row image as
/// JSON, unless the host's own apply transaction is writing (the context flag), so nothing ponte
/// applies is captured again.
pub fn trigger_sql(shape: &TableShape, t: &UpstreamTable) -> String {
    let table = &shape.table;
    let downstream = t.downstream().replace('\'', "''");
    let insert = |op: &str, key: &str, image: &str| {
        format!(
            "INSERT INTO SYNC_LOG (ID, TABLE_NAME, OP, ROW_KEY, BASE_SEQ, CHANGED_AT, TX_ID, IMAGE) \
             VALUES (GEN_ID(GEN_SYNC_LOG, 1), '{table}', {op}, :{key}, \
             (SELECT SEQ FROM SYNC_ROW_VERSION WHERE TABLE_NAME = '{downstream}' AND ROW_KEY = :{key}), \
             CURRENT_TIMESTAMP, CURRENT_TRANSACTION, {image});"
        )
    };
    format!(
        "CREATE OR ALTER TRIGGER {TRIGGER_PREFIX}{table} FOR \"{table}\" ACTIVE AFTER INSERT OR UPDATE OR DELETE POSITION 32000 AS\n\
         DECLARE VARIABLE NK VARCHAR(200) CHARACTER SET UTF8;\n\
         DECLARE VARIABLE OK VARCHAR(200) CHARACTER SET UTF8;\n\
         DECLARE VARIABLE IMG BLOB SUB_TYPE TEXT CHARACTER SET UTF8;\n\
         BEGIN\n\
         \x20 IF (RDB$GET_CONTEXT('USER_TRANSACTION', '{HOST_WRITE_FLAG}') IS NOT DISTINCT FROM '1') THEN EXIT;\n\
         \x20 IF (NOT INSERTING) THEN OK = {old};\n\
         \x20 IF (NOT DELETING) THEN\n\
         \x20 BEGIN\n\
         \x20   NK = {new};\n\
         {image}\n\
         \x20 END\n\
         \x20 IF (DELETING OR NK IS DISTINCT FROM OK) THEN\n\
         \x20 BEGIN\n\
         \x20   IF (NOT INSERTING) THEN {del}\n\
         \x20   IF (NOT DELETING) THEN {ins}\n\
         \x20 END\n\
         \x20 ELSE {upd}\n\
         END",
        old = shape.key_expr("OLD"),
        new = shape.key_expr("NEW"),
        image = shape.image_psql(),
        del = insert("'D'", "OK", "NULL"),
        ins = insert("'I'", "NK", ":IMG"),
        upd = insert("'U'", "NK", ":IMG"),
    )
}

/// Installs (or re-installs) capture on one unit database.
pub fn install_unit(
    conn: &mut FbConn,
    config: &Config,
    unit: i32,
) -> Result<InstallReport, FbError> {
    migrate_unit(conn)?;
    // Every table is checked before anything is changed: a key that may not fit SYNC_LOG's
    // ROW_KEY would make the legacy application's own insert fail in the trigger.
    let mut shapes = Vec::with_capacity(config.upstream.tables.len());
    for (table, t) in &config.upstream.tables {
        let shape = TableShape::read(conn, table)?;
        if shape.key_width() > ROW_KEY_CHARS {
            return Err(FbError::Other(format!(
                "table {table}: its primary key ({}) can make a row key of {} characters, and \
                 SYNC_LOG.ROW_KEY holds {ROW_KEY_CHARS} (text key columns count twice: `\\` and \
                 `|` are escaped); the capture trigger would make the legacy application's own \
                 writes fail. Nothing was installed; leave this table out of [upstream.tables]",
                shape.key_columns(),
                shape.key_width()
            )));
        }
        shapes.push((table, t, shape));
    }
    let range = config.units.id_range(unit);
    let (low, high) = (range.map(|r| r.0), range.map(|r| r.1));
    let rows: Option<(i64,)> = conn.query_first("SELECT COUNT(*) FROM SYNC_CAPTURE_INFO", ())?;
    if rows.is_some_and(|(n,)| n > 0) {
        conn.execute(
            "UPDATE SYNC_CAPTURE_INFO SET UNIT_ID = ?, ID_LOW = ?, ID_HIGH = ?",
            (unit, low, high),
        )?;
    } else {
        let epoch = uuid::Uuid::new_v4().to_string();
        conn.execute(
            "INSERT INTO SYNC_CAPTURE_INFO (EPOCH, UNIT_ID, ID_LOW, ID_HIGH) VALUES (?, ?, ?, ?)",
            (epoch, unit, low, high),
        )?;
    }
    let mut report = InstallReport::default();
    if let Some((low, high)) = range {
        report.generators = crate::legacy::generators_into_range(conn, config, low, high)?;
    }
    report.guarded = crate::legacy::apply_policy(conn, config)?
        .into_iter()
        .map(|(name, outcome)| (name, outcome.to_string()))
        .collect();
    for (table, t, shape) in shapes {
        if t.capture == UnitCapture::Periodic {
            let sql = PeriodicSql::new(&shape, t.downstream(), t.change_column.as_deref())
                .map_err(FbError::Other)?;
            report.periodic.push((table.clone(), sql.seed(conn)?));
        } else {
            conn.execute(&trigger_sql(&shape, t), ())?;
            report.tables.push(table.clone());
        }
        if let Some((low, high)) = range {
            let key = t.indice_key.clone().unwrap_or_else(|| table.clone());
            if let Some(raised) = raise_into_range(conn, &key, low, high)? {
                report.indice.push((key, raised));
            }
        }
    }
    for name in capture_triggers(conn)? {
        let table = name.trim_start_matches(TRIGGER_PREFIX);
        let triggered = config
            .upstream
            .tables
            .get(table)
            .is_some_and(|t| t.capture == UnitCapture::Trigger);
        if !triggered {
            conn.execute(&format!("DROP TRIGGER {name}"), ())?;
            report.dropped.push(name);
        }
    }
    Ok(report)
}

/// Drops every capture trigger and ends periodic capture (its fingerprints are forgotten; a later
/// install takes a new baseline); the log, its pending rows and the epoch stay (a later install
/// continues the same sequence). Returns the triggers dropped.
pub fn remove_unit(conn: &mut FbConn) -> Result<Vec<String>, FbError> {
    let names = capture_triggers(conn)?;
    for name in &names {
        conn.execute(&format!("DROP TRIGGER {name}"), ())?;
    }
    if crate::firebird::relation_exists(conn, "SYNC_PERIODIC_TABLE")? {
        conn.execute("DELETE FROM SYNC_PERIODIC_TABLE", ())?;
        conn.execute("DELETE FROM SYNC_PERIODIC", ())?;
    }
    Ok(names)
}

fn capture_triggers(conn: &mut FbConn) -> Result<Vec<String>, FbError> {
    let rows: Vec<(String,)> = conn.query(
        "SELECT TRIM(RDB$TRIGGER_NAME) FROM RDB$TRIGGERS WHERE RDB$TRIGGER_NAME STARTING WITH ?",
        (TRIGGER_PREFIX.to_string(),),
    )?;
    Ok(rows.into_iter().map(|(n,)| n).collect())
}

/// Makes INDICE's `key` at least `low` (local applications then allocate `low + 1` onwards);
/// refuses a value already past the range. Returns the new value when it was raised.
fn raise_into_range(
    conn: &mut FbConn,
    key: &str,
    low: i64,
    high: i64,
) -> Result<Option<i64>, FbError> {
    let current: Option<(i64,)> = conn.query_first(
        "SELECT ULTIMO_ID FROM INDICE WHERE TABELA = ?",
        (key.to_string(),),
    )?;
    match current {
        Some((v,)) if v >= high - 1 => Err(FbError::Other(format!(
            "INDICE {key} is at {v}, past this unit's id range [{low}, {high}); raise [units] id_block or fix INDICE"
        ))),
        Some((v,)) if v >= low => Ok(None),
        _ => {
            conn.execute(
                "UPDATE OR INSERT INTO INDICE (TABELA, ULTIMO_ID) VALUES (?, ?) MATCHING (TABELA)",
                (key.to_string(), low),
            )?;
            Ok(Some(low))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::shape::{ColumnKind, FbColumn};
    use crate::config::{ConflictPolicy, Fanout};

    #[test]
    fn trigger_is_firebird_25_psql() {
        let col = |name: &str, kind| FbColumn {
            name: name.into(),
            kind,
            chars: 0,
            canon: None,
        };
        let shape = TableShape {
            table: "CLIENTES".into(),
            columns: vec![
                col("ID", ColumnKind::Int),
                col("NOME", ColumnKind::Varchar),
                col("LIMITE", ColumnKind::Scaled),
                col("FOTO", ColumnKind::Unsupported),
            ],
            pk: vec![0],
        };
        let t = UpstreamTable {
            pg_table: "customers".into(),
            downstream_table: None,
            key: vec!["id".into()],
            transform: None,
            settings: None,
            conflict: ConflictPolicy::PgWins,
            version_column: None,
            fanout: Fanout::None,
            indice_key: None,
            capture: crate::config::UnitCapture::Trigger,
            every: None,
            change_column: None,
        };
        let sql = trigger_sql(&shape, &t);
        assert!(sql.starts_with("CREATE OR ALTER TRIGGER SYNC$CLIENTES FOR \"CLIENTES\" ACTIVE AFTER INSERT OR UPDATE OR DELETE"));
        assert!(sql.contains("RDB$GET_CONTEXT('USER_TRANSACTION', 'PONTE_APPLY') IS NOT DISTINCT FROM '1') THEN EXIT"));
        assert!(sql.contains("TABLE_NAME = 'customers' AND ROW_KEY = :NK"));
        assert!(sql.contains("IMG = IMG || ',\"LIMITE\":' || COALESCE('\"' || CAST(NEW.\"LIMITE\" AS VARCHAR(40)) || '\"', 'null');"));
        assert!(!sql.contains("FOTO"), "binary blobs stay out of the image");
        for banned in [
            "BOOLEAN",
            "IDENTITY",
            "IF NOT EXISTS",
            "IF EXISTS",
            "OFFSET",
            "FETCH",
        ] {
            assert!(!sql.contains(banned), "{banned} is not Firebird 2.5");
        }
    }
}
