//! dbfleet: a Kubernetes operator that keeps an inventory of existing
//! PostgreSQL and MySQL/MariaDB servers as `DbInstance` custom resources.

pub mod api;
pub mod cli;
pub mod crd;
pub mod probe;
pub mod ids;
