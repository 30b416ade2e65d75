//! Publishing with publisher confirms and `mandatory`: a message counts as delivered only when the
//! broker acked it AND did not return it (an unroutable mandatory message is acked after a
//! basic.return, so the return must be checked). Publishes are pipelined, confirms awaited together
//! under one deadline.

use std::time::Duration;

use futures_util::future::join_all;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::Channel;
use lapin::Confirmation;

use super::link::{with_timeout, AmqpError, AmqpLink};
use super::topology::{declare_base, declare_unit_queue};
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
    /// The channel or connection failed, or the confirm did not arrive in time.
    #[error("not confirmed: {0}")]
    Unconfirmed(String),
}

/// A confirm-mode channel with the topology declared, recreated after any failure.
pub struct Publisher {
    link: AmqpLink,
    config: AmqpConfig,
    units: Vec<i32>,
    channel: Option<Channel>,
}

impl Publisher {
    /// A publisher for the given units' queues (declared on every new channel).
    pub fn new(link: AmqpLink, config: AmqpConfig, units: Vec<i32>) -> Publisher {
        Publisher {
            link,
            config,
            units,
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
        with_timeout(
            t,
            "confirm.select",
            ch.confirm_select(ConfirmSelectOptions::default()),
        )
        .await?;
        declare_base(&ch, &self.config).await?;
        for &unit in &self.units {
            declare_unit_queue(&ch, &self.config, unit).await?;
        }
        self.channel = Some(ch.clone());
        Ok(ch)
    }

    /// Publishes each `(routing_key, properties, body)` with mandatory set and waits for all
    /// confirms; one result per message, in order.
    pub async fn publish_all(
        &mut self,
        messages: Vec<(String, lapin::BasicProperties, Vec<u8>)>,
        wait_for_broker: Duration,
    ) -> Vec<Result<(), PublishFailure>> {
        let count = messages.len();
        let channel = match self.ready_channel(wait_for_broker).await {
            Ok(ch) => ch,
            Err(e) => return vec![Err(PublishFailure::Unconfirmed(e.to_string())); count],
        };
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let mut pending = Vec::with_capacity(count);
        for (key, props, body) in messages {
            let sent = channel
                .basic_publish(
                    self.config.exchange.as_str().into(),
                    key.into(),
                    options,
                    &body,
                    props,
                )
                .await;
            pending.push(sent);
        }
        let confirms = pending.into_iter().map(|sent| async move {
            match sent {
                Ok(confirm) => match confirm.await {
                    Ok(Confirmation::Ack(None)) => Ok(()),
                    Ok(Confirmation::Ack(Some(ret))) | Ok(Confirmation::Nack(Some(ret))) => {
                        Err(PublishFailure::Returned {
                            code: ret.reply_code,
                            text: ret.reply_text.to_string(),
                        })
                    }
                    Ok(Confirmation::Nack(None)) => Err(PublishFailure::Nacked),
                    Ok(Confirmation::NotRequested) => {
                        Err(PublishFailure::Unconfirmed("confirms not enabled".into()))
                    }
                    Err(e) => Err(PublishFailure::Unconfirmed(e.to_string())),
                },
                Err(e) => Err(PublishFailure::Unconfirmed(e.to_string())),
            }
        });
        let results = match tokio::time::timeout(self.config.timeout(), join_all(confirms)).await {
            Ok(results) => results,
            Err(_) => vec![Err(PublishFailure::Unconfirmed("confirm timed out".into())); count],
        };
        if results
            .iter()
            .any(|r| matches!(r, Err(PublishFailure::Unconfirmed(_))))
        {
            // The channel's state is unknown: never reuse it.
            self.channel = None;
        }
        results
    }
}
