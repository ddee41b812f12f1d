//! Stable integer ids (SPEC §3.2).
//!
//! The REST contract addresses instances, tags and credentials by integer.
//! Each namespace keeps one ConfigMap, `dbfleet-ids`, holding the last id
//! handed out per kind; allocating is a read-increment-write with the
//! ConfigMap's resourceVersion as precondition, so two allocators (the
//! controller and any number of façade replicas) never hand out the same
//! number, and an id is never reused even when the object it was meant for
//! is never created.
//!
//! Credential Secrets get their ids here too, but not on themselves: the
//! same ConfigMap records `credential.<Secret name>` → id, so the
//! controller needs no write right on any Secret and the façade no read
//! right on them (docs/security.md, "What dbfleet itself may read").

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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

/// Kinds whose ids are handed out as labels on the objects themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdKind {
    Instance,
    Tag,
}

impl IdKind {
    /// Key of this kind's counter in the ConfigMap.
    fn counter_key(self) -> &'static str {
        match self {
            IdKind::Instance => "dbinstances",
            IdKind::Tag => "dbtags",
        }
    }
}

/// Key of the credentials' counter in the ConfigMap.
const CREDENTIAL_COUNTER: &str = "credentials";

/// Prefix of the ConfigMap keys recording credential ids:
/// `credential.<Secret name>` → id. A Secret's name is a DNS subdomain, so
/// every one makes a valid ConfigMap key.
pub const CREDENTIAL_ENTRY_PREFIX: &str = "credential.";

#[derive(Debug, thiserror::Error)]
pub enum IdError {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("ConfigMap {COUNTER_CONFIGMAP} holds a counter that is not a number: {0:?}")]
    CorruptCounter(String),
    #[error("lost {MAX_ATTEMPTS} races in a row for the {COUNTER_CONFIGMAP} ConfigMap")]
    Contention,
    #[error("ConfigMap {COUNTER_CONFIGMAP} has no credential id left after {0}")]
    Exhausted(i64),
}

/// Most ids one ConfigMap write reserves for a burst of allocations: at
/// most this many go unused when a process stops mid-burst.
const MAX_BLOCK: usize = 512;

/// A block used up within this long of its reservation means a burst
/// (a fleet being created): the next block is twice as large.
const BURST: Duration = Duration::from_secs(2);

/// How many ids to reserve: as many as are waiting now, or — when the last
/// block was shared by several waiters and ran out within [`BURST`] — twice
/// that block, up to [`MAX_BLOCK`]. Under a burst each compare-and-swap
/// (one API round trip, taken in turn) then serves ever more instances,
/// instead of the few that happened to be waiting; allocations one at a
/// time keep consecutive ids.
fn block_size(waiting: usize, last: Option<(usize, Duration)>) -> usize {
    let burst = match last {
        Some((size, age)) if size > 1 && age < BURST => size * 2,
        _ => 1,
    };
    waiting.max(burst).clamp(1, MAX_BLOCK)
}

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
    /// Each kind's last block: its size and when it was reserved.
    reserved: BTreeMap<&'static str, (usize, Instant)>,
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
                let last = state
                    .reserved
                    .get(kind.counter_key())
                    .map(|(size, at)| (*size, at.elapsed()));
                let wanted = block_size(self.waiting.load(Ordering::SeqCst), last);
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
        let (first, last) = self
            .compare_and_swap(state, false, |data| {
                let (first, last) = reserve_after(data.get(key).map(String::as_str), count)?;
                data.insert(key.to_string(), last.to_string());
                Ok(((first, last), true))
            })
            .await?;
        state.blocks.insert(key, first + 1..last + 1);
        state
            .reserved
            .insert(key, (usize::try_from(count).unwrap_or(1), Instant::now()));
        Ok(first)
    }

    /// Brings the credential entries in line with `secrets` (see
    /// [`plan_credential_ids`]) on a fresh read of the ConfigMap, writing only
    /// when something changes, and returns every recorded credential id by
    /// Secret name.
    pub async fn record_credentials(
        &self,
        secrets: &[CredentialSecret],
        prune: bool,
    ) -> Result<BTreeMap<String, i64>, IdError> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut state = self.state.lock().await;
        let result = self
            .compare_and_swap(&mut state, true, |data| {
                let changed = plan_credential_ids(data, secrets, prune)?;
                let recorded = credential_ids(data).map(|(name, id)| (name.to_string(), id)).collect();
                Ok((recorded, changed))
            })
            .await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// Applies `change` to the ConfigMap's data and writes it with the
    /// resourceVersion it was read at, reading again and reapplying when
    /// another writer got there first. `change` says whether it changed
    /// anything; nothing is written when it did not. `fresh` reads the
    /// ConfigMap first instead of trusting the copy this process last wrote
    /// (needed when "no change" is a possible answer).
    async fn compare_and_swap<T>(
        &self,
        state: &mut Reserved,
        fresh: bool,
        mut change: impl FnMut(&mut BTreeMap<String, String>) -> Result<(T, bool), IdError>,
    ) -> Result<T, IdError> {
        if fresh {
            state.last_written = None;
        }
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
            let (answer, changed) = change(counters.data.get_or_insert_with(BTreeMap::new))?;
            if !changed {
                if !creating {
                    state.last_written = Some(counters);
                }
                return Ok(answer);
            }
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
                    return Ok(answer);
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

/// A labelled credential Secret, as the id plan sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialSecret {
    pub name: String,
    /// The `dbfleet.io/id` label an earlier dbfleet stamped on it, if any:
    /// adopted, so existing ids survive the move into the ConfigMap.
    pub labelled_id: Option<i64>,
}

/// The credential ids the ConfigMap's `data` records, by Secret name; an
/// entry that is not a positive integer records nothing.
pub fn credential_ids(data: &BTreeMap<String, String>) -> impl Iterator<Item = (&str, i64)> {
    data.iter().filter_map(|(key, value)| {
        let name = key.strip_prefix(CREDENTIAL_ENTRY_PREFIX)?;
        let id = value.trim().parse::<i64>().ok().filter(|id| *id > 0)?;
        Some((name, id))
    })
}

/// Records an id for each of `secrets` in the ConfigMap's `data` and, with
/// `prune`, forgets the Secrets not among them (deleted, or no longer
/// labelled). A Secret keeps the id it has; one without takes its old label
/// id if no other holds it, else the next from the credentials' counter, so
/// two Secrets never share an id. Returns whether `data` changed.
pub fn plan_credential_ids(
    data: &mut BTreeMap<String, String>,
    secrets: &[CredentialSecret],
    prune: bool,
) -> Result<bool, IdError> {
    let (_, mut last) = reserve_after(data.get(CREDENTIAL_COUNTER).map(String::as_str), 0)?;
    let entry = |name: &str| format!("{CREDENTIAL_ENTRY_PREFIX}{name}");
    let before = data.clone();
    if prune {
        let wanted: BTreeSet<String> = secrets.iter().map(|s| entry(&s.name)).collect();
        data.retain(|key, _| !key.starts_with(CREDENTIAL_ENTRY_PREFIX) || wanted.contains(key));
    }
    let recorded: BTreeMap<String, i64> = credential_ids(data).map(|(n, id)| (n.to_string(), id)).collect();
    let mut taken: BTreeSet<i64> = recorded.values().copied().collect();
    let mut missing: Vec<&CredentialSecret> = secrets.iter().filter(|s| !recorded.contains_key(&s.name)).collect();
    missing.sort_by(|a, b| a.name.cmp(&b.name));
    missing.dedup_by(|a, b| a.name == b.name);
    // Old label ids first, so a fresh id never takes one a later Secret
    // still carries.
    let mut fresh = Vec::new();
    for secret in missing {
        match secret.labelled_id.filter(|id| *id > 0 && !taken.contains(id)) {
            Some(id) => {
                taken.insert(id);
                last = last.max(id);
                data.insert(entry(&secret.name), id.to_string());
            }
            None => fresh.push(secret),
        }
    }
    for secret in fresh {
        last = last.checked_add(1).ok_or(IdError::Exhausted(last))?;
        data.insert(entry(&secret.name), last.to_string());
    }
    if before.get(CREDENTIAL_COUNTER).is_some() || last > 0 {
        data.insert(CREDENTIAL_COUNTER.to_string(), last.to_string());
    }
    Ok(*data != before)
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

    /// Every (name, id) in `namespace`, in name order.
    pub fn entries(&self, namespace: &str) -> Vec<(&str, i64)> {
        let mut entries: Vec<(&str, i64)> = self
            .by_name
            .iter()
            .filter(|((ns, _), _)| ns == namespace)
            .map(|((_, name), id)| (name.as_str(), *id))
            .collect();
        entries.sort();
        entries
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
    fn a_burst_reserves_ever_larger_blocks_and_single_allocations_stay_consecutive() {
        let soon = Duration::from_millis(300);
        // One at a time: one id per write, however quickly.
        assert_eq!(block_size(1, None), 1);
        assert_eq!(block_size(1, Some((1, soon))), 1);
        // Several waiting: all of them; the block after a quickly used
        // shared one doubles, up to the most one write reserves.
        assert_eq!(block_size(8, None), 8);
        assert_eq!(block_size(3, Some((8, soon))), 16);
        assert_eq!(block_size(1, Some((400, soon))), MAX_BLOCK);
        assert_eq!(block_size(2000, None), MAX_BLOCK);
        // A block that lasted is no burst.
        assert_eq!(block_size(3, Some((8, BURST))), 3);
    }

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

    fn secret(name: &str, labelled_id: Option<i64>) -> CredentialSecret {
        CredentialSecret {
            name: name.into(),
            labelled_id,
        }
    }

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn credentials_get_ids_from_the_counter_and_keep_them() {
        let mut map = data(&[("dbinstances", "7")]);
        let secrets = [secret("b", None), secret("a", None)];
        assert!(plan_credential_ids(&mut map, &secrets, true).unwrap());
        assert_eq!(
            map,
            data(&[
                ("dbinstances", "7"),
                ("credentials", "2"),
                ("credential.a", "1"),
                ("credential.b", "2")
            ])
        );
        // Nothing to do the second time: no write.
        let unchanged = map.clone();
        assert!(!plan_credential_ids(&mut map, &secrets, true).unwrap());
        assert_eq!(map, unchanged);
        let ids: Vec<_> = credential_ids(&map).collect();
        assert_eq!(ids, [("a", 1), ("b", 2)]);
    }

    #[test]
    fn old_label_ids_are_adopted_unless_another_secret_holds_them() {
        let mut map = data(&[("credentials", "5"), ("credential.kept", "3")]);
        let secrets = [
            secret("kept", Some(9)),
            secret("migrated", Some(4)),
            secret("copied-label", Some(3)),
            secret("hand-set", Some(40)),
            secret("new", None),
        ];
        assert!(plan_credential_ids(&mut map, &secrets, true).unwrap());
        let ids: BTreeMap<_, _> = credential_ids(&map).collect();
        assert_eq!(ids["kept"], 3, "a recorded id wins over a label");
        assert_eq!(ids["migrated"], 4);
        assert_eq!(ids["hand-set"], 40);
        // After the highest adopted id, never one a Secret carries.
        assert_eq!((ids["copied-label"], ids["new"]), (41, 42));
        assert_eq!(map["credentials"], "42");
    }

    #[test]
    fn gone_credentials_are_forgotten_only_when_pruning() {
        let mut map = data(&[("credentials", "2"), ("credential.a", "1"), ("credential.b", "2")]);
        assert!(!plan_credential_ids(&mut map, &[secret("a", None)], false).unwrap());
        assert!(plan_credential_ids(&mut map, &[secret("a", None)], true).unwrap());
        assert_eq!(map, data(&[("credentials", "2"), ("credential.a", "1")]));
        // The id of a forgotten credential is not handed out again.
        plan_credential_ids(&mut map, &[secret("a", None), secret("c", None)], true).unwrap();
        assert_eq!(map["credential.c"], "3");
    }

    #[test]
    fn a_broken_entry_is_replaced_and_a_corrupt_counter_refused() {
        let mut map = data(&[("credentials", "1"), ("credential.a", "x")]);
        assert!(plan_credential_ids(&mut map, &[secret("a", None)], true).unwrap());
        assert_eq!(map["credential.a"], "2");
        let mut corrupt = data(&[("credentials", "-1")]);
        assert!(matches!(
            plan_credential_ids(&mut corrupt, &[secret("a", None)], true),
            Err(IdError::CorruptCounter(_))
        ));
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
