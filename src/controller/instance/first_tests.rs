//! Which instances of the fleet still wait for their first connection
//! test. While any does, periodic collections and periodic tests wait (see
//! `plan::hold_for_first_tests`): a new fleet is then `Ready` after one
//! login per instance, instead of its first tests queueing behind other
//! instances' table counts on a busy machine. Instances of other replicas'
//! shards count too, from their status (every replica watches every
//! instance): one replica's collections would otherwise load the API server
//! and the machine while the others still test, for at most
//! [`OTHERS_WAIT_LIMIT`].

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::runtime::reflector::{ObjectRef, Store};

use crate::crd::DbInstance;

/// How stale the count may be: counting walks the whole cache.
const RECOUNT_AFTER: Duration = Duration::from_millis(500);

/// How long after it starts a process lets other replicas' untested
/// instances hold its own collections: a shard nobody holds (its replica
/// gone, the Lease not yet expired) must not hold them for ever.
pub const OTHERS_WAIT_LIMIT: Duration = Duration::from_secs(300);

pub struct FirstTests {
    /// When this process started: other replicas' instances count until
    /// [`OTHERS_WAIT_LIMIT`] after it.
    started: Instant,
    /// Uids of instances whose first run in this process has happened.
    tested: Mutex<HashSet<String>>,
    /// The last count and when it was taken.
    counted: Mutex<Option<(Instant, usize)>>,
    /// Instances whose due collections wait for the first tests: woken
    /// together once none waits, instead of each polling.
    held: Mutex<HashSet<ObjectRef<DbInstance>>>,
}

impl Default for FirstTests {
    fn default() -> Self {
        FirstTests {
            started: Instant::now(),
            tested: Mutex::default(),
            counted: Mutex::default(),
            held: Mutex::default(),
        }
    }
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

    /// Instances in `instances` that are due a probe (active, not recycled,
    /// not being deleted) but had no run yet: in this process for those
    /// `owns`, by their status for the others (until
    /// [`OTHERS_WAIT_LIMIT`]); recounted at most every [`RECOUNT_AFTER`].
    pub fn waiting(&self, instances: &Store<DbInstance>, owns: impl Fn(&str) -> bool) -> usize {
        let mut counted = self.counted.lock().expect("first tests count lock");
        if let Some((at, count)) = *counted
            && at.elapsed() < RECOUNT_AFTER
        {
            return count;
        }
        let tested = self.tested.lock().expect("first tests lock");
        let others_count = self.started.elapsed() < OTHERS_WAIT_LIMIT;
        let count = instances
            .state()
            .iter()
            .filter(|instance| awaits_probes(instance))
            .filter(|instance| {
                let uid = instance.metadata.uid.as_deref().unwrap_or_default();
                if owns(uid) {
                    !tested.contains(uid)
                } else {
                    others_count && never_probed(instance)
                }
            })
            .count();
        *counted = Some((Instant::now(), count));
        count
    }
}

/// No replica has written a phase for it yet.
fn never_probed(instance: &DbInstance) -> bool {
    instance.status.as_ref().is_none_or(|s| s.phase.is_none())
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
        writer.apply_watcher_event(&Event::Apply(probed(instance("c", true))));
        assert_eq!(
            first.waiting(&reader, |uid| uid != "c"),
            1,
            "b only: c is another shard's and probed there, idle is inactive"
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

    fn probed(mut instance: DbInstance) -> DbInstance {
        instance.status = Some(serde_json::from_value(serde_json::json!({"phase": "Ready"})).unwrap());
        instance
    }

    #[test]
    fn another_replicas_untested_instances_count_for_a_while() {
        let (reader, mut writer) = store::<DbInstance>();
        writer.apply_watcher_event(&Event::Apply(instance("theirs", true)));
        let mine = |uid: &str| uid != "theirs";
        let first = FirstTests::default();
        assert_eq!(first.waiting(&reader, mine), 1, "no phase yet");
        writer.apply_watcher_event(&Event::Apply(probed(instance("theirs", true))));
        *first.counted.lock().unwrap() = None;
        assert_eq!(first.waiting(&reader, mine), 0, "probed by its replica");

        writer.apply_watcher_event(&Event::Apply(instance("theirs", true)));
        let long_running = FirstTests {
            started: Instant::now() - OTHERS_WAIT_LIMIT,
            ..FirstTests::default()
        };
        assert_eq!(
            long_running.waiting(&reader, mine),
            0,
            "a shard nobody probes holds nothing back for ever"
        );
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
