//! A minimal HTTP/1 endpoint: `/metrics` (Prometheus text), `/healthz` (the process runs),
//! `/readyz` (PostgreSQL and the broker are reachable and every role has started), and the
//! read-only status page: `/` and `/unit/N` (HTML) over `/status.json`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::status::{self, StatusSource};
use super::Metrics;

/// Readiness flags the roles set.
#[derive(Clone, Default)]
pub struct Readiness {
    started: Arc<AtomicBool>,
    postgres: Arc<AtomicBool>,
}

impl Readiness {
    /// Marks the host as started (all roles running).
    pub fn set_started(&self) {
        self.started.store(true, Ordering::SeqCst);
    }
    fn is_started(&self) -> bool {
        self.started.load(Ordering::SeqCst)
    }
    /// Records the last PostgreSQL probe.
    pub fn set_postgres(&self, ok: bool) {
        self.postgres.store(ok, Ordering::SeqCst);
    }
    fn postgres(&self) -> bool {
        self.postgres.load(Ordering::SeqCst)
    }
}

/// Serves until `shutdown`. Readiness also requires the broker to be connected.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    readiness: Readiness,
    source: StatusSource,
    shutdown: CancellationToken,
) {
    let source = Arc::new(source);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        let metrics = metrics.clone();
        let readiness = readiness.clone();
        let source = source.clone();
        let service = service_fn(move |req: Request<hyper::body::Incoming>| {
            let metrics = metrics.clone();
            let readiness = readiness.clone();
            let source = source.clone();
            async move { Ok::<_, Infallible>(route(req.uri().path(), &metrics, &readiness, &source)) }
        });
        let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::timeout(std::time::Duration::from_secs(30), conn) => {}
            }
        });
    }
}

fn route(
    path: &str,
    metrics: &Metrics,
    readiness: &Readiness,
    source: &StatusSource,
) -> Response<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    let (status, kind, body) = match path {
        "/metrics" => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics.render(),
        ),
        "/healthz" => (StatusCode::OK, TEXT, "ok\n".to_string()),
        "/readyz" => {
            let link = |c: &str| metrics.amqp_connected.with_label_values(&[c]).get() == 1;
            let (publish, consume) = (link("publish"), link("consume"));
            let (started, postgres) = (readiness.is_started(), readiness.postgres());
            if started && postgres && publish && consume {
                (StatusCode::OK, TEXT, "ready\n".to_string())
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    TEXT,
                    format!(
                        "not ready: started={started} postgres={postgres} \
                         broker_publish={publish} broker_consume={consume}\n"
                    ),
                )
            }
        }
        "/status.json" => (
            StatusCode::OK,
            "application/json",
            status::snapshot(metrics, source).to_string(),
        ),
        "/" => (
            StatusCode::OK,
            "text/html; charset=utf-8",
            status::PAGE.into(),
        ),
        p if p
            .strip_prefix("/unit/")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) =>
        {
            (
                StatusCode::OK,
                "text/html; charset=utf-8",
                status::PAGE.into(),
            )
        }
        _ => (StatusCode::NOT_FOUND, TEXT, "not found\n".to_string()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(kind) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}
