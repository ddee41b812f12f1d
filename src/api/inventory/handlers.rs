//! One instance's inventory: its databases, its accounts, one account, and
//! its root status. Each request reads the instance's DbInventory from the
//! API server, with the parts a big server's sections are spread over: the
//! façade caches no whole inventories (the fleet-wide index keeps only
//! what a search needs).

use axum::extract::State;
use kube::ResourceExt;

use super::rules::{AccountFilter, AccountLookup, DatabaseQuery, RootStatus, find_account, root_status};
use super::views::{AccountView, DatabaseItem, InventoryPage, SectionInfo};
use crate::api::envelope::{ApiError, ApiResult, Reply, format_time};
use crate::api::extract::{Accounts, Authorized, Get, Id, Instances, Inventories, Name, View};
use crate::api::input::Query;
use crate::api::instances::find;
use crate::api::pagination::{MAX_INSTANCE_LIMIT, PageRequest};
use crate::api::state::{AppState, Shared};
use crate::crd::inventory::{InventoryAccounts, InventoryCapacity};
use crate::crd::{DbInstance, DbInventory, DbInventorySpec};
use crate::observe;

/// The message of an answer about a section not collected yet.
const NOT_COLLECTED: &str = "not collected yet: the controller has not completed a sync of this instance";

/// The inventory of `instance`, read from the API server with its parts
/// joined in; `None` before the controller first wrote one.
async fn inventory_of(state: &Shared, instance: &DbInstance) -> ApiResult<Option<DbInventorySpec>> {
    Ok(observe::read_inventory(&state.api::<DbInventory>(), &instance.name_any()).await?)
}

fn capacity_info(capacity: &InventoryCapacity) -> SectionInfo {
    SectionInfo {
        collected_at: Some(format_time(capacity.collected_at.0)),
        truncated: capacity.truncated,
        omitted: capacity.omitted,
    }
}

fn accounts_info(accounts: &InventoryAccounts) -> SectionInfo {
    SectionInfo {
        collected_at: Some(format_time(accounts.synced_at.0)),
        truncated: accounts.truncated,
        omitted: accounts.omitted,
    }
}

fn answer<T: serde::Serialize>(page: InventoryPage<T>) -> Reply<InventoryPage<T>> {
    let collected = page.collected;
    let reply = Reply::ok(page);
    if collected { reply } else { reply.message(NOT_COLLECTED) }
}

/// The instance's databases, filtered, sorted and paginated.
#[utoipa::path(get, path = "/api/v1/instances/{id}/databases", tag = "inventory", operation_id = "instance_databases",
    params(("id" = i64, Path), ("search" = Option<String>, Query), ("sort" = Option<String>, Query),
        ("order" = Option<String>, Query), ("page" = Option<String>, Query), ("limit" = Option<String>, Query)),
    responses((status = 200, body = InventoryPage<DatabaseItem>), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn databases(
    State(state): State<AppState>,
    _: Authorized<View, Instances>,
    _: Authorized<Get, Inventories>,
    Id(id, ..): Id<Instances>,
    query: Query,
) -> ApiResult<Reply<InventoryPage<DatabaseItem>>> {
    let instance = find(&state, id, false)?;
    let selection = DatabaseQuery::from_query(&query)?;
    let page = PageRequest::from_query(&query, MAX_INSTANCE_LIMIT);
    let capacity = inventory_of(&state, &instance).await?.and_then(|i| i.capacity);
    let (items, section) = match &capacity {
        Some(c) => (
            selection
                .select(&c.databases)
                .into_iter()
                .map(DatabaseItem::from)
                .collect(),
            Some(capacity_info(c)),
        ),
        None => (vec![], None),
    };
    Ok(answer(InventoryPage::of(items, page, section)))
}

/// The instance's accounts, filtered and paginated, in name, then host,
/// order.
#[utoipa::path(get, path = "/api/v1/instances/{id}/accounts", tag = "inventory", operation_id = "instance_accounts",
    params(("id" = i64, Path), ("search" = Option<String>, Query), ("superuser" = Option<String>, Query),
        ("can_login" = Option<String>, Query), ("locked" = Option<String>, Query),
        ("page" = Option<String>, Query), ("limit" = Option<String>, Query)),
    responses((status = 200, body = InventoryPage<AccountView>), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn accounts(
    State(state): State<AppState>,
    _: Authorized<View, Instances>,
    _: Authorized<Get, Inventories>,
    Id(id, ..): Id<Instances>,
    query: Query,
) -> ApiResult<Reply<InventoryPage<AccountView>>> {
    let instance = find(&state, id, false)?;
    let filter = AccountFilter::from_query(&query)?;
    let page = PageRequest::from_query(&query, MAX_INSTANCE_LIMIT);
    let accounts = inventory_of(&state, &instance).await?.and_then(|i| i.accounts);
    let (items, section) = match &accounts {
        Some(a) => (
            a.items
                .iter()
                .filter(|a| filter.matches(a))
                .map(AccountView::from)
                .collect(),
            Some(accounts_info(a)),
        ),
        None => (vec![], None),
    };
    Ok(answer(InventoryPage::of(items, page, section)))
}

/// One account by name; `host` picks one of a MySQL name's hosts.
#[utoipa::path(get, path = "/api/v1/instances/{id}/accounts/{name}", tag = "inventory", operation_id = "instance_account",
    params(("id" = i64, Path), ("name" = String, Path), ("host" = Option<String>, Query)),
    responses((status = 200, body = AccountView),
        (status = 400, description = "The name exists on several hosts and no `host` was given (`host` is named)"),
        (status = 401), (status = 403), (status = 404)))]
pub async fn account(
    State(state): State<AppState>,
    _: Authorized<View, Instances>,
    _: Authorized<Get, Inventories>,
    Id(id, ..): Id<Instances>,
    Name(name, ..): Name<Accounts>,
    query: Query,
) -> ApiResult<Reply<AccountView>> {
    let accounts = inventory_of(&state, &*find(&state, id, false)?)
        .await?
        .and_then(|i| i.accounts);
    let Some(accounts) = accounts else {
        return Err(ApiError::not_found(format!(
            "account {name:?} of instance {id}: the accounts are {NOT_COLLECTED}"
        )));
    };
    let host = query.exact("host");
    match find_account(&accounts.items, &name, host) {
        Ok(account) => Ok(Reply::ok(AccountView::from(account))),
        Err(AccountLookup::NotFound) => Err(ApiError::not_found(match host {
            Some(host) => format!("account {name:?} at host {host:?} of instance {id}"),
            None => format!("account {name:?} of instance {id}"),
        })),
        Err(AccountLookup::Ambiguous(hosts)) => Err(ApiError::field(
            "host",
            format!(
                "account {name:?} exists on several hosts ({}); name one with the host query parameter",
                hosts.iter().map(|h| format!("{h:?}")).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

/// Trove's "root enabled", from the inventory: whether superuser-class
/// accounts exist, which, and whether any logs in from anywhere.
#[utoipa::path(get, path = "/api/v1/instances/{id}/root-status", tag = "inventory", operation_id = "root_status", params(("id" = i64, Path)),
    responses((status = 200, body = RootStatus), (status = 401), (status = 403), (status = 404)))]
pub async fn root(
    State(state): State<AppState>,
    _: Authorized<View, Instances>,
    _: Authorized<Get, Inventories>,
    Id(id, ..): Id<Instances>,
) -> ApiResult<Reply<RootStatus>> {
    let accounts = inventory_of(&state, &*find(&state, id, false)?)
        .await?
        .and_then(|i| i.accounts);
    let collected_at = accounts.as_ref().map(|a| format_time(a.synced_at.0));
    let status = root_status(accounts.as_ref(), collected_at);
    let collected = status.collected;
    let reply = Reply::ok(status);
    Ok(if collected { reply } else { reply.message(NOT_COLLECTED) })
}
