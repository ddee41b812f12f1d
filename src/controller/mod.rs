//! The controllers (SPEC §2): one reconciler per file, wired together here.
//!
//! Instances are split into shards by a hash of their uid; each shard is
//! held by one replica through a Lease of its own (`leases.rs`), and only
//! that replica probes and writes its instances. Id assignment and the
//! namespace-level reconcilers (tags, credentials, sync sessions, the
//! DbInventory clean-up) run on the replica holding the leader Lease
//! (`leader.rs`). So two replicas never both write one object.

mod credential;
mod events;
mod history_gc;
mod instance;
mod inventory_gc;
pub mod leader;
pub mod leases;
mod shard_claims;
mod sync_session;
mod tag;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::crd::keys::ID_LABEL;
use crate::crd::{DbHistory, DbInstance, DbInventory, DbTag};
use crate::ids::{IdAllocator, IdError, IdIndex, IdKind, id_of};
use crate::lifecycle;
use crate::metrics::Metrics;
use crate::observe::{ProbeSettings, credentials};
use crate::watches::{SharedWatch, Watches, scoped};

#[derive(Clone, Debug)]
pub struct Config {
    /// Watch one namespace, or all when `None`.
    pub namespace: Option<String>,
    /// Reconciles running at once per controller.
    pub concurrency: u16,
    /// How long a recycled instance is kept before it is deleted for good.
    pub retention: Duration,
    /// How long a finished DbSyncSession is kept.
    pub session_ttl: Duration,
    /// Instances a DbSyncSession probes at once.
    pub session_concurrency: usize,
    /// Results a DbSyncSession lists in its status (the rest are counted).
    pub session_results_cap: usize,
    pub probes: ProbeSettings,
    /// Name the controller reports Events as.
    pub reporter: String,
    /// Instances are split into this many shards by a hash of their uid,
    /// each held by one replica through a Lease of its own.
    pub shards: u32,
    /// End-of-life dates: the site's ConfigMap and the `EndingSoon` window.
    pub version_lifecycle: crate::versions::LifecycleSettings,
    /// Capacity samples and the account change log (DbHistory).
    pub history: crate::observe::history::HistorySettings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            namespace: None,
            concurrency: 32,
            retention: Duration::from_secs(30 * 24 * 3600),
            session_ttl: Duration::from_secs(7 * 24 * 3600),
            session_concurrency: 16,
            session_results_cap: crate::crd::bounds::DEFAULT_SESSION_RESULTS_CAP,
            probes: ProbeSettings::default(),
            reporter: "dbfleet-controller".into(),
            shards: 1,
            version_lifecycle: crate::versions::LifecycleSettings::default(),
            history: crate::observe::history::HistorySettings::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Ids(#[from] IdError),
    #[error("object has no namespace")]
    NotNamespaced,
}

impl Error {
    /// A bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube_error",
            Error::Ids(_) => "id_error",
            Error::NotNamespaced => "not_namespaced",
        }
    }
}

/// What every reconciler gets.
pub struct Context {
    pub client: Client,
    pub config: Config,
    pub metrics: Arc<Metrics>,
    pub events: events::Events,
    pub instances: Store<DbInstance>,
    pub tags: Store<DbTag>,
    /// Credential Secrets only (label `dbfleet.io/credential: "true"`): the
    /// controller never caches any other Secret of the cluster.
    pub secrets: Store<Secret>,
    /// Secrets labelled `dbfleet.io/ca: "true"` (CA bundles).
    pub ca_secrets: Store<Secret>,
    /// Each namespace's `dbfleet-ids` ConfigMap (watched by that name only),
    /// where credential ids are recorded.
    pub id_configmaps: Store<ConfigMap>,
    /// Which instances carry which id, to notice two carrying the same one.
    pub instance_ids: Mutex<IdIndex>,
    /// Consecutive failures per object, for exponential backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// One id allocator per namespace, so allocations take turns instead of
    /// racing each other for the counter ConfigMap.
    allocators: Mutex<HashMap<String, IdAllocator>>,
    /// The Leases this replica holds: what its reconciles act on.
    pub leases: Arc<leases::HeldLeases>,
    /// Wakes instances up (a deleted Secret, a shard taken over).
    wake_instances: mpsc::UnboundedSender<ObjectRef<DbInstance>>,
}

impl Context {
    /// Requeue delay after a failed reconcile: 1 s doubling to 5 min.
    fn backoff(&self, key: String) -> Duration {
        let mut failures = self.failures.lock().expect("failures lock");
        let n = failures.entry(key).and_modify(|n| *n += 1).or_insert(0);
        Duration::from_secs(1u64 << (*n).min(8)).min(Duration::from_secs(300))
    }

    fn allocator(&self, namespace: &str) -> IdAllocator {
        let mut allocators = self.allocators.lock().expect("allocators lock");
        allocators
            .entry(namespace.to_string())
            .or_insert_with(|| IdAllocator::new(self.client.clone(), namespace))
            .clone()
    }

    fn succeeded(&self, key: &str) {
        self.failures.lock().expect("failures lock").remove(key);
    }
}

/// Runs one reconcile, recording its duration and result.
async fn measured<K: Resource>(
    ctx: &Context,
    controller: &'static str,
    object: &K,
    work: impl std::future::Future<Output = Result<Action, Error>>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let result = work.await;
    let label = match &result {
        Ok(_) => "success",
        Err(e) => e.metric_label(),
    };
    ctx.metrics.reconciled(controller, label, started.elapsed());
    if result.is_ok() {
        ctx.succeeded(&key(object));
    }
    result
}

/// Gives an object created without one (e.g. by kubectl) its integer id
/// and returns the object as stored. The patch carries the resourceVersion
/// the decision was made on, so it cannot overwrite a label someone set
/// meanwhile; the id then goes unused and `None` is returned.
async fn assign_id<K>(ctx: &Context, object: &K, kind: IdKind) -> Result<Option<K>, Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    let namespace = object.meta().namespace.as_deref().ok_or(Error::NotNamespaced)?;
    let id = ctx.allocator(namespace).allocate(kind).await?;
    let patch = serde_json::json!({"metadata": {
        "resourceVersion": object.meta().resource_version,
        "labels": {ID_LABEL: id.to_string()},
    }});
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let name = object.meta().name.as_deref().unwrap_or_default();
    match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(labelled) => Ok(Some(labelled)),
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// How often a replica that is not the leader looks at a tag, a credential
/// or a sync session again, so it picks them up soon after taking over.
const STANDBY_RECHECK: Duration = Duration::from_secs(5);

/// `Some` when this replica does not hold the leader Lease: the namespace-
/// level reconcilers then do nothing.
fn standing_by(ctx: &Context) -> Option<Action> {
    (!ctx.leases.leads()).then(|| Action::requeue(STANDBY_RECHECK))
}

/// After a failed reconcile (only Kubernetes API failures get here): retry
/// with per-object exponential backoff.
fn error_policy<K: Resource<DynamicType = ()>>(object: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    let object = key(object.as_ref());
    let delay = ctx.backoff(object.clone());
    warn!(%object, kind = %K::kind(&()), %error, ?delay, "reconcile failed");
    Action::requeue(delay)
}

fn key<K: Resource>(object: &K) -> String {
    format!(
        "{}/{}",
        object.meta().namespace.as_deref().unwrap_or_default(),
        object.meta().name.as_deref().unwrap_or_default()
    )
}

/// Runs every controller for every instance until `stop` is cancelled: one
/// process doing all the work, without Leases (tests, local runs).
pub async fn run_controllers(client: Client, config: Config, metrics: Arc<Metrics>, stop: CancellationToken) {
    let leases = Arc::new(leases::HeldLeases::everything(config.shards));
    let watches = Watches::new(client.clone(), config.namespace.as_deref());
    run(client, config, metrics, leases, watches, |_| {}, stop).await;
}

/// Runs the controllers under Leases until `stop` is cancelled: the leader
/// Lease for tags, credentials and sync sessions, and one Lease per shard for
/// the shard's instances. Every replica competes for all of them, so N
/// replicas share the shards and a standby takes over a dead replica's within
/// the Lease duration. `on_ready` runs once the leader Lease exists.
pub async fn run_leased(
    client: Client,
    config: Config,
    metrics: Arc<Metrics>,
    leader: leader::LeaderConfig,
    on_ready: impl FnOnce(),
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let watches = Watches::new(client.clone(), config.namespace.as_deref());
    run_leased_on(client, config, metrics, leader, watches, on_ready, stop).await
}

/// [`run_leased`] over watches shared with the rest of the process
/// (`dbfleet run`'s façade has added its own taps to them); the watches
/// start once the leader Lease exists.
pub async fn run_leased_on(
    client: Client,
    config: Config,
    metrics: Arc<Metrics>,
    leader: leader::LeaderConfig,
    watches: Watches,
    on_ready: impl FnOnce(),
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let shards = config.shards.max(1);
    let roles = Arc::new(leases::HeldLeases::nothing(shards));
    let Some(main) = leader::join(client.clone(), &leader, &stop).await? else {
        return Ok(());
    };
    on_ready();
    let (ctx_tx, ctx_rx) = tokio::sync::oneshot::channel::<Arc<Context>>();
    let controllers = run(
        client.clone(),
        config,
        metrics,
        roles.clone(),
        watches,
        move |ctx| {
            let _ = ctx_tx.send(ctx);
        },
        stop.clone(),
    );
    let leases = async {
        let Ok(ctx) = ctx_rx.await else { return Ok(()) };
        let lead_main = leader::lead(main, leader.clone(), stop.clone(), |term| {
            let roles = roles.clone();
            async move {
                roles.set_leader(true);
                term.cancelled().await;
                roles.set_leader(false);
            }
        });
        let lead_shards = shard_claims::hold_shards(ctx, client.clone(), leader.clone(), shards, stop.clone());
        let (main, shards) = tokio::join!(lead_main, lead_shards);
        main?;
        shards
    };
    let (_, leased) = tokio::join!(controllers, leases);
    leased
}

/// Runs every controller until `stop` is cancelled, acting on what
/// `leases` says this replica holds, and the watches that feed them.
/// `started` gets the context once it exists.
async fn run(
    client: Client,
    config: Config,
    metrics: Arc<Metrics>,
    leases: Arc<leases::HeldLeases>,
    mut watches: Watches,
    started: impl FnOnce(Arc<Context>),
    stop: CancellationToken,
) {
    let ns = config.namespace.clone();
    // Only labelled Secrets are watched (issue 9). A Secret that loses its
    // label leaves the selector, which the watch reports as a deletion.
    let mut secret_watch = SharedWatch::<Secret>::new(
        scoped(client.clone(), ns.as_deref()),
        watcher::Config::default().labels(&credentials::credential_selector()),
    );
    let mut ca_secret_watch = SharedWatch::<Secret>::new(
        scoped(client.clone(), ns.as_deref()),
        watcher::Config::default().labels(&credentials::ca_selector()),
    );
    let reporter = Reporter {
        controller: config.reporter.clone(),
        instance: std::env::var("POD_NAME").ok(),
    };
    // Shared stores only fan out applied objects; deletions that must wake
    // another controller are forwarded through these channels.
    let (wake_tags, tags_woken) = mpsc::unbounded_channel::<ObjectRef<DbTag>>();
    let (wake_instances, instances_woken) = mpsc::unbounded_channel::<ObjectRef<DbInstance>>();
    // Uids of deleted instances: the instance controller forgets them.
    let (instances_deleted, instances_deleted_rx) = mpsc::unbounded_channel::<String>();
    let (wake_credentials, credentials_woken) = mpsc::unbounded_channel::<String>();
    let ctx = Arc::new(Context {
        leases,
        wake_instances: wake_instances.clone(),
        events: events::Events::new(client.clone(), reporter),
        client: client.clone(),
        config,
        metrics,
        instances: watches.instances.store(),
        tags: watches.tags.store(),
        secrets: secret_watch.store(),
        ca_secrets: ca_secret_watch.store(),
        id_configmaps: watches.id_configmaps.store(),
        instance_ids: Mutex::new(IdIndex::default()),
        failures: Mutex::new(HashMap::new()),
        allocators: Mutex::new(HashMap::new()),
    });
    started(ctx.clone());

    let instance_changes = watches.instances.subscribe();
    let instance_changes_for_tags = watches.instances.subscribe();
    let tag_changes = watches.tags.subscribe();
    let tag_changes_for_instances = watches.tags.subscribe();
    let sessions = (watches.sessions.store(), watches.sessions.subscribe());
    let secret_changes = secret_watch.subscribe();
    let secret_changes_for_ids = secret_watch.subscribe();
    let id_configmap_changes = watches.id_configmaps.subscribe();
    let ca_secret_changes = ca_secret_watch.subscribe();

    {
        let ctx = ctx.clone();
        watches.instances.on_event(move |event| {
            index_instance_ids(&ctx, event);
            let watcher::Event::Delete(deleted) = event else { return };
            let namespace = deleted.metadata.namespace.clone().unwrap_or_default();
            let name = deleted.metadata.name.clone().unwrap_or_default();
            ctx.metrics.forget_instance(&namespace, &name);
            let _ = instances_deleted.send(deleted.metadata.uid.clone().unwrap_or_default());
            for tag in &deleted.spec.tags {
                let _ = wake_tags.send(ObjectRef::new(tag).within(&namespace));
            }
            // Its details go with it; no garbage collector is assumed.
            let inventories: Api<DbInventory> = Api::namespaced(ctx.client.clone(), &namespace);
            let histories: Api<DbHistory> = Api::namespaced(ctx.client.clone(), &namespace);
            let uid = deleted.metadata.uid.clone();
            tokio::spawn(async move {
                inventory_gc::delete(&inventories, &name).await;
                history_gc::delete(&histories, &name, uid.as_deref()).await;
            });
        });
    }
    let wake_on_secret_delete = |ctx: Arc<Context>, wake: mpsc::UnboundedSender<ObjectRef<DbInstance>>| {
        move |event: &watcher::Event<Secret>| {
            if let watcher::Event::Delete(deleted) = event {
                for instance in instance::using_secret(&ctx.instances, deleted) {
                    let _ = wake.send(instance);
                }
            }
        }
    };
    {
        let wake_instances = wake_on_secret_delete(ctx.clone(), wake_instances.clone());
        let wake_credentials = wake_credentials.clone();
        secret_watch.on_event(move |event| {
            wake_instances(event);
            // A credential gone (or unlabelled) gives up its id.
            if let watcher::Event::Delete(deleted) = event {
                let _ = wake_credentials.send(deleted.metadata.namespace.clone().unwrap_or_default());
            }
        });
    }
    watches.id_configmaps.on_event(move |event| {
        if let watcher::Event::Delete(deleted) = event {
            let _ = wake_credentials.send(deleted.metadata.namespace.clone().unwrap_or_default());
        }
    });
    ca_secret_watch.on_event(wake_on_secret_delete(ctx.clone(), wake_instances));

    info!(namespace = ?ctx.config.namespace, "starting controllers");
    let controllers = async {
        // Decisions read all five caches (a Secret that is merely not
        // listed yet is not a missing Secret), so start once all are full.
        let synced = async {
            tokio::join!(
                ctx.instances.wait_until_ready(),
                ctx.tags.wait_until_ready(),
                ctx.secrets.wait_until_ready(),
                ctx.ca_secrets.wait_until_ready(),
                ctx.id_configmaps.wait_until_ready()
            )
        };
        let (a, b, c, d, e) = tokio::select! {
            synced = synced => synced,
            _ = stop.cancelled() => return,
        };
        if a.is_err() || b.is_err() || c.is_err() || d.is_err() || e.is_err() {
            return;
        }
        info!("caches synced");
        inventory_gc::sweep(&ctx.client, ctx.config.namespace.as_deref(), &ctx.instances).await;
        history_gc::sweep(&ctx.client, ctx.config.namespace.as_deref(), &ctx.instances).await;
        let _ = tokio::join!(
            instance::controller(
                ctx.clone(),
                instance::Triggers {
                    instances: instance_changes,
                    secrets: futures_util::stream::select(secret_changes, ca_secret_changes),
                    tags: tag_changes_for_instances,
                    woken: receiver_stream(instances_woken),
                    deleted: receiver_stream(instances_deleted_rx),
                },
                stop.clone(),
            ),
            tag::controller(
                ctx.clone(),
                tag_changes,
                instance_changes_for_tags,
                receiver_stream(tags_woken),
                stop.clone()
            ),
            credential::run(
                ctx.clone(),
                futures_util::stream::select_all([
                    namespaces_of(secret_changes_for_ids).boxed(),
                    namespaces_of(id_configmap_changes).boxed(),
                    receiver_stream(credentials_woken).boxed(),
                ]),
                stop.clone()
            ),
            sync_session::controller(ctx.clone(), sessions, stop.clone()),
        );
    };
    // Each controller stops on `stop` by itself, letting the reconciles in
    // flight finish their status writes; an API server that does not answer
    // gets FINAL_WRITES, then they are dropped.
    futures_util::pin_mut!(controllers);
    tokio::select! {
        _ = &mut controllers => {}
        _ = async { tokio::join!(watches.run(), secret_watch.run(), ca_secret_watch.run()) } => {}
        _ = stop.cancelled() => {
            lifecycle::bounded("finishing in-flight reconciles", lifecycle::FINAL_WRITES, controllers).await;
        }
    }
    info!("controllers stopped");
}

/// The namespace of each object a shared store hands on.
fn namespaces_of<K: Resource + Send + Sync + 'static>(
    changes: impl futures_util::Stream<Item = Arc<K>> + Send + 'static,
) -> impl futures_util::Stream<Item = String> + Send {
    changes.map(|object| object.meta().namespace.clone().unwrap_or_default())
}

fn receiver_stream<T: Send + 'static>(
    receiver: mpsc::UnboundedReceiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}

/// Keeps `ctx.instance_ids` current from the instance watch (the store has
/// applied the event already, so after a relist it holds the full list).
fn index_instance_ids(ctx: &Context, event: &watcher::Event<DbInstance>) {
    let entry = |i: &DbInstance| {
        (
            i.metadata.namespace.clone().unwrap_or_default(),
            i.metadata.name.clone().unwrap_or_default(),
            id_of(&i.metadata),
        )
    };
    let mut ids = ctx.instance_ids.lock().expect("instance ids lock");
    match event {
        watcher::Event::Apply(i) => {
            let (namespace, name, id) = entry(i);
            ids.upsert(&namespace, &name, id);
        }
        watcher::Event::Delete(i) => {
            let (namespace, name, _) = entry(i);
            ids.remove(&namespace, &name);
        }
        watcher::Event::InitDone => ids.rebuild(ctx.instances.state().iter().map(|i| entry(i))),
        watcher::Event::Init | watcher::Event::InitApply(_) => {}
    }
}

/// Object references of the instances in `namespace` for which `pick` holds.
fn instances_where(
    store: &Store<DbInstance>,
    namespace: Option<&str>,
    pick: impl Fn(&DbInstance) -> bool,
) -> Vec<ObjectRef<DbInstance>> {
    store
        .state()
        .iter()
        .filter(|i| i.metadata.namespace.as_deref() == namespace && pick(i))
        .map(|i| ObjectRef::from(i.as_ref()))
        .collect()
}
