//! Credential Secrets (label `dbfleet.io/credential: "true"`) get an integer
//! id like instances and tags do (SPEC §3.2), recorded in their namespace's
//! `dbfleet-ids` ConfigMap rather than on the Secret: the controller then
//! needs no write right on any Secret, and the façade none to read one
//! (docs/security.md).
//!
//! The unit of work is a namespace: its labelled Secrets (the shared
//! store) against its ConfigMap (a watch of that one name). The decision
//! is `ids::plan_credential_ids`; this file only says when to make it and
//! writes what it answers.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, Stream, StreamExt};
use kube::runtime::reflector::ObjectRef;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{Context, Error, STANDBY_RECHECK};
use crate::ids::{self, COUNTER_CONFIGMAP, CredentialSecret};

const CONTROLLER: &str = "credential";

/// Every namespace is looked at again this often, so an entry whose Secret
/// went while no watch saw it (a restart, a relist) is forgotten in time.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Keeps every namespace's credential ids in line with its labelled
/// Secrets, while this replica leads, until `stop`. `namespaces` names the
/// namespaces whose Secrets or ConfigMap changed; a failed namespace is
/// retried after [`STANDBY_RECHECK`].
pub async fn run(ctx: Arc<Context>, namespaces: impl Stream<Item = String> + Send, stop: CancellationToken) {
    futures_util::pin_mut!(namespaces);
    let mut pending = BTreeSet::new();
    let mut tick = tokio::time::interval(STANDBY_RECHECK);
    let mut last_sweep: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
            next = namespaces.next() => match next {
                Some(namespace) => { pending.insert(namespace); }
                None => return,
            },
        }
        // A burst of events is one pass per namespace.
        while let Some(Some(namespace)) = namespaces.next().now_or_never() {
            pending.insert(namespace);
        }
        if !ctx.leases.leads() {
            last_sweep = None;
            continue;
        }
        // On taking the lead, and every SWEEP_INTERVAL: every namespace.
        if last_sweep.is_none_or(|at| at.elapsed() >= SWEEP_INTERVAL) {
            pending.extend(known_namespaces(&ctx));
            last_sweep = Some(Instant::now());
        }
        for namespace in std::mem::take(&mut pending) {
            let started = Instant::now();
            let result = reconcile(&ctx, &namespace).await;
            let label = match &result {
                Ok(()) => "success",
                Err(e) => e.metric_label(),
            };
            ctx.metrics.reconciled(CONTROLLER, label, started.elapsed());
            if let Err(error) = result {
                warn!(%namespace, %error, "recording credential ids failed; retrying");
                pending.insert(namespace);
            }
        }
    }
}

/// Namespaces with a labelled Secret or a counter ConfigMap.
fn known_namespaces(ctx: &Context) -> BTreeSet<String> {
    let secrets = ctx
        .secrets
        .state()
        .into_iter()
        .filter_map(|s| s.metadata.namespace.clone());
    let configmaps = ctx
        .id_configmaps
        .state()
        .into_iter()
        .filter_map(|c| c.metadata.namespace.clone());
    secrets.chain(configmaps).collect()
}

/// The labelled credential Secrets of `namespace`, from the cache.
fn credential_secrets(ctx: &Context, namespace: &str) -> Vec<CredentialSecret> {
    ctx.secrets
        .state()
        .into_iter()
        .filter(|s| s.metadata.namespace.as_deref() == Some(namespace))
        .filter_map(|s| {
            Some(CredentialSecret {
                name: s.metadata.name.clone()?,
                labelled_id: ids::id_of(&s.metadata),
            })
        })
        .collect()
}

/// Decides on the cached ConfigMap; only when that shows something to do
/// is the ConfigMap read and written (a compare-and-swap that decides again
/// on what it read).
async fn reconcile(ctx: &Context, namespace: &str) -> Result<(), Error> {
    let secrets = credential_secrets(ctx, namespace);
    let cached = ctx
        .id_configmaps
        .get(&ObjectRef::new(COUNTER_CONFIGMAP).within(namespace));
    let mut data = cached.and_then(|c| c.data.clone()).unwrap_or_default();
    if !ids::plan_credential_ids(&mut data, &secrets, true)? {
        return Ok(());
    }
    ctx.allocator(namespace).record_credentials(&secrets, true).await?;
    Ok(())
}
