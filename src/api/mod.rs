//! The REST façade (SPEC §3): an axum service serving the instances and
//! tags contract over DbInstance, DbTag, DbSyncSession and credential
//! Secrets in one namespace, and the inventories (DbInventory) beside the
//! instances. Reads come from reflector caches and indexes kept from watch
//! events (`store`), writes go to the API server.

pub mod actions;
pub mod auth;
pub mod caches;
pub mod caller;
pub mod csrf;
pub mod csv;
pub mod envelope;
pub mod extract;
pub mod guarded;
pub mod input;
pub mod instance_index;
pub mod instances;
pub mod inventory;
pub mod last_tests;
pub mod openapi;
pub mod pagination;
pub mod routes;
pub mod sync_sessions;
pub mod tags;
mod views;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use k8s_openapi::jiff::SignedDuration;
use kube::Client;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use self::auth::{AuthMode, Authenticator, FailedReviewLimit};
use self::caches::Caches;
use self::csrf::CsrfKey;
use self::envelope::{ApiError, Code};
use self::routes::Routes;
use self::views::Lookup;
use crate::ids::IdAllocator;
use crate::lifecycle;
use crate::metrics::Metrics;
use crate::observe::{ProbeBudget, ProbePermit, ProbesBusy};
use crate::probe::Timeouts;

/// Default time a soft-deleted instance stays in the recycle bin.
pub const DEFAULT_RETENTION: SignedDuration = SignedDuration::from_hours(30 * 24);

/// Above the 1 MiB CSV limit so an oversized upload is seen (and answered
/// 413) rather than cut off mid-stream.
const UPLOAD_BODY_LIMIT: usize = 2 * 1024 * 1024;
/// Every other body is a small JSON document.
const JSON_BODY_LIMIT: usize = 256 * 1024;

/// How long an ad-hoc connection test waits for a slot in the probe budget
/// before it is answered 503 `PROBES_BUSY`: longer than one connection test
/// takes to time out (5 s), so a request behind a full budget of
/// unreachable hosts still gets its turn.
pub const DEFAULT_PROBE_WAIT: Duration = Duration::from_secs(10);

/// Default for [`ApiConfig::test_connection_interval`]: a view-only caller
/// cannot make dbfleet log in to a server more often than this, which keeps
/// a failed-login lockout out of reach.
pub const DEFAULT_TEST_CONNECTION_INTERVAL: Duration = Duration::from_secs(10);

pub struct ApiConfig {
    pub namespace: String,
    pub auth: AuthMode,
    /// How long a soft-deleted instance is kept (`retained_until`).
    pub retention: SignedDuration,
    /// Served at `/metrics`; shared with the controllers under `dbfleet run`.
    pub metrics: Arc<Metrics>,
    /// Bounds on ad-hoc probes and on waiting for the controller's answers.
    pub timeouts: Timeouts,
    /// The probe budget of ad-hoc connection tests (the only probes the
    /// façade runs itself); under `dbfleet run` the controllers' own.
    pub probe_budget: ProbeBudget,
    /// How long an ad-hoc test waits for a slot in the probe budget.
    pub probe_wait: Duration,
    /// TokenReviews of invalid tokens each client address may cause.
    pub failed_reviews: FailedReviewLimit,
    /// At most one login per instance this often through test-connection
    /// and batch tests.
    pub test_connection_interval: Duration,
}

impl ApiConfig {
    /// Defaults for everything but the namespace and the authentication.
    pub fn new(namespace: impl Into<String>, auth: AuthMode) -> Self {
        ApiConfig {
            namespace: namespace.into(),
            auth,
            retention: DEFAULT_RETENTION,
            metrics: Arc::default(),
            timeouts: Timeouts::default(),
            probe_budget: ProbeBudget::default(),
            probe_wait: DEFAULT_PROBE_WAIT,
            failed_reviews: FailedReviewLimit::default(),
            test_connection_interval: DEFAULT_TEST_CONNECTION_INTERVAL,
        }
    }
}

/// What every handler shares.
pub struct Shared {
    pub client: Client,
    pub namespace: String,
    pub caches: Caches,
    pub auth: Authenticator,
    /// Loaded from its Secret once the namespace exists; until then the
    /// façade is not ready and `/api/v1` answers 503.
    pub csrf: OnceLock<CsrfKey>,
    pub ids: IdAllocator,
    pub retention: SignedDuration,
    pub metrics: Arc<Metrics>,
    pub timeouts: Timeouts,
    pub probe_budget: ProbeBudget,
    pub probe_wait: Duration,
    /// The last connection test of each instance (`--test-connection-interval`).
    pub last_tests: last_tests::LastTests<actions::ConnectionTestData>,
}

pub type AppState = Arc<Shared>;

impl Shared {
    /// A slot in the probe budget, waited for at most `probe_wait`; a
    /// request never queues without bound behind background work.
    pub async fn probe_permit(&self) -> Result<ProbePermit, ProbesBusy> {
        self.probe_budget.acquire_within(self.probe_wait).await
    }

    /// The Kubernetes API of `K` in the façade's namespace.
    pub fn api<K>(&self) -> kube::Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        kube::Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// What turning instances into views needs, from the caches.
    pub fn lookup(&self) -> Lookup {
        Lookup::new(
            &Caches::live(&self.caches.tags),
            self.caches.credentials(),
            self.retention,
        )
    }

    /// The CSRF key, or 503 while the façade is still waiting for it.
    pub fn csrf(&self) -> Result<&CsrfKey, ApiError> {
        self.csrf.get().ok_or_else(|| self.starting())
    }

    fn starting(&self) -> ApiError {
        ApiError::new(
            Code::UpstreamUnavailable,
            format!(
                "the façade is starting: it waits for namespace {:?} and the CSRF key Secret {} in it",
                self.namespace,
                csrf::KEY_SECRET
            ),
        )
    }
}

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
    if config.auth == AuthMode::Disabled {
        tracing::warn!("authentication is DISABLED: every caller has every permission; use this on a laptop only");
    }
    let (caches, run_caches) = Caches::start(client.clone(), &config.namespace);
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
        .merge(actions::routes())
        .merge(sync_sessions::routes())
        .merge(tags::routes())
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
