//! `/api/v1/tags` (SPEC §3.6): DbTags, and assigning them to instances in
//! bulk.
//!
//! - [`rules`]: the tag body, its rules, filters and tag-list arithmetic
//!   (pure);
//! - [`writes`]: every write to a DbTag, read back from the cache;
//! - handlers: [`crud`] (tags themselves), [`bulk`] (tags on instances).

pub mod bulk;
pub mod crud;
pub mod rules;
pub mod writes;

use std::sync::Arc;

use kube::ResourceExt;

use self::rules::usage;
use super::envelope::{ApiError, ApiResult};
use super::routes::Routes;
use super::views::{TagView, tag_view};
use crate::api::state::Shared;
use crate::crd::DbTag;

/// Ids per bulk or batch request.
pub const MAX_BULK_IDS: usize = 1000;

pub fn routes() -> Routes {
    Routes::new()
        .get("/tags", crud::list)
        .post("/tags", crud::create)
        .get("/tags/options", crud::options)
        .get("/tags/categories", crud::categories)
        .post("/tags/batch-delete", crud::batch_delete)
        .get("/tags/bulk/instances", bulk::bulk_instances)
        .get("/tags/bulk/tags", bulk::bulk_tags)
        .post("/tags/bulk/actions/assign", bulk::assign)
        .post("/tags/bulk/actions/remove", bulk::remove)
        .post("/tags/bulk/actions/remove-all", bulk::remove_all)
        .post("/tags/bulk/instance-tags", bulk::instance_tags)
        .get("/tags/{id}", crud::detail)
        .put("/tags/{id}", crud::update)
        .delete("/tags/{id}", crud::delete)
}

fn find(state: &Shared, id: i64) -> ApiResult<Arc<DbTag>> {
    state
        .caches
        .tag_by_id(id)?
        .ok_or_else(|| ApiError::not_found(format!("tag {id}")))
}

pub fn view(state: &Shared, tag: &DbTag) -> ApiResult<TagView> {
    let count = usage(&state.caches.all(&state.caches.instances))
        .get(&tag.name_any())
        .copied()
        .unwrap_or(0);
    tag_view(tag, count).ok_or_else(|| ApiError::not_found("tag"))
}
