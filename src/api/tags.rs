//! `/api/v1/tags` (SPEC §3.6): DbTags, and assigning them to instances in
//! bulk.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::{Api, ResourceExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::envelope::{ApiError, ApiResult, Code, FieldError, Reply};
use super::extract::{Authorized, Create, Delete, Id, JsonBody, JsonOrForm, Tags, Update, View};
use super::guarded;
use super::input::Query;
use super::instances::{self, distinct_ids, id_error};
use super::pagination::{MAX_TAG_LIMIT, PageRequest, Paged};
use super::routes::Routes;
use super::store::Caches;
use super::views::{TagRef, TagView, is_recycled, tag_view};
use super::{AppState, Shared};
use crate::crd::keys::ID_LABEL;
use crate::crd::{DbInstance, DbTag, DbTagSpec};
use crate::ids::{IdKind, id_of};

/// Ids per bulk or batch request.
pub const MAX_BULK_IDS: usize = 1000;

pub fn routes() -> Routes {
    Routes::new()
        .get("/tags", list)
        .post("/tags", create)
        .get("/tags/options", options)
        .get("/tags/categories", categories)
        .post("/tags/batch-delete", batch_delete)
        .get("/tags/bulk/instances", bulk_instances)
        .get("/tags/bulk/tags", bulk_tags)
        .post("/tags/bulk/actions/assign", assign)
        .post("/tags/bulk/actions/remove", remove)
        .post("/tags/bulk/actions/remove-all", remove_all)
        .post("/tags/bulk/instance-tags", instance_tags)
        .get("/tags/{id}", detail)
        .put("/tags/{id}", update)
        .delete("/tags/{id}", delete)
}

// ---------------------------------------------------------------- pure parts

#[derive(Deserialize, Clone, Debug, ToSchema)]
pub struct TagInput {
    /// The tag code (DbTag name): a DNS-1123 label. Cannot change on update.
    pub name: String,
    pub display_name: String,
    pub category: String,
    #[serde(default)]
    pub color: Option<String>,
    #[serde(default)]
    pub is_active: Option<bool>,
}

pub fn validate_tag(input: &TagInput) -> Result<DbTagSpec, Vec<FieldError>> {
    let mut errors = Vec::new();
    if !is_dns_label(&input.name) {
        errors.push(FieldError::new(
            "name",
            "name must be a DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
        ));
    }
    let display_name = input.display_name.trim();
    if display_name.is_empty() || display_name.chars().count() > 64 {
        errors.push(FieldError::new(
            "display_name",
            "display_name must be 1 to 64 characters",
        ));
    }
    let category = input.category.trim();
    if category.is_empty() || category.chars().count() > 64 {
        errors.push(FieldError::new("category", "category must be 1 to 64 characters"));
    }
    let color = input.color.as_deref().map(str::trim).filter(|c| !c.is_empty());
    if color.is_some_and(|c| !is_color(c)) {
        errors.push(FieldError::new("color", "color must be a CSS colour name or #rrggbb"));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(DbTagSpec {
        display_name: display_name.into(),
        category: category.into(),
        color: color.map(str::to_owned),
        is_active: input.is_active.unwrap_or(true),
    })
}

fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn is_color(color: &str) -> bool {
    match color.strip_prefix('#') {
        Some(hex) => hex.len() == 6 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => color.len() <= 32 && color.bytes().all(|b| b.is_ascii_alphabetic()),
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TagFilter {
    pub search: Option<String>,
    pub category: Option<String>,
    pub active: Option<bool>,
}

impl TagFilter {
    pub fn from_query(query: &Query) -> ApiResult<Self> {
        let active = match query.get("status").map(str::to_ascii_lowercase).as_deref() {
            None | Some("all") => None,
            Some("active") => Some(true),
            Some("inactive") => Some(false),
            Some(other) => {
                return Err(ApiError::field(
                    "status",
                    format!("status must be active, inactive or all, not {other:?}"),
                ));
            }
        };
        Ok(TagFilter {
            search: query.get("search").map(str::to_lowercase),
            category: query.get("category").map(str::to_owned),
            active,
        })
    }

    pub fn matches(&self, tag: &DbTag) -> bool {
        self.active.is_none_or(|a| a == tag.spec.is_active)
            && self.category.as_ref().is_none_or(|c| *c == tag.spec.category)
            && self.search.as_ref().is_none_or(|s| {
                tag.name_any().to_lowercase().contains(s) || tag.spec.display_name.to_lowercase().contains(s)
            })
    }
}

/// How many instances (recycled ones included: they still hold the tag)
/// reference each tag name.
pub fn usage(instances: &[Arc<DbInstance>]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for instance in instances {
        for tag in &instance.spec.tags {
            *counts.entry(tag.clone()).or_default() += 1;
        }
    }
    counts
}

/// `existing` plus `added` (kept in order, no repeats) and how many pairs
/// are new.
pub fn with_tags(existing: &[String], added: &[String]) -> (Vec<String>, usize) {
    let mut tags = existing.to_vec();
    let mut new_pairs = 0;
    for tag in added {
        if !tags.contains(tag) {
            tags.push(tag.clone());
            new_pairs += 1;
        }
    }
    (tags, new_pairs)
}

/// `existing` minus `removed` and how many pairs went.
pub fn without_tags(existing: &[String], removed: &[String]) -> (Vec<String>, usize) {
    let kept: Vec<String> = existing.iter().filter(|t| !removed.contains(t)).cloned().collect();
    let gone = existing.len() - kept.len();
    (kept, gone)
}

// ---------------------------------------------------------------- handlers

fn api(state: &Shared) -> Api<DbTag> {
    Api::namespaced(state.client.clone(), &state.namespace)
}

fn find(state: &Shared, id: i64) -> ApiResult<Arc<DbTag>> {
    state
        .caches
        .tag_by_id(id)?
        .ok_or_else(|| ApiError::not_found(format!("tag {id}")))
}

fn view(state: &Shared, tag: &DbTag) -> ApiResult<TagView> {
    let count = usage(&state.caches.instances.state())
        .get(&tag.name_any())
        .copied()
        .unwrap_or(0);
    tag_view(tag, count).ok_or_else(|| ApiError::not_found("tag"))
}

async fn settled(state: &Shared, written: DbTag) -> Arc<DbTag> {
    let name = written.name_any();
    state
        .caches
        .wait_for_version(&state.caches.tags, &name, written.metadata.resource_version.as_deref())
        .await;
    state
        .caches
        .by_name(&state.caches.tags, &name)
        .unwrap_or_else(|| Arc::new(written))
}

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
    let counts = usage(&state.caches.instances.state());
    let mut tags: Vec<TagView> = Caches::live(&state.caches.tags)
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
    if state
        .caches
        .tags
        .find(|t| t.metadata.name.as_deref() == Some(input.name.as_str()))
        .is_some()
    {
        return Err(name_conflict(&input.name));
    }
    let id = state.ids.allocate(IdKind::Tag).await.map_err(id_error)?;
    let mut tag = DbTag::new(&input.name, spec);
    tag.metadata.labels = Some(BTreeMap::from([(ID_LABEL.to_string(), id.to_string())]));
    let created = match api(&state).create(&PostParams::default(), &tag).await {
        Ok(created) => created,
        Err(kube::Error::Api(e)) if e.code == 409 => return Err(name_conflict(&input.name)),
        Err(e) => return Err(e.into()),
    };
    let created = settled(&state, created).await;
    Ok(Reply::created(view(&state, &created)?))
}

fn name_conflict(name: &str) -> ApiError {
    ApiError::new(Code::NameConflict, format!("a tag named {name:?} already exists"))
        .with_data(json!({"errors": [{"field": "name", "message": "already exists"}]}))
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
    let patch = json!({
        "spec": {"displayName": spec.display_name, "category": spec.category, "color": spec.color, "isActive": spec.is_active},
    });
    let patched = guarded::patch(
        &api(&state),
        &current,
        patch,
        guarded::same_intent(|t: &DbTag| json!(t.spec)),
    )
    .await?;
    let updated = settled(&state, patched).await;
    Ok(Reply::ok(view(&state, &updated)?))
}

#[derive(Serialize, ToSchema)]
pub struct TagDeleted {
    pub id: i64,
    pub name: String,
}

/// Deletes a tag no instance uses; 409 `TAG_IN_USE` (listing the users)
/// otherwise, decided from the cache before anything is written.
async fn delete_tag(state: &Shared, id: i64) -> ApiResult<TagDeleted> {
    let tag = find(state, id)?;
    let name = tag.name_any();
    let users: Vec<_> = state
        .caches
        .instances
        .state()
        .iter()
        .filter(|i| i.spec.tags.contains(&name))
        .map(|i| json!({"id": id_of(&i.metadata), "name": i.name_any(), "recycled": is_recycled(i)}))
        .collect();
    if !users.is_empty() {
        return Err(ApiError::new(
            Code::TagInUse,
            format!("tag {name:?} is used by {} instance(s)", users.len()),
        )
        .with_data(json!({"instances": users})));
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: tag.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    api(state).delete(&name, &params).await?;
    state.caches.wait_for_deletion(&state.caches.tags, &name).await;
    Ok(TagDeleted { id, name })
}

#[utoipa::path(delete, path = "/api/v1/tags/{id}", tag = "tags", params(("id" = i64, Path)),
    responses((status = 200, body = TagDeleted), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn delete(
    State(state): State<AppState>,
    _: Authorized<Delete, Tags>,
    Id(id, ..): Id<Tags>,
) -> ApiResult<Reply<TagDeleted>> {
    Ok(Reply::ok(delete_tag(&state, id).await?).message("deleted"))
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
        results.push(match delete_tag(&state, id).await {
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
    let mut tags: Vec<_> = Caches::live(&state.caches.tags)
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
    for tag in Caches::live(&state.caches.tags) {
        *counts.entry(tag.spec.category.clone()).or_default() += 1;
    }
    Ok(Reply::ok(
        counts
            .into_iter()
            .map(|(name, count)| CategoryCount { name, count })
            .collect(),
    ))
}

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
    let lookup = instances::lookup(&state);
    let mut listed: Vec<BulkInstance> = Caches::live(&state.caches.instances)
        .iter()
        .filter(|i| !is_recycled(i))
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
    let counts = usage(&state.caches.instances.state());
    let mut tags: Vec<TagView> = Caches::live(&state.caches.tags)
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
                .filter(|i| !is_recycled(i))
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
        let name = instance.name_any();
        let patched = guarded::patch(
            &instances::api(state),
            instance.as_ref(),
            json!({"spec": {"tags": tags}}),
            instances::unchanged,
        )
        .await?;
        state
            .caches
            .wait_for_instance_version(&name, patched.metadata.resource_version.as_deref())
            .await;
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
    let lookup = instances::lookup(&state);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, color: Option<&str>) -> TagInput {
        TagInput {
            name: name.into(),
            display_name: "Production".into(),
            category: "env".into(),
            color: color.map(str::to_owned),
            is_active: None,
        }
    }

    #[test]
    fn tag_codes_and_colours_are_checked() {
        assert!(validate_tag(&input("prod", Some("#00ff00"))).is_ok());
        assert!(validate_tag(&input("prod", Some("teal"))).is_ok());
        let errors = validate_tag(&input("Prod!", Some("#0f0"))).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "color"]);
        assert!(
            validate_tag(&TagInput {
                display_name: " ".into(),
                ..input("a", None)
            })
            .is_err()
        );
    }

    #[test]
    fn assigning_counts_only_new_pairs() {
        let existing = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            with_tags(&existing, &["b".into(), "c".into()]),
            (vec!["a".into(), "b".into(), "c".into()], 1)
        );
        assert_eq!(with_tags(&existing, &["a".into()]).1, 0);
    }

    #[test]
    fn removing_counts_only_pairs_that_existed() {
        let existing = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            without_tags(&existing, &["b".into(), "z".into()]),
            (vec!["a".into()], 1)
        );
        assert_eq!(without_tags(&existing, &["z".into()]).1, 0);
    }

    #[test]
    fn status_filter_accepts_all_and_rejects_nonsense() {
        assert_eq!(TagFilter::from_query(&Query::parse("status=all")).unwrap().active, None);
        assert_eq!(
            TagFilter::from_query(&Query::parse("status=inactive")).unwrap().active,
            Some(false)
        );
        assert_eq!(
            TagFilter::from_query(&Query::parse("status=maybe")).unwrap_err().code,
            Code::ValidationError
        );
    }
}
