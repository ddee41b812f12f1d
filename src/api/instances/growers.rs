//! Which servers grow fastest and which fill up soon, from the growth fit
//! the controller keeps in each instance's status (`status.capacityGrowth`,
//! `CapacityOK`): for `/instances/statistics` and the list's
//! `sort=growth` / `sort=days_until_full`. Pure.

use std::cmp::Ordering;
use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;

use crate::crd::DbInstance;
use crate::ids::id_of;
use crate::observe::growth::CAPACITY_OK;

/// Growers and full-soon instances listed in the statistics.
pub const TOP: usize = 10;

/// One instance's growth, as the statistics list it.
#[derive(Serialize, ToSchema, Debug, PartialEq)]
pub struct GrowthEntry {
    pub id: i64,
    pub name: String,
    pub bytes_per_day: i64,
    pub total_size_bytes: u64,
    pub limit_bytes: Option<u64>,
    /// Days from the newest sample until the limit; null without one.
    pub days_until_full: Option<f64>,
}

/// The fitted growth rate, when there is one.
pub fn bytes_per_day(instance: &DbInstance) -> Option<i64> {
    instance.status.as_ref()?.capacity_growth.as_ref()?.bytes_per_day
}

/// Days until full; never full (no limit, no rate, not growing) is
/// infinitely far.
pub fn days_until_full(instance: &DbInstance) -> f64 {
    instance
        .status
        .as_ref()
        .and_then(|s| s.capacity_growth.as_ref())
        .and_then(|g| g.days_until_full)
        .unwrap_or(f64::INFINITY)
}

pub fn compare_growth(a: &DbInstance, b: &DbInstance) -> Ordering {
    bytes_per_day(a).cmp(&bytes_per_day(b))
}

pub fn compare_days_until_full(a: &DbInstance, b: &DbInstance) -> Ordering {
    days_until_full(a).total_cmp(&days_until_full(b))
}

fn full_soon(instance: &DbInstance) -> bool {
    instance.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == CAPACITY_OK && c.status == "False")
    })
}

fn entry(instance: &DbInstance, id: i64) -> Option<GrowthEntry> {
    let growth = instance.status.as_ref()?.capacity_growth.as_ref()?;
    Some(GrowthEntry {
        id,
        name: instance.metadata.name.clone().unwrap_or_default(),
        bytes_per_day: growth.bytes_per_day?,
        total_size_bytes: growth.last_total_bytes,
        limit_bytes: growth.limit_bytes,
        days_until_full: growth.days_until_full,
    })
}

/// The first [`TOP`] of `keyed` in `key` order, as entries: the fleet is
/// ranked by its keys alone, and only the listed few build an entry.
/// Ties go to the lower id.
fn first<K>(mut keyed: Vec<(K, i64, &DbInstance)>, key: impl Fn(&K, &K) -> Ordering) -> Vec<GrowthEntry> {
    let order = |a: &(K, i64, &DbInstance), b: &(K, i64, &DbInstance)| key(&a.0, &b.0).then(a.1.cmp(&b.1));
    if keyed.len() > TOP {
        keyed.select_nth_unstable_by(TOP - 1, order);
        keyed.truncate(TOP);
    }
    keyed.sort_by(order);
    keyed.into_iter().filter_map(|(_, id, i)| entry(i, id)).collect()
}

/// The [`TOP`] fastest-growing instances (growing at all), fastest first,
/// and those `CapacityOK` says fill up soon, soonest first (all of them
/// counted, the first [`TOP`] listed).
pub fn rank(instances: &[&Arc<DbInstance>]) -> (Vec<GrowthEntry>, usize, Vec<GrowthEntry>) {
    let (mut growing, mut soon, mut count) = (Vec::new(), Vec::new(), 0);
    for instance in instances {
        let instance: &DbInstance = instance;
        let soon_full = full_soon(instance);
        count += usize::from(soon_full);
        let Some(growth) = instance.status.as_ref().and_then(|s| s.capacity_growth.as_ref()) else {
            continue;
        };
        let Some(rate) = growth.bytes_per_day else {
            continue;
        };
        if rate <= 0 && !soon_full {
            continue;
        }
        let Some(id) = id_of(&instance.metadata) else {
            continue;
        };
        if rate > 0 {
            growing.push((rate, id, instance));
        }
        if soon_full {
            soon.push((growth.days_until_full.unwrap_or(0.0), id, instance));
        }
    }
    let fastest = first(growing, |a: &i64, b| b.cmp(a));
    let soonest = first(soon, |a: &f64, b| a.total_cmp(b));
    (fastest, count, soonest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn instance(id: i64, growth: Option<serde_json::Value>, full_soon: bool) -> Arc<DbInstance> {
        let mut status = json!({});
        if let Some(growth) = growth {
            status["capacityGrowth"] = growth;
        }
        if full_soon {
            status["conditions"] = json!([{"type": "CapacityOK", "status": "False", "reason": "FullSoon",
                "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]);
        }
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInstance",
                "metadata": {"name": format!("db{id}"), "namespace": "ns", "labels": {"dbfleet.io/id": id.to_string()}},
                "spec": {"dbType": "postgresql", "host": "h", "port": 5432},
                "status": status,
            }))
            .unwrap(),
        )
    }

    fn growth(rate: Option<i64>, days: Option<f64>) -> serde_json::Value {
        json!({"samples": 9, "lastSampleAt": "2026-01-01T00:00:00Z", "lastTotalBytes": 1000,
            "bytesPerDay": rate, "daysUntilFull": days, "limitBytes": days.map(|_| 5000)})
    }

    #[test]
    fn growers_come_fastest_first_and_full_soon_soonest_first() {
        let fleet = [
            instance(1, Some(growth(Some(10), None)), false),
            instance(2, Some(growth(Some(500), Some(8.0))), true),
            instance(3, Some(growth(Some(-5), None)), false),
            instance(4, Some(growth(None, None)), false),
            instance(5, Some(growth(Some(100), Some(3.5))), true),
            instance(6, None, false),
        ];
        let refs: Vec<&Arc<DbInstance>> = fleet.iter().collect();
        let (growers, count, soon) = rank(&refs);
        let ids = |entries: &[GrowthEntry]| entries.iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(ids(&growers), [2, 5, 1]);
        assert_eq!(count, 2);
        assert_eq!(ids(&soon), [5, 2]);
    }

    #[test]
    fn only_the_first_ten_are_listed_with_ties_to_the_lower_id_but_all_full_soon_counted() {
        // Ids 1..=30 in reverse order; rates 300, 290, …, with ids 11 and 12
        // at the same rate as id 10, on either side of the cut.
        let fleet: Vec<Arc<DbInstance>> = (1..=30)
            .rev()
            .map(|id: i64| {
                let rate = if (10..=12).contains(&id) { 210 } else { 310 - 10 * id };
                instance(id, Some(growth(Some(rate), Some(id as f64))), id % 2 == 0)
            })
            .collect();
        let refs: Vec<&Arc<DbInstance>> = fleet.iter().collect();
        let (growers, count, soon) = rank(&refs);
        let ids = |entries: &[GrowthEntry]| entries.iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(ids(&growers), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(count, 15);
        assert_eq!(ids(&soon), [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]);
    }

    #[test]
    fn sorting_puts_unknown_rates_lowest_and_never_full_last() {
        let fast = instance(1, Some(growth(Some(500), Some(3.0))), false);
        let none = instance(2, None, false);
        let slow = instance(3, Some(growth(Some(5), None)), false);
        assert_eq!(compare_growth(&fast, &slow), Ordering::Greater);
        assert_eq!(compare_growth(&none, &slow), Ordering::Less);
        assert_eq!(compare_days_until_full(&fast, &slow), Ordering::Less);
        assert_eq!(compare_days_until_full(&none, &slow), Ordering::Equal);
    }
}
