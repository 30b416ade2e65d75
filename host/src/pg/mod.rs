//! PostgreSQL: the pool (every statement under a timeout) and the embedded migrations.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use crate::config::PostgresConfig;

/// Opens a pool whose connections carry a server-side `statement_timeout`.
pub async fn connect(config: &PostgresConfig) -> Result<PgPool, sqlx::Error> {
    let timeout = config.timeout();
    let options: PgConnectOptions = config
        .url
        .parse::<PgConnectOptions>()?
        .options([("statement_timeout", format!("{}", timeout.as_millis()))])
        .application_name("ponte")
        .disable_statement_logging();
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(timeout)
        .connect_with(options)
        .await
}

/// Applies migrations/postgres (tracked in `_sqlx_migrations`).
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    sqlx::migrate!("../migrations/postgres").run(pool).await
}
