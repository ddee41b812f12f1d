//! In-memory caches of the watched resources (SPEC §3.4): every read is
//! served from them; after a write the handler waits until the cache has
//! seen the written resourceVersion, so a client reads its own writes.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use futures_util::{StreamExt, future};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::Event;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::changes_index::ChangesIndex;
use super::envelope::{ApiError, ApiResult, Code};
use super::fleet_index::FleetIndex;
use super::instance_index::InstanceIndex;
use crate::crd::keys::ID_LABEL;
use crate::crd::{DbHistory, DbInstance, DbInventory, DbSyncSession, DbTag};
use crate::ids::{COUNTER_CONFIGMAP, IdIndex, credential_ids, id_of};
use crate::watches::{Watches, objects_in};

/// How long a write waits for its own echo before answering anyway; the
/// write itself has succeeded by then, so failing the request would only
/// invite a duplicate retry.
const READ_YOUR_WRITES_TIMEOUT: Duration = Duration::from_secs(5);

/// DbInventories per page of a (re)list. Each may be up to ~512 KiB (its
/// lists' byte budgets), and a page is held whole while its objects are
/// indexed: kube's default of 500 could hold 250 MiB at once.
const INVENTORY_PAGE_SIZE: u32 = 50;

#[derive(Clone)]
pub struct Caches {
    pub instances: Store<DbInstance>,
    pub tags: Store<DbTag>,
    pub sessions: Store<DbSyncSession>,
    /// The instance list's rows, updated right after `instances` on every
    /// event, so once the index holds a version the store does too.
    instance_index: Arc<RwLock<InstanceIndex>>,
    /// Every instance's accounts and databases, kept from the DbInventory
    /// watch events without keeping the objects (no reflector store).
    fleet_index: Arc<RwLock<FleetIndex>>,
    /// The fleet's newest account changes, kept from the DbHistory watch
    /// events (bounded; the objects and their capacity samples are not
    /// kept).
    changes_index: Arc<RwLock<ChangesIndex>>,
    /// Which tags carry which id.
    tag_ids: Arc<RwLock<IdIndex>>,
    /// Which credential Secret has which id, as the controller records them
    /// in the namespace's `dbfleet-ids` ConfigMap (a watch of that one
    /// object): the façade knows the credentials without any right on
    /// Secrets.
    credential_ids: Arc<RwLock<IdIndex>>,
    namespace: String,
    ready: Arc<AtomicBool>,
    /// Bumped after every applied watch event.
    changes: watch::Receiver<u64>,
}

impl Caches {
    /// The caches over watches of their own (`dbfleet api`), and the future
    /// that keeps them filled (run it until shutdown).
    pub fn start(client: Client, namespace: &str) -> (Caches, impl Future<Output = ()> + Send + 'static + use<>) {
        let mut watches = Watches::new(client.clone(), Some(namespace));
        let (caches, inventories) = Caches::attach(&mut watches, client, namespace);
        (caches, async move {
            future::join(watches.run(), inventories).await;
        })
    }

    /// The caches over `watches`, which the process shares (`dbfleet run`:
    /// the controllers run them, perhaps over every namespace; the caches
    /// keep to `namespace`). The future runs what only the façade watches:
    /// the DbInventories its fleet index is built from.
    pub fn attach(
        watches: &mut Watches,
        client: Client,
        namespace: &str,
    ) -> (Caches, impl Future<Output = ()> + Send + 'static + use<>) {
        let (changes_tx, changes) = watch::channel(0u64);
        let changes_tx = Arc::new(changes_tx);
        let instance_index = Arc::new(RwLock::new(InstanceIndex::default()));
        let fleet_index = Arc::new(RwLock::new(FleetIndex::default()));
        let changes_index = Arc::new(RwLock::new(ChangesIndex::default()));
        let tag_ids = Arc::new(RwLock::new(IdIndex::default()));
        let credential_ids = Arc::new(RwLock::new(IdIndex::default()));
        let ready = Arc::new(AtomicBool::new(false));

        let caches = Caches {
            instances: watches.instances.store(),
            tags: watches.tags.store(),
            sessions: watches.sessions.store(),
            instance_index: instance_index.clone(),
            fleet_index: fleet_index.clone(),
            changes_index: changes_index.clone(),
            tag_ids: tag_ids.clone(),
            credential_ids: credential_ids.clone(),
            namespace: namespace.to_string(),
            ready: ready.clone(),
            changes,
        };
        let announce = |changes: &Arc<watch::Sender<u64>>| {
            let changes = changes.clone();
            move || changes.send_modify(|n| *n = n.wrapping_add(1))
        };
        {
            let instances = caches.instances.clone();
            let namespace = caches.namespace.clone();
            let announce = announce(&changes_tx);
            watches.instances.on_event(move |event| {
                index_instance(&instance_index, &instances, &namespace, event);
                announce();
            });
        }
        {
            let index_tag_ids = id_indexer(tag_ids, caches.tags.clone());
            let announce = announce(&changes_tx);
            watches.tags.on_event(move |event| {
                index_tag_ids(event);
                announce();
            });
        }
        {
            let announce = announce(&changes_tx);
            watches.sessions.on_event(move |_| announce());
        }
        {
            let id_configmaps = watches.id_configmaps.store();
            let index = credential_indexer(credential_ids, id_configmaps, caches.namespace.clone());
            let announce = announce(&changes_tx);
            watches.id_configmaps.on_event(move |event| {
                index(event);
                announce();
            });
        }
        let stores = (
            caches.instances.clone(),
            caches.tags.clone(),
            caches.sessions.clone(),
            watches.id_configmaps.store(),
        );
        let mark_ready = async move {
            let synced = future::join4(
                stores.0.wait_until_ready(),
                stores.1.wait_until_ready(),
                stores.2.wait_until_ready(),
                stores.3.wait_until_ready(),
            )
            .await;
            if let (Ok(()), Ok(()), Ok(()), Ok(())) = synced {
                ready.store(true, Ordering::Release);
                tracing::info!("caches synced");
            }
        };
        let (client_for_histories, namespace_for_histories) = (client.clone(), namespace.to_string());
        let changes_tx_for_histories = changes_tx.clone();
        // Each object is turned into postings and dropped (`FleetIndex`).
        let inventory_stream = watcher(
            Api::<DbInventory>::namespaced(client, namespace),
            watcher::Config::default().page_size(INVENTORY_PAGE_SIZE),
        )
        .default_backoff()
        .boxed();
        let index_inventory = move |event: &Event<DbInventory>| {
            fleet_index.write().unwrap_or_else(PoisonError::into_inner).apply(event);
        };
        let inventories = async move {
            let mut stream = inventory_stream;
            while let Some(event) = stream.next().await {
                match event {
                    Ok(event) => {
                        index_inventory(&event);
                        changes_tx.send_modify(|n| *n = n.wrapping_add(1));
                    }
                    Err(e) => tracing::warn!(resource = "dbinventories", error = %e, "watch failed; retrying"),
                }
            }
        };
        let histories = watch_histories(
            client_for_histories,
            namespace_for_histories,
            changes_index,
            changes_tx_for_histories,
        );
        (caches, async move {
            future::join3(inventories, histories, mark_ready).await;
        })
    }

    /// True once every cache (and each index) has its first full list.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
            && self.instance_index().is_synced()
            && self.fleet_index().is_synced()
            && self.changes_index().is_synced()
    }

    /// The fleet's newest account changes; hold it only while walking
    /// them. Take the instance index first when both are needed.
    pub fn changes_index(&self) -> RwLockReadGuard<'_, ChangesIndex> {
        self.changes_index.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The fleet-wide inventory index; hold it only while searching. Take
    /// the instance index first when both are needed.
    pub fn fleet_index(&self) -> RwLockReadGuard<'_, FleetIndex> {
        self.fleet_index.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The instance list's index; hold it only while walking rows.
    pub fn instance_index(&self) -> RwLockReadGuard<'_, InstanceIndex> {
        self.instance_index.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// `wait_for_version` for instances, checked on the index: lists read
    /// it, and it never runs ahead of the store.
    pub async fn wait_for_instance_version(&self, name: &str, resource_version: Option<&str>) {
        let Some(written) = resource_version else { return };
        self.wait_until(|| {
            self.instance_index()
                .get(name)
                .is_some_and(|cached| version_reached(cached.metadata.resource_version.as_deref(), written))
        })
        .await;
    }

    /// `wait_for_deletion` for instances, checked on the index.
    pub async fn wait_for_instance_deletion(&self, name: &str) {
        self.wait_until(|| {
            self.instance_index()
                .get(name)
                .is_none_or(|cached| cached.metadata.deletion_timestamp.is_some())
        })
        .await;
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Waits until `store` holds `name` at `resource_version` or newer.
    pub async fn wait_for_version<K>(&self, store: &Store<K>, name: &str, resource_version: Option<&str>)
    where
        K: Resource + Clone + DeserializeOwned + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        let Some(written) = resource_version else { return };
        let key = ObjectRef::<K>::new(name).within(&self.namespace);
        self.wait_until(|| {
            store
                .get(&key)
                .is_some_and(|cached| version_reached(cached.resource_version().as_deref(), written))
        })
        .await;
    }

    /// Waits until `store` no longer holds `name` (or holds it marked for
    /// deletion, waiting on a finalizer).
    pub async fn wait_for_deletion<K>(&self, store: &Store<K>, name: &str)
    where
        K: Resource + Clone + DeserializeOwned + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        let key = ObjectRef::<K>::new(name).within(&self.namespace);
        self.wait_until(|| {
            store
                .get(&key)
                .is_none_or(|cached| cached.meta().deletion_timestamp.is_some())
        })
        .await;
    }

    async fn wait_until(&self, mut done: impl FnMut() -> bool) {
        let mut changes = self.changes.clone();
        let wait = async {
            loop {
                changes.borrow_and_update();
                if done() {
                    return;
                }
                if changes.changed().await.is_err() {
                    return;
                }
            }
        };
        if tokio::time::timeout(READ_YOUR_WRITES_TIMEOUT, wait).await.is_err() {
            tracing::warn!("the cache did not see a write within {READ_YOUR_WRITES_TIMEOUT:?}");
        }
    }

    /// Live (not being deleted) objects of a store, in the façade's
    /// namespace (under `dbfleet run` the store may hold every namespace).
    pub fn live<K: Resource + Clone + 'static>(&self, store: &Store<K>) -> Vec<Arc<K>>
    where
        K::DynamicType: Eq + std::hash::Hash + Clone,
    {
        store.state_filter(|o| {
            o.meta().deletion_timestamp.is_none() && o.meta().namespace.as_deref() == Some(&self.namespace)
        })
    }

    /// Every object of a store in the façade's namespace, those being
    /// deleted included.
    pub fn all<K: Resource + Clone + 'static>(&self, store: &Store<K>) -> Vec<Arc<K>>
    where
        K::DynamicType: Eq + std::hash::Hash + Clone,
    {
        objects_in(store, &self.namespace)
    }

    /// The live instance carrying integer id `id`, recycled or not; 409
    /// `CONFLICT` naming them when several do.
    pub fn instance_by_id(&self, id: i64) -> ApiResult<Option<Arc<DbInstance>>> {
        let index = self.instance_index();
        let rows = index.with_id(id);
        match rows.as_slice() {
            [] => Ok(None),
            [row] => Ok(Some(row.instance.clone())),
            many => Err(shared_id(
                "DbInstance",
                id,
                &many.iter().map(|r| r.name()).collect::<Vec<_>>(),
            )),
        }
    }

    /// The live tag carrying `id`; 409 `CONFLICT` when several do.
    pub fn tag_by_id(&self, id: i64) -> ApiResult<Option<Arc<DbTag>>> {
        self.by_id(&self.tag_ids, &self.tags, "DbTag", id)
    }

    /// The name of the credential Secret recorded with `id`; 409 `CONFLICT`
    /// when several are (a hand-edited ConfigMap).
    pub fn credential_by_id(&self, id: i64) -> ApiResult<Option<String>> {
        let ids = self.credential_ids.read().unwrap_or_else(PoisonError::into_inner);
        match ids.names(&self.namespace, id).as_slice() {
            [] => Ok(None),
            [name] => Ok(Some(name.to_string())),
            many => Err(shared_id("credential Secret", id, many)),
        }
    }

    /// Every recorded credential: (Secret name, id).
    pub fn credentials(&self) -> Vec<(String, i64)> {
        let ids = self.credential_ids.read().unwrap_or_else(PoisonError::into_inner);
        ids.entries(&self.namespace)
            .into_iter()
            .map(|(name, id)| (name.to_string(), id))
            .collect()
    }

    fn by_id<K>(&self, ids: &RwLock<IdIndex>, store: &Store<K>, kind: &str, id: i64) -> ApiResult<Option<Arc<K>>>
    where
        K: Resource + Clone + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        let ids = ids.read().unwrap_or_else(PoisonError::into_inner);
        match ids.names(&self.namespace, id).as_slice() {
            [] => Ok(None),
            [name] => Ok(self.by_name(store, name)),
            many => Err(shared_id(kind, id, many)),
        }
    }

    /// The live object of a store named `name`.
    pub fn by_name<K: Resource + Clone + 'static>(&self, store: &Store<K>, name: &str) -> Option<Arc<K>>
    where
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        store
            .get(&ObjectRef::new(name).within(&self.namespace))
            .filter(|o| o.meta().deletion_timestamp.is_none())
    }
}

/// DbHistories per page of a (re)list: each may be a few hundred KiB.
const HISTORY_PAGE_SIZE: u32 = 50;

/// Keeps `index` current from a plain watcher on DbHistory: each event's
/// object gives up its account changes and is dropped.
async fn watch_histories(
    client: Client,
    namespace: String,
    index: Arc<RwLock<ChangesIndex>>,
    changes: Arc<watch::Sender<u64>>,
) {
    let mut stream = watcher(
        Api::<DbHistory>::namespaced(client, &namespace),
        watcher::Config::default().page_size(HISTORY_PAGE_SIZE),
    )
    .default_backoff()
    .boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => {
                index.write().unwrap_or_else(PoisonError::into_inner).apply(&event);
                changes.send_modify(|n| *n = n.wrapping_add(1));
            }
            Err(e) => tracing::warn!(resource = "dbhistories", error = %e, "watch failed; retrying"),
        }
    }
}

/// Keeps the instance list's index current with the instances of
/// `namespace` (the store has applied the event already).
fn index_instance(
    index: &RwLock<InstanceIndex>,
    store: &Store<DbInstance>,
    namespace: &str,
    event: &Event<DbInstance>,
) {
    let mut index = index.write().unwrap_or_else(PoisonError::into_inner);
    match event {
        Event::Apply(o) | Event::Delete(o) if o.metadata.namespace.as_deref() != Some(namespace) => {}
        // Share the store's copy.
        Event::Apply(o) => index.upsert(
            store
                .get(&ObjectRef::from_obj(o))
                .unwrap_or_else(|| Arc::new(o.clone())),
        ),
        Event::Delete(o) => index.remove(&o.name_any()),
        Event::InitDone => index.rebuild(objects_in(store, namespace)),
        // A relist is buffered by the store until InitDone.
        Event::Init | Event::InitApply(_) => {}
    }
}

/// An event handler keeping `ids` current for `store` (which has applied
/// each event before the handler runs). Objects being deleted carry no id.
fn id_indexer<K>(ids: Arc<RwLock<IdIndex>>, store: Store<K>) -> impl Fn(&Event<K>) + Send + Sync
where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    let entry = |o: &K| {
        let meta = o.meta();
        (
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
            id_of(meta).filter(|_| meta.deletion_timestamp.is_none()),
        )
    };
    move |event: &Event<K>| {
        let mut ids = ids.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            Event::Apply(o) => {
                let (namespace, name, id) = entry(o);
                ids.upsert(&namespace, &name, id);
            }
            Event::Delete(o) => {
                let (namespace, name, _) = entry(o);
                ids.remove(&namespace, &name);
            }
            Event::InitDone => ids.rebuild(store.state().iter().map(|o| entry(o))),
            Event::Init | Event::InitApply(_) => {}
        }
    }
}

/// An event handler keeping `ids` equal to the credential entries of the
/// one `dbfleet-ids` ConfigMap `store` holds.
fn credential_indexer(
    ids: Arc<RwLock<IdIndex>>,
    store: Store<ConfigMap>,
    namespace: String,
) -> impl Fn(&Event<ConfigMap>) + Send + Sync {
    move |event: &Event<ConfigMap>| {
        if matches!(event, Event::Init | Event::InitApply(_)) {
            return;
        }
        let configmap = store.get(&ObjectRef::new(COUNTER_CONFIGMAP).within(&namespace));
        let data = configmap.and_then(|c| c.data.clone()).unwrap_or_default();
        ids.write()
            .unwrap_or_else(PoisonError::into_inner)
            .rebuild(credential_ids(&data).map(|(name, id)| (namespace.clone(), name.to_string(), Some(id))));
    }
}

/// 409 `CONFLICT`: several objects carry the id a request names (labels
/// copied with kubectl); acting on any of them could hit the wrong one.
pub fn shared_id(kind: &str, id: i64, names: &[&str]) -> ApiError {
    ApiError::new(
        Code::Conflict,
        format!(
            "id {id} is carried by more than one {kind}: {}; dbfleet acts on none of them until all but one \
             lose the {ID_LABEL} label",
            names.join(" and ")
        ),
    )
    .with_data(serde_json::json!({"id": id, "kind": kind, "objects": names}))
}

pub use crate::observe::version_reached;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_as_revisions() {
        assert!(version_reached(Some("12"), "12"));
        assert!(version_reached(Some("13"), "12"));
        assert!(!version_reached(Some("11"), "12"));
        assert!(!version_reached(None, "12"));
        assert!(version_reached(Some("abc"), "abc"));
    }
}
