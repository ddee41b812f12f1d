//! The controllers end to end: a real API server, PostgreSQL and MariaDB.
//! Each test runs the controllers in-process, scoped to its own namespace.

#[path = "../support/mod.rs"]
mod support;

mod findings;
mod fixtures;
mod fleet;
mod history;
mod ids;
mod instances;
mod inventory;
mod judgements;
mod leader;
mod recycle_bin;
mod shards;
mod sync_sessions;
mod tags;
mod topology;
