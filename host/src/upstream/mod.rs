//! The PostgreSQL appliers (broker -> PostgreSQL), one per origin unit: each consumes its unit's
//! upstream queue (single active consumer, so a unit's changes apply in the order it published
//! them; units in parallel, one stuck unit never holds up another), translates each change with
//! its table's transform (direction = upstream), and applies it in one PG transaction with the
//! inbox ledger, the conflict policy and the hub fan-out; acks only after the commit.
//! Design: docs/upstream.md.

mod apply;
mod bind;
mod conflicts;
mod consume;
mod prepare;

pub use apply::{apply_change, apply_in, begin_applying, Outcome, Target};
pub use bind::numbered;
pub use conflicts::{list_conflicts, print_conflicts, ConflictRow};
pub use consume::PgApplier;

/// Why an upstream change could not be applied now.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// PostgreSQL refused or failed; [`UpstreamError::is_retriable`] says whether to retry.
    #[error("PostgreSQL: {0}")]
    Db(#[from] sqlx::Error),
    /// The change can never apply as it is (bad key, unsupported placeholder...).
    #[error("refused: {0}")]
    Refused(String),
}

impl UpstreamError {
    fn sqlstate(&self) -> Option<String> {
        match self {
            UpstreamError::Db(sqlx::Error::Database(e)) => e.code().map(|c| c.to_string()),
            _ => None,
        }
    }

    /// A foreign-key violation: the parent may still be in flight from another unit.
    pub fn is_foreign_key(&self) -> bool {
        self.sqlstate().as_deref() == Some("23503")
    }

    /// Whether retrying the same change may succeed: connection and pool failures,
    /// serialization failures, deadlocks, lock and statement timeouts, resource limits.
    pub fn is_retriable(&self) -> bool {
        match self {
            UpstreamError::Refused(_) => false,
            UpstreamError::Db(sqlx::Error::Database(_)) => {
                let code = self.sqlstate().unwrap_or_default();
                ["40", "53", "08", "57", "55P03"]
                    .iter()
                    .any(|p| code.starts_with(p))
            }
            UpstreamError::Db(
                sqlx::Error::ColumnDecode { .. }
                | sqlx::Error::ColumnNotFound(_)
                | sqlx::Error::ColumnIndexOutOfBounds { .. }
                | sqlx::Error::TypeNotFound { .. }
                | sqlx::Error::Decode(_)
                | sqlx::Error::Encode(_)
                | sqlx::Error::RowNotFound,
            ) => false,
            UpstreamError::Db(_) => true,
        }
    }
}
