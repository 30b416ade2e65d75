//! Opening a connection to a unit's database from its `host[/port]:path` string.

use rsfbclient::charset::Charset;
use rsfbclient::prelude::*;
use rsfbclient::{FbError, SimpleConnection};

use crate::config::FirebirdConfig;

/// A connection to one unit database (native client, type-erased).
pub type FbConn = SimpleConnection;

/// A parsed `host[/port]:path` database string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    /// Server host.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Database path or alias on that server.
    pub path: String,
}

impl Database {
    /// Parses `127.0.0.1:/var/db/x.fdb`, `host/3051:/db.fdb` or `host:alias`.
    pub fn parse(text: &str) -> Result<Database, String> {
        let (server, path) = text.split_once(':').ok_or_else(|| {
            format!("database `{text}` must be `host[/port]:path` (e.g. 127.0.0.1:/data/unit.fdb)")
        })?;
        let (host, port) = match server.split_once('/') {
            Some((host, port)) => {
                let port = port
                    .parse()
                    .map_err(|_| format!("database `{text}`: port `{port}` is not a number"))?;
                (host, port)
            }
            None => (server, 3050),
        };
        if host.is_empty() || path.is_empty() {
            return Err(format!("database `{text}` must be `host[/port]:path`"));
        }
        Ok(Database {
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }
}

/// Connects (blocking) with the configured user, password and connection charset.
pub fn connect(database: &str, config: &FirebirdConfig) -> Result<FbConn, FbError> {
    let db = Database::parse(database).map_err(FbError::Other)?;
    let charset: Charset = config
        .charset
        .parse()
        .map_err(|_| FbError::Other(format!("unknown Firebird charset `{}`", config.charset)))?;
    let conn = rsfbclient::builder_native()
        .with_dyn_link()
        .with_remote()
        .host(db.host)
        .port(db.port)
        .db_name(db.path)
        .user(config.user.clone())
        .pass(config.password.clone())
        .charset(charset)
        .stmt_cache_size(64)
        .connect()?;
    Ok(conn.into())
}

/// Whether a relation (table or view) exists.
pub fn relation_exists(conn: &mut FbConn, name: &str) -> Result<bool, FbError> {
    let row: Option<(i64,)> = conn.query_first(
        "SELECT COUNT(*) FROM RDB$RELATIONS WHERE RDB$RELATION_NAME = ?",
        (name.to_uppercase(),),
    )?;
    Ok(row.is_some_and(|(n,)| n > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_database_strings() {
        let d = Database::parse("127.0.0.1:/var/lib/x.fdb").unwrap();
        assert_eq!(
            (d.host.as_str(), d.port, d.path.as_str()),
            ("127.0.0.1", 3050, "/var/lib/x.fdb")
        );
        let d = Database::parse("fb.local/3051:loja").unwrap();
        assert_eq!((d.port, d.path.as_str()), (3051, "loja"));
        assert!(Database::parse("/var/lib/x.fdb").is_err());
        assert!(Database::parse("h/xx:/a").is_err());
    }
}
