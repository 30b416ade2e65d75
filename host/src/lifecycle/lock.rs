//! One load or repair per unit at a time: a PostgreSQL session advisory lock held on a connection
//! of its own for the whole command. A process that dies (even `kill -9`) loses its connection
//! and with it the lock, so a rerun never finds a stale one.

use std::time::Duration;

use anyhow::{bail, Context};
use sqlx::{ConnectOptions, Connection, PgConnection};

use crate::config::PostgresConfig;

/// The advisory lock namespace of unit lifecycle commands ("pnte").
const NAMESPACE: i32 = 0x706e_7465;

/// Holds the lifecycle lock of one unit until dropped or released.
pub struct UnitLock {
    conn: Option<PgConnection>,
    unit: i32,
}

impl UnitLock {
    /// Takes the lock of `unit` or fails at once, saying who holds it.
    pub async fn acquire(
        config: &PostgresConfig,
        unit: i32,
        what: &str,
    ) -> anyhow::Result<UnitLock> {
        let options: sqlx::postgres::PgConnectOptions = config
            .url
            .parse()
            .context("[postgres] url is not a PostgreSQL URL")?;
        let options = options
            .application_name(&format!("ponte {what} unit {unit}"))
            .disable_statement_logging();
        let connect = options.connect();
        let mut conn = tokio::time::timeout(config.timeout(), connect)
            .await
            .map_err(|_| {
                anyhow::anyhow!("PostgreSQL did not answer within {:?}", config.timeout())
            })?
            .context("connecting to PostgreSQL for the unit lock")?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
            .bind(NAMESPACE)
            .bind(unit)
            .fetch_one(&mut conn)
            .await?;
        if !got {
            let holder: Option<String> = sqlx::query_scalar(
                "SELECT a.application_name || ' (pid ' || a.pid || ', since ' || \
                 to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS') || ')' \
                 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.locktype = 'advisory' AND l.classid = $1::int::oid \
                 AND l.objid = $2::int::oid AND l.granted LIMIT 1",
            )
            .bind(NAMESPACE)
            .bind(unit)
            .fetch_optional(&mut conn)
            .await
            .ok()
            .flatten();
            let _ = conn.close().await;
            bail!(
                "unit {unit}: a load or repair of this unit is already running ({}); wait for it \
                 or stop it, then run this again (progress is kept)",
                holder.unwrap_or_else(|| "another session".into())
            );
        }
        Ok(UnitLock {
            conn: Some(conn),
            unit,
        })
    }

    /// Releases the lock (closing the connection releases it too).
    pub async fn release(mut self) {
        if let Some(mut conn) = self.conn.take() {
            let unlock = sqlx::query("SELECT pg_advisory_unlock($1, $2)")
                .bind(NAMESPACE)
                .bind(self.unit)
                .execute(&mut conn);
            let _ = tokio::time::timeout(Duration::from_secs(5), unlock).await;
            let _ = tokio::time::timeout(Duration::from_secs(5), conn.close()).await;
        }
    }
}
