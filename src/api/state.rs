//! What every handler shares (`Shared`, reached as `AppState`) and the
//! configuration it is built from. It sits below every route module, so
//! none of them imports the façade's `mod.rs`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use k8s_openapi::jiff::SignedDuration;
use kube::Client;

use super::auth::{AuthMode, Authenticator, FailedReviewLimit};
use super::caches::Caches;
use super::connection_test::ConnectionTestData;
use super::csrf::{self, CsrfKey};
use super::envelope::{ApiError, Code};
use super::last_tests::LastTests;
use super::views::Lookup;
use crate::ids::IdAllocator;
use crate::metrics::Metrics;
use crate::observe::{ProbeBudget, ProbePermit, ProbesBusy};
use crate::probe::Timeouts;

/// Default time a soft-deleted instance stays in the recycle bin.
pub const DEFAULT_RETENTION: SignedDuration = SignedDuration::from_hours(30 * 24);

/// How long an ad-hoc connection test waits for a slot in the probe budget
/// before it is answered 503 `PROBES_BUSY`: longer than one connection test
/// takes to time out (5 s), so a request behind a full budget of
/// unreachable hosts still gets its turn.
pub const DEFAULT_PROBE_WAIT: Duration = Duration::from_secs(10);

/// Default for [`ApiConfig::test_connection_interval`]: a view-only caller
/// cannot make dbfleet log in to a server more often than this, which keeps
/// a failed-login lockout out of reach.
pub const DEFAULT_TEST_CONNECTION_INTERVAL: Duration = Duration::from_secs(10);

/// Default for [`ApiConfig::console_idle`]: a console left alone this long
/// asks for the token again.
pub const DEFAULT_CONSOLE_IDLE: Duration = Duration::from_secs(30 * 60);

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
    /// The console's sign-in cookie lapses after this long without a
    /// request (and when the token expires, if sooner).
    pub console_idle: Duration,
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
            console_idle: DEFAULT_CONSOLE_IDLE,
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
    pub last_tests: LastTests<ConnectionTestData>,
    /// `--console-idle-timeout`.
    pub console_idle: Duration,
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
            &self.caches.live(&self.caches.tags),
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
