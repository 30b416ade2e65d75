//! Classifies Firebird errors into what the applier does next. The native client reports SQL codes
//! but messages are the reliable signal across client variants, so both are read.

use rsfbclient::FbError;

/// What the applier does with a failed statement or transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FbFailureKind {
    /// Connection lost or server down: reconnect with backoff, retry the batch.
    Connection,
    /// Lock conflict, deadlock, concurrent update: roll back, retry with backoff.
    Transient,
    /// Foreign key: the parent may still be in flight; retried for a bounded time.
    ForeignKey,
    /// Constraint, conversion, truncation, bad SQL: the message is dead-lettered.
    Permanent,
}

/// A classified Firebird error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind:?} Firebird error: {message}")]
pub struct FbFailure {
    /// The class.
    pub kind: FbFailureKind,
    /// The server's or client's message.
    pub message: String,
}

impl FbFailure {
    /// Whether retrying the same work may succeed.
    pub fn is_retriable(&self) -> bool {
        !matches!(self.kind, FbFailureKind::Permanent)
    }
}

/// Classifies an error from rsfbclient.
pub fn classify(err: &FbError) -> FbFailure {
    let (code, message) = match err {
        FbError::Sql { msg, code } => (*code, msg.clone()),
        FbError::Io(e) => {
            return FbFailure {
                kind: FbFailureKind::Connection,
                message: e.to_string(),
            }
        }
        FbError::Other(msg) => (0, msg.clone()),
    };
    FbFailure {
        kind: classify_message(code, &message),
        message,
    }
}

fn classify_message(code: i32, message: &str) -> FbFailureKind {
    let m = message.to_lowercase();
    let has = |needle: &str| m.contains(needle);
    if has("deadlock")
        || has("lock conflict")
        || has("update conflicts with concurrent update")
        || has("lock time-out")
        || code == -913
    {
        return FbFailureKind::Transient;
    }
    // A value the connection charset cannot encode (client side, no SQL code) or the server
    // cannot transliterate into the column: the same value fails every time.
    if has("dynamic sql error") || has("found param with an invalid") || has("transliterate") {
        return FbFailureKind::Permanent;
    }
    if has("foreign key") || code == -530 {
        return FbFailureKind::ForeignKey;
    }
    if has("connection")
        || has("network")
        || has("shutdown")
        || has("unavailable database")
        || has("error writing data")
        || has("error reading data")
        || has("unable to complete network request")
        || has("connection lost")
        || code == -902
    {
        return FbFailureKind::Connection;
    }
    if code == 0 && !has("violation") && !has("conversion") {
        // Client-side errors without an SQL code (e.g. a dropped handle) are retried.
        return FbFailureKind::Connection;
    }
    FbFailureKind::Permanent
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(code: i32, msg: &str) -> FbFailureKind {
        classify(&FbError::Sql {
            msg: msg.into(),
            code,
        })
        .kind
    }

    #[test]
    fn classifies_common_errors() {
        assert_eq!(
            sql(-913, "deadlock\nupdate conflicts with concurrent update"),
            FbFailureKind::Transient
        );
        assert_eq!(
            sql(-901, "lock conflict on no wait transaction"),
            FbFailureKind::Transient
        );
        assert_eq!(
            sql(
                -530,
                "violation of FOREIGN KEY constraint \"FK_X\" on table \"PEDIDOS\""
            ),
            FbFailureKind::ForeignKey
        );
        assert_eq!(
            sql(-803, "violation of PRIMARY or UNIQUE KEY constraint"),
            FbFailureKind::Permanent
        );
        assert_eq!(
            sql(
                -625,
                "validation error for column NOME, value \"*** null ***\""
            ),
            FbFailureKind::Permanent
        );
        assert_eq!(
            sql(-902, "Unable to complete network request to host"),
            FbFailureKind::Connection
        );
        assert_eq!(
            sql(
                -802,
                "arithmetic exception, numeric overflow, or string truncation"
            ),
            FbFailureKind::Permanent
        );
        assert_eq!(
            classify(&FbError::Other(
                "Found param with an invalid windows-1252 string: unrepresentable character".into()
            ))
            .kind,
            FbFailureKind::Permanent
        );
        assert_eq!(
            sql(
                -104,
                "Cannot transliterate character between character sets"
            ),
            FbFailureKind::Permanent
        );
        assert_eq!(
            classify(&FbError::Other("handle dropped".into())).kind,
            FbFailureKind::Connection
        );
    }
}
