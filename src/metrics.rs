//! The HTTP endpoint long-running commands (controllers) serve: Prometheus metrics in the text
//! exposition format on `/metrics`, liveness on `/healthz`, readiness on `/readyz`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What the endpoint serves: a registry, and whether the process is ready.
#[derive(Debug, Default)]
pub struct Endpoint {
    /// The metrics.
    pub registry: std::sync::Mutex<Registry>,
    /// `/readyz` answers 200 once this is set.
    pub ready: AtomicBool,
}

impl Endpoint {
    /// The registry in the text exposition format.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut text = String::new();
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }
}

/// A running metrics server.
#[derive(Debug)]
pub struct Server {
    /// The bound address (port 0 picks a free one).
    pub address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Waits until the server has stopped (after its shutdown token is cancelled) and its
    /// address is free again: a controller started anew in the same process can bind it.
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

/// Serves `endpoint` on `address` until `shutdown`.
///
/// # Errors
/// The address cannot be bound.
pub async fn serve(
    address: SocketAddr,
    endpoint: Arc<Endpoint>,
    shutdown: CancellationToken,
) -> std::io::Result<Server> {
    let listener = TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = shutdown.cancelled() => return,
            };
            let Ok((stream, _)) = accepted else {
                // Out of file descriptors, say: do not spin.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            let endpoint = Arc::clone(&endpoint);
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let endpoint = Arc::clone(&endpoint);
                    async move { Ok::<_, Infallible>(answer(&request, &endpoint)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Server {
        address: bound,
        task,
    })
}

fn answer(request: &Request<Incoming>, endpoint: &Endpoint) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match request.uri().path() {
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            endpoint.encode(),
        ),
        "/healthz" | "/livez" => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        "/readyz" if endpoint.ready.load(Ordering::Relaxed) => {
            (StatusCode::OK, "text/plain", "ok\n".to_owned())
        }
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready\n".to_owned(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics, /healthz or /readyz\n".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, value);
    }
    response
}
