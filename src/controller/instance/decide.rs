//! What one reconcile of a DbInstance does, decided without I/O: the
//! executor in `mod.rs` gathers the facts, asks [`step`] what kind of
//! reconcile this is, resolves the credentials for an active instance, asks
//! [`probes`] what to run, runs it, and hands the results to `fold`.

use std::time::{Duration, SystemTime};

use crate::crd::{DbInstance, DbInstanceStatus};
use crate::ids;
use crate::observe::credentials::{Credentials, CredentialsError};
use crate::observe::plan::{self, Ops, Periods, Schedule};
use crate::observe::{self, ProbeRun, Requests, status};

/// How soon an instance whose Secret is missing or unlabelled is looked at
/// again. Such a Secret is outside the labelled watch, so nothing else wakes
/// the instance when it appears unlabelled; labelling it wakes it at once.
pub(super) const UNWATCHED_SECRET_RECHECK: Duration = Duration::from_secs(300);

/// What the first decision looks at.
pub(super) struct Facts<'a> {
    pub instance: &'a DbInstance,
    /// This replica holds the instance's shard.
    pub owned: bool,
    /// This replica holds the leader Lease (ids are the leader's job).
    pub leads: bool,
    /// The resourceVersion of this controller's last status write.
    pub written_version: Option<&'a str>,
    pub now: SystemTime,
    /// How long a recycled instance is kept.
    pub retention: Duration,
}

/// What kind of reconcile this is.
#[derive(Debug, PartialEq)]
pub(super) enum Step {
    /// Nothing to do here until the instance changes: another replica
    /// holds its shard.
    AwaitChange,
    /// The cache is behind this controller's own last write: deciding from
    /// it would undo that write. Look again shortly
    /// ([`CACHE_BEHIND_RECHECK`]).
    CacheBehind,
    /// No id yet: assign one, then decide again on the object as stored.
    AssignId,
    /// Recycled without a (valid) date, e.g. labelled by hand: stamp one,
    /// so the retention starts now (`crd::recycle` says why).
    StampRecycledAt,
    /// Recycled, and kept for the whole retention: delete for good.
    DeleteForGood,
    /// Recycled or inactive: never probed. Write `status` if it differs
    /// from the stored one; look again after `requeue` (`None`: on change).
    Settle {
        status: Box<DbInstanceStatus>,
        requeue: Option<Duration>,
    },
    /// Active: resolve the credentials and see which probes are due.
    Probe,
}

/// Whether this replica has anything to do with `instance`: it holds the
/// instance's shard, or the instance needs an id and this replica leads
/// (ids are the leader's job whoever holds the shard).
pub(super) fn concerns_this_replica(instance: &DbInstance, owned: bool, leads: bool) -> bool {
    owned || (leads && ids::id_of(&instance.metadata).is_none())
}

pub(super) fn step(facts: &Facts) -> Step {
    let instance = facts.instance;
    if !concerns_this_replica(instance, facts.owned, facts.leads) {
        return Step::AwaitChange;
    }
    if ids::id_of(&instance.metadata).is_none() {
        return Step::AssignId;
    }
    if !facts.owned {
        return Step::AwaitChange;
    }
    if let Some(written) = facts.written_version
        && !observe::version_reached(instance.metadata.resource_version.as_deref(), written)
    {
        return Step::CacheBehind;
    }
    let previous = instance.status.clone().unwrap_or_default();
    let generation = instance.metadata.generation;
    if instance.is_recycled() {
        let Some(recycled_at) = instance.recycled_at().map(SystemTime::from) else {
            return Step::StampRecycledAt;
        };
        let retained_until = recycled_at + facts.retention;
        if facts.now >= retained_until {
            return Step::DeleteForGood;
        }
        let status = status::recycled(&previous, facts.now, generation, recycled_at, retained_until);
        let left = retained_until.duration_since(facts.now).unwrap_or_default();
        return Step::Settle {
            status: Box::new(status),
            requeue: Some(left.max(Duration::from_secs(1))),
        };
    }
    if !instance.spec.is_active {
        return Step::Settle {
            status: Box::new(status::inactive(&previous, facts.now, generation)),
            requeue: None,
        };
    }
    Step::Probe
}

/// How soon an instance whose cache was behind this controller's own write
/// is looked at again. The cache catches up within moments, and the event
/// that brought it here may carry a request the last decision did not see
/// (the write's own echo, status only, does not wake the reconcile: see
/// `changes_that_matter`).
pub(super) const CACHE_BEHIND_RECHECK: Duration = Duration::from_secs(1);

/// What the probe decision of an active instance looks at.
pub(super) struct ProbeFacts<'a> {
    pub instance: &'a DbInstance,
    pub uid: &'a str,
    pub credentials: Result<&'a Credentials, &'a CredentialsError>,
    /// The schedule this controller remembers, if any.
    pub schedule: Option<Schedule>,
    pub requests: &'a Requests,
    pub now: SystemTime,
    /// Instances of this process still wait for their first connection
    /// test (periodic collections wait for them).
    pub first_tests_waiting: bool,
}

/// The probes of one reconcile.
#[derive(Debug, PartialEq)]
pub(super) enum Probes {
    /// No login to try: look again after `requeue` (`None`: on change, as
    /// the labelled-Secret watch brings it back).
    NoLogin { requeue: Option<Duration> },
    /// Run `ops` (maybe none) with the login.
    Due(DueProbes),
}

/// How soon an instance whose collections wait for the fleet's first tests
/// looks again if nothing wakes it first (the instance controller wakes
/// every held instance once the first tests are done).
pub(super) const HELD_RECHECK: Duration = Duration::from_secs(30);

#[derive(Debug, PartialEq)]
pub(super) struct DueProbes {
    pub ops: Ops,
    /// Due probes that wait for the fleet's first tests.
    pub held: Ops,
    /// The schedule the decision was made on (`None`: never probed).
    pub schedule: Option<Schedule>,
    /// Fingerprint of what the probes depend on (generation, Secrets).
    pub inputs: String,
    pub periods: Periods,
    pub jitter: f64,
}

pub(super) fn probes(facts: ProbeFacts) -> Probes {
    let credentials = match facts.credentials {
        Err(error) if error.is_about_an_unwatched_secret() => {
            return Probes::NoLogin {
                requeue: Some(UNWATCHED_SECRET_RECHECK),
            };
        }
        Err(_) => return Probes::NoLogin { requeue: None },
        Ok(credentials) => credentials,
    };
    let instance = facts.instance;
    let previous = instance.status.clone().unwrap_or_default();
    let inputs = observe::inputs_fingerprint(instance, Some(credentials));
    let periods = Periods::from(&instance.spec.intervals);
    let jitter = plan::jitter_fraction(facts.uid);
    let schedule = facts
        .schedule
        .or_else(|| Schedule::taken_over(&previous, &inputs, facts.now, &periods, jitter));
    let mut ops = plan::due(
        facts.now,
        schedule.as_ref(),
        &inputs,
        facts.requests,
        &previous.handled_requests,
        &periods,
        jitter,
    );
    let mut held = Ops::default();
    if let Some(schedule) = schedule.as_ref()
        && facts.first_tests_waiting
    {
        let going = plan::hold_for_first_tests(
            ops,
            facts.now,
            schedule,
            &inputs,
            &periods,
            facts.requests,
            &previous.handled_requests,
        );
        held = Ops {
            connection: ops.connection && !going.connection,
            capacity: ops.capacity && !going.capacity,
            accounts: ops.accounts && !going.accounts,
        };
        ops = going;
    }
    Probes::Due(DueProbes {
        ops,
        held,
        schedule,
        inputs,
        periods,
        jitter,
    })
}

/// When probes ran, and whether their login worked (`None`: no login
/// was tried).
#[derive(Clone, Copy, Debug)]
pub(super) struct Ran {
    pub at: SystemTime,
    pub connected: Option<bool>,
}

impl Ran {
    pub(super) fn of(run: &ProbeRun) -> Ran {
        Ran {
            at: run.at,
            connected: run.connected(),
        }
    }
}

impl DueProbes {
    /// The schedule after the probes ran (`None`: nothing ran), for a
    /// controller holding `fleet_size` instances, and how long until the
    /// next probe is due at `now`. A failed login brings the next
    /// connection test forward (`plan::retry_period`).
    pub(super) fn next(self, ran: Option<Ran>, fleet_size: usize, now: SystemTime) -> (Schedule, Duration) {
        let mut schedule = self.schedule;
        if let Some(Ran { at, .. }) = ran {
            match schedule.as_mut() {
                Some(schedule) => schedule.ran(self.ops, at, &self.inputs),
                None => {
                    let window = plan::first_collections_window(fleet_size);
                    schedule = Some(Schedule::after_first_test(
                        at,
                        &self.inputs,
                        &self.periods,
                        self.jitter,
                        window,
                    ));
                }
            }
        }
        let mut schedule = schedule.unwrap_or_default();
        if let Some(ran) = ran {
            schedule.connected(ran.connected);
        }
        let requeue = if self.held.any() {
            // Woken when the first tests are done; until then only what is
            // not held brings the next reconcile forward.
            plan::next_due_in_except(now, &schedule, &self.periods, self.jitter, self.held).min(HELD_RECHECK)
        } else {
            plan::next_due_in(now, &schedule, &self.periods, self.jitter)
        };
        (schedule, requeue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::credentials;
    use k8s_openapi::api::core::v1::Secret;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;
    const DAY: Duration = Duration::from_secs(86_400);

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    /// Probes that ran at `seconds` and logged in.
    fn ran_at(seconds: u64) -> Ran {
        Ran {
            at: at(seconds),
            connected: Some(true),
        }
    }

    /// An active, owned PostgreSQL instance with id 7, merged with `extra`.
    fn instance(extra: serde_json::Value) -> DbInstance {
        let mut base = json!({
            "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInstance",
            "metadata": {"name": "orders", "namespace": "team", "uid": "u-1", "resourceVersion": "10",
                         "generation": 1, "labels": {"dbfleet.io/id": "7"}},
            "spec": {"dbType": "postgresql", "host": "db.internal", "port": 5432,
                     "credentialsSecretRef": {"name": "login"}},
        });
        merge(&mut base, extra);
        serde_json::from_value(base).unwrap()
    }

    fn merge(base: &mut serde_json::Value, extra: serde_json::Value) {
        match (base, extra) {
            (serde_json::Value::Object(base), serde_json::Value::Object(extra)) => {
                for (key, value) in extra {
                    match base.get_mut(&key) {
                        Some(slot) if value.is_object() => merge(slot, value),
                        _ => {
                            base.insert(key, value);
                        }
                    }
                }
            }
            (slot, value) => *slot = value,
        }
    }

    fn facts(instance: &DbInstance) -> Facts<'_> {
        Facts {
            instance,
            owned: true,
            leads: true,
            written_version: None,
            now: at(NOW),
            retention: 30 * DAY,
        }
    }

    fn recycled_at(seconds: u64) -> serde_json::Value {
        let stamp = k8s_openapi::jiff::Timestamp::from_second(seconds as i64)
            .unwrap()
            .to_string();
        json!({"metadata": {"labels": {"dbfleet.io/recycled": "true"},
                            "annotations": {"dbfleet.io/recycled-at": stamp}}})
    }

    #[test]
    fn a_new_instance_gets_an_id_from_the_leader_first() {
        let mut new = instance(json!({}));
        new.metadata.labels = None;
        assert_eq!(step(&facts(&new)), Step::AssignId);
        // The leader assigns ids even for shards it does not hold.
        assert_eq!(
            step(&Facts {
                owned: false,
                ..facts(&new)
            }),
            Step::AssignId
        );
        // Neither leader nor owner: someone else's.
        assert_eq!(
            step(&Facts {
                owned: false,
                leads: false,
                ..facts(&new)
            }),
            Step::AwaitChange
        );
    }

    #[test]
    fn an_instance_of_another_shard_waits() {
        let known = instance(json!({}));
        assert_eq!(
            step(&Facts {
                owned: false,
                ..facts(&known)
            }),
            Step::AwaitChange
        );
    }

    #[test]
    fn a_cache_behind_our_own_write_waits_for_it() {
        let known = instance(json!({}));
        let behind = Facts {
            written_version: Some("11"),
            ..facts(&known)
        };
        assert_eq!(step(&behind), Step::CacheBehind);

        let caught_up = Facts {
            written_version: Some("10"),
            ..facts(&known)
        };
        assert_eq!(step(&caught_up), Step::Probe);
    }

    #[test]
    fn the_recycle_bin_stamps_keeps_and_deletes() {
        let unstamped = instance(json!({"metadata": {"labels": {"dbfleet.io/recycled": "true"}}}));
        assert_eq!(step(&facts(&unstamped)), Step::StampRecycledAt);

        let expired = instance(recycled_at(NOW - 31 * 86_400));
        assert_eq!(step(&facts(&expired)), Step::DeleteForGood);

        let kept = instance(recycled_at(NOW - 86_400));
        match step(&facts(&kept)) {
            Step::Settle { status, requeue } => {
                assert_eq!(status.phase, Some(crate::crd::instance::Phase::Recycled));
                assert_eq!(requeue, Some(29 * DAY));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_inactive_instance_settles_until_it_changes() {
        let inactive = instance(json!({"spec": {"isActive": false}}));
        match step(&facts(&inactive)) {
            Step::Settle { status, requeue } => {
                assert_eq!(status.phase, Some(crate::crd::instance::Phase::Inactive));
                assert_eq!(requeue, None);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(step(&facts(&instance(json!({})))), Step::Probe);
    }

    fn login() -> Secret {
        serde_json::from_value(json!({
            "metadata": {"name": "login", "resourceVersion": "3", "labels": {"dbfleet.io/credential": "true"}},
            "stringData": {"username": "monitor", "password": "hunter2"},
        }))
        .unwrap()
    }

    fn resolve(instance: &DbInstance, secret: Option<Secret>) -> Result<Credentials, CredentialsError> {
        credentials::resolve(&instance.spec, |name| {
            secret.clone().filter(|s| s.metadata.name.as_deref() == Some(name))
        })
    }

    fn probe_facts<'a>(
        instance: &'a DbInstance,
        credentials: &'a Result<Credentials, CredentialsError>,
        requests: &'a Requests,
    ) -> ProbeFacts<'a> {
        ProbeFacts {
            instance,
            uid: "u-1",
            credentials: credentials.as_ref(),
            schedule: None,
            requests,
            now: at(NOW),
            first_tests_waiting: false,
        }
    }

    #[test]
    fn without_a_login_nothing_runs() {
        let known = instance(json!({}));
        let requests = Requests::default();
        // Missing: outside the labelled watch, so looked at again later.
        let missing = resolve(&known, None);
        assert_eq!(
            probes(probe_facts(&known, &missing, &requests)),
            Probes::NoLogin {
                requeue: Some(UNWATCHED_SECRET_RECHECK)
            }
        );
        // Unlabelled: the same.
        let mut unlabelled = login();
        unlabelled.metadata.labels = None;
        let unlabelled = resolve(&known, Some(unlabelled));
        assert!(matches!(
            probes(probe_facts(&known, &unlabelled, &requests)),
            Probes::NoLogin { requeue: Some(_) }
        ));
        // A host the Secret does not allow: the Secret is watched, its
        // change brings the instance back.
        let mut pinned = login();
        pinned.metadata.annotations =
            Some([("dbfleet.io/allowed-hosts".to_string(), "other.internal".to_string())].into());
        let refused = resolve(&known, Some(pinned));
        assert_eq!(refused.as_ref().unwrap_err().reason(), "HostNotAllowed");
        assert_eq!(
            probes(probe_facts(&known, &refused, &requests)),
            Probes::NoLogin { requeue: None }
        );
    }

    fn due(facts: ProbeFacts) -> DueProbes {
        match probes(facts) {
            Probes::Due(due) => due,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_new_instance_tests_its_connection_alone_then_spreads_its_collections() {
        let new = instance(json!({}));
        let credentials = resolve(&new, Some(login()));
        let requests = Requests::default();
        let first = due(probe_facts(&new, &credentials, &requests));
        assert_eq!(first.ops, Ops::CONNECTION);
        assert_eq!(first.schedule, None);
        let (schedule, requeue) = first.next(Some(ran_at(NOW)), 1_000, at(NOW));
        assert_eq!(schedule.connection, Some(at(NOW)));
        // 1,000 instances spread their first collections over 10 s.
        assert!(requeue <= Duration::from_secs(10), "{requeue:?}");
    }

    #[test]
    fn a_failed_login_brings_the_next_connection_test_forward() {
        let new = instance(json!({"spec": {"intervals": {"connection": "5m", "capacity": "1h", "accounts": "1h"}}}));
        let credentials = resolve(&new, Some(login()));
        let requests = Requests::default();
        let refused = Ran {
            at: at(NOW),
            connected: Some(false),
        };
        let (schedule, requeue) = due(probe_facts(&new, &credentials, &requests)).next(Some(refused), 1, at(NOW));
        assert_eq!(schedule.connection_failures, 1);
        assert!(requeue <= Duration::from_secs(11), "{requeue:?}");
        // Failing again doubles the wait; a success ends the backoff.
        let facts = ProbeFacts {
            schedule: Some(schedule),
            now: at(NOW + 11),
            ..probe_facts(&new, &credentials, &requests)
        };
        let again = Ran {
            at: at(NOW + 11),
            connected: Some(false),
        };
        let (schedule, requeue) = due(facts).next(Some(again), 1, at(NOW + 11));
        assert_eq!(schedule.connection_failures, 2);
        assert!(
            requeue > Duration::from_secs(19) && requeue <= Duration::from_secs(22),
            "{requeue:?}"
        );
        let facts = ProbeFacts {
            schedule: Some(schedule),
            now: at(NOW + 40),
            ..probe_facts(&new, &credentials, &requests)
        };
        let (schedule, _) = due(facts).next(Some(ran_at(NOW + 40)), 1, at(NOW + 40));
        assert_eq!(schedule.connection_failures, 0);
    }

    #[test]
    fn each_probe_runs_when_its_period_passed() {
        let known = instance(json!({"spec": {"intervals": {"connection": "60s", "capacity": "1h", "accounts": "1h"}}}));
        let credentials = resolve(&known, Some(login()));
        let requests = Requests::default();
        let inputs = observe::inputs_fingerprint(&known, credentials.as_ref().ok());
        let ran = |seconds_ago: u64| Some(at(NOW - seconds_ago));
        let with = |connection, capacity, accounts| ProbeFacts {
            schedule: Some(Schedule {
                inputs: Some(inputs.clone()),
                connection,
                capacity,
                accounts,
                connection_failures: 0,
            }),
            ..probe_facts(&known, &credentials, &requests)
        };
        assert_eq!(due(with(ran(10), ran(10), ran(10))).ops, Ops::default());
        assert_eq!(due(with(ran(100), ran(10), ran(10))).ops, Ops::CONNECTION);
        let collections = due(with(ran(10), ran(4000), ran(4000))).ops;
        assert!(!collections.connection && collections.capacity && collections.accounts);
        // Nothing due: come back when the first one is.
        let (_, requeue) = due(with(ran(10), ran(10), ran(10))).next(None, 1, at(NOW));
        assert!(
            requeue > Duration::from_secs(40) && requeue <= Duration::from_secs(60),
            "{requeue:?}"
        );
    }

    #[test]
    fn changed_inputs_run_everything() {
        let known = instance(json!({}));
        let credentials = resolve(&known, Some(login()));
        let requests = Requests::default();
        let facts = ProbeFacts {
            schedule: Some(Schedule {
                inputs: Some("g0/s1".into()),
                connection: Some(at(NOW)),
                capacity: Some(at(NOW)),
                accounts: Some(at(NOW)),
                connection_failures: 0,
            }),
            ..probe_facts(&known, &credentials, &requests)
        };
        assert_eq!(due(facts).ops, Ops::ALL);
    }

    #[test]
    fn a_request_annotation_runs_its_probe_even_while_first_tests_wait() {
        let known = instance(json!({"metadata": {"annotations": {"dbfleet.io/sync-accounts-requested-at": "42"}}}));
        let credentials = resolve(&known, Some(login()));
        let requests = Requests::from_annotations(known.metadata.annotations.as_ref());
        let inputs = observe::inputs_fingerprint(&known, credentials.as_ref().ok());
        let long_ago = Some(at(NOW - 10 * 86_400));
        let facts = ProbeFacts {
            schedule: Some(Schedule {
                inputs: Some(inputs),
                connection: Some(at(NOW)),
                capacity: long_ago,
                accounts: long_ago,
                connection_failures: 0,
            }),
            first_tests_waiting: true,
            ..probe_facts(&known, &credentials, &requests)
        };
        let due = due(facts);
        // The overdue capacity waits for the fleet's first tests; the
        // requested accounts sync does not.
        assert!(
            due.ops.accounts && !due.ops.capacity && !due.ops.connection,
            "{:?}",
            due.ops
        );
        assert_eq!(due.held, Ops::CAPACITY);
        // It waits to be woken, not polling every second: only the
        // connection test (due in 60 s) or the fallback bring it back.
        let (_, requeue) = due.next(Some(ran_at(NOW)), 1, at(NOW));
        assert_eq!(requeue, HELD_RECHECK);
    }

    #[test]
    fn a_second_round_of_tests_waits_for_the_fleets_first_tests() {
        let known = instance(json!({}));
        let credentials = resolve(&known, Some(login()));
        let requests = Requests::default();
        let inputs = observe::inputs_fingerprint(&known, credentials.as_ref().ok());
        let tested = Schedule {
            inputs: Some(inputs),
            connection: Some(at(NOW - 90)),
            capacity: Some(at(NOW - 90)),
            accounts: Some(at(NOW - 90)),
            connection_failures: 0,
        };
        let decide = |first_tests_waiting| {
            due(ProbeFacts {
                schedule: Some(tested.clone()),
                first_tests_waiting,
                ..probe_facts(&known, &credentials, &requests)
            })
        };
        // Its 60 s period is over, but other instances have not had a first
        // test yet: it waits to be woken (or 30 s), within its second period.
        let waiting = decide(true);
        assert_eq!((waiting.ops, waiting.held), (Ops::default(), Ops::CONNECTION));
        let (_, requeue) = waiting.next(None, 1, at(NOW));
        assert_eq!(requeue, HELD_RECHECK);
        assert_eq!(decide(false).ops, Ops::CONNECTION);
    }
}
