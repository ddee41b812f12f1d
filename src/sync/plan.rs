//! What is due when: pure scheduling decisions for an instance's probes.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use crate::crd::instance::{Intervals, ProbeRecord, ProbeSchedule};
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
        let defaults = Intervals::default();
        let parse = |text: &str, default: &str| {
            let parsed = kube::core::Duration::from_str(text).or_else(|_| kube::core::Duration::from_str(default));
            Duration::from(parsed.expect("default intervals parse")).max(Duration::from_secs(1))
        };
        Periods {
            connection: parse(&intervals.connection, &defaults.connection),
            capacity: parse(&intervals.capacity, &defaults.capacity),
            accounts: parse(&intervals.accounts, &defaults.accounts),
        }
    }
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

/// The probes due at `now`.
pub fn due(
    now: SystemTime,
    schedule: Option<&ProbeSchedule>,
    inputs: &str,
    requests: &Requests,
    periods: &Periods,
    jitter: f64,
) -> Ops {
    let Some(schedule) = schedule else { return Ops::ALL };
    if schedule.inputs.as_deref() != Some(inputs) {
        return Ops::ALL;
    }
    let one = |record: &ProbeRecord, request: &Option<String>, period: Duration| {
        let requested = request.is_some() && request != &record.handled_request;
        requested || next_at(record, period, jitter).is_none_or(|at| at <= now)
    };
    Ops {
        connection: one(&schedule.connection, &requests.connection, periods.connection),
        capacity: one(&schedule.capacity, &requests.capacity, periods.capacity),
        accounts: one(&schedule.accounts, &requests.accounts, periods.accounts),
    }
}

/// How long until the next probe is due (at least one second).
pub fn next_due_in(now: SystemTime, schedule: &ProbeSchedule, periods: &Periods, jitter: f64) -> Duration {
    [
        next_at(&schedule.connection, periods.connection, jitter),
        next_at(&schedule.capacity, periods.capacity, jitter),
        next_at(&schedule.accounts, periods.accounts, jitter),
    ]
    .into_iter()
    .map(|at| at.map_or(Duration::ZERO, |at| at.duration_since(now).unwrap_or(Duration::ZERO)))
    .min()
    .unwrap_or(Duration::ZERO)
    .max(Duration::from_secs(1))
}

fn next_at(record: &ProbeRecord, period: Duration, jitter: f64) -> Option<SystemTime> {
    let last: SystemTime = record.attempted_at.as_ref()?.0.into();
    Some(last + period.mul_f64(1.0 + jitter))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    const T0: u64 = 1_800_000_000;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn record(secs: u64, handled: Option<&str>) -> ProbeRecord {
        ProbeRecord {
            attempted_at: Some(Time(at(secs).try_into().unwrap())),
            handled_request: handled.map(String::from),
        }
    }

    fn schedule() -> ProbeSchedule {
        ProbeSchedule {
            inputs: Some("g1".into()),
            connection: record(T0, None),
            capacity: record(T0, None),
            accounts: record(T0, Some("r1")),
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
    fn everything_is_due_the_first_time_and_when_inputs_change() {
        let none = Requests::default();
        assert_eq!(due(at(T0), None, "g1", &none, &periods(), 0.0), Ops::ALL);
        assert_eq!(
            due(at(T0 + 1), Some(&schedule()), "g2", &none, &periods(), 0.0),
            Ops::ALL
        );
    }

    #[test]
    fn each_probe_follows_its_own_period() {
        let none = Requests::default();
        let s = schedule();
        assert_eq!(due(at(T0 + 59), Some(&s), "g1", &none, &periods(), 0.0), Ops::default());
        assert_eq!(
            due(at(T0 + 60), Some(&s), "g1", &none, &periods(), 0.0),
            Ops {
                connection: true,
                ..Ops::default()
            }
        );
        assert_eq!(
            due(at(T0 + 3600), Some(&s), "g1", &none, &periods(), 0.0),
            Ops {
                connection: true,
                capacity: true,
                accounts: false
            }
        );
        // Jitter delays, never advances.
        assert_eq!(
            due(at(T0 + 63), Some(&s), "g1", &none, &periods(), 0.09),
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
            due(at(T0 + 1), Some(&s), "g1", &requests, &periods(), 0.0),
            Ops {
                accounts: true,
                ..Ops::default()
            }
        );
        let handled = Requests {
            accounts: Some("r1".into()),
            ..Requests::default()
        };
        assert_eq!(
            due(at(T0 + 1), Some(&s), "g1", &handled, &periods(), 0.0),
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
