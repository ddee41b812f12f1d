//! The recycle bin's rules (SPEC §1.1, §2.4), in one place for the
//! controller and the façade: what marks an instance as recycled, since
//! when, until when it is kept, and the phase it shows.
//!
//! **Recycled without a readable date.** The `dbfleet.io/recycled` label
//! set by hand (or with a `recycled-at` that does not parse) has no date
//! yet: [`DbInstance::recycled_at`] is `None`, the controller stamps the
//! annotation with the time it first sees it, and the retention runs from
//! then. The façade used to show the creation time instead, which named a
//! day the instance was not deleted on and a `retained_until` the
//! controller does not act on (possibly already past); it now shows no
//! date until the controller's stamp arrives, a moment later.
//!
//! **Retention.** The controller deletes a recycled instance at
//! `recycled-at + its --retention` and records that date in
//! `status.retainedUntil`. That recorded date is what
//! [`DbInstance::retained_until`] answers, because the façade's own
//! `--retention` may differ from the controller's; only until the
//! controller has recorded this recycling (right after a soft delete) is
//! it computed from the retention the caller passes.

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use serde_json::{Value, json};

use super::instance::{ConnectionState, DbInstance, Phase};
use super::keys::{RECYCLED_AT_ANNOTATION, RECYCLED_LABEL};

impl DbInstance {
    /// Whether the instance is in the recycle bin (label `"true"`).
    pub fn is_recycled(&self) -> bool {
        self.labels().get(RECYCLED_LABEL).is_some_and(|v| v == "true")
    }

    /// When it went into the recycle bin: the `recycled-at` annotation of a
    /// recycled instance; `None` until that annotation holds a readable
    /// RFC 3339 time.
    pub fn recycled_at(&self) -> Option<Timestamp> {
        if !self.is_recycled() {
            return None;
        }
        self.annotations().get(RECYCLED_AT_ANNOTATION)?.parse().ok()
    }

    /// When a recycled instance is deleted for good: the controller's
    /// `status.retainedUntil` once it recorded this recycling, else
    /// `recycled_at + retention`.
    pub fn retained_until(&self, retention: SignedDuration) -> Option<Timestamp> {
        let recycled_at = self.recycled_at()?;
        let recorded = self.status.as_ref().filter(|s| {
            s.recycled_at
                .as_ref()
                .is_some_and(|at| at.0.as_second() == recycled_at.as_second())
        });
        match recorded.and_then(|s| s.retained_until.as_ref()) {
            Some(until) => Some(until.0),
            None => recycled_at.checked_add(retention).ok(),
        }
    }

    /// The phase to show: the recycle-bin label wins over a status the
    /// controller has not rewritten yet; no status yet is `Pending`.
    pub fn phase(&self) -> Phase {
        if self.is_recycled() {
            return Phase::Recycled;
        }
        self.status.as_ref().and_then(|s| s.phase).unwrap_or(Phase::Pending)
    }

    /// The last connection test's outcome; `Unknown` before the first.
    pub fn connection_state(&self) -> ConnectionState {
        self.status
            .as_ref()
            .and_then(|s| s.connection.as_ref())
            .map_or(ConnectionState::Unknown, |c| c.status)
    }
}

/// The merge patch that moves an instance into the recycle bin at `now`
/// (RFC 3339, whole seconds).
pub fn recycle_patch(now: &str) -> Value {
    json!({"metadata": {
        "labels": {RECYCLED_LABEL: "true"},
        "annotations": {RECYCLED_AT_ANNOTATION: now},
    }})
}

/// The merge patch that takes an instance out of the recycle bin.
pub fn restore_patch() -> Value {
    json!({"metadata": {"labels": {RECYCLED_LABEL: null}, "annotations": {RECYCLED_AT_ANNOTATION: null}}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::DbInstanceStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    const DAY: SignedDuration = SignedDuration::from_hours(24);

    fn instance(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> DbInstance {
        let mut i = DbInstance::new(
            "db",
            serde_json::from_value(json!({"dbType": "mysql", "host": "h", "port": 1})).unwrap(),
        );
        i.metadata.creation_timestamp = Some(Time("2026-01-01T00:00:00Z".parse().unwrap()));
        for (k, v) in labels {
            i.labels_mut().insert(k.to_string(), v.to_string());
        }
        for (k, v) in annotations {
            i.annotations_mut().insert(k.to_string(), v.to_string());
        }
        i
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn only_the_label_set_to_true_recycles() {
        assert!(instance(&[(RECYCLED_LABEL, "true")], &[]).is_recycled());
        assert!(!instance(&[(RECYCLED_LABEL, "false")], &[]).is_recycled());
        assert!(!instance(&[], &[(RECYCLED_AT_ANNOTATION, "2026-02-01T00:00:00Z")]).is_recycled());
    }

    #[test]
    fn a_recycle_date_comes_only_from_a_readable_annotation() {
        let dated = instance(
            &[(RECYCLED_LABEL, "true")],
            &[(RECYCLED_AT_ANNOTATION, "2026-02-01T00:00:00Z")],
        );
        assert_eq!(dated.recycled_at(), Some(at("2026-02-01T00:00:00Z")));
        // Not the creation time: the controller stamps the date it sees it.
        let by_hand = instance(&[(RECYCLED_LABEL, "true")], &[]);
        assert_eq!((by_hand.recycled_at(), by_hand.retained_until(DAY)), (None, None));
        let garbled = instance(&[(RECYCLED_LABEL, "true")], &[(RECYCLED_AT_ANNOTATION, "yesterday")]);
        assert_eq!(garbled.recycled_at(), None);
        let restored = instance(&[], &[(RECYCLED_AT_ANNOTATION, "2026-02-01T00:00:00Z")]);
        assert_eq!(restored.recycled_at(), None);
    }

    #[test]
    fn retention_is_the_controllers_once_it_recorded_this_recycling() {
        let mut i = instance(
            &[(RECYCLED_LABEL, "true")],
            &[(RECYCLED_AT_ANNOTATION, "2026-02-01T00:00:00.700Z")],
        );
        assert_eq!(i.retained_until(DAY), Some(at("2026-02-02T00:00:00.700Z")));
        i.status = Some(DbInstanceStatus {
            recycled_at: Some(Time(at("2026-02-01T00:00:00Z"))),
            retained_until: Some(Time(at("2026-03-03T00:00:00Z"))),
            ..Default::default()
        });
        assert_eq!(i.retained_until(DAY), Some(at("2026-03-03T00:00:00Z")));
        // A status from an earlier recycling does not count.
        i.annotations_mut()
            .insert(RECYCLED_AT_ANNOTATION.into(), "2026-05-01T00:00:00Z".into());
        assert_eq!(i.retained_until(DAY), Some(at("2026-05-02T00:00:00Z")));
    }

    #[test]
    fn the_label_wins_over_a_stale_phase() {
        let mut i = instance(&[], &[]);
        assert_eq!(
            (i.phase(), i.connection_state()),
            (Phase::Pending, ConnectionState::Unknown)
        );
        i.status = Some(serde_json::from_value(json!({"phase": "Ready"})).unwrap());
        assert_eq!(i.phase(), Phase::Ready);
        i.labels_mut().insert(RECYCLED_LABEL.into(), "true".into());
        assert_eq!(i.phase(), Phase::Recycled);
    }

    #[test]
    fn recycling_and_restoring_set_and_clear_both_marks() {
        let mut i = instance(&[], &[]);
        let apply = |i: &mut DbInstance, patch: Value| {
            let mut value = serde_json::to_value(&*i).unwrap();
            json_merge(&mut value, &patch);
            *i = serde_json::from_value(value).unwrap();
        };
        apply(&mut i, recycle_patch("2026-02-01T00:00:00Z"));
        assert_eq!(i.recycled_at(), Some(at("2026-02-01T00:00:00Z")));
        apply(&mut i, restore_patch());
        assert!(!i.is_recycled() && !i.annotations().contains_key(RECYCLED_AT_ANNOTATION));
    }

    /// RFC 7386 JSON merge patch.
    fn json_merge(target: &mut Value, patch: &Value) {
        match patch {
            Value::Object(fields) => {
                if !target.is_object() {
                    *target = json!({});
                }
                for (key, value) in fields {
                    if value.is_null() {
                        target.as_object_mut().unwrap().remove(key);
                    } else {
                        json_merge(target.as_object_mut().unwrap().entry(key).or_insert(Value::Null), value);
                    }
                }
            }
            other => *target = other.clone(),
        }
    }
}
