//! Typed configuration: one TOML file, secrets overridable from the environment, validated at load
//! so that a bad file fails at start with the line at fault.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::model::Op;

mod legacy;
mod lifecycle;
mod outbox;
mod upstream;
pub use legacy::{is_plain_identifier, UnitTriggers};
pub use lifecycle::{LoadConfig, VerifyConfig};
pub use outbox::{periodic_tables, trigger_tables, OutboxCapture};
pub use upstream::{ConflictPolicy, Fanout, UnitCapture, UpstreamConfig, UpstreamTable};

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is invalid or a value is out of range; the message names the line and column.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The path given.
        path: PathBuf,
        /// toml's message, with the line at fault and a caret.
        message: String,
    },
    /// A rule that spans several fields was broken.
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The hub database.
    pub postgres: PostgresConfig,
    /// The broker.
    pub amqp: AmqpConfig,
    /// Credentials and charset shared by every unit's Firebird.
    pub firebird: FirebirdConfig,
    /// Which units exist and where their databases are.
    pub units: UnitsConfig,
    /// The outbox relay.
    #[serde(default)]
    pub relay: RelayConfig,
    /// The unit appliers.
    #[serde(default)]
    pub apply: ApplyConfig,
    /// Where transforms are loaded from and their sandbox limits.
    pub transforms: TransformsConfig,
    /// The whitelist: only these tables (and their listed operations) are relayed and applied.
    #[serde(default)]
    pub tables: BTreeMap<String, TableConfig>,
    /// Metrics and probes.
    #[serde(default)]
    pub http: HttpConfig,
    /// Firebird -> PostgreSQL: capture, the PG applier and the tables captured (docs/upstream.md).
    #[serde(default)]
    pub upstream: UpstreamConfig,
    /// `ponte load` / `repair` chunking (docs/lifecycle.md).
    #[serde(default)]
    pub load: LoadConfig,
    /// `ponte verify` chunking and its schedule in `run` (docs/lifecycle.md).
    #[serde(default)]
    pub verify: VerifyConfig,
}

/// PostgreSQL connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://user@host:port/db`; env `PONTE_POSTGRES_URL` overrides.
    pub url: String,
    /// Pool size.
    #[serde(default = "defaults::pg_pool")]
    pub max_connections: u32,
    /// Timeout for connecting and for each statement, in milliseconds.
    #[serde(default = "defaults::io_timeout_ms")]
    pub timeout_ms: u64,
}

/// RabbitMQ connection and topology names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpConfig {
    /// `amqp://user:pass@host:port/vhost`; env `PONTE_AMQP_URL` overrides.
    pub url: String,
    /// Topic exchange name; unit queues are `{exchange}.unit.{id}`, dead letters `{exchange}.dead`.
    #[serde(default = "defaults::exchange")]
    pub exchange: String,
    /// Messages a unit applier may hold unacked.
    #[serde(default = "defaults::prefetch")]
    pub prefetch: u16,
    /// Deliveries of one message before the broker dead-letters it (quorum `x-delivery-limit`).
    #[serde(default = "defaults::delivery_limit")]
    pub delivery_limit: u32,
    /// Timeout for connecting, declaring and each publisher confirm, in milliseconds.
    #[serde(default = "defaults::io_timeout_ms")]
    pub timeout_ms: u64,
}

/// Firebird access shared by all units.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirebirdConfig {
    /// User; env `PONTE_FIREBIRD_USER` overrides.
    #[serde(default = "defaults::fb_user")]
    pub user: String,
    /// Password; env `PONTE_FIREBIRD_PASSWORD` overrides.
    #[serde(default)]
    pub password: String,
    /// Connection charset. UTF8 lets the server transliterate into WIN1252/ISO8859_1 columns.
    #[serde(default = "defaults::fb_charset")]
    pub charset: String,
    /// Timeout for connecting and for one apply transaction, in milliseconds.
    #[serde(default = "defaults::fb_timeout_ms")]
    pub timeout_ms: u64,
}

/// The units: an id list and a database template.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitsConfig {
    /// Unit ids: a list of ids and ranges, e.g. `"1-50"` or `"1-3,7,9-10"`.
    pub ids: IdList,
    /// Firebird database per unit, `{id}` replaced by the unit id, e.g.
    /// `"127.0.0.1:/var/lib/ponte/units/unit_{id}.fdb"` (`host[/port]:path`).
    pub database: String,
    /// Per-unit database overrides, keyed by unit id.
    #[serde(default)]
    pub databases: BTreeMap<String, String>,
    /// Id ranges (docs/upstream.md): unit N's local applications allocate ids in
    /// `[N * id_block, (N + 1) * id_block)`, PostgreSQL below `id_block`. None: no ranges.
    #[serde(default)]
    pub id_block: Option<i64>,
}

impl UnitsConfig {
    /// The id range `[low, high)` of `unit`'s local applications, when ranges are configured.
    pub fn id_range(&self, unit: i32) -> Option<(i64, i64)> {
        let block = self.id_block?;
        let low = block.checked_mul(i64::from(unit))?;
        Some((low, low.checked_add(block)?))
    }
}

/// One configured unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// Unit id.
    pub id: i32,
    /// `host[/port]:path` of its Firebird database.
    pub database: String,
}

/// Relay tuning.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// Rows claimed per unit per round.
    pub batch_size: u32,
    /// Publishes awaiting a confirm at once, across units.
    pub max_in_flight: usize,
    /// Fallback poll interval when no NOTIFY arrives, in milliseconds.
    pub poll_interval_ms: u64,
    /// Attempts before a row is marked `dead`.
    pub max_attempts: i32,
    /// A unit lease lasts this long without renewal, in seconds.
    pub lease_secs: u64,
    /// Rows in `processing` longer than this are rescued to `pending`, in seconds.
    pub processing_timeout_secs: u64,
    /// How often the janitor runs, in seconds.
    pub janitor_interval_secs: u64,
    /// Claiming pauses while payload bytes awaiting confirm exceed this.
    pub max_in_flight_bytes: usize,
    /// Claiming pauses while the process resident memory exceeds this many MiB.
    pub max_rss_mib: u64,
}

/// Applier tuning.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApplyConfig {
    /// Messages applied per Firebird transaction at most.
    pub batch_size: usize,
    /// How long a batch waits to fill, in milliseconds.
    pub batch_wait_ms: u64,
    /// A foreign-key failure is retried for this long before dead-lettering, in seconds.
    pub fk_retry_secs: u64,
    /// SYNC_CONTROL rows older than this are pruned, in days.
    pub ledger_retention_days: u32,
}

/// Transform loading and sandbox limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformsConfig {
    /// Directory of `.wasm` components, watched for changes.
    pub dir: PathBuf,
    /// Sandbox limits and reload timings (`[transforms.limits]`); every field has a default.
    #[serde(default)]
    pub limits: crate::transform::EngineSettings,
}

/// One whitelisted table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    /// Operations allowed, e.g. `"IUD"`.
    #[serde(default = "defaults::all_ops")]
    pub ops: OpSet,
    /// Transform by name (its `describe().name` or file stem); default: the one declaring the table.
    pub transform: Option<String>,
    /// Settings handed to the transform as a JSON object.
    #[serde(default)]
    pub settings: Option<toml::Table>,
    /// The PostgreSQL table behind this name when it differs (`schema.table`); default: the
    /// same name. Read by the commands that read the rows themselves (load, verify, capture).
    #[serde(default)]
    pub pg_table: Option<String>,
    /// Which unit receives a row: the column of the row holding the unit id (an order's
    /// `unit_id`). Absent, with no `unit_sql` either: every unit receives every row.
    #[serde(default)]
    pub unit_column: Option<String>,
    /// The same as a PostgreSQL scalar expression over the row aliased `t`, for rows whose unit
    /// is found elsewhere, e.g. `(SELECT o.unit_id FROM orders o WHERE o.id = t.order_id)`.
    #[serde(default)]
    pub unit_sql: Option<String>,
    /// The unit's own triggers on this table: `keep` (default) or `guard` (docs/legacy.md).
    #[serde(default)]
    pub unit_triggers: Option<UnitTriggers>,
    /// The unit generator that feeds this table's key (a legacy `NEW.ID = GEN_ID(G, 1)`); the
    /// apply transaction keeps it past every replicated id (docs/legacy.md).
    #[serde(default)]
    pub generator: Option<String>,
    /// Who writes this table's outbox rows: `application` (default), `trigger` (the triggers
    /// `ponte outbox install` creates) or `periodic` (a sync round every `every`); routed by
    /// `unit_column` / `unit_sql`, else to every unit. `capture` is the same key.
    #[serde(default, alias = "capture")]
    pub outbox: OutboxCapture,
    /// `outbox = "periodic"`: how often a sync round runs ("30s", "5m").
    #[serde(default, deserialize_with = "lifecycle::every")]
    pub every: Option<Duration>,
    /// `outbox = "periodic"`: a timestamp column every write of the application sets to its
    /// transaction's time (`now()`); lets a round read only the recent rows. Absent: each round
    /// reads the whole table (docs/capture.md).
    #[serde(default)]
    pub change_column: Option<String>,
    /// `outbox = "periodic"` with `change_column`: how far before the oldest running
    /// transaction's start a round still looks (clock skew of the application's clock; "0s"
    /// when the column is set by the database's `now()`). Default 1s.
    #[serde(default, deserialize_with = "lifecycle::every")]
    pub lookback: Option<Duration>,
}

impl TableConfig {
    /// The PostgreSQL table of `name`.
    pub fn pg_table<'a>(&'a self, name: &'a str) -> &'a str {
        self.pg_table.as_deref().unwrap_or(name)
    }

    /// The SQL expression (row aliased `t`) giving the unit a row goes to; `None`: every unit.
    pub fn unit_expr(&self) -> Option<String> {
        match (&self.unit_column, &self.unit_sql) {
            (Some(column), _) => Some(format!("t.\"{}\"", column.replace('"', "\"\""))),
            (None, Some(sql)) => Some(format!("({sql})")),
            (None, None) => None,
        }
    }
}

/// The HTTP endpoint for `/metrics`, `/healthz` and `/readyz`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Listen address; empty disables the endpoint.
    pub listen: String,
}

mod defaults;
mod lists;
pub use lists::{IdList, OpSet};
mod load;

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            batch_size: 500,
            max_in_flight: 1_000,
            poll_interval_ms: 1_000,
            max_attempts: 10,
            lease_secs: 15,
            processing_timeout_secs: 60,
            janitor_interval_secs: 10,
            max_in_flight_bytes: 64 * 1024 * 1024,
            max_rss_mib: 1_024,
        }
    }
}

impl Default for ApplyConfig {
    fn default() -> Self {
        ApplyConfig {
            // Large enough that a commit is a small share of a backlog's apply time (BENCHMARKS.md);
            // batch_wait_ms keeps batches small when traffic is light.
            batch_size: 500,
            batch_wait_ms: 20,
            fk_retry_secs: 60,
            ledger_retention_days: 30,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:9187".into(),
        }
    }
}

impl PostgresConfig {
    /// The I/O timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

impl AmqpConfig {
    /// The I/O timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
    /// The queue of a unit.
    pub fn unit_queue(&self, unit: i32) -> String {
        format!("{}.unit.{unit}", self.exchange)
    }
    /// The upstream queue of an origin unit.
    pub fn upstream_queue(&self, unit: i32) -> String {
        format!("{}.upstream.{unit}", self.exchange)
    }
    /// The dead-letter exchange.
    pub fn dead_exchange(&self) -> String {
        format!("{}.dlx", self.exchange)
    }
    /// The dead-letter queue.
    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.exchange)
    }
}

#[cfg(test)]
mod tests;
