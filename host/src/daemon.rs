//! `ponte run`: starts the chosen roles under one shutdown tree (a root token, a child per role,
//! a task tracker that waits for all of them), the same way for the binary and for the tests.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::amqp::AmqpLink;
use crate::apply::UnitApplier;
use crate::capture::CapturePublisher;
use crate::config::Config;
use crate::relay::{janitor, Relay};
use crate::telemetry::{serve, Metrics, Readiness};
use crate::transform::{TableBinding, TransformRegistry};
use crate::upstream::PgApplier;

/// Which roles this process runs.
#[derive(Debug, Clone)]
pub struct Roles {
    /// The outbox relay (and its janitor).
    pub relay: bool,
    /// The unit appliers.
    pub apply: bool,
    /// Only these units' appliers (None: every configured unit).
    pub units: Option<Vec<i32>>,
    /// The capture publishers of the units (Firebird SYNC_LOG -> broker); `units` applies.
    pub capture: bool,
    /// The PostgreSQL applier of upstream changes (broker -> PostgreSQL).
    pub upstream: bool,
}

impl Roles {
    /// Every role, every unit.
    pub fn all() -> Roles {
        Roles {
            relay: true,
            apply: true,
            units: None,
            capture: true,
            upstream: true,
        }
    }

    /// No role; pick with struct update, e.g. `Roles { apply: true, ..Roles::none() }`.
    pub fn none() -> Roles {
        Roles {
            relay: false,
            apply: false,
            units: None,
            capture: false,
            upstream: false,
        }
    }
}

/// A started host.
pub struct Running {
    /// Its metrics.
    pub metrics: Metrics,
    /// Its transforms.
    pub registry: Option<TransformRegistry>,
    /// Where `/metrics` listens, when enabled.
    pub http_addr: Option<SocketAddr>,
    /// The relay instance id, when the relay runs.
    pub relay_instance: Option<String>,
    tasks: TaskTracker,
}

impl Running {
    /// Waits until every role has stopped (after the shutdown token was cancelled).
    pub async fn wait(self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Starts the roles; they stop when `shutdown` is cancelled.
pub async fn start(
    config: Arc<Config>,
    roles: Roles,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let metrics = Metrics::new().context("registering metrics")?;
    let tasks = TaskTracker::new();
    let pool = crate::pg::connect(&config.postgres)
        .await
        .with_context(|| {
            "connecting to PostgreSQL (check [postgres] url and that the server runs)".to_string()
        })?;
    let link = AmqpLink::new(
        &config.amqp.url,
        "ponte",
        config.amqp.timeout(),
        metrics.clone(),
    );
    tasks.spawn(link.clone().supervise(shutdown.child_token()));

    let readiness = Readiness::default();
    let http_addr = if config.http.listen.is_empty() {
        None
    } else {
        let listener = tokio::net::TcpListener::bind(&config.http.listen)
            .await
            .with_context(|| format!("binding [http] listen = {}", config.http.listen))?;
        let addr = listener.local_addr().ok();
        tasks.spawn(serve(
            listener,
            metrics.clone(),
            readiness.clone(),
            shutdown.child_token(),
        ));
        addr
    };

    let mut relay_instance = None;
    if roles.relay {
        let relay = Relay::new(pool.clone(), link.clone(), config.clone(), metrics.clone());
        relay_instance = Some(relay.instance().to_string());
        tasks.spawn(relay.run(shutdown.child_token()));
        tasks.spawn(janitor(
            pool.clone(),
            config.clone(),
            metrics.clone(),
            shutdown.child_token(),
        ));
    }

    let mut registry = None;
    if roles.apply || roles.upstream {
        let mut bindings: Vec<TableBinding> = config
            .tables
            .iter()
            .map(|(table, t)| TableBinding {
                table: table.clone(),
                transform: t.transform.clone(),
                settings_json: config.table_settings_json(table),
            })
            .collect();
        // Upstream tables are bound by their Firebird name (config validation keeps the two
        // namespaces apart).
        bindings.extend(
            config
                .upstream
                .tables
                .iter()
                .map(|(table, t)| TableBinding {
                    table: table.clone(),
                    transform: t.transform.clone(),
                    settings_json: t.settings_json(),
                }),
        );
        // Compiling components takes seconds: keep it off the async threads.
        let (limits, dir, prom) = (
            config.transforms.limits.clone(),
            config.transforms.dir.clone(),
            metrics.registry.clone(),
        );
        let loaded = tokio::task::spawn_blocking(move || {
            TransformRegistry::load(limits, &dir, bindings, &prom)
        })
        .await
        .context("transform loading thread")?
        .with_context(|| {
            format!(
                "loading transforms from {}",
                config.transforms.dir.display()
            )
        })?;
        tasks.spawn(loaded.watch(shutdown.child_token()));
        for unit in config.units().into_iter().filter(|_| roles.apply) {
            if roles
                .units
                .as_ref()
                .is_some_and(|only| !only.contains(&unit.id))
            {
                continue;
            }
            let applier = UnitApplier::new(
                unit,
                config.clone(),
                link.clone(),
                loaded.clone(),
                metrics.clone(),
            );
            tasks.spawn(applier.run(shutdown.child_token()));
        }
        // One PG applier per origin unit (its own queue): units apply in parallel, in order each.
        for unit in config
            .units()
            .into_iter()
            .filter(|_| roles.upstream && !config.upstream.tables.is_empty())
        {
            if roles
                .units
                .as_ref()
                .is_some_and(|only| !only.contains(&unit.id))
            {
                continue;
            }
            let applier = PgApplier::new(
                unit.id,
                config.clone(),
                link.clone(),
                loaded.clone(),
                pool.clone(),
                metrics.clone(),
            );
            tasks.spawn(applier.run(shutdown.child_token()));
        }
        registry = Some(loaded);
    }
    if roles.capture && !config.upstream.tables.is_empty() {
        for unit in config.units() {
            if roles
                .units
                .as_ref()
                .is_some_and(|only| !only.contains(&unit.id))
            {
                continue;
            }
            let publisher =
                CapturePublisher::new(unit, config.clone(), link.clone(), metrics.clone());
            tasks.spawn(publisher.run(shutdown.child_token()));
        }
    }
    readiness.set_started();
    Ok(Running {
        metrics,
        registry,
        http_addr,
        relay_instance,
        tasks,
    })
}

/// Starts the roles and waits for them to stop.
pub async fn run(
    config: Arc<Config>,
    roles: Roles,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    start(config, roles, shutdown).await?.wait().await;
    Ok(())
}
