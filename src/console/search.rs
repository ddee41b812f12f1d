//! `GET /console/search`: where an account exists and which instances
//! hold a database, across the fleet — `view dbinstances` and `get
//! dbinventories`, as `GET /api/v1/accounts` and `/databases`, answered
//! from the same fleet index with the same queries (`FleetAccountQuery`,
//! `FleetDatabaseQuery`). With `fragment=1` only the results, which the
//! page's script asks for as the person types.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::access::Allowed;
use super::error::{PageError, html};
use super::format::bytes;
use super::frame::{Flash, Frame, Section};
use crate::api::envelope::ApiError;
use crate::api::extract::{Get, Instances, Inventories, View};
use crate::api::fleet_index::FleetIndex;
use crate::api::input::Query;
use crate::api::instance_index::InstanceIndex;
use crate::api::inventory::fleet::{FleetAccount, FleetAccountQuery, FleetDatabaseQuery};
use crate::api::pagination::{MAX_INSTANCE_LIMIT, PageRequest};
use crate::api::state::AppState;

pub struct FoundDatabase {
    pub instance_id: i64,
    pub instance: String,
    pub name: String,
    pub size: String,
    pub tables: String,
    pub owner: String,
}

pub struct Results {
    /// Nothing was asked yet.
    pub idle: bool,
    pub accounts: Vec<FleetAccount>,
    pub databases: Vec<FoundDatabase>,
    pub total: usize,
    pub searched: usize,
    pub not_collected: usize,
    pub truncated: usize,
}

#[derive(Template)]
#[template(path = "search.html")]
pub struct SearchPage {
    pub frame: Frame,
    pub kind: String,
    pub search: String,
    pub results: Results,
}

#[derive(Template)]
#[template(path = "search_results.html")]
pub struct ResultsFragment {
    pub kind: String,
    pub results: Results,
}

pub async fn page(
    State(state): State<AppState>,
    auth: Allowed<View, Instances>,
    _: Allowed<Get, Inventories>,
    flash: Flash,
    query: Query,
) -> Result<Response, PageError> {
    let kind = match query.get("kind") {
        Some("databases") => "databases",
        _ => "accounts",
    }
    .to_string();
    let results = {
        let instances = state.caches.instance_index();
        let fleet = state.caches.fleet_index();
        search(&instances, &fleet, &kind, &query)?
    };
    if query.get("fragment").is_some() {
        return Ok(html(&ResultsFragment { kind, results }));
    }
    let frame = Frame::of(&state, auth.caller(), Section::Search, flash).await?;
    Ok(html(&SearchPage {
        frame,
        search: query.get("search").unwrap_or_default().to_string(),
        kind,
        results,
    }))
}

/// The first page of what the REST search answers for `query`: pure.
pub fn search(instances: &InstanceIndex, fleet: &FleetIndex, kind: &str, query: &Query) -> Result<Results, ApiError> {
    if query.get("search").is_none() && query.get("name").is_none() {
        return Ok(Results {
            idle: true,
            accounts: vec![],
            databases: vec![],
            total: 0,
            searched: 0,
            not_collected: 0,
            truncated: 0,
        });
    }
    let page = PageRequest::from_query(query, MAX_INSTANCE_LIMIT);
    Ok(if kind == "databases" {
        let found = FleetDatabaseQuery::from_query(query)?.page(instances, fleet, page);
        Results {
            idle: false,
            accounts: vec![],
            databases: found
                .items
                .into_iter()
                .map(|d| FoundDatabase {
                    instance_id: d.instance.id,
                    instance: d.instance.name,
                    name: d.name,
                    size: bytes(d.size_bytes),
                    tables: d.table_count.map(|n| n.to_string()).unwrap_or_else(|| "–".into()),
                    owner: d.owner.unwrap_or_default(),
                })
                .collect(),
            total: found.total,
            searched: found.searched_instances,
            not_collected: found.instances_not_collected,
            truncated: found.instances_truncated,
        }
    } else {
        let found = FleetAccountQuery::from_query(query)?.page(instances, fleet, page);
        Results {
            idle: false,
            accounts: found.items,
            databases: vec![],
            total: found.total,
            searched: found.searched_instances,
            not_collected: found.instances_not_collected,
            truncated: found.instances_truncated,
        }
    })
}
