//! `GET /console/instances/{id}`: one instance — `view dbinstances`, as
//! `GET /api/v1/instances/{id}` (`instances::find`, `Lookup`); its
//! conditions with their reasons, its replication role and cluster. For a
//! caller who may also `get dbinventories` (as the inventory and history
//! routes ask):
//!
//! - its databases, accounts and root status from its DbInventory
//!   (`observe::read_inventory`, one read, and the inventory rules:
//!   `DatabaseQuery`, `AccountView`, `root_status`);
//! - its capacity history and account change log from its DbHistory (one
//!   read, `history_of`), as `/capacity/history` (`CapacityHistoryView`)
//!   and `/accounts/history` (`instance_changes`) answer them;
//! - its hygiene findings, as `GET /findings?instance_id=` selects them
//!   (`FindingQuery` over the fleet index).
//!
//! Its recent Events, for a caller who may `list events` (`events`).

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::access::Allowed;
use super::capacity::{self, CapacityPanel};
use super::error::{PageError, html};
use super::events::{self, RecentEvents};
use super::format::{When, bytes, when};
use super::frame::{Flash, Frame, Section};
use crate::api::envelope::{ApiError, format_time};
use crate::api::extract::{Id, Instances, View};
use crate::api::fleet_index::FleetIndex;
use crate::api::history::handlers::history_of;
use crate::api::history::views::{CapacityHistoryView, ChangeFilter, instance_changes};
use crate::api::input::Query;
use crate::api::instance_index::InstanceIndex;
use crate::api::instances;
use crate::api::inventory::findings::{FindingQuery, FindingsPage};
use crate::api::inventory::rules::{AccountFilter, DatabaseQuery, RootStatus, root_status};
use crate::api::inventory::views::AccountView;
use crate::api::pagination::{MAX_INSTANCE_LIMIT, PageRequest};
use crate::api::state::AppState;
use crate::api::views::InstanceView;
use crate::crd::inventory::DbInventorySpec;
use crate::crd::{DbHistorySpec, DbInstance, DbInventory};
use crate::observe;

/// Rows of each inventory table on the page; the rest are counted and
/// found with Search.
pub const INVENTORY_ROWS: usize = 200;
/// Account changes per page of the change log.
pub const CHANGES_SHOWN: usize = 20;

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

/// One line of the account change log.
pub struct ChangeRow {
    pub at: Option<When>,
    pub account: String,
    pub kind: String,
    /// Where privileges changed, and which.
    pub detail: String,
}

/// The account change log, one page of it, newest first.
pub struct ChangeLog {
    pub rows: Vec<ChangeRow>,
    /// Whether an account sync has begun the log (its first is the
    /// baseline, which records nothing).
    pub recorded: bool,
    pub total: usize,
    pub page: usize,
    pub pages: usize,
    /// The oldest entries dropped to keep the log bounded.
    pub dropped: u64,
    pub previous: Option<String>,
    pub next: Option<String>,
}

/// What the capacity history, the change log and the findings show: the
/// history and findings routes' permission, the inventory's.
pub struct History {
    pub capacity: CapacityPanel,
    pub changes: ChangeLog,
    pub findings: FindingsPage,
}

/// What the page read besides the instance; each `None` when the caller
/// may not read it, `Some(None)` when there is none yet.
pub struct Reads {
    pub inventory: Option<Option<DbInventorySpec>>,
    pub history: Option<Option<DbHistorySpec>>,
    pub findings: Option<FindingsPage>,
    pub events: RecentEvents,
}

impl Default for Reads {
    fn default() -> Self {
        Reads {
            inventory: None,
            history: None,
            findings: None,
            events: RecentEvents::NotAllowed,
        }
    }
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
    /// `None` when the caller may not read inventories.
    pub history: Option<History>,
    pub events: RecentEvents,
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
    let mut reads = Reads {
        events: events::recent(&state, auth.caller(), &instance).await?,
        ..Reads::default()
    };
    // Read only for a caller the inventory and history routes would answer.
    if frame.can.read_inventories {
        let inventories = state.api::<DbInventory>();
        let inventory = observe::read_inventory(&inventories, &view.name);
        let (inventory, history) = tokio::join!(inventory, history_of(&state, &instance));
        reads.inventory = Some(inventory.map_err(ApiError::kube)?);
        reads.history = Some(history?);
        reads.findings = Some(findings_of(
            id,
            &state.caches.instance_index(),
            &state.caches.fleet_index(),
        ));
    }
    let data = detail(&instance, view, reads, &query);
    Ok(html(&InstancePage { frame, data }))
}

/// The instance's findings as `GET /findings?instance_id=` selects them,
/// all on one page.
pub fn findings_of(id: i64, instances: &InstanceIndex, fleet: &FleetIndex) -> FindingsPage {
    let selection = FindingQuery::from_query(&Query::parse(&format!("instance_id={id}")))
        .expect("an instance id is a valid finding filter");
    selection.page(
        instances,
        fleet,
        PageRequest {
            page: 1,
            limit: MAX_INSTANCE_LIMIT,
        },
    )
}

/// What the page shows of `instance` and of what was read about it, its
/// lists filtered by `query`'s `databases` and `accounts`, its change log
/// at page `changes`: pure.
pub fn detail(instance: &DbInstance, view: InstanceView, reads: Reads, query: &Query) -> InstanceData {
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
        inventory: reads.inventory.map(|spec| inventory_of(spec.as_ref(), query)),
        history: reads
            .history
            .zip(reads.findings)
            .map(|(spec, findings)| history_of_spec(instance, spec.as_ref(), findings, query, &here)),
        events: reads.events,
        view,
        here,
    }
}

/// The capacity panel, one page of the change log and the findings.
fn history_of_spec(
    instance: &DbInstance,
    spec: Option<&DbHistorySpec>,
    findings: FindingsPage,
    query: &Query,
    here: &str,
) -> History {
    let capacity = CapacityHistoryView::of_instance(instance, spec.and_then(|h| h.capacity.as_ref()));
    let log = spec.and_then(|h| h.accounts.as_ref());
    let page = PageRequest {
        page: query
            .get("changes")
            .and_then(|p| p.parse().ok())
            .unwrap_or(1usize)
            .max(1),
        limit: CHANGES_SHOWN,
    };
    let changes = instance_changes(log, &ChangeFilter::default(), page);
    let link = |to: usize| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for key in ["databases", "accounts"] {
            if let Some(value) = query.get(key).filter(|v| !v.is_empty()) {
                q.append_pair(key, value);
            }
        }
        q.append_pair("changes", &to.to_string());
        format!("{here}?{}#changes", q.finish())
    };
    History {
        capacity: capacity::panel(&capacity),
        changes: ChangeLog {
            recorded: log.is_some(),
            total: changes.total,
            page: changes.page,
            pages: changes.pages,
            dropped: changes.dropped.unwrap_or_default(),
            previous: (changes.page > 1).then(|| link(changes.page - 1)),
            next: (changes.page < changes.pages).then(|| link(changes.page + 1)),
            rows: changes
                .items
                .into_iter()
                .map(|c| ChangeRow {
                    at: When::parse(&c.at),
                    account: match &c.host {
                        Some(host) => format!("{}@{host}", c.account),
                        None => c.account.clone(),
                    },
                    kind: c.kind.replace('_', " "),
                    detail: match (&c.database, c.privileges.is_empty()) {
                        (_, true) => String::new(),
                        (Some(db), false) => format!("{} on {db}", c.privileges.join(", ")),
                        (None, false) => format!("{} on *.*", c.privileges.join(", ")),
                    },
                })
                .collect(),
        },
        findings,
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
