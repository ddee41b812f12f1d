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

fn entry(instance: &DbInstance) -> Option<GrowthEntry> {
    let growth = instance.status.as_ref()?.capacity_growth.as_ref()?;
    Some(GrowthEntry {
        id: id_of(&instance.metadata)?,
        name: instance.metadata.name.clone().unwrap_or_default(),
        bytes_per_day: growth.bytes_per_day?,
        total_size_bytes: growth.last_total_bytes,
        limit_bytes: growth.limit_bytes,
        days_until_full: growth.days_until_full,
    })
}

/// The [`TOP`] fastest-growing instances (growing at all), fastest first,
/// and those `CapacityOK` says fill up soon, soonest first (all of them
/// counted, the first [`TOP`] listed).
pub fn rank(instances: &[&Arc<DbInstance>]) -> (Vec<GrowthEntry>, usize, Vec<GrowthEntry>) {
    let mut growers: Vec<GrowthEntry> = instances
        .iter()
        .filter_map(|i| entry(i))
        .filter(|e| e.bytes_per_day > 0)
        .collect();
    growers.sort_by(|a, b| b.bytes_per_day.cmp(&a.bytes_per_day).then(a.id.cmp(&b.id)));
    growers.truncate(TOP);
    let mut soon: Vec<GrowthEntry> = instances
        .iter()
        .filter(|i| full_soon(i))
        .filter_map(|i| entry(i))
        .collect();
    let count = instances.iter().filter(|i| full_soon(i)).count();
    soon.sort_by(|a, b| {
        let days = |e: &GrowthEntry| e.days_until_full.unwrap_or(0.0);
        days(a).total_cmp(&days(b)).then(a.id.cmp(&b.id))
    });
    soon.truncate(TOP);
    (growers, count, soon)
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
