//! `GET /console/`: the fleet at a glance — `view dbinstances`, like
//! `GET /api/v1/instances/statistics`, whose numbers it shows
//! (`statistics_of`, with its fastest growers and instances full soon).
//! Each count links to the instance list filtered to exactly those
//! instances, with the list's own query; counts the list cannot filter by
//! (phases, versions) link to the instances themselves. For a caller who
//! may also `get dbinventories`, findings by severity, counted as
//! `GET /findings` counts them (`FindingQuery`), each linking to the
//! console's findings list of that severity.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::access::Allowed;
use super::capacity::{days, rate};
use super::error::{PageError, html};
use super::format::bytes;
use super::frame::{Flash, Frame, Section};
use crate::api::extract::{Instances, View};
use crate::api::fleet_index::FleetIndex;
use crate::api::input::Query;
use crate::api::instance_index::InstanceIndex;
use crate::api::instances::InstanceFilter;
use crate::api::instances::growers::GrowthEntry;
use crate::api::instances::statistics::{Statistics, statistics_of};
use crate::api::inventory::findings::FindingQuery;
use crate::api::pagination::PageRequest;
use crate::api::state::AppState;
use crate::crd::DbInstance;
use crate::ids::id_of;
use crate::versions;

/// How many instances each short list names.
const LISTED: usize = 8;

/// A count and the list it links to.
pub struct Count {
    pub label: String,
    pub count: usize,
    pub href: Option<String>,
}

/// An instance named in a short list, with what it is listed for.
pub struct Named {
    pub id: i64,
    pub name: String,
    pub detail: String,
}

/// The fleet's findings by severity, over the instances the list shows.
pub struct FindingCounts {
    /// High, medium, low: each linking to the findings of that severity.
    pub by_severity: Vec<Count>,
    pub total: usize,
    pub not_collected: usize,
}

pub struct OverviewData {
    pub stats: Statistics,
    pub total_size: String,
    pub headline: Vec<Count>,
    pub engines: Vec<Count>,
    pub phases: Vec<Count>,
    pub connections: Vec<Count>,
    pub support: Vec<Count>,
    pub logins: Vec<Count>,
    pub tags: Vec<Count>,
    pub failing: Vec<Named>,
    pub largest: Vec<Named>,
    pub growing: Vec<Named>,
    pub full_soon: Vec<Named>,
    pub ending: Vec<Named>,
    /// `None` when the caller may not read inventories.
    pub findings: Option<FindingCounts>,
}

#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    pub frame: Frame,
    pub data: OverviewData,
}

pub async fn page(
    State(state): State<AppState>,
    auth: Allowed<View, Instances>,
    flash: Flash,
) -> Result<Response, PageError> {
    let frame = Frame::of(&state, auth.caller(), Section::Overview, flash).await?;
    let instances = state.caches.live(&state.caches.instances);
    let fleet = frame.can.read_inventories.then(|| state.caches.fleet_index());
    let data = overview(
        &instances,
        &state.caches.instance_index(),
        fleet.as_deref(),
        Timestamp::now(),
    );
    Ok(html(&OverviewPage { frame, data }))
}

fn list_link(query: &str) -> Option<String> {
    Some(format!("/console/instances?{query}"))
}

fn query_of(key: &str, value: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair(key, value)
        .finish()
}

/// How many instances the list shows for `query` (the list's own filter),
/// and the first few of them.
fn listed(index: &InstanceIndex, query: &str) -> (usize, Vec<Arc<DbInstance>>) {
    let Ok(filter) = InstanceFilter::from_query(&Query::parse(query)) else {
        return (0, vec![]);
    };
    let page = filter.page(index, PageRequest { page: 1, limit: LISTED });
    (page.total, page.items.into_iter().map(|(_, i)| i).collect())
}

fn named(instance: &DbInstance, detail: String) -> Option<Named> {
    Some(Named {
        id: id_of(&instance.metadata)?,
        name: instance.name_any(),
        detail,
    })
}

fn reason_of<'a>(instance: &'a DbInstance, type_: &str) -> &'a str {
    instance
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .map(|c| c.reason.as_str())
        .unwrap_or_default()
}

/// An instance of the statistics' growth lists.
fn grower(entry: &GrowthEntry, detail: String) -> Named {
    Named {
        id: entry.id,
        name: entry.name.clone(),
        detail,
    }
}

/// The fleet's findings by severity, as `GET /findings` counts them.
fn finding_counts(index: &InstanceIndex, fleet: &FleetIndex) -> FindingCounts {
    let counted = FindingQuery::from_query(&Query::default())
        .map(|all| all.page(index, fleet, PageRequest { page: 1, limit: 1 }));
    let Ok(counted) = counted else {
        return FindingCounts {
            by_severity: vec![],
            total: 0,
            not_collected: 0,
        };
    };
    let by = &counted.by_severity;
    FindingCounts {
        by_severity: [("high", by.high), ("medium", by.medium), ("low", by.low)]
            .into_iter()
            .map(|(severity, count)| Count {
                label: severity.into(),
                count,
                href: Some(format!("/console/findings?severity={severity}")),
            })
            .collect(),
        total: counted.total,
        not_collected: counted.instances_not_collected,
    }
}

/// Everything the overview shows, over the cached instances, the list's
/// index and, for a caller who may read inventories, the fleet index, at
/// `now`: pure.
pub fn overview(
    instances: &[Arc<DbInstance>],
    index: &InstanceIndex,
    fleet: Option<&FleetIndex>,
    now: Timestamp,
) -> OverviewData {
    let stats = statistics_of(instances, now);
    let counted = |pairs: &std::collections::BTreeMap<String, usize>, key: Option<&str>| -> Vec<Count> {
        pairs
            .iter()
            .map(|(label, count)| Count {
                label: label.replace('_', " "),
                count: *count,
                href: key.and_then(|k| list_link(&query_of(k, label))),
            })
            .collect()
    };
    let live = instances.iter().filter(|i| !i.is_recycled());
    let (failed_count, failing) = listed(index, "status=failed");
    let connections: Vec<Count> = ["connected", "failed", "unknown"]
        .into_iter()
        .map(|state| Count {
            label: state.into(),
            count: match state {
                "failed" => failed_count,
                _ => listed(index, &query_of("status", state)).0,
            },
            href: list_link(&query_of("status", state)),
        })
        .collect();
    let failing = failing
        .iter()
        .filter_map(|i| {
            let message = i
                .status
                .as_ref()
                .and_then(|s| s.connection.as_ref())
                .and_then(|c| c.message.clone())
                .unwrap_or_default();
            named(i, message)
        })
        .collect();
    let mut by_size: Vec<(u64, &Arc<DbInstance>)> = live
        .clone()
        .filter_map(|i| Some((i.status.as_ref()?.capacity.as_ref()?.total_size_bytes, i)))
        .collect();
    let keep = by_size.len().min(LISTED);
    if keep > 0 {
        by_size.select_nth_unstable_by(keep - 1, |a, b| b.0.cmp(&a.0));
        by_size.truncate(keep);
        by_size.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.name_any().cmp(&b.1.name_any())));
    }
    let largest = by_size.iter().filter_map(|(size, i)| named(i, bytes(*size))).collect();
    let ending = live
        .filter(|i| matches!(reason_of(i, versions::VERSION_SUPPORTED), "EndOfLife" | "EndingSoon"))
        .take(LISTED)
        .filter_map(|i| {
            let release = i.status.as_ref().and_then(|s| s.release.as_ref());
            let line = release.map(|r| r.line.clone()).unwrap_or_default();
            let eol = release.and_then(|r| r.end_of_life.clone()).unwrap_or_default();
            let state = versions::state_of(reason_of(i, versions::VERSION_SUPPORTED)).replace('_', " ");
            named(i, format!("{line} · {state} · end of life {eol}"))
        })
        .collect();
    let growing = stats
        .top_growers
        .iter()
        .take(LISTED)
        .map(|g| grower(g, format!("{} · {}", rate(g.bytes_per_day), bytes(g.total_size_bytes))))
        .collect();
    let full_soon = stats
        .full_soon
        .iter()
        .take(LISTED)
        .map(|g| {
            let when = match g.days_until_full {
                Some(d) if d <= 0.0 => "full".to_string(),
                Some(d) => format!("in {}", days(d)),
                None => String::new(),
            };
            let limit = g
                .limit_bytes
                .map(|l| format!(" · limit {}", bytes(l)))
                .unwrap_or_default();
            grower(g, format!("{when}{limit}"))
        })
        .collect();
    OverviewData {
        findings: fleet.map(|fleet| finding_counts(index, fleet)),
        growing,
        full_soon,
        total_size: bytes(stats.total_capacity_bytes),
        headline: vec![
            Count {
                label: "instances".into(),
                count: stats.total,
                href: list_link(""),
            },
            Count {
                label: "active".into(),
                count: stats.active,
                href: list_link("status=active"),
            },
            Count {
                label: "inactive".into(),
                count: stats.inactive,
                href: list_link("status=inactive"),
            },
            Count {
                label: "stale".into(),
                count: stats.stale,
                href: list_link("status=stale"),
            },
            Count {
                label: "recycled".into(),
                count: stats.recycled,
                href: list_link("status=recycled"),
            },
        ],
        engines: counted(&stats.by_db_type, Some("db_type")),
        phases: counted(&stats.by_status, None),
        connections,
        support: counted(&stats.version_support, None),
        logins: counted(&stats.login_privileges, None),
        tags: stats
            .tags
            .iter()
            .map(|t| Count {
                label: t.name.clone(),
                count: t.count,
                href: list_link(&query_of("tags", &t.name)),
            })
            .collect(),
        failing,
        largest,
        ending,
        stats,
    }
}

#[cfg(test)]
mod tests {
    use askama::Template;

    use super::*;

    #[test]
    fn an_empty_fleet_shows_how_to_add_the_first_instance() {
        let data = overview(&[], &InstanceIndex::default(), None, Timestamp::now());
        let page = OverviewPage {
            frame: Frame::anonymous(),
            data,
        }
        .render()
        .unwrap();
        assert!(page.contains("No instances yet"), "{page}");
        assert!(page.contains("kind: DbInstance"), "{page}");
        assert!(page.contains("POST /api/v1/instances"), "{page}");
        assert!(!page.contains("class=\"tiles\""), "no empty counts: {page}");
    }
}
