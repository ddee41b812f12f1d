//! Writes guarded by the resourceVersion they were decided on (SPEC §3.4):
//! a lost race is a 409, never a silent overwrite.
//!
//! The controllers write status all the time, and every status write moves
//! the resourceVersion. Such a change does not touch what a façade write
//! decides on (spec, labels, annotations), so on a 409 the object is read
//! again and, if those are as they were, the write is retried on the new
//! version; only a real change by someone else is answered with 409.

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Status-only changes in a row that are retried before giving up.
const RETRIES: usize = 3;

/// Applies the merge `patch` to `current` unless what `unchanged` compares
/// has changed since `current` was read.
pub async fn patch<K>(
    api: &Api<K>,
    current: &K,
    patch: Value,
    unchanged: impl Fn(&K, &K) -> bool,
) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let name = current.name_any();
    let mut version = current.resource_version();
    for attempt in 0..=RETRIES {
        let mut guarded = patch.clone();
        guarded["metadata"]["resourceVersion"] = json!(version);
        match api.patch(&name, &PatchParams::default(), &Patch::Merge(&guarded)).await {
            Err(kube::Error::Api(conflict)) if conflict.code == 409 && attempt < RETRIES => {
                match api.get_opt(&name).await? {
                    Some(fresh) if unchanged(current, &fresh) => version = fresh.resource_version(),
                    _ => return Err(kube::Error::Api(conflict)),
                }
            }
            result => return result,
        }
    }
    unreachable!("the last attempt returns")
}

/// Spec, labels and annotations are what façade writes decide on. The
/// caches drop kubectl's last-applied annotation, so it is not compared.
pub fn same_intent<K: Resource>(spec: impl Fn(&K) -> Value) -> impl Fn(&K, &K) -> bool {
    let annotations = |k: &K| {
        let mut all = k.meta().annotations.clone().unwrap_or_default();
        all.remove(crate::watches::LAST_APPLIED);
        all
    };
    move |a, b| spec(a) == spec(b) && a.meta().labels == b.meta().labels && annotations(a) == annotations(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::DbInstance;

    fn instance(port: i32, label: &str, annotations: &[(&str, &str)], phase: &str) -> DbInstance {
        serde_json::from_value(json!({
            "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInstance",
            "metadata": {"name": "db", "labels": {"team": label},
                         "annotations": annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<std::collections::BTreeMap<_, _>>()},
            "spec": {"dbType": "mysql", "host": "db", "port": port},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    #[test]
    fn only_spec_labels_and_annotations_count_as_a_change() {
        let same = same_intent(|i: &DbInstance| json!(i.spec));
        let base = instance(3306, "a", &[], "Pending");
        assert!(
            same(&base, &instance(3306, "a", &[], "Ready")),
            "a status write is not a conflict"
        );
        assert!(same(
            &base,
            &instance(3306, "a", &[(crate::watches::LAST_APPLIED, "{}")], "Ready")
        ));
        assert!(!same(&base, &instance(3307, "a", &[], "Pending")), "a spec change is");
        assert!(!same(&base, &instance(3306, "b", &[], "Pending")), "a label change is");
        assert!(
            !same(
                &base,
                &instance(3306, "a", &[("dbfleet.io/recycled-at", "now")], "Pending")
            ),
            "an annotation change is"
        );
    }
}
