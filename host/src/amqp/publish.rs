//! Publishing with publisher confirms and `mandatory`: a message counts as delivered only when the
//! broker acked it AND did not return it (an unroutable mandatory message is acked after a
//! basic.return, so the return must be checked). Publishes are pipelined in windows of at most
//! `max_in_flight` unconfirmed messages; both awaits of a publish (handing the frames over, and
//! the confirm) run under the I/O timeout, so a blocked connection (broker alarm) fails the
//! batch instead of hanging it.

use std::time::Duration;

use futures_util::future::join_all;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, PublisherConfirm};

use super::link::{with_timeout, AmqpError, AmqpLink};
use super::topology::Topology;
use crate::config::AmqpConfig;

/// Why one message was not delivered. All are retried later; none is a success.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishFailure {
    /// The broker returned it (e.g. 312 NO_ROUTE: no queue bound for that unit).
    #[error("returned by the broker: {code} {text}")]
    Returned {
        /// AMQP reply code.
        code: u16,
        /// Reply text.
        text: String,
    },
    /// The broker nacked it.
    #[error("nacked by the broker")]
    Nacked,
    /// The channel or connection failed, or the publish or its confirm did not finish in time.
    #[error("not confirmed: {0}")]
    Unconfirmed(String),
}

/// One message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Exchange (the change exchange, or the dead-letter exchange).
    pub exchange: String,
    /// Routing key.
    pub routing_key: String,
    /// Properties (persistent, headers).
    pub properties: BasicProperties,
    /// Body.
    pub body: Vec<u8>,
}

/// A confirm-mode channel on the publish link with the topology declared, recreated after any
/// failure whose outcome is unknown.
pub struct Publisher {
    link: AmqpLink,
    config: AmqpConfig,
    topology: Topology,
    channel: Option<Channel>,
}

impl Publisher {
    /// A publisher that declares `topology` on every new channel.
    pub fn new(link: AmqpLink, config: AmqpConfig, topology: Topology) -> Publisher {
        Publisher {
            link,
            config,
            topology,
            channel: None,
        }
    }

    async fn ready_channel(&mut self, wait: Duration) -> Result<Channel, AmqpError> {
        if let Some(ch) = &self.channel {
            if ch.status().connected() {
                return Ok(ch.clone());
            }
        }
        self.channel = None;
        let ch = self.link.channel(wait).await?;
        let t = self.config.timeout();
        let select = ch.confirm_select(ConfirmSelectOptions::default());
        with_timeout(t, "confirm.select", select).await?;
        self.topology.declare(&ch, &self.config).await?;
        self.channel = Some(ch.clone());
        Ok(ch)
    }

    /// Hands one message to the broker (mandatory, under the I/O timeout) and returns its pending
    /// confirm, for callers that keep many confirms in flight and settle them in order (the
    /// relay's pipeline). A failure here drops the channel: its state is unknown.
    pub async fn send(
        &mut self,
        message: &Outgoing,
        wait_for_broker: Duration,
    ) -> Result<PublisherConfirm, PublishFailure> {
        let channel = self
            .ready_channel(wait_for_broker)
            .await
            .map_err(|e| PublishFailure::Unconfirmed(e.to_string()))?;
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let publish = channel.basic_publish(
            message.exchange.as_str().into(),
            message.routing_key.as_str().into(),
            options,
            &message.body,
            message.properties.clone(),
        );
        match with_timeout(self.config.timeout(), "basic.publish", publish).await {
            Ok(confirm) => Ok(confirm),
            Err(e) => {
                self.channel = None;
                Err(PublishFailure::Unconfirmed(e.to_string()))
            }
        }
    }

    /// Forgets the channel (after a confirm failed: its state is unknown); the next send opens
    /// and declares a new one.
    pub fn reset(&mut self) {
        self.channel = None;
    }

    /// Publishes every message with mandatory set, at most `max_in_flight` unconfirmed at once,
    /// and waits for the confirms; one result per message, in order. A message after a failed
    /// window is not sent (reported unconfirmed), so the caller can retry in order.
    pub async fn publish_all(
        &mut self,
        messages: Vec<Outgoing>,
        wait_for_broker: Duration,
        max_in_flight: usize,
    ) -> Vec<Result<(), PublishFailure>> {
        let count = messages.len();
        let channel = match self.ready_channel(wait_for_broker).await {
            Ok(ch) => ch,
            Err(e) => return vec![Err(PublishFailure::Unconfirmed(e.to_string())); count],
        };
        let mut results = Vec::with_capacity(count);
        let mut messages = messages.into_iter();
        while results.len() < count {
            let window: Vec<Outgoing> = messages.by_ref().take(max_in_flight.max(1)).collect();
            let sent = self.window(&channel, window).await;
            let broken = sent
                .iter()
                .any(|r| matches!(r, Err(PublishFailure::Unconfirmed(_))));
            results.extend(sent);
            if broken {
                // The channel's state is unknown: never reuse it, and send nothing more now.
                self.channel = None;
                let left = count - results.len();
                let why =
                    PublishFailure::Unconfirmed("an earlier message was not confirmed".into());
                results.extend(std::iter::repeat_n(Err(why), left));
            }
        }
        results
    }

    async fn window(
        &self,
        channel: &Channel,
        window: Vec<Outgoing>,
    ) -> Vec<Result<(), PublishFailure>> {
        let t = self.config.timeout();
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let mut pending = Vec::with_capacity(window.len());
        for m in window {
            let publish = channel.basic_publish(
                m.exchange.as_str().into(),
                m.routing_key.as_str().into(),
                options,
                &m.body,
                m.properties,
            );
            pending.push(with_timeout(t, "basic.publish", publish).await);
        }
        let confirms = pending.into_iter().map(|sent| async move {
            match sent {
                Ok(confirm) => settle(confirm, t).await,
                Err(e) => Err(PublishFailure::Unconfirmed(e.to_string())),
            }
        });
        join_all(confirms).await
    }
}

/// Awaits one confirm under `timeout` and says what it means.
pub async fn settle(confirm: PublisherConfirm, timeout: Duration) -> Result<(), PublishFailure> {
    match tokio::time::timeout(timeout, confirm).await {
        Ok(Ok(Confirmation::Ack(None))) => Ok(()),
        Ok(Ok(Confirmation::Ack(Some(ret)))) | Ok(Ok(Confirmation::Nack(Some(ret)))) => {
            Err(PublishFailure::Returned {
                code: ret.reply_code,
                text: ret.reply_text.to_string(),
            })
        }
        Ok(Ok(Confirmation::Nack(None))) => Err(PublishFailure::Nacked),
        Ok(Ok(Confirmation::NotRequested)) => {
            Err(PublishFailure::Unconfirmed("confirms not enabled".into()))
        }
        Ok(Err(e)) => Err(PublishFailure::Unconfirmed(e.to_string())),
        Err(_) => Err(PublishFailure::Unconfirmed(format!(
            "no confirm within {timeout:?}"
        ))),
    }
}
