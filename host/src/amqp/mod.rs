//! RabbitMQ: two supervised connections per process (publish, consume; reconnect with backoff,
//! swapped in place), the topology (one source for the declarations and the definitions file),
//! the message properties, the confirmed mandatory publisher, the dead-letter writer and reader,
//! and the consumer skeleton every applier runs on.

pub mod consumer;
pub mod deadletter;
mod link;
mod message;
mod publish;
mod topology;

pub use consumer::{BatchHandler, Consumer, ConsumerSpec, Disposition, Hold, Pending};
pub use deadletter::{DeadClass, DeadLetterView, DeadLetterWriter};
pub use link::{with_timeout, AmqpError, AmqpLink, LinkRole, Links};
pub use publish::{settle, Outgoing, PublishFailure, Publisher};
pub use topology::{QueueSpec, Topology};
