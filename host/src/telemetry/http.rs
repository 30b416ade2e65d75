//! A minimal HTTP/1 endpoint: `/metrics` (Prometheus text), `/healthz` (the process runs) and
//! `/readyz` (PostgreSQL and the broker are reachable and every role has started).

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

use super::Metrics;

/// Readiness flags the roles set.
#[derive(Clone, Default)]
pub struct Readiness {
    started: Arc<AtomicBool>,
}

impl Readiness {
    /// Marks the host as started (all roles running).
    pub fn set_started(&self) {
        self.started.store(true, Ordering::SeqCst);
    }
    fn is_started(&self) -> bool {
        self.started.load(Ordering::SeqCst)
    }
}

/// Serves until `shutdown`. Readiness also requires the broker to be connected.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    readiness: Readiness,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        let metrics = metrics.clone();
        let readiness = readiness.clone();
        let service = service_fn(move |req: Request<hyper::body::Incoming>| {
            let metrics = metrics.clone();
            let readiness = readiness.clone();
            async move { Ok::<_, Infallible>(route(req.uri().path(), &metrics, &readiness)) }
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

fn route(path: &str, metrics: &Metrics, readiness: &Readiness) -> Response<Full<Bytes>> {
    let (status, body) = match path {
        "/metrics" => (StatusCode::OK, metrics.render()),
        "/healthz" => (StatusCode::OK, "ok\n".to_string()),
        "/readyz" => {
            let broker = metrics.amqp_connected.get() == 1;
            if readiness.is_started() && broker {
                (StatusCode::OK, "ready\n".to_string())
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "not ready: started={} broker={broker}\n",
                        readiness.is_started()
                    ),
                )
            }
        }
        _ => (StatusCode::NOT_FOUND, "not found\n".to_string()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}
