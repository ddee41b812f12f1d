//! dbfleet: a Kubernetes operator that keeps an inventory of existing
//! PostgreSQL and MySQL/MariaDB servers as `DbInstance` custom resources.
//!
//! - [`crd`]: the resources; [`probe`]: talking to databases (no Kubernetes);
//! - [`observe`]: from a probe to a status: credentials and where they may
//!   go, what is due, the probe budget, the status and DbInventory written;
//! - [`controller`]: the reconcilers; [`api`]: the REST façade; [`console`]:
//!   the web console it serves beside the API;
//! - [`watches`]: one watch per kind, shared by the controllers and the façade;
//! - [`ids`], [`metrics`], [`health`], [`telemetry`]: shared plumbing;
//! - [`lifecycle`]: waiting for what start-up needs, bounded shutdown;
//! - [`cli`], [`app`]: the `dbfleet` binary's flags and wiring.

pub mod api;
pub mod app;
pub mod cli;
pub mod console;
pub mod controller;
pub mod crd;
pub mod health;
pub mod ids;
pub mod lifecycle;
pub mod metrics;
pub mod observe;
pub mod probe;
pub mod telemetry;
pub mod versions;
pub mod watches;
