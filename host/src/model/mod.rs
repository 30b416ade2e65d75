//! The vocabulary every role shares: a row change, what a transform turns it into, and the
//! envelopes that carry changes over the broker. The ground floor: it depends on no role.

mod change;
mod envelope;
mod own_tables;
mod statement;

pub use change::{Change, Direction, Op};
pub use envelope::{
    correlation_id, Envelope, UpstreamEnvelope, ENVELOPE_VERSION, UPSTREAM_VERSION,
};
pub use own_tables::{is_own_table, own_table_refusal};
pub use statement::{IdClaim, Output, Statement, Value};
