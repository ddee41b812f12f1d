//! Handlers that put tags on instances in bulk (SPEC §3.6). Any unknown id
//! refuses the whole request, so nothing is half applied.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use kube::ResourceExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::MAX_BULK_IDS;
use super::rules::{usage, with_tags, without_tags};
use crate::api::envelope::{ApiError, ApiResult, Reply};
use crate::api::extract::{Authorized, Create, JsonBody, Tags, View};
use crate::api::input::distinct_ids;
use crate::api::instances::writes::set_tags;
use crate::api::state::{AppState, Shared};
use crate::api::views::{TagRef, TagView, tag_view};
use crate::crd::DbInstance;
use crate::ids::id_of;

#[derive(Serialize, ToSchema)]
pub struct BulkInstance {
    pub id: i64,
    pub name: String,
    pub db_type: &'static str,
    pub host: String,
    pub port: i32,
    pub tags: Vec<TagRef>,
}

#[utoipa::path(get, path = "/api/v1/tags/bulk/instances", tag = "tags",
    responses((status = 200, body = Vec<BulkInstance>), (status = 401), (status = 403)))]
pub async fn bulk_instances(
    State(state): State<AppState>,
    _: Authorized<View, Tags>,
) -> ApiResult<Reply<Vec<BulkInstance>>> {
    let lookup = state.lookup();
    let mut listed: Vec<BulkInstance> = state
        .caches
        .live(&state.caches.instances)
        .iter()
        .filter(|i| !i.is_recycled())
        .filter_map(|i| {
            Some(BulkInstance {
                id: id_of(&i.metadata)?,
                name: i.name_any(),
                db_type: i.spec.db_type.as_str(),
                host: i.spec.host.clone(),
                port: i.spec.port,
                tags: i.spec.tags.iter().map(|t| lookup.tag(t)).collect(),
            })
        })
        .collect();
    listed.sort_by_key(|i| i.id);
    Ok(Reply::ok(listed))
}

#[utoipa::path(get, path = "/api/v1/tags/bulk/tags", tag = "tags",
    responses((status = 200, body = Vec<TagView>), (status = 401), (status = 403)))]
pub async fn bulk_tags(State(state): State<AppState>, _: Authorized<View, Tags>) -> ApiResult<Reply<Vec<TagView>>> {
    let counts = usage(&state.caches.all(&state.caches.instances));
    let mut tags: Vec<TagView> = state
        .caches
        .live(&state.caches.tags)
        .iter()
        .filter(|t| t.spec.is_active)
        .filter_map(|t| tag_view(t, counts.get(&t.name_any()).copied().unwrap_or(0)))
        .collect();
    tags.sort_by_key(|t| t.id);
    Ok(Reply::ok(tags))
}

#[derive(Deserialize, ToSchema)]
pub struct BulkInput {
    pub instance_ids: Vec<i64>,
    pub tag_ids: Vec<i64>,
}

#[derive(Deserialize, ToSchema)]
pub struct InstanceIdsInput {
    pub instance_ids: Vec<i64>,
}

/// The non-recycled instances with these ids; any unknown id refuses the
/// whole request, so nothing is half-applied.
fn resolve_instances(state: &Shared, ids: &[i64]) -> ApiResult<Vec<Arc<DbInstance>>> {
    let ids = distinct_ids(ids, "instance_ids", MAX_BULK_IDS)?;
    ids.iter()
        .map(|id| {
            state
                .caches
                .instance_by_id(*id)?
                .filter(|i| !i.is_recycled())
                .ok_or_else(|| ApiError::field("instance_ids", format!("no instance with id {id}")))
        })
        .collect()
}

fn resolve_tags(state: &Shared, ids: &[i64]) -> ApiResult<Vec<String>> {
    let ids = distinct_ids(ids, "tag_ids", MAX_BULK_IDS)?;
    ids.iter()
        .map(|id| {
            state
                .caches
                .tag_by_id(*id)?
                .map(|t| t.name_any())
                .ok_or_else(|| ApiError::field("tag_ids", format!("no tag with id {id}")))
        })
        .collect()
}

/// Writes each instance's new tag list (only those that change), guarded
/// by the resourceVersion it was computed from.
async fn retag(
    state: &Shared,
    instances: &[Arc<DbInstance>],
    change: impl Fn(&[String]) -> (Vec<String>, usize),
) -> ApiResult<usize> {
    let mut changed = 0;
    for instance in instances {
        let (tags, count) = change(&instance.spec.tags);
        if count == 0 {
            continue;
        }
        set_tags(state, instance, &tags).await?;
        changed += count;
    }
    Ok(changed)
}

#[derive(Serialize, ToSchema)]
pub struct AssignedData {
    pub assigned_count: usize,
}

#[derive(Serialize, ToSchema)]
pub struct RemovedData {
    pub removed_count: usize,
}

#[utoipa::path(post, path = "/api/v1/tags/bulk/actions/assign", tag = "tags", request_body = BulkInput,
    responses((status = 200, body = AssignedData), (status = 400), (status = 401), (status = 403), (status = 409)))]
pub async fn assign(
    State(state): State<AppState>,
    _: Authorized<Create, Tags>,
    JsonBody(input): JsonBody<BulkInput>,
) -> ApiResult<Reply<AssignedData>> {
    let instances = resolve_instances(&state, &input.instance_ids)?;
    let tags = resolve_tags(&state, &input.tag_ids)?;
    let assigned_count = retag(&state, &instances, |existing| with_tags(existing, &tags)).await?;
    Ok(Reply::ok(AssignedData { assigned_count }))
}

#[utoipa::path(post, path = "/api/v1/tags/bulk/actions/remove", tag = "tags", request_body = BulkInput,
    responses((status = 200, body = RemovedData), (status = 400), (status = 401), (status = 403), (status = 409)))]
pub async fn remove(
    State(state): State<AppState>,
    _: Authorized<Create, Tags>,
    JsonBody(input): JsonBody<BulkInput>,
) -> ApiResult<Reply<RemovedData>> {
    let instances = resolve_instances(&state, &input.instance_ids)?;
    let tags = resolve_tags(&state, &input.tag_ids)?;
    let removed_count = retag(&state, &instances, |existing| without_tags(existing, &tags)).await?;
    Ok(Reply::ok(RemovedData { removed_count }))
}

#[utoipa::path(post, path = "/api/v1/tags/bulk/actions/remove-all", tag = "tags", request_body = InstanceIdsInput,
    responses((status = 200, body = RemovedData), (status = 400), (status = 401), (status = 403), (status = 409)))]
pub async fn remove_all(
    State(state): State<AppState>,
    _: Authorized<Create, Tags>,
    JsonBody(input): JsonBody<InstanceIdsInput>,
) -> ApiResult<Reply<RemovedData>> {
    let instances = resolve_instances(&state, &input.instance_ids)?;
    let removed_count = retag(&state, &instances, |existing| (Vec::new(), existing.len())).await?;
    Ok(Reply::ok(RemovedData { removed_count }))
}

#[derive(Serialize, ToSchema)]
pub struct InstanceTagsData {
    /// The union of the instances' tags.
    pub tags: Vec<TagRef>,
    /// Instance id → its tags.
    pub by_instance: BTreeMap<String, Vec<TagRef>>,
}

#[utoipa::path(post, path = "/api/v1/tags/bulk/instance-tags", tag = "tags", request_body = InstanceIdsInput,
    responses((status = 200, body = InstanceTagsData), (status = 400), (status = 401), (status = 403)))]
pub async fn instance_tags(
    State(state): State<AppState>,
    _: Authorized<View, Tags>,
    JsonBody(input): JsonBody<InstanceIdsInput>,
) -> ApiResult<Reply<InstanceTagsData>> {
    let instances = resolve_instances(&state, &input.instance_ids)?;
    let lookup = state.lookup();
    let mut union: Vec<String> = Vec::new();
    let mut by_instance = BTreeMap::new();
    for instance in &instances {
        union = with_tags(&union, &instance.spec.tags).0;
        let id = id_of(&instance.metadata).unwrap_or_default();
        by_instance.insert(
            id.to_string(),
            instance.spec.tags.iter().map(|t| lookup.tag(t)).collect(),
        );
    }
    union.sort();
    Ok(Reply::ok(InstanceTagsData {
        tags: union.iter().map(|t| lookup.tag(t)).collect(),
        by_instance,
    }))
}
