//! Firebird helpers for the suites: create and drop unit databases on the real server (isql-fb,
//! with the legacy schema), and read tables back for comparisons.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use rsfbclient::Queryable;

/// Directory for test databases (writable by the firebird user).
pub const DB_DIR: &str = "/tmp/ponte-fb";

/// Creates `{DB_DIR}/{prefix}_u{id}.fdb` with `charset`, loads the demo legacy schema, and returns
/// its database string (`127.0.0.1:/path`).
pub fn create_unit_db(prefix: &str, id: i32, charset: &str) -> anyhow::Result<String> {
    std::fs::create_dir_all(DB_DIR)?;
    let _ = Command::new("chmod").args(["1777", DB_DIR]).status();
    create_unit_db_on("127.0.0.1", DB_DIR, prefix, id, charset)
}

/// [`create_unit_db`] on another server (`host[/port]`), in `dir` (writable by that server).
pub fn create_unit_db_on(
    server: &str,
    dir: &str,
    prefix: &str,
    id: i32,
    charset: &str,
) -> anyhow::Result<String> {
    let path = format!("{dir}/{prefix}_u{id}.fdb");
    let db = format!("{server}:{path}");
    let mut script = format!(
        "CREATE DATABASE '{db}' USER 'SYSDBA' PASSWORD '{}' PAGE_SIZE 16384 DEFAULT CHARACTER SET {charset};\n",
        super::fb_password()
    );
    script.push_str(include_str!("../../deploy/demo/firebird-legacy.sql"));
    script.push_str("\nCOMMIT;\n");
    isql(&script).with_context(|| {
        format!("creating Firebird database {db}: is the Firebird server running (deploy/firebird.sh start)?")
    })?;
    Ok(db)
}

/// Runs an isql-fb script (which must CONNECT or CREATE DATABASE itself); fails on any error.
pub fn isql(script: &str) -> anyhow::Result<String> {
    let mut child = Command::new("isql-fb")
        .args([
            "-q",
            "-bail",
            "-user",
            "SYSDBA",
            "-password",
            &super::fb_password(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("isql-fb is not installed (deploy/firebird.sh install)")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if !out.status.success() || stderr.contains("Statement failed") || stderr.contains("SQLSTATE") {
        bail!("isql-fb failed: {stderr}");
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// Drops the given unit databases (files). Best effort.
pub fn drop_unit_dbs(units: &[(i32, String)]) -> anyhow::Result<()> {
    for (_, db) in units {
        let script = format!("CONNECT '{db}';\nDROP DATABASE;\n");
        let _ = isql(&script);
    }
    Ok(())
}

/// Opens a connection as the tests' SYSDBA (UTF8 connection charset).
pub fn connect(db: &str) -> anyhow::Result<ponte::firebird::FbConn> {
    let config = ponte::config::FirebirdConfig {
        user: "SYSDBA".into(),
        password: super::fb_password(),
        charset: "UTF8".into(),
        timeout_ms: 30_000,
    };
    ponte::firebird::connect(db, &config).with_context(|| format!("connecting to {db}"))
}

/// The one BIGINT `sql` returns, on a connection of its own to `db` (-1 when it returns no row).
pub fn scalar(db: &str, sql: &str) -> anyhow::Result<i64> {
    let mut conn = connect(db)?;
    let row: Option<(i64,)> = conn.query_first(sql, ())?;
    let _ = conn.close();
    Ok(row.map(|(n,)| n).unwrap_or(-1))
}
