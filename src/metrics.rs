//! Prometheus metrics (SPEC §2.5), served at `/metrics`.
//!
//! Labels are bounded: controller, result, probe kind and engine. The
//! per-instance gauges are the exception the inventory asks for (one series
//! per DbInstance, removed when the instance goes away).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::observe::freshness::ProbeKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub controller: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabels {
    pub probe: &'static str,
    pub db_type: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EngineLabels {
    pub db_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SectionLabels {
    pub section: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstanceLabels {
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstanceProbeLabels {
    pub namespace: String,
    pub name: String,
    pub kind: &'static str,
}

/// An instance and one of a fixed set of states (a state set: the current
/// state's series is 1, the others 0).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstanceStateLabels {
    pub namespace: String,
    pub name: String,
    pub state: &'static str,
}

/// An instance and one hygiene finding code with its severity.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstanceFindingLabels {
    pub namespace: String,
    pub name: String,
    pub code: &'static str,
    pub severity: &'static str,
}

/// An instance's engine and release line (an info series: always 1).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstanceReleaseLabels {
    pub namespace: String,
    pub name: String,
    pub db_type: &'static str,
    pub release: String,
}

/// The series the chart's alerts and dashboard read beside the others
/// (issue 21): findings by code, superusers, and the release line.
#[derive(Default)]
struct Hygiene {
    findings: Family<InstanceFindingLabels, Gauge>,
    superusers: Family<InstanceLabels, Gauge>,
    release: Family<InstanceReleaseLabels, Gauge>,
    /// The release series each instance has now, to remove it when the
    /// release changes.
    releases: std::sync::Mutex<std::collections::HashMap<InstanceLabels, InstanceReleaseLabels>>,
}

pub struct Metrics {
    pub registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_duration: Family<ControllerLabels, Histogram>,
    probe_duration: Family<ProbeLabels, Histogram>,
    probe_wait: Histogram,
    instance_up: Family<InstanceLabels, Gauge>,
    capacity_bytes: Family<InstanceLabels, Gauge>,
    accounts: Family<InstanceLabels, Gauge>,
    last_success: Family<InstanceProbeLabels, Gauge>,
    replication_lag: Family<InstanceLabels, Gauge<f64, AtomicU64>>,
    growth: Growth,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<MethodLabels, Histogram>,
    status_writes: Counter,
    logins: Family<EngineLabels, Counter>,
    inventory_writes: Family<SectionLabels, Counter>,
    token_reviews: Family<OutcomeLabels, Counter>,
    judgements: Judgements,
    hygiene: Hygiene,
}

/// The controller's own capacity fit (`status.capacityGrowth`), so alerts
/// and dashboards agree with the API and the `CapacityOK` condition
/// instead of fitting the size again in PromQL.
#[derive(Default)]
struct Growth {
    bytes_per_day: Family<InstanceLabels, Gauge>,
    days_until_full: Family<InstanceLabels, Gauge<f64, AtomicU64>>,
}

/// The end-of-life and login self-check gauges (issue 20).
#[derive(Default)]
struct Judgements {
    version_support: Family<InstanceStateLabels, Gauge>,
    end_of_life: Family<InstanceLabels, Gauge>,
    login_privileges: Family<InstanceStateLabels, Gauge>,
}

impl Judgements {
    fn register(registry: &mut Registry) -> Judgements {
        let judgements = Judgements::default();
        registry.register(
            "instance_version_support",
            "1 for the state of the server's release line (supported, ending_soon, end_of_life, unknown), \
             0 for the others",
            judgements.version_support.clone(),
        );
        registry.register(
            "instance_version_end_of_life_timestamp_seconds",
            "When the server's release line reaches its end of life (start of that day, UTC)",
            judgements.end_of_life.clone(),
        );
        registry.register(
            "instance_login_privileges",
            "1 for what dbfleet's own login may do (least_privilege, excess, superuser, insufficient, unknown), \
             0 for the others",
            judgements.login_privileges.clone(),
        );
        judgements
    }

    fn states(
        family: &Family<InstanceStateLabels, Gauge>,
        labels: &InstanceLabels,
        states: &[&'static str],
        current: Option<&str>,
    ) {
        for &state in states {
            let key = InstanceStateLabels {
                namespace: labels.namespace.clone(),
                name: labels.name.clone(),
                state,
            };
            match current {
                Some(current) => {
                    family.get_or_create(&key).set(i64::from(current == state));
                }
                None => {
                    family.remove(&key);
                }
            }
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("dbfleet");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register("reconcile", "Reconciles by controller and result", reconciles.clone());
        // 1 ms .. ~65 s: a reconcile that probes waits on the database.
        let reconcile_duration = Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 17))
        });
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration",
            reconcile_duration.clone(),
        );
        let probe_duration = Family::<ProbeLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 17))
        });
        registry.register(
            "probe_duration_seconds",
            "Probe latency by probe, engine and result",
            probe_duration.clone(),
        );
        // Time a controller probe waited for a slot of the process-wide
        // budget: a sum that grows faster than the wall clock means the
        // budget, not the databases, bounds the probes.
        let probe_wait = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        registry.register(
            "probe_wait_seconds",
            "Time a controller probe waited for a slot of --max-concurrent-probes",
            probe_wait.clone(),
        );
        let instance_up = Family::<InstanceLabels, Gauge>::default();
        registry.register(
            "instance_up",
            "1 when the last connection test succeeded, else 0",
            instance_up.clone(),
        );
        let capacity_bytes = Family::<InstanceLabels, Gauge>::default();
        registry.register(
            "instance_capacity_bytes",
            "Total size of the instance's databases",
            capacity_bytes.clone(),
        );
        let accounts = Family::<InstanceLabels, Gauge>::default();
        registry.register("instance_accounts", "Accounts on the instance", accounts.clone());
        let last_success = Family::<InstanceProbeLabels, Gauge>::default();
        registry.register(
            "probe_last_success_timestamp_seconds",
            "When each probe kind last succeeded on the instance (Unix time): alert on time() minus this",
            last_success.clone(),
        );
        let replication_lag = Family::<InstanceLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "replication_lag_seconds",
            "A streaming replica's delay behind its source at the last connection test (no series when idle, \
             stopped or not a replica)",
            replication_lag.clone(),
        );
        let growth = Growth::default();
        registry.register(
            "instance_capacity_growth_bytes_per_day",
            "Growth of the instance's total size from the controller's least-squares fit (negative when \
             shrinking); no series with too few samples or a poor fit",
            growth.bytes_per_day.clone(),
        );
        registry.register(
            "instance_capacity_days_until_full",
            "Days until the total size reaches spec.capacity.limitBytes at the fitted rate (0 when it has); \
             no series without a limit, a fit, or growth",
            growth.days_until_full.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "Façade answers by method and status",
            http_requests.clone(),
        );
        // 100 µs .. ~3 s: reads are served from memory.
        let http_duration = Family::<MethodLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 15))
        });
        registry.register(
            "http_request_duration_seconds",
            "Façade answer time by method",
            http_duration.clone(),
        );
        let status_writes = Counter::default();
        registry.register(
            "instance_status_writes",
            "DbInstance status writes (only on change or once per report interval)",
            status_writes.clone(),
        );
        let inventory_writes = Family::<SectionLabels, Counter>::default();
        registry.register(
            "inventory_writes",
            "DbInventory section writes (only when the content changed)",
            inventory_writes.clone(),
        );
        // Logins are what a probe costs the server most (TLS, SCRAM).
        let logins = Family::<EngineLabels, Counter>::default();
        registry.register(
            "database_logins",
            "Logins to inventoried database servers by engine",
            logins.clone(),
        );
        // Each one is a request to the API server on a caller's behalf.
        let token_reviews = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "token_reviews",
            "TokenReviews the façade made, by outcome (authenticated, rejected), and unknown tokens it refused \
             to review for their client (rate_limited)",
            token_reviews.clone(),
        );
        let judgements = Judgements::register(&mut registry);
        let hygiene = Hygiene::default();
        // Bounded by the fixed set of codes: a series per instance and code
        // found, none for a code with no finding.
        registry.register(
            "instance_findings",
            "Hygiene findings of the instance's last account sync, by code and severity (docs/probes.md)",
            hygiene.findings.clone(),
        );
        registry.register(
            "instance_superusers",
            "Superuser-class accounts on the instance at its last account sync",
            hygiene.superusers.clone(),
        );
        registry.register(
            "instance_release",
            "1 for the instance's engine and release line (e.g. 15, 10.11), from its last connection test",
            hygiene.release.clone(),
        );
        Metrics {
            hygiene,
            judgements,
            token_reviews,
            status_writes,
            logins,
            inventory_writes,
            registry,
            reconciles,
            reconcile_duration,
            probe_duration,
            probe_wait,
            instance_up,
            capacity_bytes,
            accounts,
            last_success,
            replication_lag,
            growth,
            http_requests,
            http_duration,
        }
    }
}

impl Metrics {
    pub fn status_written(&self) {
        self.status_writes.inc();
    }

    pub fn token_reviewed(&self, outcome: &'static str) {
        self.token_reviews.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    pub fn inventory_written(&self, section: &'static str) {
        self.inventory_writes.get_or_create(&SectionLabels { section }).inc();
    }

    pub fn reconciled(&self, controller: &'static str, result: &'static str, took: Duration) {
        self.reconciles
            .get_or_create(&ReconcileLabels { controller, result })
            .inc();
        self.reconcile_duration
            .get_or_create(&ControllerLabels { controller })
            .observe(took.as_secs_f64());
    }

    pub fn logged_in(&self, db_type: &'static str, logins: u32) {
        self.logins
            .get_or_create(&EngineLabels { db_type })
            .inc_by(u64::from(logins));
    }

    pub fn waited_for_probe_slot(&self, took: Duration) {
        self.probe_wait.observe(took.as_secs_f64());
    }

    pub fn probed(&self, probe: &'static str, db_type: &'static str, ok: bool, took: Duration) {
        let result = if ok { "success" } else { "failure" };
        self.probe_duration
            .get_or_create(&ProbeLabels { probe, db_type, result })
            .observe(took.as_secs_f64());
    }

    pub fn instance(
        &self,
        namespace: &str,
        name: &str,
        up: Option<bool>,
        capacity_bytes: Option<u64>,
        accounts: Option<u32>,
    ) {
        let labels = InstanceLabels {
            namespace: namespace.into(),
            name: name.into(),
        };
        match up {
            Some(up) => {
                self.instance_up.get_or_create(&labels).set(i64::from(up));
            }
            None => {
                self.instance_up.remove(&labels);
            }
        }
        if let Some(bytes) = capacity_bytes {
            self.capacity_bytes
                .get_or_create(&labels)
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        if let Some(count) = accounts {
            self.accounts.get_or_create(&labels).set(i64::from(count));
        }
    }

    /// A replica's delay, or no series when there is none to measure.
    pub fn replication_lag(&self, namespace: &str, name: &str, lag: Option<Duration>) {
        let labels = InstanceLabels {
            namespace: namespace.into(),
            name: name.into(),
        };
        match lag {
            Some(lag) => {
                self.replication_lag.get_or_create(&labels).set(lag.as_secs_f64());
            }
            None => {
                self.replication_lag.remove(&labels);
            }
        }
    }

    /// The instance's fitted growth and days until full; what the fit
    /// does not give has no series.
    pub fn capacity_growth(&self, namespace: &str, name: &str, growth: Option<&crate::crd::instance::CapacityGrowth>) {
        let labels = InstanceLabels {
            namespace: namespace.into(),
            name: name.into(),
        };
        match growth.and_then(|g| g.bytes_per_day) {
            Some(rate) => {
                self.growth.bytes_per_day.get_or_create(&labels).set(rate);
            }
            None => {
                self.growth.bytes_per_day.remove(&labels);
            }
        }
        match growth.and_then(|g| g.days_until_full) {
            Some(days) => {
                self.growth.days_until_full.get_or_create(&labels).set(days);
            }
            None => {
                self.growth.days_until_full.remove(&labels);
            }
        }
    }

    pub fn served(&self, method: &str, status: u16, took: Duration) {
        // Only the standard methods become label values, so the set stays small.
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
            _ => "OTHER",
        };
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method.into(),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&MethodLabels { method: method.into() })
            .observe(took.as_secs_f64());
    }

    /// Drops an instance's series once it is deleted.
    pub fn forget_instance(&self, namespace: &str, name: &str) {
        let labels = InstanceLabels {
            namespace: namespace.into(),
            name: name.into(),
        };
        for kind in ProbeKind::ALL {
            self.last_success.remove(&InstanceProbeLabels {
                namespace: labels.namespace.clone(),
                name: labels.name.clone(),
                kind: kind.as_str(),
            });
        }
        self.instance_up.remove(&labels);
        self.capacity_bytes.remove(&labels);
        self.accounts.remove(&labels);
        self.replication_lag.remove(&labels);
        self.capacity_growth(namespace, name, None);
        self.instance_judgements(namespace, name, None, None, None);
        self.instance_findings(namespace, name, None);
        self.instance_accounts_and_release(namespace, name, None, None);
    }

    /// The instance's superuser count and its release line; `None`
    /// removes the series.
    pub fn instance_accounts_and_release(
        &self,
        namespace: &str,
        name: &str,
        superusers: Option<u32>,
        release: Option<(&'static str, &str)>,
    ) {
        let labels = InstanceLabels {
            namespace: namespace.into(),
            name: name.into(),
        };
        let h = &self.hygiene;
        match superusers {
            Some(n) => {
                h.superusers.get_or_create(&labels).set(i64::from(n));
            }
            None => {
                h.superusers.remove(&labels);
            }
        }
        let now = release.map(|(db_type, release)| InstanceReleaseLabels {
            namespace: namespace.into(),
            name: name.into(),
            db_type,
            release: release.into(),
        });
        let mut releases = h.releases.lock().expect("releases lock");
        let before = match &now {
            Some(now) => releases.insert(labels, now.clone()),
            None => releases.remove(&labels),
        };
        if let Some(before) = before.filter(|b| Some(b) != now.as_ref()) {
            h.release.remove(&before);
        }
        if let Some(now) = now {
            h.release.get_or_create(&now).set(1);
        }
    }

    /// The instance's findings by code, from its status; a code without
    /// findings (or an instance without an account sync) has no series.
    pub fn instance_findings(&self, namespace: &str, name: &str, counts: Option<&crate::crd::findings::FindingCounts>) {
        use crate::observe::findings::Code;
        for code in Code::ALL {
            let labels = InstanceFindingLabels {
                namespace: namespace.into(),
                name: name.into(),
                code: code.as_str(),
                severity: code.severity().as_str(),
            };
            let found = counts
                .and_then(|c| c.by_code.iter().find(|n| n.code == code.as_str()))
                .map_or(0, |n| n.count);
            if found > 0 {
                self.hygiene.findings.get_or_create(&labels).set(i64::from(found));
            } else {
                self.hygiene.findings.remove(&labels);
            }
        }
    }

    /// When `kind` last succeeded on the instance (Unix seconds).
    pub fn last_success(&self, namespace: &str, name: &str, kind: ProbeKind, unix_seconds: i64) {
        let labels = InstanceProbeLabels {
            namespace: namespace.into(),
            name: name.into(),
            kind: kind.as_str(),
        };
        self.last_success.get_or_create(&labels).set(unix_seconds);
    }

    /// The instance's `VersionSupported` and `LoginPrivileges` states, and
    /// its end of life as a Unix time; `None` removes the series.
    pub fn instance_judgements(
        &self,
        namespace: &str,
        name: &str,
        version: Option<&str>,
        end_of_life: Option<i64>,
        login: Option<&str>,
    ) {
        let labels = InstanceLabels {
            namespace: namespace.into(),
            name: name.into(),
        };
        let j = &self.judgements;
        Judgements::states(&j.version_support, &labels, &crate::versions::Support::STATES, version);
        Judgements::states(
            &j.login_privileges,
            &labels,
            &crate::observe::login_check::STATES,
            login,
        );
        match end_of_life {
            Some(at) => {
                j.end_of_life.get_or_create(&labels).set(at);
            }
            None => {
                j.end_of_life.remove(&labels);
            }
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    use super::Metrics;
    use crate::crd::instance::CapacityGrowth;

    fn growth(bytes_per_day: Option<i64>, days_until_full: Option<f64>) -> CapacityGrowth {
        CapacityGrowth {
            samples: 8,
            last_sample_at: Time(Timestamp::UNIX_EPOCH),
            last_total_bytes: 1 << 30,
            bytes_per_day,
            r_squared: Some(0.9),
            reason: None,
            limit_bytes: Some(1 << 31),
            days_until_full,
            full_at: None,
        }
    }

    fn series(m: &Metrics) -> Vec<String> {
        m.encode()
            .lines()
            .filter(|l| l.starts_with("dbfleet_instance_capacity_"))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn the_growth_series_follow_the_fit_and_go_when_it_does() {
        let m = Metrics::default();
        m.capacity_growth("ns", "db", Some(&growth(Some(4096), Some(12.5))));
        assert_eq!(
            series(&m),
            [
                r#"dbfleet_instance_capacity_growth_bytes_per_day{namespace="ns",name="db"} 4096"#,
                r#"dbfleet_instance_capacity_days_until_full{namespace="ns",name="db"} 12.5"#,
            ]
        );
        // A poor fit keeps neither; a rate without a limit keeps only the rate.
        m.capacity_growth("ns", "db", Some(&growth(Some(4096), None)));
        assert_eq!(series(&m).len(), 1);
        m.capacity_growth("ns", "db", Some(&growth(None, None)));
        assert!(series(&m).is_empty());
        m.capacity_growth("ns", "db", Some(&growth(Some(1), Some(3.0))));
        m.forget_instance("ns", "db");
        assert!(series(&m).is_empty());
    }
}
