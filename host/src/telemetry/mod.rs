//! Observability: the Prometheus metrics every role updates, structured logging, and the HTTP
//! endpoint serving `/metrics`, `/healthz`, `/readyz` and the status page (`/`, `/status.json`).

use std::io::IsTerminal;

mod board;
mod events;
mod http;
pub mod lifecycle;
mod metrics;
mod status;

pub use board::{Board, DeadLetterNote, Flow, HeldState};
pub use events::{ChangeOutcome, HandBack};
pub use http::{serve, Readiness};
pub use lifecycle::LifecycleMetrics;
pub use metrics::{rss_bytes, Metrics};
pub use status::StatusSource;

/// Sets up tracing: JSON lines (`json = true`) or human text, filtered by `RUST_LOG` (default
/// info). Text has colours only on a terminal (and not with `NO_COLOR`): escape codes in a log
/// file or a journal are noise to grep through.
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,lapin=warn,sqlx=warn,wasmtime=warn,cranelift=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours(std::io::stderr().is_terminal()))
        .with_writer(std::io::stderr);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.try_init()
    };
}

/// Whether text logs get colours: on a terminal, unless `NO_COLOR` is set (no-color.org).
fn colours(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
