//! `/api/v1/instances` (SPEC §3.5): DbInstances through the contract.
//!
//! - [`rules`]: the create/update body and the rules it must meet (pure);
//! - [`query`]: what a list or export request selects, in which order (pure);
//! - [`statistics`]: fleet-wide counts (pure); [`growers`]: growth ranks
//!   for the statistics and the list's growth sorts (pure);
//! - [`writes`]: every write to a DbInstance, guarded and read back;
//! - handlers: [`listing`] (list, options, statistics), [`detail`] (one
//!   instance: read, create, update, connection status), [`recycle`] (soft
//!   delete and restore), [`recycle_bin`] (what the bin holds), [`batch`]
//!   (batch delete).

pub mod batch;
pub mod detail;
pub mod growers;
pub mod listing;
pub mod query;
pub mod recycle;
pub mod recycle_bin;
pub mod rules;
pub mod statistics;
pub mod writes;

#[cfg(test)]
mod fixtures;

use std::sync::Arc;

use super::envelope::{ApiError, ApiResult};
use super::routes::Routes;
use super::views::InstanceView;
use crate::api::state::Shared;
use crate::crd::DbInstance;

pub use query::InstanceFilter;
pub use rules::{DbTypeInput, InstanceInput, Known};

pub fn routes() -> Routes {
    Routes::new()
        .get("/instances", listing::list)
        .post("/instances", detail::create)
        .get("/instances/options", listing::options)
        .get("/instances/statistics", listing::statistics)
        .get("/instances/recycle-bin", recycle_bin::list)
        .post("/instances/actions/batch-delete", batch::batch_delete)
        .get("/instances/{id}", detail::detail)
        .put("/instances/{id}", detail::update)
        .delete("/instances/{id}", recycle::soft_delete)
        .post("/instances/{id}/actions/restore", recycle::restore)
        .get("/instances/{id}/connection-status", detail::connection_status)
}

/// The instance with `id`; recycled ones only when `recycled_too`. Two
/// instances carrying `id` are a 409 naming both.
pub fn find(state: &Shared, id: i64, recycled_too: bool) -> ApiResult<Arc<DbInstance>> {
    state
        .caches
        .instance_by_id(id)?
        .filter(|i| recycled_too || !i.is_recycled())
        .ok_or_else(|| ApiError::not_found(format!("instance {id}")))
}

pub fn view(state: &Shared, instance: &DbInstance) -> ApiResult<InstanceView> {
    state
        .lookup()
        .instance(instance)
        .ok_or_else(|| ApiError::not_found("instance"))
}
