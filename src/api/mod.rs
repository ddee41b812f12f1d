//! The REST façade (SPEC §3): an axum service serving the instances and
//! tags contract over DbInstance, DbTag, DbSyncSession and credential
//! Secrets in one namespace, and the inventories (DbInventory) beside the
//! instances. Reads come from reflector caches and indexes kept from watch
//! events (`store`), writes go to the API server.

pub mod actions;
pub mod auth;
pub mod caches;
pub mod caller;
pub mod changes_index;
pub mod clusters;
pub mod connection_test;
pub mod csrf;
pub mod csv;
pub mod envelope;
pub mod extract;
pub mod fleet_index;
pub mod guarded;
pub mod history;
pub mod input;
pub mod instance_index;
pub mod instances;
pub mod inventory;
pub mod last_tests;
#[cfg(test)]
mod layering;
pub mod openapi;
pub mod pagination;
pub mod routes;
pub mod state;
pub mod sync_sessions;
pub mod tags;
pub mod views;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use kube::Client;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use self::auth::{AuthMode, Authenticator};
use self::caches::Caches;
use self::csrf::CsrfKey;
use self::routes::Routes;
pub use self::state::{
    ApiConfig, AppState, DEFAULT_CONSOLE_IDLE, DEFAULT_PROBE_WAIT, DEFAULT_RETENTION, DEFAULT_TEST_CONNECTION_INTERVAL,
    Shared,
};
use crate::ids::IdAllocator;
use crate::lifecycle;

/// Above the 1 MiB CSV limit so an oversized upload is seen (and answered
/// 413) rather than cut off mid-stream.
const UPLOAD_BODY_LIMIT: usize = 2 * 1024 * 1024;
/// Every other body is a small JSON document.
const JSON_BODY_LIMIT: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(
        "the CSRF key Secret {secret} in {namespace} can be neither read nor created ({reason}); \
         the Helm chart creates it (api.csrfKeySecret.create), or create it yourself (docs/facade.md)"
    )]
    CsrfKey {
        secret: &'static str,
        namespace: String,
        reason: String,
    },
    #[error("serving HTTP: {0}")]
    Io(#[from] std::io::Error),
}

/// With `--auth disabled` the façade only ever listens on loopback, so an
/// unauthenticated API is never reachable from another machine.
pub fn effective_listen(auth: AuthMode, requested: SocketAddr) -> SocketAddr {
    match auth {
        AuthMode::Disabled if !requested.ip().is_loopback() => SocketAddr::from(([127, 0, 0, 1], requested.port())),
        _ => requested,
    }
}

/// Binds the façade's listener: `requested`, or its port on loopback when
/// authentication is disabled ([`effective_listen`]).
pub async fn bind(auth: AuthMode, requested: SocketAddr) -> Result<TcpListener, ServeError> {
    Ok(TcpListener::bind(effective_listen(auth, requested)).await?)
}

/// Serves the façade on `listener` until `shutdown` is cancelled, then
/// drains in-flight requests for at most [`lifecycle::HTTP_DRAIN`].
///
/// It answers at once: `/healthz` 200, `/readyz` 503 and `/api/v1` 503
/// until the CSRF key is loaded (which waits, with backoff, for the
/// namespace to exist) and the caches are synced.
pub async fn serve(
    client: Client,
    config: ApiConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let caches = Caches::start(client.clone(), &config.namespace);
    serve_from(client, config, caches, listener, shutdown).await
}

/// [`serve`] from caches built by the caller (`dbfleet run` attaches them
/// to the watches it shares with the controllers), with the future that
/// keeps them filled.
pub async fn serve_from(
    client: Client,
    config: ApiConfig,
    (caches, run_caches): (Caches, impl Future<Output = ()> + Send + 'static),
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    if config.auth == AuthMode::Disabled {
        tracing::warn!("authentication is DISABLED: every caller has every permission; use this on a laptop only");
    }
    let caches_task = tokio::spawn(run_caches);
    let state = Arc::new(Shared {
        auth: Authenticator::new(
            config.auth,
            client.clone(),
            config.namespace.clone(),
            config.failed_reviews,
            config.metrics.clone(),
        ),
        ids: IdAllocator::new(client.clone(), &config.namespace),
        client,
        namespace: config.namespace,
        caches,
        csrf: OnceLock::new(),
        retention: config.retention,
        metrics: config.metrics,
        timeouts: config.timeouts,
        probe_budget: config.probe_budget,
        probe_wait: config.probe_wait,
        last_tests: last_tests::LastTests::new(config.test_connection_interval),
        console_idle: config.console_idle,
    });
    let key = load_csrf_key(state.clone(), shutdown.clone());
    tracing::info!(address = %listener.local_addr()?, namespace = %state.namespace, "façade listening");
    // The peer address is what failed TokenReviews are limited by.
    let served = axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let drained = lifecycle::wind_down(
        "draining the façade's requests",
        &shutdown,
        lifecycle::HTTP_DRAIN,
        served.into_future(),
    )
    .await;
    caches_task.abort();
    let loaded = key.await;
    drained.unwrap_or(Ok(()))?;
    match loaded {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Ok(()),
    }
}

/// Loads (or creates) the CSRF key in the background, waiting while the
/// namespace does not exist. A failure retrying cannot mend (e.g. RBAC)
/// stops the façade.
fn load_csrf_key(state: AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<Result<(), ServeError>> {
    tokio::spawn(async move {
        let what = format!("the CSRF key Secret {}/{}", state.namespace, csrf::KEY_SECRET);
        let loaded = lifecycle::until_available(&what, &shutdown, || {
            CsrfKey::load_or_create(state.client.clone(), &state.namespace)
        })
        .await;
        match loaded {
            Ok(Some(key)) => {
                let _ = state.csrf.set(key);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => {
                tracing::error!(error = %e, "{what}: cannot be read or created; stopping the façade");
                shutdown.cancel();
                Err(match e {
                    kube::Error::Api(refused) if refused.code == 403 => ServeError::CsrfKey {
                        secret: csrf::KEY_SECRET,
                        namespace: state.namespace.clone(),
                        reason: refused.message,
                    },
                    other => other.into(),
                })
            }
        }
    })
}

/// Every route of the façade; `started` wraps `/api/v1` (the router puts
/// the until-started gate there; the route table's test needs nothing).
pub fn routes(started: impl FnOnce(Router<AppState>) -> Router<AppState>) -> Routes {
    let api = Routes::new()
        .get("/auth/csrf-token", caller::csrf_token)
        .get("/auth/me", caller::me)
        .get("/openapi.json", openapi::serve)
        .merge(instances::routes())
        .merge(inventory::routes())
        .merge(history::routes())
        .merge(actions::routes())
        .merge(sync_sessions::routes())
        .merge(tags::routes())
        .merge(clusters::routes())
        .map_router(|r| r.layer(DefaultBodyLimit::max(JSON_BODY_LIMIT)))
        .merge(csv::routes().map_router(|r| r.layer(DefaultBodyLimit::max(UPLOAD_BODY_LIMIT))))
        .map_router(started);
    Routes::new()
        .nest("/api/v1", api)
        .get("/healthz", healthz)
        .get("/readyz", readyz)
        .get("/metrics", metrics)
}

pub fn router(state: AppState) -> Router {
    routes(|api| api.layer(axum::middleware::from_fn_with_state(state.clone(), until_started)))
        .into_router()
        // The web console (`src/console`) on the same port: its pages call
        // the same extractors, queries and handlers as the routes above.
        .merge(crate::console::router(state.clone()))
        .fallback(envelope::not_found_fallback)
        .method_not_allowed_fallback(envelope::method_not_allowed_fallback)
        .layer(axum::middleware::from_fn(envelope::request_id))
        .layer(axum::middleware::from_fn_with_state(state.clone(), count_requests))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, crate::health::OPENMETRICS)],
        state.metrics.encode(),
    )
}

/// Counts every answer by method and status, and times it.
async fn count_requests(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.method().clone();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .served(method.as_str(), response.status().as_u16(), started.elapsed());
    response
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.csrf.get().is_none() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for the namespace and its CSRF key",
        )
    } else if state.caches.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches syncing")
    }
}

/// Answers 503 `UPSTREAM_UNAVAILABLE` until the CSRF key is loaded, so no
/// request runs half set up.
async fn until_started(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match state.csrf() {
        Ok(_) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_auth_never_listens_beyond_loopback() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(
            effective_listen(AuthMode::Disabled, any),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(effective_listen(AuthMode::Kubernetes, any), any);
        let local: SocketAddr = "[::1]:9".parse().unwrap();
        assert_eq!(effective_listen(AuthMode::Disabled, local), local);
    }
}
