//! `GET /console/instances`: the instance list — `view dbinstances`, the
//! same filters, sorting and paging as `GET /api/v1/instances`
//! (`InstanceFilter`, `PageRequest`, the instance index) and the same
//! views (`Lookup`). Beside each: its size, version, last check, why it is
//! not Ready, and the actions the caller may take.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::access::Allowed;
use super::error::{PageError, html};
use super::format::{When, bytes, link_with, when};
use super::frame::{Flash, Frame, Section};
use crate::api::envelope::ApiError;
use crate::api::extract::{Instances, View};
use crate::api::input::Query;
use crate::api::instance_index::InstanceIndex;
use crate::api::instances::InstanceFilter;
use crate::api::pagination::{MAX_INSTANCE_LIMIT, PageRequest};
use crate::api::state::AppState;
use crate::api::views::{Lookup, TagRef};
use crate::crd::DbInstance;

/// The list's columns that sort, as `sort=` names them.
const SORTABLE: [(&str, &str); 5] = [
    ("name", "Name"),
    ("db_type", "Engine"),
    ("host", "Host"),
    ("status", "Status"),
    ("updated_at", "Changed"),
];

pub struct InstanceRow {
    pub id: i64,
    pub name: String,
    pub db_type: &'static str,
    pub address: String,
    pub status: &'static str,
    pub connection: &'static str,
    pub size: Option<String>,
    pub version: Option<String>,
    pub checked: Option<When>,
    pub changed: Option<When>,
    /// The `Ready` condition's reason and message when it is not True.
    pub not_ready: Option<String>,
    pub stale: bool,
    pub recycled: bool,
    pub is_active: bool,
    pub description: String,
    pub tags: Vec<TagRef>,
}

pub struct SortLink {
    pub label: &'static str,
    pub href: String,
    /// `ascending`/`descending` when the list is sorted by it.
    pub current: Option<&'static str>,
}

pub struct ListData {
    pub rows: Vec<InstanceRow>,
    pub total: usize,
    pub page: usize,
    pub pages: usize,
    pub first: usize,
    pub last: usize,
    pub previous: Option<String>,
    pub next: Option<String>,
    pub sorts: Vec<SortLink>,
    /// The filters as sent, to fill the form again.
    pub search: String,
    pub db_type: String,
    pub status: String,
    pub tags: Vec<String>,
    pub limit: usize,
    /// Every live tag, to filter and to assign by.
    pub tag_choices: Vec<TagRef>,
    /// This page's own address, for the forms to come back to.
    pub here: String,
    pub fleet_is_empty: bool,
}

impl ListData {
    /// Whether the list is filtered by tag `name`.
    pub fn tagged(&self, name: &str) -> bool {
        self.tags.iter().any(|t| t == name)
    }
}

#[derive(Template)]
#[template(path = "instances.html")]
pub struct InstancesPage {
    pub frame: Frame,
    pub data: ListData,
}

pub async fn page(
    State(state): State<AppState>,
    auth: Allowed<View, Instances>,
    flash: Flash,
    query: Query,
) -> Result<Response, PageError> {
    let frame = Frame::of(&state, auth.caller(), Section::Instances, flash).await?;
    let tags = state.caches.live(&state.caches.tags);
    let lookup = state.lookup();
    let data = list(&state.caches.instance_index(), &lookup, &tags, &query)?;
    Ok(html(&InstancesPage { frame, data }))
}

/// `query` with `changes` (`None` drops the key), as a link to this page.
fn with(query: &Query, changes: &[(&str, Option<&str>)]) -> String {
    link_with("/console/instances", query, changes)
}

/// Why the instance is not Ready, from its `Ready` condition.
pub fn not_ready(instance: &DbInstance) -> Option<String> {
    let ready = instance
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")?;
    (ready.status != "True").then(|| format!("{}: {}", ready.reason, ready.message))
}

/// One page of the list as the page shows it: pure.
pub fn list(
    index: &InstanceIndex,
    lookup: &Lookup,
    tags: &[Arc<crate::crd::DbTag>],
    query: &Query,
) -> Result<ListData, ApiError> {
    let filter = InstanceFilter::from_query(query)?;
    let request = PageRequest::from_query(query, MAX_INSTANCE_LIMIT);
    let paged = filter.page(index, request);
    let rows = paged
        .items
        .iter()
        .filter_map(|(_, instance)| {
            let view = lookup.instance(instance)?;
            Some(InstanceRow {
                id: view.id,
                address: format!("{}:{}", view.host, view.port),
                size: view.capacity.as_ref().map(|c| bytes(c.total_size_bytes)),
                checked: when(view.connection.last_checked_at.as_deref()),
                changed: when(view.updated_at.as_deref()),
                not_ready: not_ready(instance),
                recycled: instance.is_recycled(),
                name: view.name,
                db_type: view.db_type,
                status: view.status,
                connection: view.connection.status,
                version: view.connection.version,
                stale: view.stale,
                is_active: view.is_active,
                description: view.description.unwrap_or_default(),
                tags: view.tags,
            })
        })
        .collect();
    let sort = query.get("sort").unwrap_or("id");
    let ascending = query.get("order").is_some_and(|o| o.eq_ignore_ascii_case("asc"));
    let sorts = SORTABLE
        .iter()
        .map(|(key, label)| {
            let current = (sort == *key).then_some(if ascending { "ascending" } else { "descending" });
            let order = if current == Some("ascending") { "desc" } else { "asc" };
            SortLink {
                label,
                href: with(query, &[("sort", Some(key)), ("order", Some(order)), ("page", None)]),
                current,
            }
        })
        .collect();
    let (start, _) = request.range();
    let shown = paged.items.len();
    Ok(ListData {
        rows,
        total: paged.total,
        page: paged.page,
        pages: paged.pages,
        first: if shown == 0 { 0 } else { start + 1 },
        last: start + shown,
        previous: (paged.page > 1).then(|| with(query, &[("page", Some(&(paged.page - 1).to_string()))])),
        next: (paged.page < paged.pages).then(|| with(query, &[("page", Some(&(paged.page + 1).to_string()))])),
        sorts,
        search: query.get("search").unwrap_or_default().to_string(),
        db_type: query.get("db_type").unwrap_or_default().to_string(),
        status: query.get("status").unwrap_or_default().to_lowercase(),
        tags: query.all("tags").into_iter().map(str::to_owned).collect(),
        limit: request.limit,
        tag_choices: tags.iter().map(|t| crate::api::views::tag_ref(t)).collect(),
        here: with(query, &[]),
        fleet_is_empty: index.count(true) == 0,
    })
}
