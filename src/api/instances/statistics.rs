//! Fleet-wide counts (`GET /instances/statistics`, SPEC §3.5): pure.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::envelope::format_time;
use crate::crd::DbInstance;
use crate::observe::freshness;

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
pub fn statistics_of(instances: &[Arc<DbInstance>], now: Timestamp) -> Statistics {
    let mut stats = Statistics::default();
    let mut tags: BTreeMap<String, usize> = BTreeMap::new();
    let (mut connection, mut capacity, mut accounts) = (None::<Timestamp>, None::<Timestamp>, None::<Timestamp>);
    for instance in instances {
        if instance.is_recycled() {
            stats.recycled += 1;
            continue;
        }
        stats.total += 1;
        if instance.spec.is_active {
            stats.active += 1
        } else {
            stats.inactive += 1
        }
        *stats
            .by_db_type
            .entry(instance.spec.db_type.as_str().into())
            .or_default() += 1;
        *stats.by_status.entry(instance.phase().name().into()).or_default() += 1;
        if !freshness::overdue(instance, now).is_empty() {
            stats.stale += 1;
        }
        for tag in &instance.spec.tags {
            *tags.entry(tag.clone()).or_default() += 1;
        }
        let Some(status) = instance.status.as_ref() else {
            continue;
        };
        if let Some(c) = &status.connection {
            if let Some(version) = &c.server_version {
                *stats.by_version.entry(version.clone()).or_default() += 1;
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
    use super::super::fixtures::fleet;
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
}
