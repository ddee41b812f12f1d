//! The DbHistory beside an instance (issue 21): when a capacity sample is
//! due, what a new sample or new account changes make of each section, the
//! bounds that keep the object small, and reading and writing it.
//!
//! Each section is bounded by count (samples older than the retention,
//! entries beyond the log's length) and by a byte budget of its own, the
//! oldest dropped first, so the object stays far below the API server's
//! limit whatever the server holds (docs/benchmarks.md, "History size").
//! A section is written with server-side apply under a field manager of
//! its own, only when a sample or an entry is added.

use std::time::{Duration, SystemTime};

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};

use super::status::time;
use crate::crd::history::{
    AccountChange, AccountHistory, CapacityHistory, CapacitySample, MAX_ACCOUNT_CHANGES, MAX_CAPACITY_SAMPLES,
    MAX_SAMPLE_DATABASES, SampledDatabase,
};
use crate::crd::{DbHistory, DbHistorySpec, DbInstance};
use crate::probe::Capacity;

/// How much history is kept, and when a forecast is worth a warning.
#[derive(Clone, Debug, PartialEq)]
pub struct HistorySettings {
    /// One capacity sample per this interval.
    pub sample_interval: Duration,
    /// Samples older than this are dropped.
    pub retention: Duration,
    /// Largest databases listed in each sample.
    pub top_databases: usize,
    /// Account changes kept, newest.
    pub account_entries: usize,
    /// `CapacityOK` is False when the limit is this close.
    pub full_soon: Duration,
    /// Byte budgets of the sections, as serialized JSON.
    pub capacity_budget: usize,
    pub accounts_budget: usize,
}

const DAY: Duration = Duration::from_secs(86_400);

impl Default for HistorySettings {
    fn default() -> Self {
        HistorySettings {
            sample_interval: DAY,
            retention: 90 * DAY,
            top_databases: 10,
            account_entries: 500,
            full_soon: 14 * DAY,
            // 90 daily samples of 10 databases take ~50 KB and 500 changes
            // ~90 KB (docs/benchmarks.md): twice that, and the whole object
            // stays under 400 KiB, far from the 1.5 MiB limit.
            capacity_budget: 128 * 1024,
            accounts_budget: 256 * 1024,
        }
    }
}

/// Whether a sample taken at `at` is due after the newest at `last`. A
/// twentieth of the interval early still counts, so samples taken by
/// collections that run on their own schedule (hourly by default) do not
/// drift a collection later each day.
pub fn sample_due(last: Option<SystemTime>, at: SystemTime, interval: Duration) -> bool {
    let Some(last) = last else { return true };
    at.duration_since(last)
        .is_ok_and(|elapsed| elapsed >= interval - interval / 20)
}

/// The sample a capacity collection gives: the exact totals (not rounded by
/// the inventory's size threshold) and the `top` largest databases.
pub fn sample_of(capacity: &Capacity, at: SystemTime, top: usize) -> CapacitySample {
    let mut largest: Vec<&crate::probe::DatabaseSize> = capacity.databases.iter().collect();
    largest.sort_by(|a, b| b.size_bytes.cmp(&a.size_bytes).then_with(|| a.name.cmp(&b.name)));
    CapacitySample {
        at: time(at),
        total_size_bytes: capacity.total_size_bytes(),
        database_count: u32::try_from(capacity.databases.len()).unwrap_or(u32::MAX),
        databases: largest
            .into_iter()
            .take(top.min(MAX_SAMPLE_DATABASES))
            .map(|d| SampledDatabase {
                name: d.name.clone(),
                size_bytes: d.size_bytes,
            })
            .collect(),
    }
}

/// `history` with `sample` added: samples older than the retention, beyond
/// the schema's cap or over the byte budget dropped, oldest first.
pub fn add_sample(
    history: Option<&CapacityHistory>,
    sample: CapacitySample,
    settings: &HistorySettings,
) -> CapacityHistory {
    let newest = SystemTime::from(sample.at.0);
    let oldest_kept = newest.checked_sub(settings.retention).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut samples: Vec<CapacitySample> = history
        .map(|h| h.samples.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|s| SystemTime::from(s.at.0) >= oldest_kept && SystemTime::from(s.at.0) < newest)
        .collect();
    samples.push(sample);
    let over = samples.len().saturating_sub(MAX_CAPACITY_SAMPLES);
    samples.drain(..over);
    let drop = oldest_over_budget(&samples, settings.capacity_budget);
    samples.drain(..drop);
    CapacityHistory {
        sample_count: count(samples.len()),
        samples,
    }
}

/// `history` with `entries` appended: the oldest beyond the log's length,
/// the schema's cap or the byte budget dropped (and counted).
pub fn add_changes(
    history: Option<&AccountHistory>,
    entries: &[AccountChange],
    settings: &HistorySettings,
) -> AccountHistory {
    let mut log = history.cloned().unwrap_or_default();
    log.entries.extend_from_slice(entries);
    let keep = settings.account_entries.min(MAX_ACCOUNT_CHANGES);
    let mut drop = log.entries.len().saturating_sub(keep);
    drop += oldest_over_budget(&log.entries[drop..], settings.accounts_budget);
    log.entries.drain(..drop);
    log.dropped += drop as u64;
    log.entry_count = count(log.entries.len());
    log
}

/// How many of the oldest `items` must go for the rest to fit `budget`
/// bytes of JSON.
fn oldest_over_budget<T: serde::Serialize>(items: &[T], budget: usize) -> usize {
    let sizes: Vec<usize> = items.iter().map(json_len).collect();
    let mut total: usize = sizes.iter().sum();
    let mut drop = 0;
    while total > budget && drop < sizes.len() {
        total -= sizes[drop];
        drop += 1;
    }
    drop
}

fn json_len<T: serde::Serialize>(item: &T) -> usize {
    serde_json::to_vec(item).map_or(0, |v| v.len() + 1)
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The `(when, total)` points of a capacity history, for the growth fit.
pub fn points(history: &CapacityHistory) -> Vec<(SystemTime, u64)> {
    history
        .samples
        .iter()
        .map(|s| (SystemTime::from(s.at.0), s.total_size_bytes))
        .collect()
}

/// A section of the DbHistory, as one write carries it.
pub enum HistorySection<'a> {
    Capacity(&'a CapacityHistory),
    Accounts(&'a AccountHistory),
}

/// The stored DbHistory of `name`, if any.
pub async fn read_history(api: &Api<DbHistory>, name: &str) -> kube::Result<Option<DbHistorySpec>> {
    Ok(api.get_opt(name).await?.map(|h| h.spec))
}

/// Writes one section of `instance`'s DbHistory by server-side apply under
/// the section's own field manager, so a write never touches the other.
/// Owned by the instance (for clusters with a garbage collector; the
/// controller deletes it itself too).
pub async fn write_history(
    api: &Api<DbHistory>,
    instance: &DbInstance,
    section: HistorySection<'_>,
) -> kube::Result<()> {
    let (manager, field, value) = match section {
        HistorySection::Capacity(c) => ("dbfleet-history-capacity", "capacity", serde_json::to_value(c)),
        HistorySection::Accounts(a) => ("dbfleet-history-accounts", "accounts", serde_json::to_value(a)),
    };
    let mut spec = serde_json::json!({"dbType": instance.spec.db_type.as_str()});
    spec[field] = value.map_err(kube::Error::SerdeError)?;
    let owner: Vec<_> = instance.controller_owner_ref(&()).into_iter().collect();
    let patch = serde_json::json!({
        "apiVersion": "dbfleet.io/v1alpha1",
        "kind": "DbHistory",
        "metadata": {"name": instance.name_any(), "ownerReferences": owner},
        "spec": spec,
    });
    api.patch(
        &instance.name_any(),
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::history::ChangeKind;
    use crate::probe::DatabaseSize;

    fn at(days: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + DAY * days as u32
    }

    fn capacity(sizes: &[(&str, u64)]) -> Capacity {
        Capacity {
            server_version: "16.4".into(),
            databases: sizes
                .iter()
                .map(|(name, size)| DatabaseSize {
                    name: name.to_string(),
                    size_bytes: *size,
                    table_count: Some(1),
                })
                .collect(),
            system_databases: vec![],
            duration: Duration::ZERO,
            collected_at: at(0),
        }
    }

    #[test]
    fn a_sample_is_due_once_per_interval_with_a_little_slack() {
        assert!(sample_due(None, at(0), DAY));
        assert!(!sample_due(Some(at(0)), at(0) + Duration::from_secs(3600), DAY));
        assert!(sample_due(Some(at(0)), at(1) - Duration::from_secs(3600), DAY));
        assert!(
            !sample_due(Some(at(1)), at(0), DAY),
            "a clock that went back takes none"
        );
    }

    #[test]
    fn a_sample_keeps_the_exact_total_and_the_largest_databases() {
        let sample = sample_of(&capacity(&[("a", 10), ("b", 30), ("c", 20), ("d", 30)]), at(0), 2);
        assert_eq!(sample.total_size_bytes, 90);
        assert_eq!(sample.database_count, 4);
        let names: Vec<_> = sample.databases.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["b", "d"]);
    }

    #[test]
    fn samples_older_than_the_retention_go() {
        let settings = HistorySettings {
            retention: 3 * DAY,
            ..HistorySettings::default()
        };
        let mut history = None;
        for day in 0..6 {
            let sample = sample_of(&capacity(&[("a", day)]), at(day), 10);
            history = Some(add_sample(history.as_ref(), sample, &settings));
        }
        let history = history.unwrap();
        let totals: Vec<u64> = history.samples.iter().map(|s| s.total_size_bytes).collect();
        assert_eq!(totals, [2, 3, 4, 5]);
        assert_eq!(history.sample_count, 4);
    }

    #[test]
    fn the_log_keeps_the_newest_entries_and_counts_the_dropped() {
        let settings = HistorySettings {
            account_entries: 3,
            ..HistorySettings::default()
        };
        let entry = |n: usize| AccountChange {
            at: time(at(n as u64)),
            account: format!("user{n}"),
            host: None,
            kind: ChangeKind::AccountAdded,
            database: None,
            privileges: vec![],
        };
        let first = add_changes(None, &[entry(0), entry(1)], &settings);
        let second = add_changes(Some(&first), &[entry(2), entry(3)], &settings);
        let names: Vec<_> = second.entries.iter().map(|e| e.account.as_str()).collect();
        assert_eq!(names, ["user1", "user2", "user3"]);
        assert_eq!((second.dropped, second.entry_count), (1, 3));
    }

    /// The history of a 2,000-account server after 90 days of daily
    /// samples (its 10 largest of 120 databases each) and 500 account
    /// changes, with realistic names: the number in docs/benchmarks.md
    /// ("History size"). Neither section reaches its budget, so nothing
    /// is dropped but the entries beyond 500.
    #[test]
    fn ninety_days_and_five_hundred_changes_stay_far_below_the_limit() {
        let settings = HistorySettings::default();
        let databases: Vec<(String, u64)> = (0..120)
            .map(|i| {
                (
                    format!("tenant_{i:04}_orders_production"),
                    40_000_000_000 + i * 7_919_000,
                )
            })
            .collect();
        let mut samples = None;
        for day in 0..90 {
            let sizes: Vec<(&str, u64)> = databases
                .iter()
                .map(|(n, s)| (n.as_str(), s + day * 123_456_789))
                .collect();
            let sample = sample_of(&capacity(&sizes), at(day), settings.top_databases);
            samples = Some(add_sample(samples.as_ref(), sample, &settings));
        }
        let kinds = ChangeKind::ALL;
        let mut accounts = None;
        for sync in 0..100 {
            let entries: Vec<AccountChange> = (0..6)
                .map(|i| {
                    let n = sync * 6 + i;
                    let kind = kinds[n % kinds.len()];
                    let privileges = matches!(kind, ChangeKind::PrivilegesGained | ChangeKind::PrivilegesLost);
                    AccountChange {
                        at: time(at(sync as u64)),
                        account: format!("svc_billing_reporting_{:04}", n % 2000),
                        host: Some("10.20.%".into()),
                        kind,
                        database: privileges.then(|| format!("tenant_{:04}_orders_production", n % 120)),
                        privileges: if privileges {
                            ["DELETE", "INSERT", "SELECT", "UPDATE"].map(String::from).to_vec()
                        } else {
                            vec![]
                        },
                    }
                })
                .collect();
            accounts = Some(add_changes(accounts.as_ref(), &entries, &settings));
        }
        let (capacity, accounts) = (samples.unwrap(), accounts.unwrap());
        assert_eq!((capacity.samples.len(), accounts.entries.len()), (90, 500));
        assert_eq!(accounts.dropped, 100);
        let history = DbHistory::new(
            "orders-mysql-eu-west-1-primary",
            DbHistorySpec {
                db_type: "mysql".into(),
                capacity: Some(capacity.clone()),
                accounts: Some(accounts.clone()),
            },
        );
        let size = serde_json::to_vec(&history).unwrap().len();
        let (samples, changes) = (json_len(&capacity), json_len(&accounts));
        println!("DbHistory: {size} bytes (capacity {samples}, accounts {changes})");
        assert!(samples < settings.capacity_budget && changes < settings.accounts_budget);
        assert!(size < 256 * 1024, "{size} bytes");
    }

    #[test]
    fn a_section_over_its_byte_budget_drops_its_oldest() {
        let settings = HistorySettings {
            capacity_budget: 1000,
            ..HistorySettings::default()
        };
        let mut history = None;
        for day in 0..50 {
            let sample = sample_of(&capacity(&[("database_with_a_long_name", day)]), at(day), 10);
            history = Some(add_sample(history.as_ref(), sample, &settings));
        }
        let history = history.unwrap();
        assert!(serde_json::to_vec(&history.samples).unwrap().len() <= 1000);
        assert_eq!(history.samples.last().unwrap().total_size_bytes, 49, "the newest stays");
        assert!(history.samples.len() > 3);
    }
}
