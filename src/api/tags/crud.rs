//! Handlers for tags themselves: list, options, categories, read, create,
//! update, delete, batch delete (SPEC §3.6).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use kube::ResourceExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::rules::{TagFilter, TagInput, usage, validate_tag};
use super::{MAX_BULK_IDS, find, view, writes};
use crate::api::envelope::{ApiError, ApiResult, Reply};
use crate::api::extract::{Authorized, Create, Delete, Id, JsonBody, JsonOrForm, Tags, Update, View};
use crate::api::input::{Query, distinct_ids};
use crate::api::pagination::{MAX_TAG_LIMIT, PageRequest, Paged};
use crate::api::state::AppState;
use crate::api::views::{TagView, tag_view};

#[utoipa::path(get, path = "/api/v1/tags", tag = "tags",
    params(("search" = Option<String>, Query), ("category" = Option<String>, Query), ("status" = Option<String>, Query),
        ("page" = Option<String>, Query), ("limit" = Option<String>, Query)),
    responses((status = 200, body = Paged<TagView>), (status = 400), (status = 401), (status = 403)))]
pub async fn list(
    State(state): State<AppState>,
    _: Authorized<View, Tags>,
    query: Query,
) -> ApiResult<Reply<Paged<TagView>>> {
    let filter = TagFilter::from_query(&query)?;
    let page = PageRequest::from_query(&query, MAX_TAG_LIMIT);
    let counts = usage(&state.caches.all(&state.caches.instances));
    let mut tags: Vec<TagView> = state
        .caches
        .live(&state.caches.tags)
        .iter()
        .filter(|t| filter.matches(t))
        .filter_map(|t| tag_view(t, counts.get(&t.name_any()).copied().unwrap_or(0)))
        .collect();
    tags.sort_by(|a, b| b.id.cmp(&a.id));
    Ok(Reply::ok(page.apply(tags)))
}

#[utoipa::path(get, path = "/api/v1/tags/{id}", tag = "tags", params(("id" = i64, Path)),
    responses((status = 200, body = TagView), (status = 401), (status = 403), (status = 404)))]
pub async fn detail(
    State(state): State<AppState>,
    _: Authorized<View, Tags>,
    Id(id, ..): Id<Tags>,
) -> ApiResult<Reply<TagView>> {
    Ok(Reply::ok(view(&state, find(&state, id)?.as_ref())?))
}

#[utoipa::path(post, path = "/api/v1/tags", tag = "tags", request_body = TagInput,
    responses((status = 201, body = TagView), (status = 400), (status = 401), (status = 403), (status = 409)))]
pub async fn create(
    State(state): State<AppState>,
    _: Authorized<Create, Tags>,
    JsonOrForm(input): JsonOrForm<TagInput>,
) -> ApiResult<Response> {
    let spec = validate_tag(&input).map_err(ApiError::fields)?;
    let created = writes::create(&state, &input.name, spec).await?;
    Ok(Reply::created(view(&state, &created)?))
}

#[utoipa::path(put, path = "/api/v1/tags/{id}", tag = "tags", params(("id" = i64, Path)), request_body = TagInput,
    responses((status = 200, body = TagView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn update(
    State(state): State<AppState>,
    _: Authorized<Update, Tags>,
    Id(id, ..): Id<Tags>,
    input: Result<JsonOrForm<TagInput>, ApiError>,
) -> ApiResult<Reply<TagView>> {
    // An unknown id is a 404 whatever the body.
    let current = find(&state, id)?;
    let JsonOrForm(input) = input?;
    if input.name != current.name_any() {
        return Err(ApiError::field(
            "name",
            "name cannot change: it is the tag's code (the DbTag's metadata.name)",
        ));
    }
    let spec = validate_tag(&input).map_err(ApiError::fields)?;
    let updated = writes::update(&state, &current, &spec).await?;
    Ok(Reply::ok(view(&state, &updated)?))
}

#[derive(Serialize, ToSchema)]
pub struct TagDeleted {
    pub id: i64,
    pub name: String,
}

#[utoipa::path(delete, path = "/api/v1/tags/{id}", tag = "tags", params(("id" = i64, Path)),
    responses((status = 200, body = TagDeleted), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn delete(
    State(state): State<AppState>,
    _: Authorized<Delete, Tags>,
    Id(id, ..): Id<Tags>,
) -> ApiResult<Reply<TagDeleted>> {
    let name = writes::delete(&state, id).await?;
    Ok(Reply::ok(TagDeleted { id, name }).message("deleted"))
}

#[derive(Deserialize, ToSchema)]
pub struct TagIdsInput {
    pub tag_ids: Vec<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct TagBatchItem {
    pub tag_id: i64,
    /// `success` or `failed`.
    pub result: &'static str,
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct TagBatchData {
    pub results: Vec<TagBatchItem>,
    pub deleted_count: usize,
}

#[utoipa::path(post, path = "/api/v1/tags/batch-delete", tag = "tags", request_body = TagIdsInput,
    responses((status = 200, body = TagBatchData), (status = 207, body = TagBatchData), (status = 400), (status = 401), (status = 403)))]
pub async fn batch_delete(
    State(state): State<AppState>,
    _: Authorized<Delete, Tags>,
    JsonBody(input): JsonBody<TagIdsInput>,
) -> ApiResult<Reply<TagBatchData>> {
    let ids = distinct_ids(&input.tag_ids, "tag_ids", MAX_BULK_IDS)?;
    let mut results = Vec::with_capacity(ids.len());
    for id in ids {
        results.push(match writes::delete(&state, id).await {
            Ok(_) => TagBatchItem {
                tag_id: id,
                result: "success",
                code: "OK",
                message: "deleted".into(),
            },
            Err(e) => TagBatchItem {
                tag_id: id,
                result: "failed",
                code: e.code.as_str(),
                message: e.message,
            },
        });
    }
    let deleted_count = results.iter().filter(|r| r.result == "success").count();
    let total = results.len();
    Ok(Reply::batch(
        TagBatchData { results, deleted_count },
        total - deleted_count,
        total,
    ))
}

#[derive(Serialize, ToSchema)]
pub struct TagOption {
    pub value: String,
    pub label: String,
    pub color: Option<String>,
    pub category: String,
}

#[utoipa::path(get, path = "/api/v1/tags/options", tag = "tags", params(("category" = Option<String>, Query)),
    responses((status = 200, body = Vec<TagOption>), (status = 401), (status = 403)))]
pub async fn options(
    State(state): State<AppState>,
    _: Authorized<View, Tags>,
    query: Query,
) -> ApiResult<Reply<Vec<TagOption>>> {
    let category = query.get("category");
    let mut tags: Vec<_> = state
        .caches
        .live(&state.caches.tags)
        .into_iter()
        .filter(|t| t.spec.is_active && category.is_none_or(|c| c == t.spec.category))
        .collect();
    tags.sort_by(|a, b| (&a.spec.category, &a.spec.display_name).cmp(&(&b.spec.category, &b.spec.display_name)));
    Ok(Reply::ok(
        tags.iter()
            .map(|t| TagOption {
                value: t.name_any(),
                label: t.spec.display_name.clone(),
                color: t.spec.color.clone(),
                category: t.spec.category.clone(),
            })
            .collect(),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct CategoryCount {
    pub name: String,
    pub count: usize,
}

#[utoipa::path(get, path = "/api/v1/tags/categories", tag = "tags",
    responses((status = 200, body = Vec<CategoryCount>), (status = 401), (status = 403)))]
pub async fn categories(
    State(state): State<AppState>,
    _: Authorized<View, Tags>,
) -> ApiResult<Reply<Vec<CategoryCount>>> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for tag in state.caches.live(&state.caches.tags) {
        *counts.entry(tag.spec.category.clone()).or_default() += 1;
    }
    Ok(Reply::ok(
        counts
            .into_iter()
            .map(|(name, count)| CategoryCount { name, count })
            .collect(),
    ))
}
