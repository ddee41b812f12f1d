//! What is due when: pure scheduling decisions for an instance's probes.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use crate::crd::DbInstanceStatus;
use crate::crd::instance::{HandledRequests, Intervals};
use crate::crd::keys::{SYNC_ACCOUNTS_REQUESTED_AT, SYNC_CAPACITY_REQUESTED_AT, TEST_CONNECTION_REQUESTED_AT};

/// Which probes to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ops {
    pub connection: bool,
    pub capacity: bool,
    pub accounts: bool,
}

impl Ops {
    pub const CONNECTION: Ops = Ops {
        connection: true,
        capacity: false,
        accounts: false,
    };
    pub const CAPACITY: Ops = Ops {
        connection: false,
        capacity: true,
        accounts: false,
    };
    pub const ACCOUNTS: Ops = Ops {
        connection: false,
        capacity: false,
        accounts: true,
    };
    pub const ALL: Ops = Ops {
        connection: true,
        capacity: true,
        accounts: true,
    };

    pub fn any(self) -> bool {
        self.connection || self.capacity || self.accounts
    }
}

/// A DbSyncSession runs exactly its one operation.
impl From<crate::crd::sync_session::SyncOperation> for Ops {
    fn from(operation: crate::crd::sync_session::SyncOperation) -> Self {
        use crate::crd::sync_session::SyncOperation;
        match operation {
            SyncOperation::Connection => Ops::CONNECTION,
            SyncOperation::Capacity => Ops::CAPACITY,
            SyncOperation::Accounts => Ops::ACCOUNTS,
        }
    }
}

/// The request annotations' values (SPEC §1.1), each asking for one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requests {
    pub connection: Option<String>,
    pub capacity: Option<String>,
    pub accounts: Option<String>,
}

impl Requests {
    pub fn from_annotations(annotations: Option<&BTreeMap<String, String>>) -> Self {
        let get = |key: &str| annotations.and_then(|a| a.get(key)).filter(|v| !v.is_empty()).cloned();
        Requests {
            connection: get(TEST_CONNECTION_REQUESTED_AT),
            capacity: get(SYNC_CAPACITY_REQUESTED_AT),
            accounts: get(SYNC_ACCOUNTS_REQUESTED_AT),
        }
    }
}

/// The spec's intervals as durations. The CRD schema admits only Go
/// durations of at least 1s; anything else falls back to the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Periods {
    pub connection: Duration,
    pub capacity: Duration,
    pub accounts: Duration,
}

impl From<&Intervals> for Periods {
    fn from(intervals: &Intervals) -> Self {
        // Most instances keep the default intervals: those are parsed once,
        // not per instance on every reconcile and every fleet-wide query.
        static DEFAULTS: LazyLock<(Intervals, Periods)> = LazyLock::new(|| {
            let defaults = Intervals::default();
            let parse = |text: &str| parse_period(text).expect("default intervals parse");
            let periods = Periods {
                connection: parse(&defaults.connection),
                capacity: parse(&defaults.capacity),
                accounts: parse(&defaults.accounts),
            };
            (defaults, periods)
        });
        let (texts, defaults) = &*DEFAULTS;
        let period = |text: &str, default_text: &str, default: Duration| {
            if text == default_text {
                default
            } else {
                parse_period(text).unwrap_or(default)
            }
        };
        Periods {
            connection: period(&intervals.connection, &texts.connection, defaults.connection),
            capacity: period(&intervals.capacity, &texts.capacity, defaults.capacity),
            accounts: period(&intervals.accounts, &texts.accounts, defaults.accounts),
        }
    }
}

/// A Go duration of at least one second.
fn parse_period(text: &str) -> Option<Duration> {
    let parsed = kube::core::Duration::from_str(text).ok()?;
    Some(Duration::from(parsed).max(Duration::from_secs(1)))
}

/// A fixed fraction in [0, 0.1) per instance, added to each period so a
/// fleet created at once spreads its probes out instead of firing together.
pub fn jitter_fraction(uid: &str) -> f64 {
    // FNV-1a: stable across processes and releases, unlike std's hasher.
    let hash = uid.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    (hash % 1000) as f64 / 10_000.0
}

/// When each probe of one instance last ran, and on what inputs. Kept in
/// the controller's memory, not in the status: writing it there made every
/// probe a status write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    /// Fingerprint of what the last probes used (spec generation, Secret
    /// versions); when it changes every probe runs at once.
    pub inputs: Option<String>,
    pub connection: Option<SystemTime>,
    pub capacity: Option<SystemTime>,
    pub accounts: Option<SystemTime>,
    /// Logins that failed in a row: the connection test then comes back
    /// sooner than its period ([`retry_period`]).
    pub connection_failures: u32,
}

/// The first retry after a failed login; each further failure doubles it,
/// up to the connection interval.
pub const FIRST_RETRY: Duration = Duration::from_secs(10);

/// The connection test's period after `failures` failed logins in a row:
/// 10 s, 20 s, 40 s, … up to `period`, so a server back from an outage is
/// seen within moments, and one that stays down is not hammered.
pub fn retry_period(failures: u32, period: Duration) -> Duration {
    match failures {
        0 => period,
        n => FIRST_RETRY.saturating_mul(1 << (n - 1).min(16)).min(period),
    }
}

impl Schedule {
    /// Records whether the last login worked (`None`: none was tried).
    pub fn connected(&mut self, connected: Option<bool>) {
        match connected {
            Some(true) => self.connection_failures = 0,
            Some(false) => self.connection_failures = self.connection_failures.saturating_add(1),
            None => {}
        }
    }

    fn connection_period(&self, periods: &Periods) -> Duration {
        retry_period(self.connection_failures, periods.connection)
    }

    /// The schedule a controller assumes for an instance it has not probed
    /// itself (after a restart or a takeover): `None` for an instance never
    /// probed, so it is probed at once; otherwise each probe falls due within
    /// one period, spread by the instance's jitter, or after its period from
    /// the last success the status records.
    pub fn taken_over(
        status: &DbInstanceStatus,
        inputs: &str,
        now: SystemTime,
        periods: &Periods,
        jitter: f64,
    ) -> Option<Schedule> {
        status.connection.as_ref()?;
        let spread = |period: Duration| {
            // Due at now + period * (jitter / 0.1): a fleet taken over at once
            // is probed evenly over one period.
            now.checked_sub(period.mul_f64(1.0 + jitter))
                .map(|t| t + period.mul_f64(jitter * 10.0))
        };
        let last = |at: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>, period| {
            at.map(|t| SystemTime::from(t.0)).or_else(|| spread(period))
        };
        Some(Schedule {
            inputs: Some(inputs.to_string()),
            connection: spread(periods.connection),
            capacity: last(status.capacity.as_ref().map(|c| &c.collected_at), periods.capacity),
            accounts: last(status.accounts.as_ref().map(|a| &a.synced_at), periods.accounts),
            connection_failures: 0,
        })
    }

    /// The schedule after a new instance's first connection test (`due`
    /// runs it alone): its collections fall due within `window`, spread by
    /// the instance's jitter, instead of at once. The controller runtime's
    /// queue keeps no order once it is full, so collections due at once
    /// would mix at random with the connection tests of the rest of a new
    /// fleet and hold back its Ready.
    pub fn after_first_test(
        at: SystemTime,
        inputs: &str,
        periods: &Periods,
        jitter: f64,
        window: Duration,
    ) -> Schedule {
        let due_at = at + window.mul_f64(jitter * 10.0);
        let last = |period: Duration| due_at.checked_sub(period.mul_f64(1.0 + jitter));
        Schedule {
            inputs: Some(inputs.to_string()),
            connection: Some(at),
            capacity: last(periods.capacity),
            accounts: last(periods.accounts),
            connection_failures: 0,
        }
    }

    /// Records that the probes in `ops` ran at `at` on `inputs`.
    pub fn ran(&mut self, ops: Ops, at: SystemTime, inputs: &str) {
        self.inputs = Some(inputs.to_string());
        for (run, last) in [
            (ops.connection, &mut self.connection),
            (ops.capacity, &mut self.capacity),
            (ops.accounts, &mut self.accounts),
        ] {
            if run {
                *last = Some(at);
            }
        }
    }
}

/// The probes due at `now`: those whose period passed, those whose request
/// annotation has a value the status has not answered, and all of them when
/// the inputs changed. An instance never probed gets its connection test
/// alone first, so a new fleet shows what is reachable after one login
/// each; [`Schedule::after_first_test`] says when its collections follow.
pub fn due(
    now: SystemTime,
    schedule: Option<&Schedule>,
    inputs: &str,
    requests: &Requests,
    handled: &HandledRequests,
    periods: &Periods,
    jitter: f64,
) -> Ops {
    let Some(schedule) = schedule else {
        return Ops::CONNECTION;
    };
    if schedule.inputs.as_deref() != Some(inputs) {
        return Ops::ALL;
    }
    let one = |last: Option<SystemTime>, request: &Option<String>, handled: &Option<String>, period: Duration| {
        is_requested(request, handled) || next_at(last, period, jitter).is_none_or(|at| at <= now)
    };
    let capacity = one(
        schedule.capacity,
        &requests.capacity,
        &handled.capacity,
        periods.capacity,
    );
    let accounts = one(
        schedule.accounts,
        &requests.accounts,
        &handled.accounts,
        periods.accounts,
    );
    // While logins fail, any login also tests the connection: a collection
    // that gets in shows the server is back, and the status should say so.
    let retrying = schedule.connection_failures > 0 && (capacity || accounts);
    Ops {
        connection: retrying
            || one(
                schedule.connection,
                &requests.connection,
                &handled.connection,
                schedule.connection_period(periods),
            ),
        capacity,
        accounts,
    }
}

/// A request annotation's value that the status has not answered yet.
fn is_requested(request: &Option<String>, handled: &Option<String>) -> bool {
    request.is_some() && request != handled
}

/// `ops` while instances of this process still wait for their first
/// connection test: first tests, tests after a change of spec or Secret,
/// and requested probes go ahead; periodic collections wait, and so do
/// periodic connection tests, for at most one more period (the caller is
/// woken when the first tests are done). A collection's logins (one per
/// PostgreSQL database) would otherwise hold up other instances' first
/// tests, and so would the fleet's second round of tests once a sweep
/// outlasts the connection interval: a new fleet would become `Ready` only
/// as fast as it is inventoried, or not at all.
pub fn hold_for_first_tests(
    ops: Ops,
    now: SystemTime,
    schedule: &Schedule,
    inputs: &str,
    periods: &Periods,
    requests: &Requests,
    handled: &HandledRequests,
) -> Ops {
    let periodic_test = schedule.inputs.as_deref() == Some(inputs)
        && !is_requested(&requests.connection, &handled.connection)
        && schedule
            .connection
            .is_some_and(|last| now < last + schedule.connection_period(periods) * 2);
    Ops {
        connection: ops.connection && !periodic_test,
        capacity: ops.capacity && is_requested(&requests.capacity, &handled.capacity),
        accounts: ops.accounts && is_requested(&requests.accounts, &handled.accounts),
    }
}

/// The window over which a new fleet's first collections are spread: 10 ms
/// per instance the controller holds, at least 1 s and at most 60 s, so a
/// single new instance is inventoried within a second or so and 1,000 new
/// ones test every connection first.
pub fn first_collections_window(instances: usize) -> Duration {
    (Duration::from_millis(10) * u32::try_from(instances).unwrap_or(u32::MAX))
        .clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// How long until the next probe is due (at least one second).
pub fn next_due_in(now: SystemTime, schedule: &Schedule, periods: &Periods, jitter: f64) -> Duration {
    next_due_in_except(now, schedule, periods, jitter, Ops::default())
}

/// [`next_due_in`], leaving out the probes in `held` (they wait to be woken
/// up: see [`hold_for_first_tests`]); `Duration::MAX` when every probe is held.
pub fn next_due_in_except(now: SystemTime, schedule: &Schedule, periods: &Periods, jitter: f64, held: Ops) -> Duration {
    [
        (!held.connection).then(|| next_at(schedule.connection, schedule.connection_period(periods), jitter)),
        (!held.capacity).then(|| next_at(schedule.capacity, periods.capacity, jitter)),
        (!held.accounts).then(|| next_at(schedule.accounts, periods.accounts, jitter)),
    ]
    .into_iter()
    .flatten()
    .map(|at| at.map_or(Duration::ZERO, |at| at.duration_since(now).unwrap_or(Duration::ZERO)))
    .min()
    .unwrap_or(Duration::MAX)
    .max(Duration::from_secs(1))
}

fn next_at(last: Option<SystemTime>, period: Duration, jitter: f64) -> Option<SystemTime> {
    Some(last? + period.mul_f64(1.0 + jitter))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn held_probes_do_not_bring_the_next_reconcile_forward() {
        let periods = periods();
        let mut schedule = schedule();
        schedule.capacity = None;
        assert_eq!(
            next_due_in(at(T0 + 10), &schedule, &periods, 0.0),
            Duration::from_secs(1)
        );
        let held = Ops::CAPACITY;
        // The connection test, due 60 s after the last one.
        assert_eq!(
            next_due_in_except(at(T0 + 10), &schedule, &periods, 0.0, held),
            Duration::from_secs(50)
        );
        assert_eq!(
            next_due_in_except(at(T0), &schedule, &periods, 0.0, Ops::ALL),
            Duration::MAX
        );
    }

    /// A schedule whose probes all ran at `T0` with inputs "g1".
    fn schedule() -> Schedule {
        Schedule {
            inputs: Some("g1".into()),
            connection: Some(at(T0)),
            capacity: Some(at(T0)),
            accounts: Some(at(T0)),
            connection_failures: 0,
        }
    }

    #[test]
    fn a_failed_login_is_retried_sooner_with_bounded_backoff() {
        let period = Duration::from_secs(300);
        let retries: Vec<u64> = (0..7).map(|n| retry_period(n, period).as_secs()).collect();
        assert_eq!(retries, vec![300, 10, 20, 40, 80, 160, 300]);
        assert_eq!(retry_period(u32::MAX, period), period);
        // Never later than the period itself.
        assert_eq!(retry_period(1, Duration::from_secs(5)), Duration::from_secs(5));

        let periods = periods();
        let mut s = schedule();
        s.connected(Some(false));
        assert_eq!(s.connection_failures, 1);
        let requests = Requests::default();
        let handled = HandledRequests::default();
        let due_at = |secs| due(at(T0 + secs), Some(&s), "g1", &requests, &handled, &periods, 0.0).connection;
        assert!(!due_at(9));
        assert!(due_at(10));
        assert_eq!(next_due_in(at(T0), &s, &periods, 0.0), Duration::from_secs(10));
        // A collection that ran without a login changes nothing; a success
        // ends the backoff.
        s.connected(None);
        assert_eq!(s.connection_failures, 1);
        // A collection due meanwhile tests the connection on its login too.
        let mut collecting = s.clone();
        collecting.capacity = Some(at(T0 - 3600));
        let ops = due(at(T0 + 1), Some(&collecting), "g1", &requests, &handled, &periods, 0.0);
        assert!(ops.connection && ops.capacity);
        s.connected(Some(true));
        assert_eq!(s.connection_failures, 0);
        assert_eq!(next_due_in(at(T0), &s, &periods, 0.0), Duration::from_secs(60));
    }

    fn handled() -> HandledRequests {
        HandledRequests {
            accounts: Some("r1".into()),
            ..HandledRequests::default()
        }
    }

    fn periods() -> Periods {
        Periods::from(&Intervals {
            connection: "60s".into(),
            capacity: "1h".into(),
            accounts: "6h".into(),
        })
    }

    #[test]
    fn periodic_probes_wait_for_first_tests_requested_ones_do_not() {
        let schedule = schedule();
        let hold = |ops, now, requests: &Requests| {
            hold_for_first_tests(ops, now, &schedule, "g1", &periods(), requests, &handled())
        };
        let nothing_asked = Requests::default();
        let none = Ops::default();
        assert_eq!(hold(Ops::ALL, at(T0 + 61), &nothing_asked), none);
        let asked = Requests {
            capacity: Some("r2".into()),
            // Already answered: periodic again.
            accounts: Some("r1".into()),
            ..Requests::default()
        };
        assert_eq!(
            hold(Ops::ALL, at(T0 + 61), &asked),
            Ops {
                connection: false,
                capacity: true,
                accounts: false,
            }
        );
        assert_eq!(hold(none, at(T0 + 61), &asked), none);
        let test_asked = Requests {
            connection: Some("t1".into()),
            ..Requests::default()
        };
        assert_eq!(hold(Ops::ALL, at(T0 + 61), &test_asked), Ops::CONNECTION);
    }

    #[test]
    fn a_periodic_test_waits_at_most_one_more_period_and_never_after_a_change() {
        let schedule = schedule();
        let nothing_asked = Requests::default();
        let hold = |now, inputs| {
            hold_for_first_tests(Ops::ALL, now, &schedule, inputs, &periods(), &nothing_asked, &handled())
        };
        // Due at T0+60 (plus jitter), held until twice the 60 s period.
        assert_eq!(hold(at(T0 + 119), "g1"), Ops::default());
        assert_eq!(hold(at(T0 + 120), "g1"), Ops::CONNECTION);
        // A new spec or Secret is tested at once.
        assert_eq!(hold(at(T0 + 61), "changed"), Ops::CONNECTION);
        // A failing server's retry (10 s) waits at most another 10 s.
        let failing = Schedule {
            connection_failures: 1,
            ..schedule.clone()
        };
        let held = |now| hold_for_first_tests(Ops::ALL, now, &failing, "g1", &periods(), &nothing_asked, &handled());
        assert_eq!(held(at(T0 + 15)), Ops::default());
        assert_eq!(held(at(T0 + 20)), Ops::CONNECTION);
    }

    #[test]
    fn the_connection_is_tested_first_then_everything_is_due() {
        let none = Requests::default();
        assert_eq!(
            due(at(T0), None, "g1", &none, &handled(), &periods(), 0.0),
            Ops::CONNECTION
        );
        let mut first = Schedule::default();
        first.ran(Ops::CONNECTION, at(T0), "g1");
        assert_eq!(
            due(at(T0), Some(&first), "g1", &none, &handled(), &periods(), 0.0),
            Ops {
                connection: false,
                capacity: true,
                accounts: true
            }
        );
    }

    #[test]
    fn a_new_fleets_collections_follow_its_connection_tests() {
        let none = Requests::default();
        let window = first_collections_window(1000);
        assert_eq!(window, Duration::from_secs(10));
        assert_eq!(first_collections_window(3), Duration::from_secs(1));
        assert_eq!(first_collections_window(100_000), Duration::from_secs(60));
        let jitter = 0.05; // half way through the window
        let first = Schedule::after_first_test(at(T0), "g1", &periods(), jitter, window);
        let due_at = |secs| due(at(secs), Some(&first), "g1", &none, &handled(), &periods(), jitter);
        assert_eq!(due_at(T0), Ops::default());
        assert_eq!(due_at(T0 + 4), Ops::default());
        let collections = Ops {
            connection: false,
            capacity: true,
            accounts: true,
        };
        assert_eq!(due_at(T0 + 5), collections);
        assert_eq!(next_due_in(at(T0), &first, &periods(), jitter), Duration::from_secs(5));
    }

    #[test]
    fn everything_is_due_when_inputs_change() {
        let none = Requests::default();
        assert_eq!(
            due(at(T0 + 1), Some(&schedule()), "g2", &none, &handled(), &periods(), 0.0),
            Ops::ALL
        );
    }

    #[test]
    fn each_probe_follows_its_own_period() {
        let none = Requests::default();
        let s = schedule();
        assert_eq!(
            due(at(T0 + 59), Some(&s), "g1", &none, &handled(), &periods(), 0.0),
            Ops::default()
        );
        assert_eq!(
            due(at(T0 + 60), Some(&s), "g1", &none, &handled(), &periods(), 0.0),
            Ops {
                connection: true,
                ..Ops::default()
            }
        );
        assert_eq!(
            due(at(T0 + 3600), Some(&s), "g1", &none, &handled(), &periods(), 0.0),
            Ops {
                connection: true,
                capacity: true,
                accounts: false
            }
        );
        // Jitter delays, never advances.
        assert_eq!(
            due(at(T0 + 63), Some(&s), "g1", &none, &handled(), &periods(), 0.09),
            Ops::default()
        );
    }

    #[test]
    fn a_new_request_annotation_makes_its_probe_due_once() {
        let s = schedule();
        let requests = Requests {
            accounts: Some("r2".into()),
            ..Requests::default()
        };
        assert_eq!(
            due(at(T0 + 1), Some(&s), "g1", &requests, &handled(), &periods(), 0.0),
            Ops {
                accounts: true,
                ..Ops::default()
            }
        );
        let answered = Requests {
            accounts: Some("r1".into()),
            ..Requests::default()
        };
        assert_eq!(
            due(at(T0 + 1), Some(&s), "g1", &answered, &handled(), &periods(), 0.0),
            Ops::default()
        );
    }

    #[test]
    fn the_next_run_is_the_earliest_due_probe() {
        assert_eq!(
            next_due_in(at(T0 + 10), &schedule(), &periods(), 0.0),
            Duration::from_secs(50)
        );
        assert_eq!(
            next_due_in(at(T0 + 100), &schedule(), &periods(), 0.0),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn a_taken_over_instance_is_spread_over_one_period() {
        use crate::crd::instance::{ConnectionState, ConnectionStatus};
        let never = DbInstanceStatus::default();
        assert_eq!(Schedule::taken_over(&never, "g1", at(T0), &periods(), 0.05), None);
        let status = DbInstanceStatus {
            connection: Some(ConnectionStatus {
                status: ConnectionState::Connected,
                last_checked_at: None,
                last_changed_at: None,
                latency_ms: None,
                server_version: None,
                version: None,
                reason: None,
                message: None,
            }),
            ..DbInstanceStatus::default()
        };
        let none = Requests::default();
        let no_handled = HandledRequests::default();
        for jitter in [0.0, 0.03, 0.099] {
            let schedule = Schedule::taken_over(&status, "g1", at(T0), &periods(), jitter).unwrap();
            let wait = next_due_in(at(T0), &schedule, &periods(), jitter);
            // Due at jitter/0.1 of the connection period (at least a second).
            let expected = Duration::from_secs(60)
                .mul_f64(jitter * 10.0)
                .max(Duration::from_secs(1));
            assert!(wait.abs_diff(expected) < Duration::from_millis(5), "{jitter}: {wait:?}");
            let now = due(at(T0), Some(&schedule), "g1", &none, &no_handled, &periods(), jitter);
            assert_eq!(now.capacity, jitter == 0.0, "capacity is spread the same way");
        }
    }

    #[test]
    fn a_run_moves_only_its_own_probes() {
        let mut s = schedule();
        s.ran(Ops::CAPACITY, at(T0 + 100), "g2");
        assert_eq!(s.capacity, Some(at(T0 + 100)));
        assert_eq!(s.connection, Some(at(T0)));
        assert_eq!(s.inputs.as_deref(), Some("g2"));
    }

    #[test]
    fn jitter_is_stable_and_below_ten_percent() {
        let a = jitter_fraction("7d1c-uid");
        assert_eq!(a, jitter_fraction("7d1c-uid"));
        assert!((0.0..0.1).contains(&a));
        assert_ne!(a, jitter_fraction("another-uid"));
    }

    #[test]
    fn bad_or_missing_intervals_fall_back_to_defaults() {
        let periods = Periods::from(&Intervals {
            connection: "soon".into(),
            capacity: "90m".into(),
            accounts: "1h30m".into(),
        });
        assert_eq!(periods.connection, Duration::from_secs(60));
        assert_eq!(periods.capacity, Duration::from_secs(5400));
        assert_eq!(periods.accounts, Duration::from_secs(5400));
    }
}
