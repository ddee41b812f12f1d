//! Starting and stopping (SPEC §2.5): what the process waits for before it
//! is ready, and how long each step of a shutdown may take.
//!
//! At start a namespace may not exist yet (a Helm install and `kubectl
//! create namespace` race; `scripts/up.sh` once started dbfleet first), or
//! the API server may still be coming up. Neither is a reason to exit: the
//! process keeps `/readyz` false, says once what it waits for, and retries
//! with backoff. At SIGTERM every step gets a deadline, so the process is
//! gone well before the kubelet's SIGKILL whatever the API server does.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Everything after SIGTERM, end to end. Kubernetes sends SIGKILL 30 s
/// after SIGTERM by default, and until this replica is gone its Lease
/// (if not released) holds up the next leader; 9 s leaves room for the
/// runtime to wind down and still exit within 10 s.
pub const SHUTDOWN_BUDGET: Duration = Duration::from_secs(9);

/// In-flight reconciles finishing their status writes. A healthy API
/// server answers a status patch in milliseconds; a reconcile still
/// waiting after this is waiting on a server that is not answering.
pub const FINAL_WRITES: Duration = Duration::from_secs(4);

/// Releasing the leader Lease so a standby takes over at once; after
/// this the Lease simply expires (`--lease-seconds`).
pub const LEASE_RELEASE: Duration = Duration::from_secs(2);

/// The façade's and the health endpoints' in-flight requests draining.
/// Runs beside the controllers' steps, not after them.
pub const HTTP_DRAIN: Duration = Duration::from_secs(4);

/// Waits at most `limit` for one shutdown step, and says so when the step
/// is cut short. `None` when it was.
pub async fn bounded<T>(step: &str, limit: Duration, work: impl Future<Output = T>) -> Option<T> {
    match tokio::time::timeout(limit, work).await {
        Ok(done) => Some(done),
        Err(_) => {
            warn!(
                step,
                ?limit,
                "shutdown step did not finish in time; going on without it"
            );
            None
        }
    }
}

/// Runs `work` to its end or — once `shutdown` is cancelled — for at most
/// `limit` more, for work that starts before the signal and winds down on
/// it (a server draining its requests). `None` when it was cut short.
pub async fn wind_down<T>(
    step: &str,
    shutdown: &CancellationToken,
    limit: Duration,
    work: impl Future<Output = T>,
) -> Option<T> {
    let overrun = async {
        shutdown.cancelled().await;
        tokio::time::sleep(limit).await;
    };
    tokio::select! {
        done = work => Some(done),
        _ = overrun => {
            warn!(step, ?limit, "shutdown step did not finish in time; going on without it");
            None
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("shutdown did not finish within {SHUTDOWN_BUDGET:?} of the signal; exiting anyway")]
pub struct ShutdownOverrun;

/// Runs the whole process's `work`, which after the signal gets
/// [`SHUTDOWN_BUDGET`] whatever it is waiting on.
pub async fn within_shutdown_budget<T>(
    shutdown: &CancellationToken,
    work: impl Future<Output = T>,
) -> Result<T, ShutdownOverrun> {
    wind_down("shutdown", shutdown, SHUTDOWN_BUDGET, work)
        .await
        .ok_or(ShutdownOverrun)
}

/// Why a call to the API server failed, as far as waiting is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The namespace the object lives in does not exist (yet).
    NamespaceMissing(String),
    /// The API server is unreachable, overloaded or failing: try again.
    Transient,
    /// Retrying cannot help (forbidden, invalid, misconfigured).
    Fatal,
}

/// What waiting makes of an error.
pub trait Retryable: Display {
    fn failure(&self) -> Failure;
}

impl Retryable for kube::Error {
    fn failure(&self) -> Failure {
        match self {
            kube::Error::Api(status) => {
                let details = status.details.as_ref();
                match status.code {
                    404 if details.is_some_and(|d| d.kind == "namespaces") => {
                        Failure::NamespaceMissing(details.map(|d| d.name.clone()).unwrap_or_default())
                    }
                    429 | 500..=599 => Failure::Transient,
                    _ => Failure::Fatal,
                }
            }
            kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => Failure::Transient,
            _ => Failure::Fatal,
        }
    }
}

impl Retryable for kube_lease_manager::LeaseManagerError {
    fn failure(&self) -> Failure {
        match self {
            kube_lease_manager::LeaseManagerError::KubeError(e) => e.failure(),
            _ => Failure::Fatal,
        }
    }
}

/// First retry after 250 ms, doubling up to 5 s: a namespace created a
/// moment later is noticed within seconds, and a long wait costs the API
/// server one request every 5 s.
pub fn retry_delay(attempt: u32) -> Duration {
    const FIRST: Duration = Duration::from_millis(250);
    const MOST: Duration = Duration::from_secs(5);
    FIRST.saturating_mul(1u32 << attempt.min(5)).min(MOST)
}

/// What to log about a failure, given the one before it: one line when the
/// reason to wait changes, none while it stays the same.
pub fn waiting_line(what: &str, previous: Option<&Failure>, now: &Failure) -> Option<String> {
    if previous == Some(now) {
        return None;
    }
    match now {
        Failure::NamespaceMissing(namespace) => Some(format!(
            "waiting for namespace {namespace:?} to exist: {what} lives there; retrying with backoff, not ready until then"
        )),
        Failure::Transient => Some(format!(
            "waiting for the Kubernetes API to answer (for {what}); retrying with backoff, not ready until then"
        )),
        Failure::Fatal => None,
    }
}

/// Calls `attempt` until it succeeds, fails in a way retrying cannot help,
/// or `shutdown` is cancelled (`Ok(None)`).
pub async fn until_available<T, E, F, Fut>(
    what: &str,
    shutdown: &CancellationToken,
    mut attempt: F,
) -> Result<Option<T>, E>
where
    E: Retryable,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut waiting: Option<Failure> = None;
    for tries in 0u32.. {
        let result = tokio::select! {
            result = attempt() => result,
            _ = shutdown.cancelled() => return Ok(None),
        };
        let error = match result {
            Ok(found) => {
                if waiting.is_some() {
                    info!("{what}: available now");
                }
                return Ok(Some(found));
            }
            Err(error) => error,
        };
        let failure = error.failure();
        if failure == Failure::Fatal {
            return Err(error);
        }
        if let Some(line) = waiting_line(what, waiting.as_ref(), &failure) {
            warn!(%error, "{line}");
        }
        waiting = Some(failure);
        tokio::select! {
            _ = tokio::time::sleep(retry_delay(tries)) => {}
            _ = shutdown.cancelled() => return Ok(None),
        }
    }
    unreachable!("the retry loop only ends by returning")
}

#[cfg(test)]
mod tests {
    use kube::core::Status;

    use super::*;

    /// An error as the API server sends it, e.g. for a create in a
    /// namespace that does not exist: `{"code": 404, "reason": "NotFound",
    /// "details": {"kind": "namespaces", "name": "dbfleet-demo"}, ...}`.
    fn api_error(code: u16, details: Option<(&str, &str)>) -> kube::Error {
        let mut status = serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "failed", "reason": "Reason", "code": code,
        });
        if let Some((kind, name)) = details {
            status["details"] = serde_json::json!({"kind": kind, "name": name});
        }
        let status: Status = serde_json::from_value(status).unwrap();
        kube::Error::Api(status.boxed())
    }

    #[test]
    fn a_missing_namespace_is_waited_for_and_named() {
        assert_eq!(
            api_error(404, Some(("namespaces", "dbfleet-demo"))).failure(),
            Failure::NamespaceMissing("dbfleet-demo".into())
        );
    }

    #[test]
    fn only_what_can_heal_is_retried() {
        assert_eq!(api_error(503, None).failure(), Failure::Transient);
        assert_eq!(api_error(429, None).failure(), Failure::Transient);
        // A missing object (not its namespace), a refusal or a bad request
        // will not change by asking again.
        assert_eq!(api_error(404, Some(("secrets", "x"))).failure(), Failure::Fatal);
        assert_eq!(api_error(403, None).failure(), Failure::Fatal);
        assert_eq!(api_error(422, None).failure(), Failure::Fatal);
        let lease = kube_lease_manager::LeaseManagerError::KubeError(api_error(404, Some(("namespaces", "ns"))));
        assert_eq!(lease.failure(), Failure::NamespaceMissing("ns".into()));
    }

    #[test]
    fn retries_back_off_to_a_ceiling() {
        let delays: Vec<u64> = (0..8).map(|n| retry_delay(n).as_millis() as u64).collect();
        assert_eq!(delays, [250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
        assert_eq!(retry_delay(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn one_line_per_reason_to_wait() {
        let missing = Failure::NamespaceMissing("demo".into());
        let line = waiting_line("the Lease", None, &missing).unwrap();
        assert!(
            line.contains("namespace \"demo\"") && line.contains("the Lease"),
            "{line}"
        );
        assert_eq!(waiting_line("the Lease", Some(&missing), &missing), None);
        assert!(waiting_line("the Lease", Some(&missing), &Failure::Transient).is_some());
    }

    #[tokio::test]
    async fn waiting_ends_when_the_thing_appears_or_at_shutdown() {
        let shutdown = CancellationToken::new();
        let mut calls = 0;
        let found = until_available("the key", &shutdown, || {
            calls += 1;
            let result = if calls < 4 {
                Err(api_error(404, Some(("namespaces", "demo"))))
            } else {
                Ok(calls)
            };
            async move { result }
        })
        .await
        .unwrap();
        assert_eq!(found, Some(4));

        let fatal: Result<Option<()>, _> =
            until_available("the key", &shutdown, || async { Err(api_error(403, None)) }).await;
        assert!(fatal.is_err(), "a refusal is not waited out");

        let stopping = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stopping.cancel();
        });
        let stopped: Result<Option<()>, kube::Error> =
            until_available("the key", &shutdown, || async { Err(api_error(503, None)) }).await;
        assert_eq!(stopped.unwrap(), None);
    }

    #[tokio::test]
    async fn winding_down_is_only_timed_after_the_signal() {
        let limit = Duration::from_millis(50);
        let shutdown = CancellationToken::new();
        // Work longer than the limit is fine while nobody asked to stop...
        let done = wind_down("test", &shutdown, limit, async {
            tokio::time::sleep(limit * 4).await;
            "done"
        })
        .await;
        assert_eq!(done, Some("done"));
        // ...but after the signal it gets the limit and no more.
        shutdown.cancel();
        let started = std::time::Instant::now();
        assert_eq!(
            wind_down("test", &shutdown, limit, std::future::pending::<()>()).await,
            None
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        let started = std::time::Instant::now();
        assert_eq!(bounded("test", limit, std::future::pending::<()>()).await, None);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
