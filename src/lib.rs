//! dbfleet: a Kubernetes operator that keeps an inventory of existing
//! PostgreSQL and MySQL/MariaDB servers as `DbInstance` custom resources.

pub mod api;
pub mod app;
pub mod cli;
pub mod crd;
pub mod probe;
pub mod controller;
pub mod health;
pub mod ids;
pub mod metrics;
pub mod sync;
pub mod telemetry;
