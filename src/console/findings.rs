//! `GET /console/findings`: the fleet's hygiene findings — `view
//! dbinstances` and `get dbinventories`, as `GET /api/v1/findings`, whose
//! filters (`code`, `severity`, `instance`, `db_type`, `tags`), selection
//! (`FindingQuery` over the fleet index) and paging it shows. The
//! overview's findings-by-severity counts link here.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::access::Allowed;
use super::error::{PageError, html};
use super::format::link_with;
use super::frame::{Flash, Frame, Section};
use crate::api::extract::{Get, Instances, Inventories, View};
use crate::api::fleet_index::FleetIndex;
use crate::api::input::Query;
use crate::api::instance_index::InstanceIndex;
use crate::api::inventory::findings::{FindingQuery, FindingsPage};
use crate::api::pagination::{MAX_INSTANCE_LIMIT, PageRequest};
use crate::api::state::AppState;
use crate::observe::findings::Severity;

pub struct SeverityLink {
    pub severity: &'static str,
    pub href: String,
    pub current: bool,
}

pub struct FindingsData {
    pub page: FindingsPage,
    pub severities: Vec<SeverityLink>,
    /// The filters that narrowed the list, as `key=value`, to say so.
    pub filtered_by: Vec<String>,
    pub previous: Option<String>,
    pub next: Option<String>,
}

#[derive(Template)]
#[template(path = "findings.html")]
pub struct FindingsListPage {
    pub frame: Frame,
    pub data: FindingsData,
}

pub async fn page(
    State(state): State<AppState>,
    auth: Allowed<View, Instances>,
    _: Allowed<Get, Inventories>,
    flash: Flash,
    query: Query,
) -> Result<Response, PageError> {
    let frame = Frame::of(&state, auth.caller(), Section::Findings, flash).await?;
    let data = findings(&state.caches.instance_index(), &state.caches.fleet_index(), &query)?;
    Ok(html(&FindingsListPage { frame, data }))
}

/// `query` with `changes` (`None` drops the key), as a link to this page.
fn with(query: &Query, changes: &[(&str, Option<&str>)]) -> String {
    link_with("/console/findings", query, changes)
}

/// One page of the findings `query` selects: pure.
pub fn findings(instances: &InstanceIndex, fleet: &FleetIndex, query: &Query) -> Result<FindingsData, PageError> {
    let selection = FindingQuery::from_query(query)?;
    let request = PageRequest::from_query(query, MAX_INSTANCE_LIMIT);
    let page = selection.page(instances, fleet, request);
    let severities = [Severity::High, Severity::Medium, Severity::Low]
        .into_iter()
        .map(|s| SeverityLink {
            severity: s.as_str(),
            href: with(query, &[("severity", Some(s.as_str())), ("page", None)]),
            current: selection.severities == [s],
        })
        .collect();
    let filtered_by = query
        .pairs()
        .iter()
        .filter(|(k, v)| !matches!(k.as_str(), "page" | "limit") && !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    Ok(FindingsData {
        previous: (page.page > 1).then(|| with(query, &[("page", Some(&(page.page - 1).to_string()))])),
        next: (page.page < page.pages).then(|| with(query, &[("page", Some(&(page.page + 1).to_string()))])),
        severities,
        filtered_by,
        page,
    })
}
