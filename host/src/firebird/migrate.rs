//! Applies migrations/firebird to a unit database: each file once (PONTE_SCHEMA_VERSION), each
//! statement committed on its own (Firebird DDL must commit before use), and a CREATE of an object
//! that already exists is skipped, so a legacy INDICE is kept and a half-applied file can be re-run.

use rsfbclient::prelude::*;
use rsfbclient::FbError;

use super::connect::{relation_exists, FbConn};

/// The Firebird migrations, in order: (version, name, script).
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "host_tables",
        include_str!("../../../migrations/firebird/0001_host_tables.sql"),
    ),
    (
        2,
        "capture",
        include_str!("../../../migrations/firebird/0002_capture.sql"),
    ),
    (
        3,
        "legacy",
        include_str!("../../../migrations/firebird/0003_legacy.sql"),
    ),
    (
        4,
        "trigger_epoch",
        include_str!("../../../migrations/firebird/0004_trigger_epoch.sql"),
    ),
    (
        5,
        "periodic_capture",
        include_str!("../../../migrations/firebird/0005_periodic_capture.sql"),
    ),
];

/// Brings one unit database up to date; returns the versions applied now.
pub fn migrate_unit(conn: &mut FbConn) -> Result<Vec<i32>, FbError> {
    if !relation_exists(conn, "PONTE_SCHEMA_VERSION")? {
        conn.execute(
            "CREATE TABLE PONTE_SCHEMA_VERSION (VERSION INTEGER NOT NULL PRIMARY KEY, \
             NAME VARCHAR(100) NOT NULL, APPLIED_AT TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL)",
            (),
        )?;
    }
    let applied: Vec<(i32,)> = conn.query("SELECT VERSION FROM PONTE_SCHEMA_VERSION", ())?;
    let mut done = Vec::new();
    for &(version, name, script) in MIGRATIONS {
        if applied.iter().any(|&(v,)| v == version) {
            continue;
        }
        for statement in split_script(script) {
            if let Some((kind, object)) = created_object(&statement) {
                if object_exists(conn, kind, &object)? {
                    continue;
                }
            }
            conn.execute(&statement, ())?;
        }
        conn.execute(
            "INSERT INTO PONTE_SCHEMA_VERSION (VERSION, NAME) VALUES (?, ?)",
            (version, name.to_string()),
        )?;
        done.push(version);
    }
    Ok(done)
}

/// Splits an isql-style script into statements: `--` comments dropped, `SET TERM` honoured.
pub fn split_script(script: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut terminator = ";".to_string();
    let mut current = String::new();
    for line in script.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("--") || (trimmed.is_empty() && current.trim().is_empty()) {
            continue;
        }
        let upper = trimmed.to_uppercase();
        if upper.starts_with("SET TERM ") {
            let rest = trimmed["SET TERM ".len()..].trim();
            let new_term = rest.trim_end_matches(terminator.as_str()).trim();
            terminator = new_term.to_string();
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if trimmed.ends_with(terminator.as_str()) {
            let text = current.trim_end();
            let body = text[..text.len() - terminator.len()].trim().to_string();
            if !body.is_empty() {
                statements.push(body);
            }
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        statements.push(current.trim().to_string());
    }
    statements
}

/// `CREATE TABLE X` -> ("TABLE", "X"), likewise INDEX, GENERATOR, SEQUENCE, TRIGGER, EXCEPTION.
fn created_object(statement: &str) -> Option<(&'static str, String)> {
    let words: Vec<String> = statement
        .split_whitespace()
        .take(6)
        .map(str::to_uppercase)
        .collect();
    if words.first().map(String::as_str) != Some("CREATE") {
        return None;
    }
    let mut i = 1;
    while matches!(
        words.get(i).map(String::as_str),
        Some("UNIQUE" | "ASC" | "ASCENDING" | "DESC" | "DESCENDING")
    ) {
        i += 1;
    }
    let kind = match words.get(i).map(String::as_str)? {
        "TABLE" => "TABLE",
        "INDEX" => "INDEX",
        "GENERATOR" | "SEQUENCE" => "GENERATOR",
        "TRIGGER" => "TRIGGER",
        "EXCEPTION" => "EXCEPTION",
        _ => return None,
    };
    let name = words
        .get(i + 1)?
        .trim_matches(|c| c == '(' || c == '"')
        .to_string();
    Some((kind, name))
}

fn object_exists(conn: &mut FbConn, kind: &str, name: &str) -> Result<bool, FbError> {
    let sql = match kind {
        "TABLE" => return relation_exists(conn, name),
        "INDEX" => "SELECT COUNT(*) FROM RDB$INDICES WHERE RDB$INDEX_NAME = ?",
        "GENERATOR" => "SELECT COUNT(*) FROM RDB$GENERATORS WHERE RDB$GENERATOR_NAME = ?",
        "TRIGGER" => "SELECT COUNT(*) FROM RDB$TRIGGERS WHERE RDB$TRIGGER_NAME = ?",
        _ => "SELECT COUNT(*) FROM RDB$EXCEPTIONS WHERE RDB$EXCEPTION_NAME = ?",
    };
    let row: Option<(i64,)> = conn.query_first(sql, (name.to_string(),))?;
    Ok(row.is_some_and(|(n,)| n > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_with_set_term_and_comments() {
        let script = "-- c\nCREATE TABLE A (X INT);\nSET TERM ^ ;\nCREATE TRIGGER T FOR A AS\nBEGIN\n  X = 1;\nEND^\nSET TERM ; ^\nCREATE INDEX I ON A (X);\n";
        let s = split_script(script);
        assert_eq!(s.len(), 3, "{s:?}");
        assert!(s[1].starts_with("CREATE TRIGGER") && s[1].ends_with("END"));
        assert_eq!(created_object(&s[0]), Some(("TABLE", "A".into())));
        assert_eq!(created_object(&s[2]), Some(("INDEX", "I".into())));
        assert_eq!(
            created_object("CREATE UNIQUE INDEX U ON A (X)"),
            Some(("INDEX", "U".into()))
        );
    }

    #[test]
    fn shipped_migrations_split_cleanly() {
        for (_, _, script) in MIGRATIONS {
            for s in split_script(script) {
                assert!(!s.contains(';') || s.contains("BEGIN"), "{s}");
            }
        }
    }
}
