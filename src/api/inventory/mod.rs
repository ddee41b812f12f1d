//! What is on each instance's server (SPEC §3.5; issue 12): its databases,
//! its accounts and their privileges, its root status, and fleet-wide
//! searches for where an account or a database exists.
//!
//! - [`rules`]: what a request selects, in which order; one account by
//!   name; the root status (pure);
//! - [`views`]: the JSON of databases and accounts (pure);
//! - [`index`]: the fleet-wide index of accounts and databases, kept from
//!   the DbInventory watch events;
//! - handlers: [`handlers`] (one instance, read from its DbInventory),
//!   [`fleet`] (fleet-wide, from the index), [`findings`] (the fleet's
//!   hygiene findings, from the index).

pub mod findings;
pub mod fleet;
pub mod handlers;
pub mod rules;
pub mod views;

use super::routes::Routes;

pub fn routes() -> Routes {
    Routes::new()
        .get("/instances/{id}/databases", handlers::databases)
        .get("/instances/{id}/accounts", handlers::accounts)
        .get("/instances/{id}/accounts/{name}", handlers::account)
        .get("/instances/{id}/root-status", handlers::root)
        .get("/accounts", fleet::accounts)
        .get("/databases", fleet::databases)
        .get("/findings", findings::findings)
}
