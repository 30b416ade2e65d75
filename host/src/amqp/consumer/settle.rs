//! Settling a round's dispositions: dead letters are written (confirmed) before their ack, acks
//! go out as one `multiple` ack for the settled run at the head of the window and single acks
//! after a held delivery (a multiple ack would take the held one with it), and held deliveries
//! stay in their place.

use std::time::Instant;

use lapin::options::BasicAckOptions;

use super::{BatchHandler, Consumer, Disposition, Hold, Pending};
use crate::amqp::link::{with_timeout, AmqpError};

/// What a round of settlement did.
pub(super) struct Settled {
    /// Something was held for a transient failure: back off before the next round.
    pub retry: bool,
    /// Something was acked.
    pub progressed: bool,
    /// Why the oldest held delivery waits.
    pub head_hold: Option<Hold>,
}

impl<H: BatchHandler> Consumer<H> {
    pub(super) async fn settle(
        &mut self,
        pending: &mut Vec<Pending<H::Item>>,
        dispositions: Vec<Disposition>,
    ) -> Result<Settled, AmqpError> {
        let mut dispositions = dispositions.into_iter();
        let mut keep: Vec<Option<Hold>> = Vec::with_capacity(pending.len());
        for p in pending.iter() {
            let disposition = dispositions.next().unwrap_or_else(|| {
                Disposition::Hold(Hold::Retry("the applier gave no disposition".into()))
            });
            let held = match disposition {
                Disposition::Ack => None,
                Disposition::Hold(hold) => Some(hold),
                Disposition::Dead { class, reason } => {
                    let (table, correlation_id) = H::identity(&p.item);
                    let written = self
                        .dead
                        .write(&self.config, &p.delivery, self.spec.unit, class, &reason)
                        .await;
                    match written {
                        Ok(()) => {
                            self.metrics.dead_lettered(
                                self.spec.flow,
                                self.spec.unit,
                                table,
                                correlation_id,
                                class.as_str(),
                                &reason,
                            );
                            None
                        }
                        Err(e) => Some(Hold::Retry(format!(
                            "the dead letter could not be written ({e}); it stays in the queue"
                        ))),
                    }
                }
            };
            keep.push(held);
        }
        let t = self.config.timeout();
        let first_kept = keep.iter().position(Option::is_some).unwrap_or(keep.len());
        let mut progressed = false;
        if first_kept > 0 {
            let options = BasicAckOptions { multiple: true };
            let ack = pending[first_kept - 1].delivery.acker.ack(options);
            with_timeout(t, "basic.ack", ack).await?;
            progressed = true;
        }
        for (p, held) in pending.iter().zip(&keep).skip(first_kept) {
            if held.is_none() {
                let ack = p.delivery.acker.ack(BasicAckOptions::default());
                with_timeout(t, "basic.ack", ack).await?;
                progressed = true;
            }
        }
        let retry = keep.iter().any(|k| matches!(k, Some(Hold::Retry(_))));
        let head_hold = keep.get(first_kept).cloned().flatten();
        let now = Instant::now();
        let mut kept = Vec::with_capacity(pending.len() - first_kept);
        for (mut p, held) in std::mem::take(pending).into_iter().zip(keep) {
            if held.is_some() {
                p.held_since.get_or_insert(now);
                kept.push(p);
            }
        }
        *pending = kept;
        Ok(Settled {
            retry,
            progressed,
            head_hold,
        })
    }
}
