//! Unit appliers (broker -> a unit's Firebird): one per unit, on the consumer skeleton
//! ([`crate::amqp::Consumer`]). The handler translates each delivery with its table's transform,
//! applies the ready ones in order in one Firebird transaction per batch (ledger, row-version
//! guard, INDICE), and tells the skeleton what to ack, dead-letter or hold. A change that waits
//! for a transform holds the unit's later changes behind it; a foreign-key failure waits a bounded
//! time for its parent; a stop cancels the Firebird work at the server and leaves it unacked.

mod handler;
mod prepare;
mod prune;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::amqp::{Consumer, ConsumerSpec, Links, Topology};
use crate::config::{Config, Unit};
use crate::firebird::FbWorker;
use crate::telemetry::{Flow, Metrics};
use crate::transform::TransformRegistry;

pub use handler::UnitHandler;
pub use prepare::{prepare, Meta, Verdict};

/// The applier of one unit.
pub struct UnitApplier {
    unit: Unit,
    config: Arc<Config>,
    links: Links,
    registry: TransformRegistry,
    metrics: Metrics,
}

impl UnitApplier {
    /// An applier for `unit`.
    pub fn new(
        unit: Unit,
        config: Arc<Config>,
        links: Links,
        registry: TransformRegistry,
        metrics: Metrics,
    ) -> Self {
        UnitApplier {
            unit,
            config,
            links,
            registry,
            metrics,
        }
    }

    /// Consumes and applies until `shutdown`; prunes the unit's ledger by age meanwhile.
    pub async fn run(self, shutdown: CancellationToken) {
        let worker = match FbWorker::spawn(
            self.unit.id,
            self.unit.database.clone(),
            self.config.firebird.clone(),
        ) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(
                    unit = self.unit.id,
                    error = %e,
                    "Cannot start the Firebird thread; unit not applied."
                );
                return;
            }
        };
        let pruning = tokio::spawn(prune::run(
            self.unit.clone(),
            self.config.clone(),
            shutdown.clone(),
        ));
        let amqp = &self.config.amqp;
        let spec = ConsumerSpec {
            unit: self.unit.id,
            flow: Flow::Downstream,
            queue: amqp.unit_queue(self.unit.id),
            topology: Topology::unit(amqp, self.unit.id),
            prefetch: amqp.prefetch,
            batch_size: self.config.apply.batch_size,
            batch_wait: Duration::from_millis(self.config.apply.batch_wait_ms),
        };
        let handler = UnitHandler::new(
            self.unit.clone(),
            self.config.clone(),
            self.registry.clone(),
            self.metrics.clone(),
            worker,
        );
        Consumer::new(
            spec,
            amqp.clone(),
            self.links.clone(),
            self.metrics.clone(),
            handler,
        )
        .run(shutdown)
        .await;
        let _ = pruning.await;
    }
}
