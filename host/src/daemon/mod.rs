//! `ponte run`: starts the chosen roles under one shutdown tree (a root token, a child per role,
//! a task tracker that waits for all of them), the same way for the binary and for the tests.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod state;

use crate::amqp::Links;
use crate::apply::UnitApplier;
use crate::capture::CapturePublisher;
use crate::config::{Config, Unit};
use crate::relay::{janitor, Relay};
use crate::telemetry::{serve, Metrics, Readiness, StatusSource};
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
    // Publishing and consuming on separate connections: a broker alarm blocks the publishers
    // and must never stall the appliers' acks.
    let links = Links::new(&config.amqp.url, config.amqp.timeout(), metrics.clone());
    tasks.spawn(links.publish.clone().supervise(shutdown.child_token()));
    tasks.spawn(links.consume.clone().supervise(shutdown.child_token()));

    let readiness = Readiness::default();
    tasks.spawn(state::probe_postgres(
        pool.clone(),
        readiness.clone(),
        shutdown.child_token(),
    ));
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
            StatusSource::new(&config),
            shutdown.child_token(),
        ));
        addr
    };

    if roles.relay && !crate::config::trigger_tables(&config).is_empty() {
        tasks.spawn(warn_outbox_triggers(config.clone(), shutdown.child_token()));
    }
    let mut relay_instance = None;
    if roles.relay {
        let relay = Relay::new(
            pool.clone(),
            links.publish.clone(),
            config.clone(),
            metrics.clone(),
        );
        relay_instance = Some(relay.instance().to_string());
        tasks.spawn(relay.run(shutdown.child_token()));
        tasks.spawn(janitor(
            pool.clone(),
            config.clone(),
            metrics.clone(),
            shutdown.child_token(),
        ));
        if !crate::config::periodic_tables(&config).is_empty() {
            tasks.spawn(crate::periodic::run(
                pool.clone(),
                config.clone(),
                metrics.registry.clone(),
                shutdown.child_token(),
            ));
        }
    }

    let served = |unit: &Unit| {
        roles
            .units
            .as_ref()
            .is_none_or(|only| only.contains(&unit.id))
    };
    let mut registry = None;
    if roles.apply || roles.upstream {
        let loaded = load_transforms(&config, &metrics).await?;
        tasks.spawn(loaded.watch(shutdown.child_token()));
        for unit in config
            .units()
            .into_iter()
            .filter(|u| roles.apply && served(u))
        {
            let applier = UnitApplier::new(
                unit,
                config.clone(),
                links.clone(),
                loaded.clone(),
                metrics.clone(),
            );
            tasks.spawn(applier.run(shutdown.child_token()));
        }
        // One PG applier per origin unit (its own queue): units apply in parallel, in order each.
        let upstream = roles.upstream && !config.upstream.tables.is_empty();
        for unit in config.units().into_iter().filter(|u| upstream && served(u)) {
            let applier = PgApplier::new(
                unit.id,
                config.clone(),
                links.clone(),
                loaded.clone(),
                pool.clone(),
                metrics.clone(),
            );
            tasks.spawn(applier.run(shutdown.child_token()));
        }
        registry = Some(loaded);
    }
    if let Some(every) = config.verify.every.filter(|_| roles.apply) {
        let units = config.units().into_iter().filter(|u| served(u)).collect();
        tasks.spawn(crate::lifecycle::schedule::run(
            pool.clone(),
            config.clone(),
            units,
            every,
            metrics.registry.clone(),
            shutdown.child_token(),
        ));
    }
    if roles.capture && !config.upstream.tables.is_empty() {
        for unit in config.units().into_iter().filter(|u| served(u)) {
            let publisher =
                CapturePublisher::new(unit, config.clone(), links.publish.clone(), metrics.clone());
            tasks.spawn(publisher.run(shutdown.child_token()));
        }
    }
    if roles.apply || roles.upstream {
        tasks.spawn(state::publish_held(
            pool.clone(),
            metrics.board.clone(),
            shutdown.child_token(),
        ));
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

/// Loads the transforms of every bound table (downstream by source table, upstream by Firebird
/// table); compiling takes seconds, so off the async threads.
async fn load_transforms(config: &Config, metrics: &Metrics) -> anyhow::Result<TransformRegistry> {
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
    let (limits, dir, prom) = (
        config.transforms.limits.clone(),
        config.transforms.dir.clone(),
        metrics.registry.clone(),
    );
    let loaded =
        tokio::task::spawn_blocking(move || TransformRegistry::load(limits, &dir, bindings, &prom))
            .await
            .context("transform loading thread")?
            .with_context(|| {
                format!(
                    "loading transforms from {}",
                    config.transforms.dir.display()
                )
            })?;
    Ok(loaded)
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

/// Says at start when an `outbox = "trigger"` table has no current trigger (never installed,
/// out of date, disabled): its changes would not be captured. A warning, not a refusal: the
/// other tables flow.
async fn warn_outbox_triggers(config: Arc<Config>, shutdown: CancellationToken) {
    let problems = tokio::select! {
        _ = shutdown.cancelled() => return,
        p = crate::outbox_capture::check(&config) => p,
    };
    match problems {
        Ok(problems) => {
            for problem in problems {
                tracing::warn!(problem = %problem, "An outbox = \"trigger\" table is not captured as configured.");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "Could not check the outbox triggers.");
        }
    }
}
