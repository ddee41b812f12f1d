//! One watch per kind per process. The controllers and the façade read the
//! same DbInstances, DbTags, DbSyncSessions and `dbfleet-ids` ConfigMaps;
//! under `dbfleet run` both get their stores from one [`Watches`], and each
//! adds what it must do on an event ([`SharedWatch::on_event`]) before the
//! watches start. So one process lists and watches each kind once, and
//! holds each object once.
//!
//! What only one side reads is watched by that side alone: credential and
//! CA Secrets by the controllers, DbInventories by the façade.

use std::sync::Arc;

use futures_util::{StreamExt, future};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::runtime::reflector::{self, ReflectHandle, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch_stream};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tracing::warn;

use crate::crd::{DbInstance, DbSyncSession, DbTag};
use crate::ids::COUNTER_CONFIGMAP;

/// Annotation kubectl keeps a full copy of the object in; never read here.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Size of each shared store's fan-out buffer: a burst of this many events
/// is absorbed without the watch waiting on slow subscribers.
const FANOUT_BUFFER: usize = 4096;

/// What runs after the store has applied an event.
type Tap<K> = Box<dyn Fn(&Event<K>) + Send + Sync>;

/// A watch of one kind into a store that several readers share.
pub struct SharedWatch<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    api: Api<K>,
    config: watcher::Config,
    store: Store<K>,
    writer: reflector::store::Writer<K>,
    taps: Vec<Tap<K>>,
}

impl<K> SharedWatch<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    pub fn new(api: Api<K>, config: watcher::Config) -> Self {
        let (store, writer) = reflector::store_shared(FANOUT_BUFFER);
        SharedWatch {
            api,
            config,
            store,
            writer,
            taps: Vec::new(),
        }
    }

    /// The store, filled once the watch runs.
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// A stream of the objects the store applies (for a kube `Controller`).
    /// Subscribe before the watch runs: a subscriber only sees what comes
    /// after it, and the first list is what starts every reconcile.
    pub fn subscribe(&self) -> ReflectHandle<K> {
        self.writer.subscribe().expect("a shared store has subscribers")
    }

    /// Runs `tap` on every event, after the store has applied it (so after
    /// a relist the store holds the full list when `InitDone` arrives).
    /// Taps run in the order they were added.
    pub fn on_event(&mut self, tap: impl Fn(&Event<K>) + Send + Sync + 'static) {
        self.taps.push(Box::new(tap));
    }

    /// Watches until the stream ends (it retries with backoff, so never on
    /// its own).
    pub async fn run(self) {
        let SharedWatch {
            api,
            config,
            writer,
            taps,
            ..
        } = self;
        let events = watch_stream(api, config)
            .default_backoff()
            .modify(slim)
            .reflect_shared(writer);
        futures_util::pin_mut!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => taps.iter().for_each(|tap| tap(&event)),
                Err(error) => warn!(%error, kind = %K::kind(&()), "watch failed; retrying with backoff"),
            }
        }
    }
}

/// The kinds both the controllers and the façade read, one watch each.
pub struct Watches {
    pub instances: SharedWatch<DbInstance>,
    pub tags: SharedWatch<DbTag>,
    pub sessions: SharedWatch<DbSyncSession>,
    /// Each namespace's `dbfleet-ids` ConfigMap, by name: RBAC grants list
    /// and watch of that name alone, and no other ConfigMap is read.
    pub id_configmaps: SharedWatch<ConfigMap>,
}

impl Watches {
    /// Watches of one namespace, or of all when `None`.
    pub fn new(client: Client, namespace: Option<&str>) -> Self {
        let all = watcher::Config::default;
        Watches {
            instances: SharedWatch::new(scoped(client.clone(), namespace), all()),
            tags: SharedWatch::new(scoped(client.clone(), namespace), all()),
            sessions: SharedWatch::new(scoped(client.clone(), namespace), all()),
            id_configmaps: SharedWatch::new(
                scoped(client, namespace),
                all().fields(&format!("metadata.name={COUNTER_CONFIGMAP}")),
            ),
        }
    }

    /// Runs every watch until they end (never on their own).
    pub async fn run(self) {
        future::join4(
            self.instances.run(),
            self.tags.run(),
            self.sessions.run(),
            self.id_configmaps.run(),
        )
        .await;
    }
}

/// The API of `K` in one namespace, or in all.
pub fn scoped<K>(client: Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    }
}

/// Drops what no reader uses from a cached object: kubectl's copy of the
/// whole object, and every managedFields entry but one carrying the latest
/// user (non-status) write time, which the façade shows as `updated_at`.
/// Both are most of a small object.
pub fn slim<K: Resource>(object: &mut K) {
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

/// The objects of `store` in `namespace`.
pub fn objects_in<K>(store: &Store<K>, namespace: &str) -> Vec<Arc<K>>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store.state_filter(|o| o.meta().namespace.as_deref() == Some(namespace))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    #[test]
    fn slimming_keeps_the_last_user_write_time_and_drops_kubectls_copy() {
        let at = |s: &str| Some(Time(s.parse().unwrap()));
        let mut tag = DbTag::new(
            "t",
            serde_json::from_value(serde_json::json!({"displayName": "T", "category": "c"})).unwrap(),
        );
        tag.metadata.annotations = Some([(LAST_APPLIED.to_string(), "{}".to_string())].into());
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
        slim(&mut tag);
        let kept = tag.metadata.managed_fields.as_ref().unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].time, at("2026-02-01T00:00:00Z"));
        assert!(tag.metadata.annotations.unwrap().is_empty());
    }
}
