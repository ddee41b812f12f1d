//! `GET /instances/recycle-bin` (SPEC §2.4): the recycled instances,
//! newest deletion first, with the days each has left. The rules of the
//! bin itself are `crd::recycle`'s.

use std::cmp::Reverse;

use axum::extract::State;
use k8s_openapi::jiff::{SignedDuration, Timestamp, Unit};
use kube::ResourceExt;
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::envelope::{ApiResult, Reply, format_time};
use crate::api::extract::{Authorized, Instances, View};
use crate::api::input::Query;
use crate::api::instance_index::InstanceIndex;
use crate::api::pagination::{MAX_INSTANCE_LIMIT, PageRequest, Paged};
use crate::api::state::AppState;

const DAY_SECONDS: i64 = 24 * 60 * 60;

#[derive(Serialize, Clone, Debug, PartialEq, ToSchema)]
pub struct RecycledInstance {
    pub id: i64,
    pub name: String,
    /// `mysql` or `postgresql`.
    pub db_type: &'static str,
    pub host: String,
    pub port: i32,
    /// The server version the last connection test reported.
    pub version: Option<String>,
    /// When it went into the recycle bin; null for a moment after the
    /// label was set by hand, until the controller dates it.
    pub deleted_at: Option<String>,
    /// When the controller deletes it for good.
    pub retained_until: Option<String>,
    /// Whole days until then, rounded up (0 once it is due); null while
    /// `retained_until` is.
    pub days_left: Option<i64>,
}

/// Whole days from `now` until `until`, rounded up, never below 0: an
/// instance kept until tomorrow noon has 1 day left, not 0. `now` is
/// rounded to the second as the recycle stamps are (`format_time`): a
/// stamp can be up to half a second ahead of the clock, which must not
/// make a fresh 30-day retention show 31 days.
pub fn days_left(until: Timestamp, now: Timestamp) -> i64 {
    let now = now.round(Unit::Second).unwrap_or(now);
    let seconds = until.as_second() - now.as_second();
    if seconds <= 0 {
        0
    } else {
        (seconds + DAY_SECONDS - 1) / DAY_SECONDS
    }
}

/// The recycle bin, newest deletion first. Undated ones (labelled by hand,
/// not dated by the controller yet) come first: they were recycled just
/// now. Ties go to the higher id.
pub fn recycle_bin(index: &InstanceIndex, retention: SignedDuration, now: Timestamp) -> Vec<RecycledInstance> {
    let mut rows: Vec<_> = index
        .rows()
        .filter(|r| r.recycled)
        .map(|r| (r.instance.recycled_at(), r))
        .collect();
    rows.sort_by_key(|(deleted_at, r)| (deleted_at.is_some(), Reverse(*deleted_at), Reverse(r.id)));
    rows.into_iter()
        .map(|(deleted_at, row)| {
            let instance = &row.instance;
            let retained_until = instance.retained_until(retention);
            RecycledInstance {
                id: row.id,
                name: instance.name_any(),
                db_type: instance.spec.db_type.as_str(),
                host: instance.spec.host.clone(),
                port: instance.spec.port,
                version: instance
                    .status
                    .as_ref()
                    .and_then(|s| s.connection.as_ref())
                    .and_then(|c| c.server_version.clone()),
                deleted_at: deleted_at.map(format_time),
                retained_until: retained_until.map(format_time),
                days_left: retained_until.map(|until| days_left(until, now)),
            }
        })
        .collect()
}

/// The recycle bin, paginated.
#[utoipa::path(get, path = "/api/v1/instances/recycle-bin", tag = "instances", operation_id = "recycle_bin",
    params(("page" = Option<String>, Query), ("limit" = Option<String>, Query)),
    responses((status = 200, body = Paged<RecycledInstance>), (status = 401), (status = 403)))]
pub async fn list(
    State(state): State<AppState>,
    _: Authorized<View, Instances>,
    query: Query,
) -> ApiResult<Reply<Paged<RecycledInstance>>> {
    let page = PageRequest::from_query(&query, MAX_INSTANCE_LIMIT);
    let bin = recycle_bin(&state.caches.instance_index(), state.retention, Timestamp::now());
    Ok(Reply::ok(page.apply(bin)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::api::instances::fixtures::{indexed, instance};
    use crate::crd::DbInstanceStatus;
    use crate::crd::keys::{RECYCLED_AT_ANNOTATION, RECYCLED_LABEL};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn recycled(name: &str, id: i64, deleted_at: Option<&str>) -> Arc<crate::crd::DbInstance> {
        let mut i = (*instance(name, id, json!({"dbType": "mysql", "host": "h", "port": 3306}))).clone();
        i.labels_mut().insert(RECYCLED_LABEL.into(), "true".into());
        if let Some(deleted_at) = deleted_at {
            i.annotations_mut()
                .insert(RECYCLED_AT_ANNOTATION.into(), deleted_at.into());
        }
        Arc::new(i)
    }

    #[test]
    fn days_left_round_up_and_stop_at_zero() {
        let now = at("2026-03-01T12:00:00Z");
        assert_eq!(days_left(at("2026-03-02T00:00:00Z"), now), 1);
        assert_eq!(days_left(at("2026-03-03T12:00:00Z"), now), 2);
        assert_eq!(days_left(at("2026-03-03T12:00:01Z"), now), 3);
        assert_eq!(days_left(now, now), 0);
        // Stamped a moment ago, rounded up to the next second.
        assert_eq!(days_left(at("2026-03-31T12:00:01Z"), at("2026-03-01T12:00:00.6Z")), 30);
        assert_eq!(days_left(at("2026-02-01T00:00:00Z"), now), 0);
    }

    #[test]
    fn newest_deletion_first_undated_before_all_and_live_ones_left_out() {
        let mut kept_long = (*recycled("kept", 7, Some("2026-02-20T00:00:00Z"))).clone();
        kept_long.status = Some(DbInstanceStatus {
            recycled_at: Some(Time(at("2026-02-20T00:00:00Z"))),
            retained_until: Some(Time(at("2026-04-01T00:00:00Z"))),
            ..Default::default()
        });
        let index = indexed(vec![
            recycled("old", 1, Some("2026-02-01T00:00:00Z")),
            recycled("new", 2, Some("2026-02-28T00:00:00Z")),
            recycled("twin", 3, Some("2026-02-28T00:00:00Z")),
            recycled("by-hand", 4, None),
            instance("live", 5, json!({"dbType": "mysql", "host": "h", "port": 1})),
            Arc::new(kept_long),
        ]);
        let bin = recycle_bin(&index, SignedDuration::from_hours(30 * 24), at("2026-03-01T00:00:00Z"));
        let order: Vec<(&str, Option<i64>)> = bin.iter().map(|r| (r.name.as_str(), r.days_left)).collect();
        assert_eq!(
            order,
            [
                ("by-hand", None),
                ("twin", Some(29)),
                ("new", Some(29)),
                ("kept", Some(31)),
                ("old", Some(2))
            ]
        );
        assert_eq!(bin[3].retained_until.as_deref(), Some("2026-04-01T00:00:00Z"));
        assert_eq!(bin[1].deleted_at.as_deref(), Some("2026-02-28T00:00:00Z"));
    }
}
