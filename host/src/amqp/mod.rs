//! RabbitMQ: one supervised connection per process (reconnect with backoff, swapped in place),
//! the topology, the message envelope and the confirmed, mandatory publisher.

mod link;
mod message;
mod publish;
mod topology;

pub use link::{with_timeout, AmqpError, AmqpLink};
pub use publish::{PublishFailure, Publisher};
pub use topology::{declare_base, declare_unit_queue};
