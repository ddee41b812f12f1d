//! Running dbfleet's controllers in-process, scoped to one test namespace,
//! and waiting for what they write.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use dbfleet::controller::{self, Config};
use dbfleet::crd::DbInstance;
use dbfleet::metrics::Metrics;
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

/// The controllers for one namespace; stopped when dropped.
pub struct RunningControllers {
    stop: CancellationToken,
    pub metrics: Arc<Metrics>,
}

impl Drop for RunningControllers {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Starts every controller for `namespace` (without leader election) with
/// test-friendly settings, adjusted by `tweak`.
pub fn start(client: &Client, namespace: &str, tweak: impl FnOnce(&mut Config)) -> RunningControllers {
    let mut config = Config {
        namespace: Some(namespace.to_string()),
        ..Config::default()
    };
    config.probes.timeouts.connect = Duration::from_secs(3);
    tweak(&mut config);
    let stop = CancellationToken::new();
    let metrics = Arc::new(Metrics::default());
    tokio::spawn(controller::run_controllers(
        client.clone(),
        config,
        metrics.clone(),
        stop.clone(),
    ));
    RunningControllers { stop, metrics }
}

/// Polls until `check` returns `Some`, or panics after `timeout` showing the
/// last value seen.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = (Option<T>, String)>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let (found, last) = check().await;
        if let Some(found) = found {
            return found;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the instance's status satisfies `pick`, and returns it.
pub async fn instance_where(
    api: &Api<DbInstance>,
    name: &str,
    what: &str,
    pick: impl Fn(&DbInstance) -> bool,
) -> DbInstance {
    eventually(Duration::from_secs(30), &format!("{name}: {what}"), || async {
        match api.get_opt(name).await {
            Ok(Some(instance)) if pick(&instance) => (Some(instance), String::new()),
            Ok(Some(instance)) => (None, serde_json::to_string(&instance.status).unwrap_or_default()),
            Ok(None) => (None, "not found".into()),
            Err(e) => (None, e.to_string()),
        }
    })
    .await
}

/// The named condition's (status, reason).
pub fn condition(instance: &DbInstance, type_: &str) -> Option<(String, String)> {
    let status = instance.status.as_ref()?;
    let c = status.conditions.iter().find(|c| c.type_ == type_)?;
    Some((c.status.clone(), c.reason.clone()))
}

pub fn has_condition(instance: &DbInstance, type_: &str, status: &str, reason: &str) -> bool {
    condition(instance, type_).is_some_and(|(s, r)| s == status && r == reason)
}
