//! The supervised broker connections. A process keeps two, one for publishing and one for
//! consuming (RabbitMQ's advice: a memory or disk alarm blocks every connection that publishes,
//! and the acks of consumers sharing it would stall with it). A background task per connection
//! connects with backoff (1 s .. 60 s, jitter), watches its health, and on loss builds a new one
//! and swaps it in place; roles ask for the current connection and open their own channels on it.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::{Connection, ConnectionProperties};
use tokio::sync::{watch, RwLock};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::telemetry::Metrics;

/// A broker operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    /// No connection could be had within the wait.
    #[error("broker not connected (waited {0:?}); the link keeps reconnecting in the background")]
    NotConnected(Duration),
    /// The operation did not finish in time.
    #[error("broker operation `{0}` timed out")]
    Timeout(&'static str),
    /// The broker did not take a message (returned or nacked).
    #[error("broker rejected `{op}`: {detail}")]
    Rejected {
        /// What was being done.
        op: &'static str,
        /// The confirmation received.
        detail: String,
    },
    /// The broker or the client library reported an error.
    #[error("broker error during `{op}`: {source}")]
    Lapin {
        /// What was being done.
        op: &'static str,
        /// lapin's error.
        source: lapin::Error,
    },
}

/// What a connection is for (its name at the broker and its metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRole {
    /// Publishes (relay, capture, dead letters): blocked during a broker alarm.
    Publish,
    /// Consumes and acks (the appliers): allowed during an alarm.
    Consume,
}

impl LinkRole {
    /// `publish` or `consume`.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkRole::Publish => "publish",
            LinkRole::Consume => "consume",
        }
    }
}

/// The two connections of a process.
#[derive(Clone)]
pub struct Links {
    /// For publishing.
    pub publish: AmqpLink,
    /// For consuming.
    pub consume: AmqpLink,
}

impl Links {
    /// Both links, not connected yet; supervise each with [`AmqpLink::supervise`].
    pub fn new(url: &str, timeout: Duration, metrics: Metrics) -> Links {
        Links {
            publish: AmqpLink::new(url, LinkRole::Publish, timeout, metrics.clone()),
            consume: AmqpLink::new(url, LinkRole::Consume, timeout, metrics),
        }
    }
}

/// Cheap to clone; all clones share one connection.
#[derive(Clone)]
pub struct AmqpLink {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    role: LinkRole,
    timeout: Duration,
    current: RwLock<Option<Arc<Connection>>>,
    generation: watch::Sender<u64>,
    metrics: Metrics,
}

impl AmqpLink {
    /// A link that is not connected yet; call [`AmqpLink::supervise`].
    pub fn new(url: &str, role: LinkRole, timeout: Duration, metrics: Metrics) -> AmqpLink {
        AmqpLink {
            inner: Arc::new(Inner {
                url: url.to_string(),
                role,
                timeout,
                current: RwLock::new(None),
                generation: watch::channel(0).0,
                metrics,
            }),
        }
    }

    /// Keeps the connection up until `shutdown`; then closes it.
    pub async fn supervise(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::default();
        while !shutdown.is_cancelled() {
            let name = format!("ponte-{}", self.inner.role.as_str());
            let props = ConnectionProperties::default().with_connection_name(name.into());
            let attempt = tokio::time::timeout(
                self.inner.timeout,
                Connection::connect(&self.inner.url, props),
            )
            .await;
            let conn = match attempt {
                Ok(Ok(conn)) => Arc::new(conn),
                failed => {
                    let reason = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "connect timed out".to_string(),
                    };
                    let delay = backoff.next_delay();
                    tracing::warn!(
                        connection = self.inner.role.as_str(),
                        error = %reason,
                        retry_in_ms = delay.as_millis() as u64,
                        "Broker connection failed; retrying."
                    );
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(delay) => continue,
                    }
                }
            };
            backoff.reset();
            let mut events = conn.events_listener();
            *self.inner.current.write().await = Some(conn.clone());
            self.inner.generation.send_modify(|g| *g += 1);
            self.connected(true);
            self.blocked(false);
            tracing::info!(connection = self.inner.role.as_str(), "Broker connected.");
            // Health: an error event, or a status that is no longer connected, ends this
            // connection.
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    event = events.next() => match event {
                        Some(lapin::Event::ConnectionBlocked(reason)) => {
                            self.blocked(true);
                            tracing::warn!(
                                connection = self.inner.role.as_str(),
                                reason = %reason,
                                "The broker blocks this connection (memory or disk alarm)."
                            );
                        }
                        Some(lapin::Event::ConnectionUnblocked) => {
                            self.blocked(false);
                            tracing::info!(
                                connection = self.inner.role.as_str(),
                                "The broker unblocked this connection."
                            );
                        }
                        Some(lapin::Event::Error(e)) => {
                            tracing::warn!(
                                connection = self.inner.role.as_str(),
                                error = %e,
                                "Broker connection lost; reconnecting."
                            );
                            break;
                        }
                        Some(_) => {}
                        None => break,
                    },
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {
                        if !conn.status().connected() {
                            tracing::warn!(
                                connection = self.inner.role.as_str(),
                                "Broker connection is no longer connected; reconnecting."
                            );
                            break;
                        }
                    }
                }
            }
            self.connected(false);
            self.blocked(false);
            *self.inner.current.write().await = None;
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                conn.close(200, "ponte reconnecting or stopping".into()),
            )
            .await;
        }
    }

    fn connected(&self, up: bool) {
        self.inner
            .metrics
            .amqp_connected
            .with_label_values(&[self.inner.role.as_str()])
            .set(i64::from(up));
    }

    fn blocked(&self, blocked: bool) {
        self.inner
            .metrics
            .amqp_blocked
            .with_label_values(&[self.inner.role.as_str()])
            .set(i64::from(blocked));
    }

    /// What this connection is for.
    pub fn role(&self) -> LinkRole {
        self.inner.role
    }

    /// The current connection, waiting up to `wait` for one.
    pub async fn connection(&self, wait: Duration) -> Result<Arc<Connection>, AmqpError> {
        let mut generations = self.inner.generation.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(conn) = self.inner.current.read().await.as_ref() {
                if conn.status().connected() {
                    return Ok(conn.clone());
                }
            }
            match tokio::time::timeout_at(deadline, generations.changed()).await {
                Ok(Ok(())) => continue,
                _ => return Err(AmqpError::NotConnected(wait)),
            }
        }
    }

    /// Opens a channel on the current connection.
    pub async fn channel(&self, wait: Duration) -> Result<lapin::Channel, AmqpError> {
        let conn = self.connection(wait).await?;
        with_timeout(self.inner.timeout, "channel.open", conn.create_channel()).await
    }

    /// Whether a connection is up now.
    pub async fn is_connected(&self) -> bool {
        self.inner
            .current
            .read()
            .await
            .as_ref()
            .is_some_and(|c| c.status().connected())
    }

    /// The configured I/O timeout.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }
}

/// Runs a lapin future under a timeout, naming the operation in the error.
pub async fn with_timeout<T>(
    timeout: Duration,
    op: &'static str,
    fut: impl std::future::Future<Output = lapin::Result<T>>,
) -> Result<T, AmqpError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(AmqpError::Lapin { op, source }),
        Err(_) => Err(AmqpError::Timeout(op)),
    }
}
