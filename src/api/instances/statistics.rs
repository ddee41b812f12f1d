//! Fleet-wide counts (`GET /instances/statistics`, SPEC §3.5): pure.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

use super::growers::GrowthEntry;
use crate::api::envelope::format_time;
use crate::crd::{DbInstance, DbInstanceStatus};
use crate::observe::{freshness, login_check};
use crate::versions;

#[derive(Serialize, ToSchema, Default, Debug, PartialEq)]
pub struct Statistics {
    /// Instances not in the recycle bin.
    pub total: usize,
    pub active: usize,
    pub inactive: usize,
    pub recycled: usize,
    /// Instances whose facts are stale (`stale` on the instance).
    pub stale: usize,
    pub by_db_type: BTreeMap<String, usize>,
    pub by_status: BTreeMap<String, usize>,
    pub by_version: BTreeMap<String, usize>,
    pub total_capacity_bytes: u64,
    pub total_accounts: u64,
    pub tags: Vec<TagCount>,
    pub last_sync: LastSync,
    // What the controller judged of each server's version and of its own
    // login (issue 20), from the `VersionSupported` and `LoginPrivileges`
    // conditions; an instance without the condition counts as `unknown`.
    /// Instances per release line (`by_version` counts exact banners),
    /// with the line's end of life and support state.
    pub versions: Vec<ReleaseCount>,
    /// Instances by support state: `supported`, `ending_soon`,
    /// `end_of_life`, `unknown`.
    pub version_support: BTreeMap<String, usize>,
    /// Instances by what dbfleet's login may do on them:
    /// `least_privilege`, `excess`, `superuser`, `insufficient`,
    /// `unknown`.
    pub login_privileges: BTreeMap<String, usize>,
    // Capacity growth (issue 21), from `status.capacityGrowth` and
    // `CapacityOK`.
    /// The 10 fastest-growing instances, fastest first.
    pub top_growers: Vec<GrowthEntry>,
    /// Instances whose `CapacityOK` is False (full within the
    /// controller's `--capacity-full-soon`).
    pub full_soon_count: usize,
    /// The first 10 of them, soonest full first.
    pub full_soon: Vec<GrowthEntry>,
}

#[derive(Serialize, ToSchema, Debug, PartialEq)]
pub struct ReleaseCount {
    /// `PostgreSQL 15`, `MySQL 8.0`, `MariaDB 10.11`.
    pub release: String,
    pub count: usize,
    /// `YYYY-MM-DD`, when known.
    pub end_of_life: Option<String>,
    /// The most severe support state among its instances.
    pub support: String,
    /// Whether the line has reached its end of life.
    pub is_end_of_life: bool,
}

impl Statistics {
    fn count_judgements(&mut self, status: Option<&DbInstanceStatus>) {
        let reason = |type_: &str| {
            status
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
                .map(|c| c.reason.as_str())
                .unwrap_or_default()
        };
        let support = versions::state_of(reason(versions::VERSION_SUPPORTED));
        count(&mut self.version_support, support);
        let login = login_check::state_of(reason(login_check::LOGIN_PRIVILEGES));
        count(&mut self.login_privileges, login);
        let Some(release) = status.and_then(|s| s.release.as_ref()) else {
            return;
        };
        let severity = |state: &str| {
            ["unknown", "supported", "ending_soon", "end_of_life"]
                .iter()
                .position(|s| *s == state)
        };
        match self.versions.iter_mut().find(|r| r.release == release.line) {
            Some(line) => {
                line.count += 1;
                if severity(support) > severity(&line.support) {
                    line.support = support.into();
                    line.is_end_of_life = support == "end_of_life";
                }
            }
            None => self.versions.push(ReleaseCount {
                release: release.line.clone(),
                count: 1,
                end_of_life: release.end_of_life.clone(),
                support: support.into(),
                is_end_of_life: support == "end_of_life",
            }),
        }
    }
}

#[derive(Serialize, ToSchema, Debug, PartialEq)]
pub struct TagCount {
    pub name: String,
    pub count: usize,
}

#[derive(Serialize, ToSchema, Default, Debug, PartialEq)]
pub struct LastSync {
    pub connection_checked_at: Option<String>,
    pub capacity_collected_at: Option<String>,
    pub accounts_synced_at: Option<String>,
}

/// Fleet-wide counts, over instances that are not in the recycle bin, with
/// staleness judged at `now`.
/// One more of `key`, allocating its key only the first time: the walk
/// counts every instance of a large fleet under a handful of keys.
fn count(counts: &mut BTreeMap<String, usize>, key: &str) {
    match counts.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            counts.insert(key.to_string(), 1);
        }
    }
}

pub fn statistics_of(instances: &[Arc<DbInstance>], now: Timestamp) -> Statistics {
    let mut stats = Statistics::default();
    let mut tags: BTreeMap<String, usize> = BTreeMap::new();
    let (mut connection, mut capacity, mut accounts) = (None::<Timestamp>, None::<Timestamp>, None::<Timestamp>);
    let mut live: Vec<&Arc<DbInstance>> = Vec::with_capacity(instances.len());
    for instance in instances {
        if instance.is_recycled() {
            stats.recycled += 1;
            continue;
        }
        live.push(instance);
        stats.total += 1;
        if instance.spec.is_active {
            stats.active += 1
        } else {
            stats.inactive += 1
        }
        count(&mut stats.by_db_type, instance.spec.db_type.as_str());
        count(&mut stats.by_status, instance.phase().name());
        if freshness::is_stale(instance, now) {
            stats.stale += 1;
        }
        for tag in &instance.spec.tags {
            count(&mut tags, tag);
        }
        stats.count_judgements(instance.status.as_ref());
        let Some(status) = instance.status.as_ref() else {
            continue;
        };
        if let Some(c) = &status.connection {
            if let Some(version) = &c.server_version {
                count(&mut stats.by_version, version);
            }
            connection = connection.max(c.last_checked_at.as_ref().map(|t| t.0));
        }
        if let Some(c) = &status.capacity {
            stats.total_capacity_bytes += c.total_size_bytes;
            capacity = capacity.max(Some(c.collected_at.0));
        }
        if let Some(a) = &status.accounts {
            stats.total_accounts += u64::from(a.count);
            accounts = accounts.max(Some(a.synced_at.0));
        }
    }
    (stats.top_growers, stats.full_soon_count, stats.full_soon) = super::growers::rank(&live);
    stats.versions.sort_by(|a, b| a.release.cmp(&b.release));
    stats.tags = tags.into_iter().map(|(name, count)| TagCount { name, count }).collect();
    stats.last_sync = LastSync {
        connection_checked_at: connection.map(format_time),
        capacity_collected_at: capacity.map(format_time),
        accounts_synced_at: accounts.map(format_time),
    };
    stats
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::fixtures::{fleet, instance};
    use super::*;

    #[test]
    fn statistics_leave_the_recycle_bin_out_of_the_totals() {
        let now = Timestamp::now();
        let stats = statistics_of(&fleet(), now);
        assert_eq!(
            (stats.total, stats.active, stats.inactive, stats.recycled),
            (4, 3, 1, 1)
        );
        // Nothing there has a creation time to be overdue from.
        assert_eq!(stats.stale, 0);
        assert_eq!(stats.by_db_type["postgresql"], 2);
        assert_eq!(
            stats.tags,
            vec![
                TagCount {
                    name: "eu".into(),
                    count: 1
                },
                TagCount {
                    name: "prod".into(),
                    count: 2
                }
            ]
        );
    }

    #[test]
    fn instances_never_probed_since_long_ago_count_as_stale() {
        let mut fleet = fleet();
        let mut forgotten = (*fleet[0]).clone();
        forgotten.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2020-01-01T00:00:00Z".parse().unwrap(),
        ));
        fleet.push(Arc::new(forgotten));
        assert_eq!(statistics_of(&fleet, Timestamp::now()).stale, 1);
    }

    #[test]
    fn statistics_count_version_support_and_login_privileges() {
        let judged = |name: &str, id, version: (&str, &str), login: Option<&str>| {
            let mut i = (*instance(name, id, json!({"dbType": "postgresql", "host": "h", "port": 5432}))).clone();
            let condition = |type_: &str, reason: &str| {
                serde_json::from_value(json!({"type": type_, "status": "True", "reason": reason, "message": "",
                    "lastTransitionTime": "2026-12-06T00:00:00Z"}))
                .unwrap()
            };
            let mut status = DbInstanceStatus {
                release: Some(crate::crd::instance::ReleaseStatus {
                    line: version.0.into(),
                    end_of_life: Some("2027-11-11".into()),
                }),
                ..DbInstanceStatus::default()
            };
            status.conditions.push(condition("VersionSupported", version.1));
            if let Some(login) = login {
                status.conditions.push(condition("LoginPrivileges", login));
            }
            i.status = Some(status);
            Arc::new(i)
        };
        let mut instances = fleet();
        instances.push(judged("a", 10, ("PostgreSQL 15", "Supported"), Some("LeastPrivilege")));
        instances.push(judged("b", 11, ("PostgreSQL 15", "EndOfLife"), Some("Superuser")));
        instances.push(judged("c", 12, ("MySQL 8.0", "EndingSoon"), Some("Insufficient")));
        let stats = statistics_of(&instances, Timestamp::now());
        let j = &stats;
        assert_eq!(
            j.version_support,
            BTreeMap::from([
                ("end_of_life".into(), 1),
                ("ending_soon".into(), 1),
                ("supported".into(), 1),
                ("unknown".into(), 4),
            ])
        );
        assert_eq!(j.login_privileges["superuser"], 1);
        assert_eq!(j.login_privileges["insufficient"], 1);
        assert_eq!(j.login_privileges["least_privilege"], 1);
        assert_eq!(j.login_privileges["unknown"], 4, "not checked yet");
        let lines: Vec<(&str, usize, &str, bool)> = j
            .versions
            .iter()
            .map(|r| (r.release.as_str(), r.count, r.support.as_str(), r.is_end_of_life))
            .collect();
        assert_eq!(
            lines,
            [
                ("MySQL 8.0", 1, "ending_soon", false),
                ("PostgreSQL 15", 2, "end_of_life", true)
            ]
        );
        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(
            json["version_support"]["end_of_life"], 1,
            "flattened beside the other counts"
        );
    }
}
