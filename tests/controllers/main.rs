//! The controllers end to end: a real API server, PostgreSQL and MariaDB.

#[path = "../support/mod.rs"]
mod support;

mod ids;
