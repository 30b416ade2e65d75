//! Observability: the Prometheus metrics every role updates, structured logging, and the HTTP
//! endpoint serving `/metrics`, `/healthz` and `/readyz`.

mod board;
mod http;
mod metrics;

pub use board::{Board, DeadLetterNote, Flow, HeldState};
pub use http::{serve, Readiness};
pub use metrics::{rss_bytes, Metrics};

/// Sets up tracing: JSON lines (`json = true`) or human text, filtered by `RUST_LOG` (default info).
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,lapin=warn,sqlx=warn,wasmtime=warn,cranelift=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
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
