//! `/healthz`, `/readyz` and `/metrics` (SPEC §2.5).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::lifecycle;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct Health {
    pub metrics: Arc<Metrics>,
    /// Set once the process can serve: the API server answered and, under
    /// leader election, the Lease (and so its namespace) exists.
    pub ready: Arc<AtomicBool>,
}

pub fn router(health: Health) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(health)
}

async fn readyz(State(health): State<Health>) -> impl IntoResponse {
    if health.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// Content type of the Prometheus text exposition `Metrics::encode` writes.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn metrics(State(health): State<Health>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, OPENMETRICS)], health.metrics.encode())
}

/// Serves `router` on `addr` until `shutdown` is cancelled, then drains
/// for at most [`lifecycle::HTTP_DRAIN`].
pub async fn serve(addr: SocketAddr, router: Router, shutdown: CancellationToken) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /healthz, /readyz, /metrics");
    let served = axum::serve(listener, router).with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let drained = lifecycle::wind_down(
        "draining /healthz, /readyz, /metrics",
        &shutdown,
        lifecycle::HTTP_DRAIN,
        served.into_future(),
    );
    drained.await.unwrap_or(Ok(()))
}
