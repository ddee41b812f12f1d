//! The history endpoints. Permissions are those of the inventory: `view
//! dbinstances` and `get dbinventories` (an account's history says as
//! much as its privileges).

use axum::extract::State;
use kube::ResourceExt;

use super::views::{CapacityHistoryView, ChangeFilter, ChangeView, ChangesPage, instance_changes, rfc3339};
use crate::api::envelope::{ApiResult, Reply};
use crate::api::extract::{Authorized, Get, Id, Instances, Inventories, View};
use crate::api::input::Query;
use crate::api::instances::find;
use crate::api::inventory::fleet::InstanceRef;
use crate::api::pagination::{MAX_INSTANCE_LIMIT, PageRequest};
use crate::api::state::{AppState, Shared};
use crate::crd::{DbHistory, DbHistorySpec, DbInstance};
use crate::ids::id_of;
use crate::observe::history::read_history;

/// The message of an answer about an instance with no history yet.
const NO_HISTORY: &str = "no history yet: the controller writes it with the first capacity sample or account change";

/// `instance`'s DbHistory: one read per request, as its inventory.
pub async fn history_of(state: &Shared, instance: &DbInstance) -> ApiResult<Option<DbHistorySpec>> {
    Ok(read_history(&state.api::<DbHistory>(), &instance.name_any()).await?)
}

/// The instance's capacity samples (oldest first), the least-squares fit
/// of their totals and the forecast against `spec.capacity.limitBytes`.
#[utoipa::path(get, path = "/api/v1/instances/{id}/capacity/history", tag = "history", operation_id = "capacity_history",
    params(("id" = i64, Path)),
    responses((status = 200, body = CapacityHistoryView), (status = 401), (status = 403), (status = 404)))]
pub async fn capacity_history(
    State(state): State<AppState>,
    _: Authorized<View, Instances>,
    _: Authorized<Get, Inventories>,
    Id(id, ..): Id<Instances>,
) -> ApiResult<Reply<CapacityHistoryView>> {
    let instance = find(&state, id, false)?;
    let capacity = history_of(&state, &instance).await?.and_then(|h| h.capacity);
    let view = CapacityHistoryView::of_instance(&instance, capacity.as_ref());
    let reply = Reply::ok(view);
    Ok(if capacity.is_some() {
        reply
    } else {
        reply.message(NO_HISTORY)
    })
}

/// The instance's account changes, newest first, filtered by `account`
/// (exact name), `host`, `kind` (repeatable or comma-separated) and
/// `since` (RFC 3339), and paginated.
#[utoipa::path(get, path = "/api/v1/instances/{id}/accounts/history", tag = "history", operation_id = "account_history",
    params(("id" = i64, Path), ("account" = Option<String>, Query), ("host" = Option<String>, Query),
        ("kind" = Option<String>, Query), ("since" = Option<String>, Query),
        ("page" = Option<String>, Query), ("limit" = Option<String>, Query)),
    responses((status = 200, body = ChangesPage<ChangeView>), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn account_history(
    State(state): State<AppState>,
    _: Authorized<View, Instances>,
    _: Authorized<Get, Inventories>,
    Id(id, ..): Id<Instances>,
    query: Query,
) -> ApiResult<Reply<ChangesPage<ChangeView>>> {
    let instance = find(&state, id, false)?;
    let filter = ChangeFilter::from_query(&query)?;
    let page = PageRequest::from_query(&query, MAX_INSTANCE_LIMIT);
    let log = history_of(&state, &instance).await?.and_then(|h| h.accounts);
    let reply = Reply::ok(instance_changes(log.as_ref(), &filter, page));
    Ok(if log.is_some() {
        reply
    } else {
        reply.message(NO_HISTORY)
    })
}

/// A change on one instance of the fleet.
#[derive(serde::Serialize, Debug, utoipa::ToSchema)]
pub struct FleetChange {
    pub instance: InstanceRef,
    pub change: ChangeView,
}

/// Account changes across the fleet (the instances the instance list
/// shows), newest first, filtered like one instance's and paginated.
#[utoipa::path(get, path = "/api/v1/accounts/changes", tag = "history", operation_id = "fleet_account_changes",
    params(("since" = Option<String>, Query), ("account" = Option<String>, Query), ("host" = Option<String>, Query),
        ("kind" = Option<String>, Query), ("page" = Option<String>, Query), ("limit" = Option<String>, Query)),
    responses((status = 200, body = ChangesPage<FleetChange>), (status = 400), (status = 401), (status = 403)))]
pub async fn fleet_changes(
    State(state): State<AppState>,
    _: Authorized<View, Instances>,
    _: Authorized<Get, Inventories>,
    query: Query,
) -> ApiResult<Reply<ChangesPage<FleetChange>>> {
    let filter = ChangeFilter::from_query(&query)?;
    let page = PageRequest::from_query(&query, MAX_INSTANCE_LIMIT);
    let (start, end) = page.range();
    let instances = state.caches.instance_index();
    let changes = state.caches.changes_index();
    let mut total = 0;
    let mut items = Vec::new();
    for (name, change) in changes.newest_first() {
        let Some(instance) = instances.get(name) else { continue };
        let Some(id) = id_of(&instance.metadata) else { continue };
        if instance.is_recycled() || !filter.matches(change) {
            continue;
        }
        if (start..end).contains(&total) {
            items.push(FleetChange {
                instance: InstanceRef {
                    id,
                    name: name.to_string(),
                    db_type: instance.spec.db_type.as_str(),
                    host: instance.spec.host.clone(),
                    port: instance.spec.port,
                },
                change: ChangeView::from(change),
            });
        }
        total += 1;
    }
    let paged = page.paged(items, total);
    Ok(Reply::ok(ChangesPage {
        items: paged.items,
        total: paged.total,
        page: paged.page,
        pages: paged.pages,
        limit: paged.limit,
        dropped: None,
        complete_since: changes.complete_since().map(rfc3339),
    }))
}
