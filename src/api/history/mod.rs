//! What changed over time (issue 21): an instance's capacity samples with
//! their growth fit and forecast, its account change log, and the fleet's
//! account changes.
//!
//! - [`views`]: the JSON, and what a change-log request selects (pure);
//! - [`handlers`]: one instance's history is read from its DbHistory per
//!   request (like its inventory); the fleet's changes from the bounded
//!   index in `api::changes_index`, kept from the DbHistory watch events.

pub mod handlers;
pub mod views;

use super::routes::Routes;

pub fn routes() -> Routes {
    Routes::new()
        .get("/instances/{id}/capacity/history", handlers::capacity_history)
        .get("/instances/{id}/accounts/history", handlers::account_history)
        .get("/accounts/changes", handlers::fleet_changes)
}
