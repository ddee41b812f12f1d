//! Whether an instance's facts are fresh, decided from the stored object
//! alone. A controller cannot report its own death, so whoever reads the
//! object (the façade, at answer time) decides: a probe kind is overdue
//! when its last success is older than twice its interval plus the report
//! interval. That is what a stopped or overloaded controller looks like,
//! and equally a server that stopped answering: either way the facts shown
//! are old.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::crd::DbInstance;
use crate::crd::instance::{ConnectionState, DbInstanceStatus};
use crate::observe::ProbeSettings;
use crate::observe::plan::Periods;

/// The probe kinds, as the façade and the metrics name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProbeKind {
    Connection,
    Capacity,
    Accounts,
}

impl ProbeKind {
    pub const ALL: [ProbeKind; 3] = [ProbeKind::Connection, ProbeKind::Capacity, ProbeKind::Accounts];

    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Connection => "connection",
            ProbeKind::Capacity => "capacity",
            ProbeKind::Accounts => "accounts",
        }
    }
}

/// Whether any probe kind of `instance` is overdue at `now`, as
/// [`overdue`] judges, without listing them: fleet-wide counts ask this of
/// every instance.
pub fn is_stale(instance: &DbInstance, now: Timestamp) -> bool {
    overdue_kinds(instance, now).next().is_some()
}

/// The probe kinds of `instance` whose last success is overdue at `now`.
/// An instance that is not probed (inactive, recycled) is never stale; one
/// never probed successfully counts from its creation.
pub fn overdue(instance: &DbInstance, now: Timestamp) -> Vec<ProbeKind> {
    overdue_kinds(instance, now).collect()
}

fn overdue_kinds(instance: &DbInstance, now: Timestamp) -> impl Iterator<Item = ProbeKind> + '_ {
    // Not probed (inactive, recycled): no kind is ever overdue.
    let kinds = if instance.spec.is_active && !instance.is_recycled() {
        &ProbeKind::ALL[..]
    } else {
        &[]
    };
    let status = instance.status.as_ref();
    let report = status
        .and_then(|s| s.freshness.as_ref())
        .map(|f| Duration::from_secs(f.report_interval_seconds))
        .filter(|d| !d.is_zero())
        .unwrap_or(ProbeSettings::DEFAULT_REPORT_INTERVAL);
    let periods = Periods::from(&instance.spec.intervals);
    let created = instance.metadata.creation_timestamp.as_ref().map(|t| t.0);
    kinds.iter().copied().filter(move |&kind| {
        let Some(since) = status.and_then(|s| last_success(s, kind)).or(created) else {
            return false;
        };
        let allowed = period_of(&periods, kind) * 2 + report;
        now.duration_since(since) > SignedDuration::try_from(allowed).unwrap_or(SignedDuration::MAX)
    })
}

/// When a probe kind last succeeded, as far as the status says. A status
/// written before `freshness` existed still has the collections' times, and
/// a connected instance's last check.
pub fn last_success(status: &DbInstanceStatus, kind: ProbeKind) -> Option<Timestamp> {
    let recorded = status.freshness.as_ref().and_then(|f| {
        match kind {
            ProbeKind::Connection => &f.connection,
            ProbeKind::Capacity => &f.capacity,
            ProbeKind::Accounts => &f.accounts,
        }
        .last_success_at
        .as_ref()
        .map(|t| t.0)
    });
    let older = match kind {
        ProbeKind::Connection => status
            .connection
            .as_ref()
            .filter(|c| c.status == ConnectionState::Connected)
            .and_then(|c| c.last_checked_at.as_ref())
            .map(|t| t.0),
        ProbeKind::Capacity => status.capacity.as_ref().map(|c| c.collected_at.0),
        ProbeKind::Accounts => status.accounts.as_ref().map(|a| a.synced_at.0),
    };
    recorded.max(older)
}

fn period_of(periods: &Periods, kind: ProbeKind) -> Duration {
    match kind {
        ProbeKind::Connection => periods.connection,
        ProbeKind::Capacity => periods.capacity,
        ProbeKind::Accounts => periods.accounts,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    use super::*;
    use crate::crd::instance::{Freshness, ProbeTimes};

    const CREATED: &str = "2026-01-01T00:00:00Z";

    fn at(seconds: i64) -> Timestamp {
        CREATED.parse::<Timestamp>().unwrap() + SignedDuration::from_secs(seconds)
    }

    /// Intervals 60 s, 1 h, 1 h; report interval 600 s when `freshness`.
    fn instance(status: serde_json::Value) -> DbInstance {
        serde_json::from_value(json!({
            "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInstance",
            "metadata": {"name": "a", "namespace": "ns", "creationTimestamp": CREATED},
            "spec": {"dbType": "postgresql", "host": "db", "port": 5432,
                     "intervals": {"connection": "60s", "capacity": "1h", "accounts": "1h"}},
            "status": status,
        }))
        .unwrap()
    }

    fn succeeded(seconds: i64) -> ProbeTimes {
        ProbeTimes {
            last_attempt_at: Some(Time(at(seconds))),
            last_success_at: Some(Time(at(seconds))),
        }
    }

    fn fresh_at(connection: i64, collections: i64, report_seconds: u64) -> DbInstance {
        let mut i = instance(json!({}));
        i.status.as_mut().unwrap().freshness = Some(Freshness {
            connection: succeeded(connection),
            capacity: succeeded(collections),
            accounts: succeeded(collections),
            report_interval_seconds: report_seconds,
        });
        i
    }

    #[test]
    fn a_probe_is_overdue_after_twice_its_interval_plus_the_report_interval() {
        let i = fresh_at(0, 0, 600);
        // Connection: 2 × 60 s + 600 s = 720 s.
        assert!(overdue(&i, at(720)).is_empty());
        assert_eq!(overdue(&i, at(721)), vec![ProbeKind::Connection]);
        // Collections: 2 × 3600 s + 600 s.
        assert_eq!(overdue(&i, at(7800)), vec![ProbeKind::Connection]);
        assert_eq!(overdue(&i, at(7801)), ProbeKind::ALL.to_vec());
    }

    #[test]
    fn the_report_interval_comes_from_the_status() {
        let i = fresh_at(0, 0, 5);
        assert!(overdue(&i, at(125)).is_empty());
        assert_eq!(overdue(&i, at(126)), vec![ProbeKind::Connection]);
    }

    #[test]
    fn a_failing_probe_goes_stale_from_its_last_success_not_its_last_attempt() {
        let mut i = fresh_at(0, 0, 600);
        let freshness = i.status.as_mut().unwrap().freshness.as_mut().unwrap();
        freshness.connection.last_attempt_at = Some(Time(at(1000)));
        assert_eq!(overdue(&i, at(1000)), vec![ProbeKind::Connection]);
    }

    #[test]
    fn never_probed_counts_from_creation() {
        let i = instance(json!({}));
        assert!(overdue(&i, at(700)).is_empty());
        assert_eq!(overdue(&i, at(7801)), ProbeKind::ALL.to_vec());
    }

    #[test]
    fn a_status_from_before_freshness_uses_the_sections_times() {
        let i = instance(json!({
            "connection": {"status": "connected", "lastCheckedAt": "2026-01-01T00:10:00Z"},
            "capacity": {"totalSizeBytes": 1, "databaseCount": 1, "collectedAt": "2026-01-01T00:10:00Z", "durationMs": 1},
        }));
        assert!(overdue(&i, at(600 + 720)).is_empty());
        // Accounts were never synced: they count from creation; capacity
        // from its collection at 600 s.
        assert_eq!(overdue(&i, at(7801)), vec![ProbeKind::Connection, ProbeKind::Accounts]);
        let failed = instance(json!({
            "connection": {"status": "failed", "lastCheckedAt": "2026-01-01T00:10:00Z"},
        }));
        assert_eq!(overdue(&failed, at(721)), vec![ProbeKind::Connection]);
    }

    #[test]
    fn instances_that_are_not_probed_are_never_stale() {
        let mut inactive = fresh_at(0, 0, 600);
        inactive.spec.is_active = false;
        assert!(overdue(&inactive, at(100_000)).is_empty());
        let mut recycled = fresh_at(0, 0, 600);
        recycled
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(crate::crd::keys::RECYCLED_LABEL.into(), "true".into());
        assert!(overdue(&recycled, at(100_000)).is_empty());
    }
}
