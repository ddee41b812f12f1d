//! The REST façade end to end: the façade runs in-process against a real
//! API server, one namespace per test, called over HTTP with
//! ServiceAccount tokens whose RBAC each test sets up.

#[path = "../support/mod.rs"]
mod support;

mod actions;
mod auth;
mod big_inventory;
mod clusters;
mod freshness;
mod harness;
mod history;
mod instances;
mod inventory;
mod privileges;
mod tags;
mod transfer;
