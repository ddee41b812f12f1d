//! The web console (SPEC §6, issue 22): pages a person reads instead of
//! JSON, served by the façade on its own port from templates and two
//! static files built into the binary.
//!
//! It calls what the REST handlers call — the instance index and
//! `InstanceFilter`, `Lookup`, `statistics_of`, the fleet index and its
//! queries, the inventory rules — and, for every action, the REST handler
//! itself, with the permission extractor that handler's signature names.
//! It never calls the API over HTTP and keeps no query of its own beyond
//! the overview's "largest" and "ending soon" short lists.
//!
//! Each page, what it shows and what it needs (the route table below is
//! checked against `docs/console.md`):
//!
//! - `overview`: counts from `/instances/statistics`, failing, stale,
//!   largest, fastest-growing, full soon, ending-soon — view dbinstances;
//!   findings by severity — get dbinventories too;
//! - `instances`: the list with the REST list's filters — view dbinstances;
//! - `instance`: one instance, its conditions and replication — view
//!   dbinstances; its databases, accounts, root status, findings,
//!   capacity history (`capacity`, drawn by `chart`) and account changes
//!   — get dbinventories too; its recent Events (`events`) — list events;
//! - `findings`: the fleet's hygiene findings — view dbinstances and get
//!   dbinventories;
//! - `search`: accounts and databases across the fleet — view dbinstances
//!   and get dbinventories;
//! - `tags`: the tags and their use — view dbtags;
//! - `sessions`: sync sessions, refreshing while running — view dbinstances;
//! - `actions`: the buttons, each as its REST endpoint;
//! - `signin`, `session`, `gate`: the sealed sign-in cookie, CSRF from
//!   forms, security headers; `access`, `frame`, `error`: permissions,
//!   the page frame and error pages; `format`: sizes and times.

pub mod access;
pub mod actions;
pub mod assets;
pub mod capacity;
pub mod chart;
pub mod error;
pub mod events;
pub mod findings;
pub mod format;
pub mod frame;
pub mod gate;
pub mod instance;
pub mod instances;
pub mod overview;
pub mod search;
pub mod session;
pub mod sessions;
pub mod signin;
pub mod tags;

use axum::Router;
use axum::extract::DefaultBodyLimit;

use crate::api::routes::Routes;
use crate::api::state::AppState;

/// Forms are a few ids and tokens; a pasted OIDC token is a few KiB.
const FORM_BODY_LIMIT: usize = 64 * 1024;

/// Every console route, with the access its handler's extractors ask for.
pub fn routes() -> Routes {
    Routes::new()
        .get("/", signin::to_console)
        .get("/console", signin::to_console)
        .get("/console/", overview::page)
        .get("/console/sign-in", signin::form)
        .post("/console/sign-in", signin::sign_in)
        .post("/console/sign-out", signin::sign_out)
        .get("/console/assets/console.css", assets::style)
        .get("/console/assets/console.js", assets::script)
        .get("/console/assets/favicon.svg", assets::icon)
        .get("/console/instances", instances::page)
        .get("/console/instances/{id}", instance::page)
        .post("/console/instances/{id}/test-connection", actions::test_connection)
        .post("/console/instances/{id}/sync-capacity", actions::sync_capacity)
        .post("/console/instances/{id}/sync-accounts", actions::sync_accounts)
        .post("/console/instances/{id}/recycle", actions::recycle)
        .post("/console/instances/{id}/restore", actions::restore)
        .post("/console/tags/assign", actions::assign_tags)
        .post("/console/tags/remove", actions::remove_tags)
        .get("/console/findings", findings::page)
        .get("/console/search", search::page)
        .get("/console/tags", tags::page)
        .get("/console/sync-sessions", sessions::list)
        .post("/console/sync-sessions", actions::sync_all_accounts)
        .get("/console/sync-sessions/{name}", sessions::detail)
}

/// The console's router, to merge into the façade's.
pub fn router(state: AppState) -> Router<AppState> {
    routes()
        .into_router()
        .layer(DefaultBodyLimit::max(FORM_BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(state, gate::gate))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use crate::api::routes::markdown_rows;

    /// The heading of the table in `docs/console.md`.
    const HEADING: &str = "## Pages and permissions";

    #[test]
    fn the_documented_page_table_is_the_served_one() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console.md");
        let doc = std::fs::read_to_string(&path).unwrap_or_default();
        let documented: BTreeSet<String> = doc
            .split_once(HEADING)
            .map(|(_, rest)| rest)
            .unwrap_or_default()
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .skip(2)
            .map(|l| {
                l.split('|')
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join(" | ")
                    .trim()
                    .to_string()
            })
            .collect();
        let served_rows = markdown_rows(super::routes().table());
        let served: BTreeSet<String> = served_rows.iter().cloned().collect();
        assert_eq!(
            documented,
            served,
            "{} under {HEADING:?} differs from the console's routes; they are:\n{}",
            path.display(),
            served_rows.join("\n")
        );
    }
}
