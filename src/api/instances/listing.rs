//! Handlers over many instances: the list, the options to pick from, and
//! the statistics (SPEC §3.5).

use axum::extract::State;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;
use utoipa::ToSchema;

use super::query::{InstanceFilter, StatusFilter, parse_db_type};
use super::statistics::{Statistics, statistics_of};
use crate::api::envelope::{ApiError, ApiResult, Reply};
use crate::api::extract::{Authorized, Instances, View};
use crate::api::input::Query;
use crate::api::pagination::{MAX_INSTANCE_LIMIT, PageRequest, Paged};
use crate::api::state::AppState;
use crate::api::views::InstanceView;

/// Instances, filtered, sorted and paginated.
#[utoipa::path(get, path = "/api/v1/instances", tag = "instances",
    params(
        ("search" = Option<String>, Query), ("db_type" = Option<String>, Query), ("status" = Option<String>, Query),
        ("tags" = Option<Vec<String>>, Query), ("include_deleted" = Option<String>, Query),
        ("sort" = Option<String>, Query), ("order" = Option<String>, Query),
        ("page" = Option<String>, Query), ("limit" = Option<String>, Query)),
    responses((status = 200, body = Paged<InstanceView>), (status = 400), (status = 401), (status = 403)))]
pub async fn list(
    State(state): State<AppState>,
    _: Authorized<View, Instances>,
    query: Query,
) -> ApiResult<Reply<Paged<InstanceView>>> {
    let filter = InstanceFilter::from_query(&query)?;
    let page = PageRequest::from_query(&query, MAX_INSTANCE_LIMIT);
    let paged = filter.page(&state.caches.instance_index(), page);
    let lookup = state.lookup();
    let items = paged.items.iter().filter_map(|(_, i)| lookup.instance(i)).collect();
    Ok(Reply::ok(Paged {
        items,
        total: paged.total,
        page: paged.page,
        pages: paged.pages,
        limit: paged.limit,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct InstanceOption {
    pub value: i64,
    pub label: String,
    pub db_type: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct DbTypeOption {
    pub value: &'static str,
    pub label: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct OptionsData {
    pub instances: Vec<InstanceOption>,
    pub db_types: Vec<DbTypeOption>,
}

/// Active, non-recycled instances to pick from.
#[utoipa::path(get, path = "/api/v1/instances/options", tag = "instances",
    params(("db_type" = Option<String>, Query)),
    responses((status = 200, body = OptionsData), (status = 400), (status = 401), (status = 403)))]
pub async fn options(
    State(state): State<AppState>,
    _: Authorized<View, Instances>,
    query: Query,
) -> ApiResult<Reply<OptionsData>> {
    let mut filter = InstanceFilter::from_query(&Query::default())?;
    filter.db_type = match query.get("db_type") {
        None => None,
        Some(t) => {
            Some(parse_db_type(t).ok_or_else(|| ApiError::field("db_type", "db_type must be mysql or postgresql"))?)
        }
    };
    filter.status = Some(StatusFilter::Active);
    filter.descending = false;
    let instances = filter
        .select(&state.caches.instance_index())
        .into_iter()
        .map(|(id, i)| InstanceOption {
            value: id,
            label: format!("{} ({}:{})", i.name_any(), i.spec.host, i.spec.port),
            db_type: i.spec.db_type.as_str(),
        })
        .collect();
    Ok(Reply::ok(OptionsData {
        instances,
        db_types: vec![
            DbTypeOption {
                value: "mysql",
                label: "MySQL / MariaDB",
            },
            DbTypeOption {
                value: "postgresql",
                label: "PostgreSQL",
            },
        ],
    }))
}

#[utoipa::path(get, path = "/api/v1/instances/statistics", tag = "instances",
    responses((status = 200, body = Statistics), (status = 401), (status = 403)))]
pub async fn statistics(State(state): State<AppState>, _: Authorized<View, Instances>) -> ApiResult<Reply<Statistics>> {
    Ok(Reply::ok(statistics_of(
        &state.caches.live(&state.caches.instances),
        Timestamp::now(),
    )))
}
