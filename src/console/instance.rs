//! `GET /console/instances/{id}`: one instance — `view dbinstances`, as
//! `GET /api/v1/instances/{id}` (`instances::find`, `Lookup`); its
//! conditions with their reasons, its replication role and cluster, and,
//! for a caller who may also `get dbinventories` (as the inventory routes
//! ask), its databases, accounts and root status from its DbInventory
//! (`observe::read_inventory`, one read, and the inventory rules:
//! `DatabaseQuery`, `AccountView`, `root_status`).

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::access::Allowed;
use super::error::{PageError, html};
use super::format::{When, bytes, when};
use super::frame::{Flash, Frame, Section};
use crate::api::envelope::{ApiError, format_time};
use crate::api::extract::{Id, Instances, View};
use crate::api::input::Query;
use crate::api::instances;
use crate::api::inventory::rules::{AccountFilter, DatabaseQuery, RootStatus, root_status};
use crate::api::inventory::views::AccountView;
use crate::api::state::AppState;
use crate::api::views::InstanceView;
use crate::crd::inventory::DbInventorySpec;
use crate::crd::{DbInstance, DbInventory};
use crate::observe;

/// Rows of each inventory table on the page; the rest are counted and
/// found with Search.
pub const INVENTORY_ROWS: usize = 200;

pub struct ConditionRow {
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub since: Option<When>,
}

pub struct Replication {
    pub role: String,
    pub cluster: String,
    pub source: String,
    pub lag: String,
    pub message: String,
}

pub struct DatabaseRow {
    pub name: String,
    pub size: String,
    pub tables: String,
}

pub struct Inventory {
    /// The filters of the two lists (`databases=`, `accounts=`: a part of
    /// the name, as the REST lists' `search`).
    pub database_search: String,
    pub account_search: String,
    pub databases: Vec<DatabaseRow>,
    pub databases_total: usize,
    pub databases_collected: Option<When>,
    pub accounts: Vec<AccountView>,
    pub accounts_total: usize,
    pub accounts_collected: Option<When>,
    pub root: RootStatus,
}

pub struct InstanceData {
    pub view: InstanceView,
    pub size: Option<String>,
    pub checked: Option<When>,
    pub created: Option<When>,
    pub conditions: Vec<ConditionRow>,
    pub replication: Option<Replication>,
    pub release: String,
    pub recycled: bool,
    /// `None` when the caller may not read inventories.
    pub inventory: Option<Inventory>,
    pub here: String,
}

#[derive(Template)]
#[template(path = "instance.html")]
pub struct InstancePage {
    pub frame: Frame,
    pub data: InstanceData,
}

pub async fn page(
    State(state): State<AppState>,
    auth: Allowed<View, Instances>,
    id: Result<Id<Instances>, ApiError>,
    flash: Flash,
    query: Query,
) -> Result<Response, PageError> {
    let Id(id, ..) = id?;
    let frame = Frame::of(&state, auth.caller(), Section::Instances, flash).await?;
    let instance = instances::find(&state, id, false)?;
    let view = instances::view(&state, &instance)?;
    // Read only for a caller the inventory routes would answer.
    let inventory = if frame.can.read_inventories {
        Some(
            observe::read_inventory(&state.api::<DbInventory>(), &view.name)
                .await
                .map_err(ApiError::kube)?,
        )
    } else {
        None
    };
    let data = detail(&instance, view, inventory, &query);
    Ok(html(&InstancePage { frame, data }))
}

/// What the page shows of `instance`, with its inventory if the caller
/// may read it (`Some(None)`: none written yet), its lists filtered by
/// `query`'s `databases` and `accounts`: pure.
pub fn detail(
    instance: &DbInstance,
    view: InstanceView,
    inventory: Option<Option<DbInventorySpec>>,
    query: &Query,
) -> InstanceData {
    let status = instance.status.as_ref();
    let conditions = status
        .map(|s| {
            s.conditions
                .iter()
                .map(|c| ConditionRow {
                    type_: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    since: Some(When::at(c.last_transition_time.0)),
                })
                .collect()
        })
        .unwrap_or_default();
    let replication = status.and_then(|s| s.replication.as_ref()).map(|r| Replication {
        role: r.role.map(|x| x.as_str()).unwrap_or("unknown").into(),
        cluster: r.cluster_id.clone().unwrap_or_default(),
        source: r.source.clone().unwrap_or_default(),
        lag: match (r.lag_state, r.lag_seconds) {
            (Some(state), Some(seconds)) => format!("{} · {seconds} s behind", state.as_str()),
            (Some(state), None) => state.as_str().into(),
            _ => String::new(),
        },
        message: r.message.clone().unwrap_or_default(),
    });
    let release = status
        .and_then(|s| s.release.as_ref())
        .map(|r| match &r.end_of_life {
            Some(eol) => format!("{} (end of life {eol})", r.line),
            None => r.line.clone(),
        })
        .unwrap_or_default();
    let here = format!("/console/instances/{}", view.id);
    InstanceData {
        size: view.capacity.as_ref().map(|c| bytes(c.total_size_bytes)),
        checked: when(view.connection.last_checked_at.as_deref()),
        created: when(view.created_at.as_deref()),
        conditions,
        replication,
        release,
        recycled: instance.is_recycled(),
        inventory: inventory.map(|spec| inventory_of(spec.as_ref(), query)),
        view,
        here,
    }
}

/// `search=` for the REST lists' own filters.
fn search_query(search: &str, extra: &str) -> Query {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("search", search);
    Query::parse(&format!("{}&{extra}", query.finish()))
}

fn inventory_of(spec: Option<&DbInventorySpec>, query: &Query) -> Inventory {
    let capacity = spec.and_then(|s| s.capacity.as_ref());
    let accounts = spec.and_then(|s| s.accounts.as_ref());
    let database_search = query.get("databases").unwrap_or_default().to_string();
    let account_search = query.get("accounts").unwrap_or_default().to_string();
    // The REST list's selection, largest first.
    let databases = DatabaseQuery::from_query(&search_query(&database_search, "sort=size"))
        .map(|q| capacity.map(|c| q.select(&c.databases)).unwrap_or_default())
        .unwrap_or_default();
    let account_filter = AccountFilter::from_query(&search_query(&account_search, "")).ok();
    let matching: Vec<_> = accounts
        .map(|a| {
            a.items
                .iter()
                .filter(|x| account_filter.as_ref().is_some_and(|f| f.matches(x)))
                .collect()
        })
        .unwrap_or_default();
    Inventory {
        database_search,
        account_search,
        databases_total: databases.len(),
        databases: databases
            .iter()
            .take(INVENTORY_ROWS)
            .map(|d| DatabaseRow {
                name: d.name.clone(),
                size: bytes(d.size_bytes),
                tables: d.table_count.map(|n| n.to_string()).unwrap_or_else(|| "–".into()),
            })
            .collect(),
        databases_collected: capacity.map(|c| When::at(c.collected_at.0)),
        accounts_total: matching.len(),
        accounts: matching
            .iter()
            .take(INVENTORY_ROWS)
            .map(|a| AccountView::from(*a))
            .collect(),
        accounts_collected: accounts.map(|a| When::at(a.synced_at.0)),
        root: root_status(accounts, accounts.map(|a| format_time(a.synced_at.0))),
    }
}
