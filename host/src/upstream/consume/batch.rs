//! One PostgreSQL transaction per batch of an origin unit's changes: each change in its own
//! savepoint, so a poison change rolls back alone (and is dead-lettered) while the others commit
//! together; acks and outcomes wait for the commit.

use sqlx::{Postgres, Transaction};
use tokio_util::sync::CancellationToken;

use super::{PgHandler, UpItem};
use crate::amqp::{Disposition, Hold, Pending};
use crate::model::{Output, UpstreamEnvelope};
use crate::telemetry::Flow;
use crate::upstream::apply::{begin_applying, Outcome};
use crate::upstream::prepare::Verdict;
use crate::upstream::UpstreamError;

/// The changes of one handle call that share a PostgreSQL transaction: each runs in its own
/// savepoint (a poison change rolls back alone and is dead-lettered), and their acks and
/// outcomes wait for the commit.
#[derive(Default)]
pub(super) struct Batch {
    tx: Option<Transaction<'static, Postgres>>,
    /// (index in the batch, outcome) of the changes that took effect in `tx`.
    applied: Vec<(usize, Outcome)>,
}

/// The hold a later change of the same origin unit gets behind a held one.
pub(super) fn behind(hold: &Hold, correlation_id: &str) -> Hold {
    match hold {
        Hold::Stopping => Hold::Stopping,
        Hold::Retry(_) => Hold::Retry(format!("behind change {correlation_id}")),
        other => Hold::Transform(format!(
            "behind change {correlation_id} ({})",
            other.reason()
        )),
    }
}

impl PgHandler {
    /// Applies one ready change in the batch's transaction, in a savepoint; `None` when the
    /// stop came first (the transaction is dropped, which rolls it back).
    pub(super) async fn apply_in_batch(
        &mut self,
        batch: &mut Batch,
        index: usize,
        p: &mut Pending<UpItem>,
        shutdown: &CancellationToken,
    ) -> Option<Disposition> {
        let result = match &p.item.verdict {
            Verdict::Ready(ready) => {
                self.savepoint_apply(batch, &ready.0, &ready.1, shutdown)
                    .await
            }
            _ => return None,
        };
        match result {
            None => {
                batch.tx = None;
                None
            }
            Some(Ok(outcome)) => {
                batch.applied.push((index, outcome));
                Some(Disposition::Ack)
            }
            Some(Err(e)) => Some(self.failed(&mut p.item, e)),
        }
    }

    /// The batch's transaction (begun on first use), one savepoint around the change.
    async fn savepoint_apply(
        &mut self,
        batch: &mut Batch,
        env: &UpstreamEnvelope,
        output: &Output,
        shutdown: &CancellationToken,
    ) -> Option<Result<Outcome, UpstreamError>> {
        if batch.tx.is_none() {
            match self.begin().await {
                Ok(tx) => batch.tx = Some(tx),
                Err(e) => return Some(Err(e)),
            }
        }
        let tx = batch.tx.as_mut()?;
        tokio::select! {
            _ = shutdown.cancelled() => None,
            r = async {
                sqlx::query("SAVEPOINT change").execute(&mut **tx).await?;
                match self.apply(tx, env, output).await {
                    Ok(o) => {
                        sqlx::query("RELEASE SAVEPOINT change").execute(&mut **tx).await?;
                        Ok(o)
                    }
                    Err(e) => {
                        sqlx::query("ROLLBACK TO SAVEPOINT change").execute(&mut **tx).await?;
                        Err(e)
                    }
                }
            } => Some(r),
        }
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>, UpstreamError> {
        let mut tx = self.pool.begin().await?;
        begin_applying(&mut tx).await?;
        Ok(tx)
    }

    /// Commits the batch; then its changes count as done. If the commit fails (or the stop came
    /// first) nothing of it took effect: every disposition from its first change on becomes a
    /// hold, so the whole rest is tried again in order.
    pub(super) async fn commit(
        &self,
        batch: Batch,
        pending: &[Pending<UpItem>],
        out: &mut [Disposition],
        shutdown: &CancellationToken,
    ) {
        let Some(first) = batch.applied.first().map(|(i, _)| *i) else {
            return;
        };
        let failed = match batch.tx {
            None => Some(Hold::Stopping),
            Some(tx) => match tx.commit().await {
                Ok(()) => None,
                Err(e) if shutdown.is_cancelled() => {
                    tracing::warn!(error = %e, "Upstream batch not committed while stopping.");
                    Some(Hold::Stopping)
                }
                Err(e) => {
                    let e = UpstreamError::from(e);
                    self.metrics.apply_retry(
                        Flow::Upstream,
                        self.unit,
                        batch.applied.len(),
                        &e.to_string(),
                    );
                    Some(Hold::Retry(format!("batch commit failed: {e}")))
                }
            },
        };
        match failed {
            None => {
                for (i, outcome) in &batch.applied {
                    if let Verdict::Ready(ready) = &pending[*i].item.verdict {
                        self.record(&ready.0, &ready.1, *outcome);
                    }
                }
            }
            Some(hold) => {
                for d in out.iter_mut().skip(first) {
                    *d = Disposition::Hold(hold.clone());
                }
            }
        }
    }
}
