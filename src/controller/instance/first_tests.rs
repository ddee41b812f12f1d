//! Which instances this process holds still wait for their first
//! connection test. While any does, periodic collections wait (see
//! `plan::hold_for_first_tests`): a new fleet is then `Ready` after one
//! login per instance, instead of its first tests queueing behind other
//! instances' table counts on a busy machine.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::runtime::reflector::{ObjectRef, Store};

use crate::crd::DbInstance;

/// How stale the count may be: counting walks the whole cache.
const RECOUNT_AFTER: Duration = Duration::from_millis(500);

#[derive(Default)]
pub struct FirstTests {
    /// Uids of instances whose first run in this process has happened.
    tested: Mutex<HashSet<String>>,
    /// The last count and when it was taken.
    counted: Mutex<Option<(Instant, usize)>>,
    /// Instances whose due collections wait for the first tests: woken
    /// together once none waits, instead of each polling.
    held: Mutex<HashSet<ObjectRef<DbInstance>>>,
}

impl FirstTests {
    /// `uid` had its first run (whatever its outcome: a failed login or a
    /// credential error does not hold the others back either).
    pub fn tested(&self, uid: &str) {
        let mut tested = self.tested.lock().expect("first tests lock");
        if !tested.contains(uid) {
            tested.insert(uid.to_owned());
        }
    }

    /// `instance` has collections waiting for the first tests.
    pub fn hold(&self, instance: ObjectRef<DbInstance>) {
        self.held.lock().expect("held lock").insert(instance);
    }

    /// The held instances, to wake, once no instance waits for its first
    /// test any more (each is handed out once).
    pub fn release(&self, instances: &Store<DbInstance>, owns: impl Fn(&str) -> bool) -> Vec<ObjectRef<DbInstance>> {
        if self.held.lock().expect("held lock").is_empty() || self.waiting(instances, owns) > 0 {
            return Vec::new();
        }
        self.held.lock().expect("held lock").drain().collect()
    }

    pub fn forget(&self, uid: &str) {
        self.tested.lock().expect("first tests lock").remove(uid);
    }

    /// Instances in `instances` that `owns` and that are due a probe
    /// (active, not recycled, not being deleted), but had no run yet;
    /// recounted at most every [`RECOUNT_AFTER`].
    pub fn waiting(&self, instances: &Store<DbInstance>, owns: impl Fn(&str) -> bool) -> usize {
        let mut counted = self.counted.lock().expect("first tests count lock");
        if let Some((at, count)) = *counted
            && at.elapsed() < RECOUNT_AFTER
        {
            return count;
        }
        let tested = self.tested.lock().expect("first tests lock");
        let count = instances
            .state()
            .iter()
            .filter(|instance| awaits_probes(instance))
            .filter_map(|instance| instance.metadata.uid.as_deref())
            .filter(|uid| owns(uid) && !tested.contains(*uid))
            .count();
        *counted = Some((Instant::now(), count));
        count
    }
}

fn awaits_probes(instance: &DbInstance) -> bool {
    instance.spec.is_active && !instance.is_recycled() && instance.metadata.deletion_timestamp.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector::store;
    use kube::runtime::watcher::Event;

    fn instance(uid: &str, active: bool) -> DbInstance {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInstance",
            "metadata": {"name": uid, "namespace": "ns", "uid": uid},
            "spec": {"dbType": "postgresql", "host": "db.example", "port": 5432, "isActive": active},
        }))
        .unwrap()
    }

    #[test]
    fn counts_owned_active_instances_without_a_run() {
        let (reader, mut writer) = store::<DbInstance>();
        for (uid, active) in [("a", true), ("b", true), ("c", true), ("idle", false)] {
            writer.apply_watcher_event(&Event::Apply(instance(uid, active)));
        }
        let first = FirstTests::default();
        first.tested("a");
        assert_eq!(
            first.waiting(&reader, |uid| uid != "c"),
            1,
            "b only: c is another shard's, idle is inactive"
        );

        first.tested("b");
        assert_eq!(
            first.waiting(&reader, |uid| uid != "c"),
            1,
            "the count is reused for a moment"
        );
        *first.counted.lock().unwrap() = None;
        assert_eq!(first.waiting(&reader, |uid| uid != "c"), 0);
    }

    #[test]
    fn held_instances_are_released_once_when_no_first_test_waits() {
        let (reader, mut writer) = store::<DbInstance>();
        for uid in ["a", "b"] {
            writer.apply_watcher_event(&Event::Apply(instance(uid, true)));
        }
        let first = FirstTests::default();
        first.tested("a");
        first.hold(ObjectRef::new("a").within("ns"));
        assert!(first.release(&reader, |_| true).is_empty(), "b still waits");
        first.tested("b");
        *first.counted.lock().unwrap() = None;
        assert_eq!(first.release(&reader, |_| true), [ObjectRef::new("a").within("ns")]);
        assert!(first.release(&reader, |_| true).is_empty(), "released once");
    }
}
