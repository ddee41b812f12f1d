//! Stable integer ids (SPEC §3.2).
//!
//! The REST contract addresses instances, tags and credentials by integer.
//! Each namespace keeps one ConfigMap, `dbfleet-ids`, holding the last id
//! handed out per kind; allocating is a read-increment-write with the
//! ConfigMap's resourceVersion as precondition, so two allocators (the
//! controller and any number of façade replicas) never hand out the same
//! number, and an id is never reused even when the object it was meant for
//! is never created.

use std::collections::BTreeMap;
use std::sync::Arc;

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

/// Clones share one cache and one lock: allocations within a process take
/// turns and reuse the ConfigMap they last wrote (one request per id),
/// while other processes are kept apart by the resourceVersion.
#[derive(Clone)]
pub struct IdAllocator {
    configmaps: Api<ConfigMap>,
    last_written: Arc<Mutex<Option<ConfigMap>>>,
}

impl IdAllocator {
    pub fn new(client: Client, namespace: &str) -> Self {
        IdAllocator { configmaps: Api::namespaced(client, namespace), last_written: Arc::default() }
    }

    /// Hands out the next id of `kind` (the first is 1).
    pub async fn allocate(&self, kind: IdKind) -> Result<i64, IdError> {
        let key = kind.counter_key();
        let mut cached = self.last_written.lock().await;
        for _ in 0..MAX_ATTEMPTS {
            let current = match cached.take() {
                Some(counters) => Some(counters),
                None => self.configmaps.get_opt(COUNTER_CONFIGMAP).await?,
            };
            let Some(mut counters) = current else {
                let first = ConfigMap {
                    metadata: ObjectMeta { name: Some(COUNTER_CONFIGMAP.into()), ..Default::default() },
                    data: Some(BTreeMap::from([(key.to_string(), "1".to_string())])),
                    ..Default::default()
                };
                match self.configmaps.create(&PostParams::default(), &first).await {
                    Ok(created) => {
                        *cached = Some(created);
                        return Ok(1);
                    }
                    Err(kube::Error::Api(e)) if e.code == 409 => continue,
                    Err(e) => return Err(e.into()),
                }
            };
            let data = counters.data.get_or_insert_with(BTreeMap::new);
            let next = next_id(data.get(key).map(String::as_str))?;
            data.insert(key.to_string(), next.to_string());
            // `replace` sends the resourceVersion we read: a concurrent
            // allocator's write makes this a 409, and we read again.
            match self.configmaps.replace(COUNTER_CONFIGMAP, &PostParams::default(), &counters).await {
                Ok(written) => {
                    *cached = Some(written);
                    return Ok(next);
                }
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(IdError::Contention)
    }
}

fn next_id(last: Option<&str>) -> Result<i64, IdError> {
    match last {
        None => Ok(1),
        Some(text) => text
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_add(1))
            .filter(|n| *n > 0)
            .ok_or_else(|| IdError::CorruptCounter(text.to_string())),
    }
}

/// The id in an object's `dbfleet.io/id` label, if it has a valid one.
pub fn id_of(meta: &ObjectMeta) -> Option<i64> {
    meta.labels.as_ref()?.get(ID_LABEL)?.parse().ok().filter(|id| *id > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_start_at_one_and_count_up() {
        assert_eq!(next_id(None).unwrap(), 1);
        assert_eq!(next_id(Some("41")).unwrap(), 42);
    }

    #[test]
    fn a_corrupt_counter_is_an_error_not_a_reset() {
        for bad in ["", "x", "-5", "9223372036854775807"] {
            assert!(matches!(next_id(Some(bad)), Err(IdError::CorruptCounter(_))), "{bad:?}");
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
