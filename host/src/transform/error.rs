//! Errors at the transform boundary: loading the registry, and calling a transform for one change.

use std::path::PathBuf;

use super::types::GuestError;

/// Why the registry could not start. A bad `.wasm` file is NOT one of these: it is refused,
/// logged and listed in the status, and the rest of the directory loads.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The transforms directory is missing or unreadable.
    #[error(
        "cannot read the transforms directory {dir}: {source}; create it or fix `transforms.dir`"
    )]
    Dir {
        /// The configured directory.
        dir: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A sandbox limit in the configuration is out of range.
    #[error("{0}")]
    Settings(String),
    /// The wasmtime engine could not be configured (a host bug or an unsupported CPU).
    #[error("cannot create the wasm engine: {0}")]
    Engine(String),
    /// The epoch ticker thread could not be started.
    #[error("cannot start the epoch ticker thread: {0}")]
    Ticker(std::io::Error),
    /// Two bindings name the same table.
    #[error("table `{table}` is bound twice in the configuration; keep one binding")]
    DuplicateBinding {
        /// The table.
        table: String,
    },
    /// A binding's settings are not a JSON object.
    #[error("the settings of table `{table}` are not a JSON object: {reason}")]
    BadSettings {
        /// The table.
        table: String,
        /// What is wrong.
        reason: String,
    },
    /// The metrics could not be registered (already registered in this prometheus registry).
    #[error("cannot register the transform metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The filesystem watcher could not be started.
    #[error("cannot watch the transforms directory {dir}: {reason}")]
    Watch {
        /// The directory.
        dir: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// Why one change could not be translated.
///
/// [`CallError::is_retriable`] is false for every variant: a transform is a pure function, so
/// calling it again with the same change gives the same answer (a trap, a timeout and a memory
/// limit are properties of the code and the input; the instance that failed is discarded, so no
/// state carries over). The applier dead-letters the message with [`CallError`]'s text, EXCEPT
/// for [`CallError::NoTransform`] (see [`CallError::is_not_ready`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// No loaded transform serves this table right now: it is not bound in the configuration, its
    /// file is missing or refused, or its file was removed. The change itself is not at fault:
    /// the applier must treat this as "not ready" (stop consuming that table, retry later), and
    /// must NOT dead-letter the message.
    #[error("no transform serves table `{table}`: {reason}")]
    NoTransform {
        /// The table asked for.
        table: String,
        /// Why it is unrouted.
        reason: String,
    },
    /// The transform refused the change with a typed error (bad payload, too long, ...).
    #[error("transform refused the change: {0}")]
    Guest(GuestError),
    /// The guest trapped (a bug in the transform: panic, unreachable, out-of-bounds...).
    #[error("transform trapped: {detail}")]
    Trap {
        /// The trap and the wasm backtrace, shortened.
        detail: String,
    },
    /// The call exceeded its deadline (`call_timeout_ms`).
    #[error("transform exceeded its deadline")]
    Timeout,
    /// The guest tried to grow its memory beyond `memory_limit_bytes` (or a table beyond its
    /// limit) and failed because of it.
    #[error("transform exceeded its memory limit")]
    MemoryLimit,
    /// The output has more statements or bytes than `max_statements` / `max_output_bytes`.
    #[error("transform output too large: {detail}")]
    OutputTooLarge {
        /// Which limit and by how much.
        detail: String,
    },
    /// A returned statement failed validation (not allowed kind, table, placeholders...).
    #[error("statement refused: {reason}")]
    Refused {
        /// What was refused and why.
        reason: String,
    },
}

impl CallError {
    /// Always false: see the type's documentation.
    pub fn is_retriable(&self) -> bool {
        false
    }

    /// True only for [`CallError::NoTransform`]: the message must wait (not be dead-lettered)
    /// until a transform for its table is loaded.
    pub fn is_not_ready(&self) -> bool {
        matches!(self, CallError::NoTransform { .. })
    }

    /// The `outcome` label of `ponte_transform_calls_total` for this error (a bounded set).
    pub fn outcome(&self) -> &'static str {
        match self {
            CallError::NoTransform { .. } => "no_transform",
            CallError::Guest(_) => "guest_error",
            CallError::Trap { .. } => "trap",
            CallError::Timeout => "timeout",
            CallError::MemoryLimit => "memory_limit",
            CallError::OutputTooLarge { .. } => "output_too_large",
            CallError::Refused { .. } => "refused",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::types::ErrorKind;

    #[test]
    fn nothing_is_retriable_and_only_no_transform_waits() {
        let all = [
            CallError::NoTransform {
                table: "t".into(),
                reason: "r".into(),
            },
            CallError::Guest(GuestError {
                kind: ErrorKind::BadPayload,
                field: None,
                message: "m".into(),
            }),
            CallError::Trap { detail: "d".into() },
            CallError::Timeout,
            CallError::MemoryLimit,
            CallError::OutputTooLarge { detail: "d".into() },
            CallError::Refused { reason: "r".into() },
        ];
        for e in &all {
            assert!(!e.is_retriable());
            assert_eq!(e.is_not_ready(), matches!(e, CallError::NoTransform { .. }));
            assert!(!e.outcome().is_empty());
        }
    }
}
