//! Leader election on a `coordination.k8s.io` Lease: every replica waits,
//! one holds the Lease and runs the controllers, and when it stops or loses
//! the Lease another takes over.

use std::future::Future;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::lifecycle;

#[derive(Clone, Debug)]
pub struct LeaderConfig {
    pub lease_name: String,
    pub lease_namespace: String,
    /// Unique per replica, e.g. the pod name.
    pub identity: String,
    /// How long a Lease stays valid without renewal, in seconds.
    pub lease_seconds: u64,
}

/// Makes sure the Lease exists (creating it if needed), waiting while its
/// namespace does not exist or the API server does not answer. `None` when
/// `shutdown` came first.
pub async fn join(
    client: Client,
    config: &LeaderConfig,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<LeaseManager>> {
    let what = format!("the leader Lease {}/{}", config.lease_namespace, config.lease_name);
    let manager = lifecycle::until_available(&what, shutdown, || {
        LeaseManagerBuilder::new(client.clone(), &config.lease_name)
            .with_namespace(&config.lease_namespace)
            .with_identity(&config.identity)
            .with_duration(config.lease_seconds)
            .with_grace(config.lease_seconds.div_ceil(3).max(1))
            .build()
    })
    .await?;
    Ok(manager)
}

/// [`join`], then [`lead`]: runs `work` whenever this replica leads, until
/// `shutdown` is cancelled.
pub async fn run_while_leading<F, Fut>(
    client: Client,
    config: LeaderConfig,
    shutdown: CancellationToken,
    work: F,
) -> anyhow::Result<()>
where
    F: Fn(CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    match join(client, &config, &shutdown).await? {
        Some(manager) => lead(manager, config, shutdown, work).await,
        None => Ok(()),
    }
}

/// Runs `work` whenever this replica leads, until `shutdown` is cancelled.
/// `work` gets a token that is cancelled when leadership is lost.
pub async fn lead<F, Fut>(
    manager: LeaseManager,
    config: LeaderConfig,
    shutdown: CancellationToken,
    work: F,
) -> anyhow::Result<()>
where
    F: Fn(CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    let (mut leading, lease_task) = manager.watch().await;
    loop {
        while !*leading.borrow_and_update() {
            tokio::select! {
                changed = leading.changed() => if changed.is_err() { anyhow::bail!("the lease manager stopped") },
                _ = shutdown.cancelled() => return release(leading, lease_task).await,
            }
        }
        info!(identity = %config.identity, lease = %config.lease_name, "became the leader");
        let term = shutdown.child_token();
        let lost = async {
            while leading.changed().await.is_ok() {
                if !*leading.borrow() {
                    return;
                }
            }
        };
        tokio::select! {
            _ = work(term.clone()) => {}
            _ = lost => warn!(identity = %config.identity, "lost the lease; stopping the controllers"),
        }
        term.cancel();
        if shutdown.is_cancelled() {
            return release(leading, lease_task).await;
        }
    }
}

/// Closing the channel makes the manager release the Lease, so a standby
/// takes over at once instead of after the Lease expires. An API server
/// that does not answer gets [`lifecycle::LEASE_RELEASE`]; then the Lease
/// is left to expire.
async fn release(
    leading: tokio::sync::watch::Receiver<bool>,
    mut lease_task: tokio::task::JoinHandle<kube_lease_manager::Result<LeaseManager>>,
) -> anyhow::Result<()> {
    drop(leading);
    let released = lifecycle::bounded("releasing the leader Lease", lifecycle::LEASE_RELEASE, &mut lease_task).await;
    match released {
        Some(Ok(Ok(_))) => Ok(()),
        Some(Ok(Err(e))) => Err(e.into()),
        Some(Err(e)) => Err(e.into()),
        None => {
            lease_task.abort();
            Ok(())
        }
    }
}
