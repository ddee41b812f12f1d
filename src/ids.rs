//! Stable integer ids (SPEC §3.2).
//!
//! The REST contract addresses instances, tags and credentials by integer.
//! Each namespace keeps one ConfigMap, `dbfleet-ids`, holding the last id
//! handed out per kind; allocating is a read-increment-write with the
//! ConfigMap's resourceVersion as precondition, so two allocators (the
//! controller and any number of façade replicas) never hand out the same
//! number, and an id is never reused even when the object it was meant for
//! is never created.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::Mutex;

use crate::crd::keys::ID_LABEL;

/// Name of the per-namespace counter ConfigMap.
pub const COUNTER_CONFIGMAP: &str = "dbfleet-ids";

/// Give up after this many lost races in a row; each loss means another
/// allocator made progress, so this only trips under pathological contention.
const MAX_ATTEMPTS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdKind {
    Instance,
    Tag,
    Credential,
}

impl IdKind {
    /// Key of this kind's counter in the ConfigMap.
    fn counter_key(self) -> &'static str {
        match self {
            IdKind::Instance => "dbinstances",
            IdKind::Tag => "dbtags",
            IdKind::Credential => "credentials",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdError {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("ConfigMap {COUNTER_CONFIGMAP} holds a counter that is not a number: {0:?}")]
    CorruptCounter(String),
    #[error("lost {MAX_ATTEMPTS} races in a row for the {COUNTER_CONFIGMAP} ConfigMap")]
    Contention,
}

/// Most ids one ConfigMap write reserves for a burst of allocations.
const MAX_BLOCK: usize = 64;

/// Clones share one lock and what it guards: allocations within a process
/// take turns, reuse the ConfigMap they last wrote, and — when several are
/// waiting, as when a thousand instances appear at once — reserve a block
/// of ids in one write and hand them out from memory. Other processes are
/// kept apart by the resourceVersion. Reserved ids a process never hands
/// out (it stopped) are never used: ids may have gaps, never repeats.
#[derive(Clone)]
pub struct IdAllocator {
    configmaps: Api<ConfigMap>,
    waiting: Arc<AtomicUsize>,
    state: Arc<Mutex<Reserved>>,
}

#[derive(Default)]
struct Reserved {
    last_written: Option<ConfigMap>,
    blocks: BTreeMap<&'static str, Range<i64>>,
}

impl IdAllocator {
    pub fn new(client: Client, namespace: &str) -> Self {
        IdAllocator {
            configmaps: Api::namespaced(client, namespace),
            waiting: Arc::default(),
            state: Arc::default(),
        }
    }

    /// Hands out the next id of `kind` (the first is 1).
    pub async fn allocate(&self, kind: IdKind) -> Result<i64, IdError> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut state = self.state.lock().await;
        let reserved = state.blocks.entry(kind.counter_key()).or_default().next();
        let result = match reserved {
            Some(id) => Ok(id),
            None => {
                let wanted = self.waiting.load(Ordering::SeqCst).clamp(1, MAX_BLOCK);
                self.reserve(&mut state, kind, wanted).await
            }
        };
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// Reserves `count` ids with one compare-and-swap on the ConfigMap and
    /// returns the first; the rest stay in `state` for the next callers.
    async fn reserve(&self, state: &mut Reserved, kind: IdKind, count: usize) -> Result<i64, IdError> {
        let key = kind.counter_key();
        let count = i64::try_from(count).unwrap_or(1);
        for _ in 0..MAX_ATTEMPTS {
            let current = match state.last_written.take() {
                Some(counters) => Some(counters),
                None => self.configmaps.get_opt(COUNTER_CONFIGMAP).await?,
            };
            let mut counters = current.unwrap_or_else(|| ConfigMap {
                metadata: ObjectMeta {
                    name: Some(COUNTER_CONFIGMAP.into()),
                    ..Default::default()
                },
                ..Default::default()
            });
            let creating = counters.metadata.resource_version.is_none();
            let data = counters.data.get_or_insert_with(BTreeMap::new);
            let (first, last) = reserve_after(data.get(key).map(String::as_str), count)?;
            data.insert(key.to_string(), last.to_string());
            // Create, or replace with the resourceVersion we read: a
            // concurrent allocator's write makes this a 409, and we read again.
            let written = if creating {
                self.configmaps.create(&PostParams::default(), &counters).await
            } else {
                self.configmaps
                    .replace(COUNTER_CONFIGMAP, &PostParams::default(), &counters)
                    .await
            };
            match written {
                Ok(written) => {
                    state.last_written = Some(written);
                    state.blocks.insert(key, first + 1..last + 1);
                    return Ok(first);
                }
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(IdError::Contention)
    }
}

/// The first and last of `count` ids after the counter's value `last`.
fn reserve_after(last: Option<&str>, count: i64) -> Result<(i64, i64), IdError> {
    let corrupt = || IdError::CorruptCounter(last.unwrap_or_default().to_string());
    let last = match last {
        None => 0,
        Some(text) => text
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(corrupt)?,
    };
    let first = last.checked_add(1).ok_or_else(corrupt)?;
    let end = last.checked_add(count).ok_or_else(corrupt)?;
    Ok((first, end))
}

/// The id in an object's `dbfleet.io/id` label, if it has a valid one.
pub fn id_of(meta: &ObjectMeta) -> Option<i64> {
    meta.labels.as_ref()?.get(ID_LABEL)?.parse().ok().filter(|id| *id > 0)
}

/// Which objects carry which id, per namespace, kept current from watch
/// events: an O(1) lookup by id that also sees when two objects carry the
/// same id (e.g. labels copied with kubectl), so callers can refuse to pick
/// one of them.
#[derive(Debug, Default)]
pub struct IdIndex {
    by_id: HashMap<(String, i64), BTreeSet<String>>,
    by_name: HashMap<(String, String), i64>,
}

impl IdIndex {
    /// Records that `namespace/name` carries `id` (or none).
    pub fn upsert(&mut self, namespace: &str, name: &str, id: Option<i64>) {
        self.remove(namespace, name);
        if let Some(id) = id {
            self.by_id
                .entry((namespace.to_string(), id))
                .or_default()
                .insert(name.to_string());
            self.by_name.insert((namespace.to_string(), name.to_string()), id);
        }
    }

    pub fn remove(&mut self, namespace: &str, name: &str) {
        let Some(id) = self.by_name.remove(&(namespace.to_string(), name.to_string())) else {
            return;
        };
        let key = (namespace.to_string(), id);
        if let Some(names) = self.by_id.get_mut(&key) {
            names.remove(name);
            if names.is_empty() {
                self.by_id.remove(&key);
            }
        }
    }

    /// Replaces everything with a full (re)list of (namespace, name, id).
    pub fn rebuild(&mut self, objects: impl IntoIterator<Item = (String, String, Option<i64>)>) {
        self.by_id.clear();
        self.by_name.clear();
        for (namespace, name, id) in objects {
            self.upsert(&namespace, &name, id);
        }
    }

    /// The names of the objects in `namespace` carrying `id`, in name order:
    /// none, one, or (a conflict) several.
    pub fn names(&self, namespace: &str, id: i64) -> Vec<&str> {
        self.by_id
            .get(&(namespace.to_string(), id))
            .map(|names| names.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_index_follows_updates_and_sees_shared_ids() {
        let mut index = IdIndex::default();
        index.rebuild([
            ("ns".into(), "a".into(), Some(1)),
            ("ns".into(), "b".into(), Some(2)),
            ("other".into(), "c".into(), Some(1)),
            ("ns".into(), "unlabelled".into(), None),
        ]);
        assert_eq!(index.names("ns", 1), ["a"]);
        assert_eq!(index.names("other", 1), ["c"]);
        assert!(index.names("ns", 3).is_empty());

        index.upsert("ns", "z", Some(1));
        index.upsert("ns", "b", Some(1));
        assert_eq!(index.names("ns", 1), ["a", "b", "z"]);
        assert!(index.names("ns", 2).is_empty(), "b moved from id 2 to id 1");
        index.remove("ns", "z");
        index.upsert("ns", "b", None);
        index.remove("ns", "never-seen");
        assert_eq!(index.names("ns", 1), ["a"]);

        index.rebuild([("ns".into(), "d".into(), Some(4))]);
        assert!(index.names("ns", 1).is_empty());
        assert_eq!(index.names("ns", 4), ["d"]);
    }

    #[test]
    fn counters_start_at_one_and_reserve_blocks() {
        assert_eq!(reserve_after(None, 1).unwrap(), (1, 1));
        assert_eq!(reserve_after(Some("41"), 1).unwrap(), (42, 42));
        assert_eq!(reserve_after(Some("41"), 10).unwrap(), (42, 51));
    }

    #[test]
    fn a_corrupt_counter_is_an_error_not_a_reset() {
        for bad in ["", "x", "-5", "9223372036854775807"] {
            assert!(
                matches!(reserve_after(Some(bad), 1), Err(IdError::CorruptCounter(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn only_positive_integer_labels_are_ids() {
        let meta = |value: &str| ObjectMeta {
            labels: Some(BTreeMap::from([(ID_LABEL.to_string(), value.to_string())])),
            ..Default::default()
        };
        assert_eq!(id_of(&meta("17")), Some(17));
        assert_eq!(id_of(&meta("0")), None);
        assert_eq!(id_of(&meta("abc")), None);
        assert_eq!(id_of(&ObjectMeta::default()), None);
    }
}
