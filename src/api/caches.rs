//! In-memory caches of the watched resources (SPEC §3.4): every read is
//! served from them; after a write the handler waits until the cache has
//! seen the written resourceVersion, so a client reads its own writes.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use futures_util::{StreamExt, future};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::Event;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::envelope::{ApiError, ApiResult, Code};
use super::fleet_index::FleetIndex;
use super::instance_index::InstanceIndex;
use crate::crd::keys::ID_LABEL;
use crate::crd::{DbInstance, DbInventory, DbSyncSession, DbTag};
use crate::ids::{COUNTER_CONFIGMAP, IdIndex, credential_ids, id_of};

/// How long a write waits for its own echo before answering anyway; the
/// write itself has succeeded by then, so failing the request would only
/// invite a duplicate retry.
const READ_YOUR_WRITES_TIMEOUT: Duration = Duration::from_secs(5);

/// DbInventories per page of a (re)list. Each may be up to ~512 KiB (its
/// lists' byte budgets), and a page is held whole while its objects are
/// indexed: kube's default of 500 could hold 250 MiB at once.
const INVENTORY_PAGE_SIZE: u32 = 50;

/// Annotation kubectl keeps a full copy of the object in; never read here.
pub(crate) const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

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
    /// The caches, and the future that keeps them filled (run it until
    /// shutdown).
    pub fn start(client: Client, namespace: &str) -> (Caches, impl Future<Output = ()> + Send + 'static) {
        let (changes_tx, changes) = watch::channel(0u64);
        let instance_index = Arc::new(RwLock::new(InstanceIndex::default()));
        let fleet_index = Arc::new(RwLock::new(FleetIndex::default()));
        let tag_ids = Arc::new(RwLock::new(IdIndex::default()));
        let credential_ids = Arc::new(RwLock::new(IdIndex::default()));
        let ready = Arc::new(AtomicBool::new(false));

        let (instances, instances_w) = reflector::store();
        let instances_store = instances.clone();
        let (tags, tags_w) = reflector::store();
        let (sessions, sessions_w) = reflector::store();
        let (id_configmap, id_configmap_w) = reflector::store();

        let instance_stream = watcher(
            Api::<DbInstance>::namespaced(client.clone(), namespace),
            watcher::Config::default(),
        )
        .modify(slim_instance);
        let tag_stream = watcher(
            Api::<DbTag>::namespaced(client.clone(), namespace),
            watcher::Config::default(),
        )
        .modify(slim_meta);
        let session_stream = watcher(
            Api::<DbSyncSession>::namespaced(client.clone(), namespace),
            watcher::Config::default(),
        )
        .modify(slim_meta);
        // Each object is turned into postings and dropped (`FleetIndex`).
        let inventory_stream = watcher(
            Api::<DbInventory>::namespaced(client.clone(), namespace),
            watcher::Config::default().page_size(INVENTORY_PAGE_SIZE),
        )
        .boxed();
        // By name: RBAC grants list and watch of this one ConfigMap.
        let id_configmap_stream = watcher(
            Api::<ConfigMap>::namespaced(client, namespace),
            watcher::Config::default().fields(&format!("metadata.name={COUNTER_CONFIGMAP}")),
        )
        .modify(slim_meta);

        let caches = Caches {
            instances: instances.clone(),
            tags: tags.clone(),
            sessions: sessions.clone(),
            instance_index: instance_index.clone(),
            fleet_index: fleet_index.clone(),
            tag_ids: tag_ids.clone(),
            credential_ids: credential_ids.clone(),
            namespace: namespace.to_string(),
            ready: ready.clone(),
            changes,
        };
        let index_tag_ids = id_indexer(tag_ids, tags.clone());
        let index_credential_ids = credential_indexer(credential_ids, id_configmap.clone(), namespace.to_string());
        let mark_ready = async move {
            let synced = future::join4(
                instances.wait_until_ready(),
                tags.wait_until_ready(),
                sessions.wait_until_ready(),
                id_configmap.wait_until_ready(),
            )
            .await;
            if let (Ok(()), Ok(()), Ok(()), Ok(())) = synced {
                ready.store(true, Ordering::Release);
                tracing::info!("caches synced");
            }
        };
        let index_instance = move |event: &Event<DbInstance>| {
            let mut index = instance_index.write().unwrap_or_else(PoisonError::into_inner);
            match event {
                // The store has just applied the event: share its copy.
                Event::Apply(o) => index.upsert(
                    instances_store
                        .get(&ObjectRef::from_obj(o))
                        .unwrap_or_else(|| Arc::new(o.clone())),
                ),
                Event::Delete(o) => index.remove(&o.name_any()),
                Event::InitDone => index.rebuild(instances_store.state()),
                // A relist is buffered by the store until InitDone.
                Event::Init | Event::InitApply(_) => {}
            }
        };
        let index_inventory = move |event: &Event<DbInventory>| {
            fleet_index.write().unwrap_or_else(PoisonError::into_inner).apply(event);
        };
        let run = async move {
            let inventories = drive(inventory_stream, "dbinventories", &changes_tx, index_inventory);
            let others = future::join5(
                drive(
                    reflector::reflector(instances_w, instance_stream).boxed(),
                    "dbinstances",
                    &changes_tx,
                    index_instance,
                ),
                drive(
                    reflector::reflector(tags_w, tag_stream).boxed(),
                    "dbtags",
                    &changes_tx,
                    index_tag_ids,
                ),
                drive(
                    reflector::reflector(sessions_w, session_stream).boxed(),
                    "dbsyncsessions",
                    &changes_tx,
                    ignore,
                ),
                drive(
                    reflector::reflector(id_configmap_w, id_configmap_stream).boxed(),
                    "the id ConfigMap",
                    &changes_tx,
                    index_credential_ids,
                ),
                mark_ready,
            );
            future::join(inventories, others).await;
        };
        (caches, run)
    }

    /// True once every cache (and each index) has its first full list.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && self.instance_index().is_synced() && self.fleet_index().is_synced()
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

    /// Live (not being deleted) objects of a store.
    pub fn live<K: Resource + Clone + 'static>(store: &Store<K>) -> Vec<Arc<K>>
    where
        K::DynamicType: Eq + std::hash::Hash + Clone,
    {
        store.state_filter(|o| o.meta().deletion_timestamp.is_none())
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

/// Runs one reflector stream, passing every applied event to `on_event`
/// before announcing it.
async fn drive<S, T, E>(stream: S, name: &'static str, changes: &watch::Sender<u64>, mut on_event: impl FnMut(&T))
where
    S: futures_util::Stream<Item = Result<T, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut stream = stream;
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => {
                on_event(&event);
                changes.send_modify(|n| *n = n.wrapping_add(1));
            }
            Err(e) => tracing::warn!(resource = name, error = %e, "watch failed; retrying"),
        }
    }
}

fn ignore<T>(_: &T) {}

/// An event handler keeping `ids` current for `store` (which has applied
/// each event before the handler runs). Objects being deleted carry no id.
fn id_indexer<K>(ids: Arc<RwLock<IdIndex>>, store: Store<K>) -> impl FnMut(&Event<K>)
where
    K: Resource + Clone + 'static,
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
) -> impl FnMut(&Event<ConfigMap>) {
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

/// Keeps only what the façade shows: managedFields shrink to the latest
/// user (non-status) write time (`updated_at`) and kubectl's copy of the
/// whole object goes. (The status is a summary; the per-database and
/// per-account lists live in DbInventory objects, which are not cached.)
fn slim_instance(instance: &mut DbInstance) {
    slim_meta(instance);
}

fn slim_meta<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
    let latest = meta
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.subresource.as_deref() != Some("status"))
        .filter_map(|m| m.time.clone())
        .max_by_key(|t| t.0);
    meta.managed_fields = latest.map(|time| {
        vec![ManagedFieldsEntry {
            time: Some(time),
            ..Default::default()
        }]
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn versions_compare_as_revisions() {
        assert!(version_reached(Some("12"), "12"));
        assert!(version_reached(Some("13"), "12"));
        assert!(!version_reached(Some("11"), "12"));
        assert!(!version_reached(None, "12"));
        assert!(version_reached(Some("abc"), "abc"));
    }

    #[test]
    fn slimming_keeps_the_last_user_write_time() {
        let at = |s: &str| Some(Time(s.parse().unwrap()));
        let mut tag = DbTag::new(
            "t",
            serde_json::from_value(serde_json::json!({"displayName": "T", "category": "c"})).unwrap(),
        );
        tag.metadata.managed_fields = Some(vec![
            ManagedFieldsEntry {
                time: at("2026-01-01T00:00:00Z"),
                ..Default::default()
            },
            ManagedFieldsEntry {
                time: at("2026-03-01T00:00:00Z"),
                subresource: Some("status".into()),
                ..Default::default()
            },
            ManagedFieldsEntry {
                time: at("2026-02-01T00:00:00Z"),
                ..Default::default()
            },
        ]);
        slim_meta(&mut tag);
        assert_eq!(tag.metadata.managed_fields.as_ref().unwrap().len(), 1);
        assert_eq!(
            super::super::views::updated_at(&tag.metadata).unwrap().to_string(),
            "2026-02-01T00:00:00Z"
        );
    }
}
