//! Shared harness for the end-to-end suites: every test gets its own PostgreSQL database, its own
//! broker namespace (exchange and queues) and its own Firebird unit databases on the real servers,
//! and the transforms the build just compiled. A missing server fails the test loudly.

pub mod bench;
pub mod changes;
pub mod check;
pub mod firebird;
pub mod http;
pub mod legacy;
pub mod measure;
pub mod paced;
pub mod process;
pub mod tools;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ponte::config::Config;
use ponte::daemon::{start, Roles, Running};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Where the build put the transform components.
pub const TRANSFORMS_DIR: &str = env!("PONTE_TEST_TRANSFORMS_DIR");

/// The PostgreSQL server the tests use (database part replaced per test).
pub fn pg_admin_url() -> String {
    std::env::var("PONTE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The broker the tests use.
pub fn amqp_url() -> String {
    std::env::var("PONTE_TEST_AMQP")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// SYSDBA's password on the test Firebird server.
pub fn fb_password() -> String {
    // The same variable the host and deploy/firebird.sh read (PONTE_FB_PASSWORD: the old name).
    std::env::var("PONTE_FIREBIRD_PASSWORD")
        .or_else(|_| std::env::var("PONTE_FB_PASSWORD"))
        .unwrap_or_else(|_| "masterkey".into())
}

/// Logs for tests (once per process); `RUST_LOG` filters.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,ponte=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// One test's isolated world.
pub struct TestEnv {
    /// Short unique name (database, exchange and file prefix).
    pub name: String,
    /// Pool on the test's own PostgreSQL database.
    pub pg: PgPool,
    /// The test database URL.
    pub pg_url: String,
    /// Units: (id, database string).
    pub units: Vec<(i32, String)>,
    /// The transforms directory of this test (a copy).
    pub transforms_dir: PathBuf,
    /// Extra TOML appended to the generated config (e.g. tuned [relay]).
    pub extra_toml: String,
    /// Extra keys inside `[units]` (e.g. `id_block = 1000000000`).
    pub units_toml: String,
    /// Extra keys inside `[amqp]` (e.g. `prefetch = 4`).
    pub amqp_toml: String,
    /// Extra keys inside each demo `[tables.X]` block (e.g. `outbox = "trigger"`).
    pub table_toml: String,
    /// Extra keys inside one demo table's block: (table, keys).
    pub table_extra: Vec<(String, String)>,
}

/// A unit to create: id and the database default charset (WIN1252, UTF8, ISO8859_1).
#[derive(Debug, Clone, Copy)]
pub struct UnitSpec {
    /// Unit id.
    pub id: i32,
    /// Default character set of its database.
    pub charset: &'static str,
}

impl UnitSpec {
    /// Units 1..=n, odd ones WIN1252 and even ones UTF8.
    pub fn mixed(n: i32) -> Vec<UnitSpec> {
        (1..=n)
            .map(|id| UnitSpec {
                id,
                charset: if id % 2 == 0 { "UTF8" } else { "WIN1252" },
            })
            .collect()
    }
}

impl TestEnv {
    /// Creates the databases and schemas on the real servers.
    pub async fn new(units: &[UnitSpec]) -> anyhow::Result<TestEnv> {
        init_logging();
        let name = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let admin = PgPool::connect(&pg_admin_url()).await.with_context(|| {
            format!(
                "PostgreSQL is not reachable at {} — start it (deploy/setup.sh) before the tests",
                pg_admin_url()
            )
        })?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await?;
        admin.close().await;
        let pg_url = replace_db(&pg_admin_url(), &name);
        let pg = PgPool::connect(&pg_url).await?;
        ponte::pg::migrate(&pg)
            .await
            .context("ponte PostgreSQL migrations")?;
        sqlx::raw_sql(include_str!("../../deploy/demo/postgres-app.sql"))
            .execute(&pg)
            .await?;
        check_broker().await?;

        let transforms_dir = std::env::temp_dir().join(format!("ponte-{name}-transforms"));
        std::fs::create_dir_all(&transforms_dir)?;
        let mut created = Vec::new();
        for spec in units {
            let db = firebird::create_unit_db(&name, spec.id, spec.charset)?;
            created.push((spec.id, db));
        }
        let env = TestEnv {
            name,
            pg,
            pg_url,
            units: created,
            transforms_dir,
            extra_toml: String::new(),
            units_toml: String::new(),
            amqp_toml: String::new(),
            table_toml: String::new(),
            table_extra: Vec::new(),
        };
        let config = env.config()?;
        ponte::ops::migrate(&config, false, true)
            .await
            .context("ponte Firebird migrations")?;
        Ok(env)
    }

    /// Copies transform components (by file stem) into this test's transforms directory.
    pub fn install_transforms(&self, stems: &[&str]) -> anyhow::Result<()> {
        for stem in stems {
            let from = Path::new(TRANSFORMS_DIR).join(format!("{stem}.wasm"));
            if !from.exists() {
                bail!(
                    "transform {} was not built (looked in {TRANSFORMS_DIR})",
                    from.display()
                );
            }
            std::fs::copy(&from, self.transforms_dir.join(format!("{stem}.wasm")))?;
        }
        Ok(())
    }

    /// The config of this test: demo tables, short timeouts, no HTTP port clash.
    pub fn config_toml(&self) -> String {
        let ids: Vec<String> = self.units.iter().map(|(id, _)| id.to_string()).collect();
        let databases: Vec<String> = self
            .units
            .iter()
            .map(|(id, db)| format!("\"{id}\" = \"{db}\""))
            .collect();
        format!(
            r#"
[postgres]
url = "{pg}"
[amqp]
url = "{amqp}"
exchange = "{name}"
timeout_ms = 5000
{amqp_extra}
[firebird]
password = "{fbpass}"
[units]
ids = "{ids}"
database = "unused:{{id}}"
databases = {{ {databases} }}
{units_extra}
[transforms]
dir = "{dir}"
[http]
listen = "127.0.0.1:0"
[tables.customers]
{x_customers}
ops = "IUD"
transform = "customers"
settings = {{ timezone = "America/Sao_Paulo" }}
{table}
[tables.orders]
{x_orders}
ops = "IUD"
transform = "orders"
settings = {{ timezone = "America/Sao_Paulo" }}
unit_column = "unit_id"
{table}
[tables.order_items]
{x_order_items}
ops = "IUD"
transform = "orders"
unit_sql = "SELECT o.unit_id FROM orders o WHERE o.id = t.order_id"
{table}
[tables.products]
{x_products}
ops = "IUD"
transform = "generic"
settings = {products}
{table}
{extra}
"#,
            pg = self.pg_url,
            amqp = amqp_url(),
            name = self.name,
            fbpass = fb_password(),
            ids = ids.join(","),
            databases = databases.join(", "),
            dir = self.transforms_dir.display(),
            products = products_settings_toml(),
            extra = self.extra_toml,
            units_extra = self.units_toml,
            amqp_extra = self.amqp_toml,
            table = self.table_toml,
            x_customers = self.extra_for("customers"),
            x_orders = self.extra_for("orders"),
            x_order_items = self.extra_for("order_items"),
            x_products = self.extra_for("products"),
        )
    }

    fn extra_for(&self, table: &str) -> String {
        self.table_extra
            .iter()
            .filter(|(t, _)| t == table)
            .map(|(_, keys)| keys.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The parsed, validated config.
    pub fn config(&self) -> anyhow::Result<Config> {
        let config = Config::parse(&self.config_toml())?;
        config.validate()?;
        Ok(config)
    }

    /// Starts a host with `roles`; stop it by cancelling the returned token.
    pub async fn start(&self, roles: Roles) -> anyhow::Result<(Running, CancellationToken)> {
        let token = CancellationToken::new();
        let running = start(Arc::new(self.config()?), roles, token.clone()).await?;
        Ok((running, token))
    }

    /// Writes the config to a file (for host processes) and returns its path.
    pub fn write_config(&self) -> anyhow::Result<PathBuf> {
        let path = std::env::temp_dir().join(format!("ponte-{}.toml", self.name));
        std::fs::write(&path, self.config_toml())?;
        Ok(path)
    }

    /// The demo application writes `changes` business transactions (4 at a time) and no outbox
    /// row: ponte's triggers or its periodic sync must capture them. Fails if one was written.
    pub async fn demo_load_without_outbox(
        &self,
        changes: u64,
        seed: u64,
    ) -> anyhow::Result<ponte::demo::LoadSummary> {
        let options = ponte::demo::LoadOptions {
            changes,
            units: self.units.iter().map(|(id, _)| *id).collect(),
            concurrency: 4,
            seed,
        };
        let summary =
            ponte::demo::load_with(&self.pg, &options, ponte::demo::OutboxWrites::Left, |_| {})
                .await?;
        if summary.outbox_rows != 0 {
            bail!("the application wrote {} outbox rows", summary.outbox_rows);
        }
        Ok(summary)
    }

    /// Starts the demo application writing `changes` business transactions in the background.
    pub fn load_in_background(
        &self,
        changes: u64,
        concurrency: usize,
        seed: u64,
    ) -> tokio::task::JoinHandle<anyhow::Result<ponte::demo::LoadSummary>> {
        let pool = self.pg.clone();
        let units: Vec<i32> = self.units.iter().map(|(id, _)| *id).collect();
        tokio::spawn(async move {
            let options = ponte::demo::LoadOptions {
                changes,
                units,
                concurrency,
                seed,
            };
            ponte::demo::load(&pool, &options, |_| {}).await
        })
    }

    /// Keeps the demo load writing, round after round of 200 transactions, until the returned
    /// token is cancelled (the round in flight completes); yields the transactions committed. A
    /// fault test can then act "while the application is still writing" on any machine speed.
    pub fn load_until_stopped(
        &self,
        concurrency: usize,
        seed: u64,
    ) -> (
        CancellationToken,
        tokio::task::JoinHandle<anyhow::Result<u64>>,
    ) {
        let stop = CancellationToken::new();
        let pool = self.pg.clone();
        let units: Vec<i32> = self.units.iter().map(|(id, _)| *id).collect();
        let stopped = stop.clone();
        let handle = tokio::spawn(async move {
            let mut committed = 0;
            for round in 0.. {
                if stopped.is_cancelled() {
                    break;
                }
                let options = ponte::demo::LoadOptions {
                    changes: 200,
                    units: units.clone(),
                    concurrency,
                    seed: seed + round,
                };
                committed += ponte::demo::load(&pool, &options, |_| {})
                    .await?
                    .transactions;
            }
            Ok(committed)
        });
        (stop, handle)
    }

    /// Outbox rows by status.
    pub async fn outbox_counts(&self) -> anyhow::Result<Vec<(String, i64)>> {
        Ok(
            sqlx::query_as("SELECT status, count(*) FROM pg_sync_outbox GROUP BY 1 ORDER BY 1")
                .fetch_all(&self.pg)
                .await?,
        )
    }

    /// Waits until no outbox row is pending or processing, or fails after `limit`.
    pub async fn wait_outbox_drained(&self, limit: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let open: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_sync_outbox WHERE status IN ('pending', 'processing')",
            )
            .fetch_one(&self.pg)
            .await?;
            if open == 0 {
                return Ok(());
            }
            if started.elapsed() > limit {
                bail!(
                    "outbox not drained after {limit:?}: {:?}",
                    self.outbox_counts().await?
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Drops what the test created (databases, queues, files). Best effort.
    pub async fn cleanup(self) {
        let _ = firebird::drop_unit_dbs(&self.units);
        let _ = std::fs::remove_dir_all(&self.transforms_dir);
        let ids: Vec<i32> = self.units.iter().map(|(id, _)| *id).collect();
        let _ = delete_broker_namespace(&self.name, &ids).await;
        self.pg.close().await;
        if let Ok(admin) = PgPool::connect(&pg_admin_url()).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&admin)
            .await;
        }
    }
}

/// The generic transform's settings for the demo products table, as a TOML inline table.
pub fn products_settings_toml() -> String {
    let json: serde_json::Value = serde_json::from_str(include_str!(
        "../../transforms/generic/examples/products.settings.json"
    ))
    .unwrap_or(serde_json::Value::Null);
    json_to_toml_inline(&json)
}

fn json_to_toml_inline(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("\"{k}\" = {}", json_to_toml_inline(v)))
                .collect();
            format!("{{ {} }}", parts.join(", "))
        }
        serde_json::Value::Array(items) => {
            format!(
                "[{}]",
                items
                    .iter()
                    .map(json_to_toml_inline)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        serde_json::Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        other => other.to_string(),
    }
}

fn replace_db(url: &str, db: &str) -> String {
    match url.rfind('/') {
        Some(i) => format!("{}/{db}", &url[..i]),
        None => url.to_string(),
    }
}

async fn check_broker() -> anyhow::Result<()> {
    let conn = tokio::time::timeout(
        Duration::from_secs(10),
        lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default()),
    )
    .await
    .map_err(|_| anyhow::anyhow!("RabbitMQ did not answer at {}", amqp_url()))?
    .with_context(|| {
        format!(
            "RabbitMQ is not reachable at {} — start it (deploy/setup.sh)",
            amqp_url()
        )
    })?;
    let _ = conn.close(200, "ok".into()).await;
    Ok(())
}

/// Deletes the queues and exchanges of a test or bench namespace. Best effort.
pub async fn delete_broker_namespace(exchange: &str, units: &[i32]) -> anyhow::Result<()> {
    let conn =
        lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    for unit in units {
        let _ = ch
            .queue_delete(format!("{exchange}.unit.{unit}").into(), Default::default())
            .await;
    }
    let _ = ch
        .queue_delete(format!("{exchange}.dead").into(), Default::default())
        .await;
    for unit in units {
        let _ = ch
            .queue_delete(
                format!("{exchange}.upstream.{unit}").into(),
                Default::default(),
            )
            .await;
    }
    let _ = ch
        .exchange_delete(exchange.into(), Default::default())
        .await;
    let _ = ch
        .exchange_delete(format!("{exchange}.dlx").into(), Default::default())
        .await;
    let _ = conn.close(200, "bye".into()).await;
    Ok(())
}
