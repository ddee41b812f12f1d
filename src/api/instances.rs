//! `/api/v1/instances` (SPEC §3.5): list, options, statistics, CRUD and the
//! recycle bin over DbInstances.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::{get, post};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::{Api, ResourceExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::auth::{Caller, Guarded, Permission};
use super::envelope::{ApiError, ApiResult, Code, FieldError, Reply, format_time};
use super::guarded;
use super::index::{InstanceIndex, Row};
use super::input::{Query, body_or_error, flag, id_param, parse_json};
use super::pagination::{MAX_INSTANCE_LIMIT, PageRequest, Paged};
use super::store::Caches;
use super::views::{InstanceView, Lookup, is_recycled, phase_name, recycled_at};
use super::{AppState, Shared};
use crate::crd::instance::{CredentialsSecretRef, DbType};
use crate::crd::keys::{ID_LABEL, RECYCLED_AT_ANNOTATION, RECYCLED_LABEL};
use crate::crd::{DbInstance, DbInstanceSpec};
use crate::ids::{IdError, IdKind, id_of};

/// Per request; a larger batch is refused whole (`BATCH_TOO_LARGE`).
pub const MAX_BATCH_DELETE: usize = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/instances", get(list).post(create))
        .route("/instances/options", get(options))
        .route("/instances/statistics", get(statistics))
        .route("/instances/actions/batch-delete", post(batch_delete))
        .route("/instances/{id}", get(detail).put(update).delete(soft_delete))
        .route("/instances/{id}/actions/restore", post(restore))
        .route("/instances/{id}/connection-status", get(connection_status))
}

// ---------------------------------------------------------------- input

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DbTypeInput {
    Mysql,
    Postgresql,
}

impl DbTypeInput {
    pub fn as_str(self) -> &'static str {
        DbType::from(self).as_str()
    }
}

impl From<DbTypeInput> for DbType {
    fn from(t: DbTypeInput) -> Self {
        match t {
            DbTypeInput::Mysql => DbType::Mysql,
            DbTypeInput::Postgresql => DbType::Postgresql,
        }
    }
}

/// Body of create and update.
#[derive(Deserialize, Clone, Debug, ToSchema)]
pub struct InstanceInput {
    /// The DbInstance's name: a DNS-1123 subdomain. Cannot change on update.
    pub name: String,
    pub db_type: DbTypeInput,
    pub host: String,
    pub port: i64,
    #[serde(default)]
    pub database_name: Option<String>,
    #[serde(default)]
    pub credential_id: Option<i64>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub is_active: Option<bool>,
    #[serde(default)]
    pub tag_names: Option<Vec<String>>,
}

/// What an input refers to, resolved from the caches.
pub struct Known {
    pub tags: HashSet<String>,
    /// Credential id → Secret name.
    pub credentials: HashMap<i64, String>,
}

impl Known {
    /// What the caches know, for an input naming `credential_id`: 409
    /// `CONFLICT` when several credential Secrets carry that id.
    pub fn for_credential(caches: &Caches, credential_id: Option<i64>) -> ApiResult<Self> {
        if let Some(id) = credential_id {
            caches.credential_by_id(id)?;
        }
        Ok(Known::from_caches(caches))
    }

    fn from_caches(caches: &Caches) -> Self {
        Known {
            tags: Caches::live(&caches.tags).iter().map(|t| t.name_any()).collect(),
            credentials: Caches::live(&caches.credentials)
                .iter()
                .filter_map(|s| Some((id_of(&s.metadata)?, s.name_any())))
                .collect(),
        }
    }
}

/// Checks an input and applies it to `base` (the current spec on update,
/// so fields the contract does not cover — TLS, intervals, secret keys —
/// are kept).
pub fn validate_instance(
    input: &InstanceInput,
    known: &Known,
    base: Option<&DbInstanceSpec>,
) -> Result<DbInstanceSpec, Vec<FieldError>> {
    let mut errors = Vec::new();
    if let Err(message) = check_subdomain(&input.name) {
        errors.push(FieldError::new("name", message));
    }
    let host = input.host.trim();
    if host.is_empty() || host.len() > 253 || !is_host(host) {
        errors.push(FieldError::new(
            "host",
            "host must be a hostname or IP address of 1 to 253 characters",
        ));
    }
    if !(1..=65535).contains(&input.port) {
        errors.push(FieldError::new("port", "port must be between 1 and 65535"));
    }
    let database_name = non_empty(input.database_name.as_deref());
    if database_name.is_some_and(|d| d.chars().count() > 64) {
        errors.push(FieldError::new(
            "database_name",
            "database_name must be at most 64 characters",
        ));
    }
    let description = non_empty(input.description.as_deref());
    if description.is_some_and(|d| d.chars().count() > 1024) {
        errors.push(FieldError::new(
            "description",
            "description must be at most 1024 characters",
        ));
    }
    let secret = match input.credential_id {
        None => None,
        Some(id) => match known.credentials.get(&id) {
            Some(name) => Some(name.clone()),
            None => {
                errors.push(FieldError::new("credential_id", format!("no credential with id {id}")));
                None
            }
        },
    };
    let mut tags: Vec<String> = Vec::new();
    for name in input
        .tag_names
        .iter()
        .flatten()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
    {
        if !known.tags.contains(name) {
            errors.push(FieldError::new("tag_names", format!("no tag named {name:?}")));
        } else if !tags.iter().any(|t| t == name) {
            tags.push(name.to_string());
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut spec = match base {
        Some(base) => base.clone(),
        None => serde_json::from_value(json!({"dbType": "mysql", "host": "x", "port": 1}))
            .expect("a minimal spec deserializes with its defaults"),
    };
    spec.db_type = input.db_type.into();
    spec.host = host.to_string();
    spec.port = input.port as i32;
    spec.database_name = database_name.map(str::to_owned);
    spec.description = description.map(str::to_owned);
    spec.is_active = input.is_active.unwrap_or(true);
    spec.tags = tags;
    spec.credentials_secret_ref = secret.map(|name| match &spec.credentials_secret_ref {
        Some(existing) if existing.name == name => existing.clone(),
        _ => CredentialsSecretRef {
            name,
            username_key: "username".into(),
            password_key: "password".into(),
        },
    });
    Ok(spec)
}

fn non_empty(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|t| !t.is_empty())
}

/// A Kubernetes object name (DNS-1123 subdomain).
pub fn check_subdomain(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "name {name:?} must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters"
        ))
    }
}

fn is_host(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_ok()
        || host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

// ---------------------------------------------------------------- list

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusFilter {
    Active,
    Inactive,
    Connected,
    Failed,
    Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    Id,
    Name,
    DbType,
    Host,
    Port,
    CreatedAt,
    UpdatedAt,
    Status,
}

/// What a list (or export) request selects.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceFilter {
    pub search: Option<String>,
    pub db_type: Option<DbType>,
    pub status: Option<StatusFilter>,
    pub tags: Vec<String>,
    pub include_deleted: bool,
    pub sort: SortKey,
    pub descending: bool,
}

impl InstanceFilter {
    pub fn from_query(query: &Query) -> Result<Self, ApiError> {
        let db_type = match query.get("db_type") {
            None => None,
            Some(t) => Some(parse_db_type(t).ok_or_else(|| {
                ApiError::field("db_type", format!("db_type must be mysql or postgresql, not {t:?}"))
            })?),
        };
        let status = match query.get("status").map(str::to_ascii_lowercase).as_deref() {
            None => None,
            Some("active") => Some(StatusFilter::Active),
            Some("inactive") => Some(StatusFilter::Inactive),
            Some("connected") => Some(StatusFilter::Connected),
            Some("failed") => Some(StatusFilter::Failed),
            Some("unknown") => Some(StatusFilter::Unknown),
            Some(other) => {
                return Err(ApiError::field(
                    "status",
                    format!("status must be one of active, inactive, connected, failed, unknown, not {other:?}"),
                ));
            }
        };
        let sort = match query.get("sort").unwrap_or("id") {
            "name" => SortKey::Name,
            "db_type" => SortKey::DbType,
            "host" => SortKey::Host,
            "port" => SortKey::Port,
            "created_at" => SortKey::CreatedAt,
            "updated_at" => SortKey::UpdatedAt,
            "status" => SortKey::Status,
            _ => SortKey::Id,
        };
        Ok(InstanceFilter {
            search: query.get("search").map(str::to_lowercase),
            db_type,
            status,
            tags: query.all("tags").into_iter().map(str::to_owned).collect(),
            include_deleted: query.get("include_deleted").and_then(flag).unwrap_or(false),
            sort,
            descending: !query.get("order").is_some_and(|o| o.eq_ignore_ascii_case("asc")),
        })
    }

    /// Whether a listable row passes the filters.
    pub fn matches(&self, row: &Row) -> bool {
        let spec = &row.instance.spec;
        if !self.include_deleted && row.recycled {
            return false;
        }
        if self.db_type.is_some_and(|t| t != spec.db_type) {
            return false;
        }
        let status_ok = match self.status {
            None => true,
            Some(StatusFilter::Active) => spec.is_active,
            Some(StatusFilter::Inactive) => !spec.is_active,
            Some(StatusFilter::Connected) => row.connection == "connected",
            Some(StatusFilter::Failed) => row.connection == "failed",
            Some(StatusFilter::Unknown) => row.connection == "unknown",
        };
        if !status_ok {
            return false;
        }
        if !self.tags.is_empty() && !spec.tags.iter().any(|t| self.tags.contains(t)) {
            return false;
        }
        // Both sides are lowercase already (`Row::search`, `from_query`).
        self.search
            .as_deref()
            .is_none_or(|needle| row.search.iter().any(|text| text.contains(needle)))
    }

    /// The requested order; ties are broken by id, then name, so pages are
    /// stable.
    fn order(&self, a: &Row, b: &Row) -> Ordering {
        let ordering = compare(self.sort, a, b)
            .then(a.id.cmp(&b.id))
            .then_with(|| a.name().cmp(b.name()));
        if self.descending { ordering.reverse() } else { ordering }
    }

    /// Whether only the recycle bin is filtered out (or not): the index
    /// then knows the total.
    fn is_unfiltered(&self) -> bool {
        self.search.is_none() && self.db_type.is_none() && self.status.is_none() && self.tags.is_empty()
    }

    /// One page of the matching instances. The index is in id order, so the
    /// default order sorts nothing and, unfiltered, touches only the page;
    /// other orders sort only the rows up to the page's end.
    pub fn page(&self, index: &InstanceIndex, page: PageRequest) -> Paged<(i64, Arc<DbInstance>)> {
        let (start, end) = page.range();
        let matching = || index.rows().filter(|r| self.matches(r));
        let known_total = self.is_unfiltered().then(|| index.count(self.include_deleted));
        let (total, rows) = match (self.sort, self.descending) {
            (SortKey::Id, false) => cut(matching(), start, end, known_total),
            (SortKey::Id, true) => cut(matching().rev(), start, end, known_total),
            _ => {
                let mut rows: Vec<&Row> = matching().collect();
                let total = rows.len();
                if end < total {
                    rows.select_nth_unstable_by(end, |a, b| self.order(a, b));
                    rows.truncate(end);
                }
                rows.sort_unstable_by(|a, b| self.order(a, b));
                (total, rows.into_iter().skip(start).collect())
            }
        };
        page.paged(rows.into_iter().map(|r| (r.id, r.instance.clone())).collect(), total)
    }

    /// Every matching instance, in order (exports, options).
    pub fn select(&self, index: &InstanceIndex) -> Vec<(i64, Arc<DbInstance>)> {
        self.page(
            index,
            PageRequest {
                page: 1,
                limit: usize::MAX,
            },
        )
        .items
    }
}

/// Keeps the `rows` at positions `start..end`, counting them all unless
/// their total is known.
fn cut<'a>(
    rows: impl Iterator<Item = &'a Row>,
    start: usize,
    end: usize,
    known_total: Option<usize>,
) -> (usize, Vec<&'a Row>) {
    if let Some(total) = known_total {
        return (total, rows.skip(start).take(end - start).collect());
    }
    let mut total = 0;
    let mut kept = Vec::new();
    for row in rows {
        if (start..end).contains(&total) {
            kept.push(row);
        }
        total += 1;
    }
    (total, kept)
}

fn parse_db_type(text: &str) -> Option<DbType> {
    match text.to_ascii_lowercase().as_str() {
        "mysql" => Some(DbType::Mysql),
        "postgresql" => Some(DbType::Postgresql),
        _ => None,
    }
}

fn compare(key: SortKey, a: &Row, b: &Row) -> Ordering {
    let (x, y) = (&a.instance, &b.instance);
    match key {
        SortKey::Id => Ordering::Equal,
        SortKey::Name => a.name().cmp(b.name()),
        SortKey::DbType => x.spec.db_type.as_str().cmp(y.spec.db_type.as_str()),
        SortKey::Host => x.spec.host.cmp(&y.spec.host),
        SortKey::Port => x.spec.port.cmp(&y.spec.port),
        SortKey::CreatedAt => a.created_at.cmp(&b.created_at),
        SortKey::UpdatedAt => a.updated_at.cmp(&b.updated_at),
        SortKey::Status => a.phase.cmp(b.phase),
    }
}

pub fn lookup(state: &Shared) -> Lookup {
    Lookup::new(
        &Caches::live(&state.caches.tags),
        &Caches::live(&state.caches.credentials),
        state.retention,
    )
}

/// Instances, filtered, sorted and paginated.
#[utoipa::path(get, path = "/api/v1/instances", tag = "instances",
    params(
        ("search" = Option<String>, Query), ("db_type" = Option<String>, Query), ("status" = Option<String>, Query),
        ("tags" = Option<Vec<String>>, Query), ("include_deleted" = Option<String>, Query),
        ("sort" = Option<String>, Query), ("order" = Option<String>, Query),
        ("page" = Option<String>, Query), ("limit" = Option<String>, Query)),
    responses((status = 200, body = Paged<InstanceView>), (status = 400), (status = 401), (status = 403)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Query,
) -> ApiResult<Reply<Paged<InstanceView>>> {
    state
        .auth
        .require(&caller, Permission::View, Guarded::Instances)
        .await?;
    let filter = InstanceFilter::from_query(&query)?;
    let page = PageRequest::from_query(&query, MAX_INSTANCE_LIMIT);
    let paged = filter.page(&state.caches.instance_index(), page);
    let lookup = lookup(&state);
    let items = paged.items.iter().filter_map(|(_, i)| lookup.instance(i)).collect();
    Ok(Reply::ok(Paged {
        items,
        total: paged.total,
        page: paged.page,
        pages: paged.pages,
        limit: paged.limit,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct InstanceOption {
    pub value: i64,
    pub label: String,
    pub db_type: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct DbTypeOption {
    pub value: &'static str,
    pub label: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct OptionsData {
    pub instances: Vec<InstanceOption>,
    pub db_types: Vec<DbTypeOption>,
}

/// Active, non-recycled instances to pick from.
#[utoipa::path(get, path = "/api/v1/instances/options", tag = "instances",
    params(("db_type" = Option<String>, Query)),
    responses((status = 200, body = OptionsData), (status = 400), (status = 401), (status = 403)))]
pub async fn options(State(state): State<AppState>, caller: Caller, query: Query) -> ApiResult<Reply<OptionsData>> {
    state
        .auth
        .require(&caller, Permission::View, Guarded::Instances)
        .await?;
    let mut filter = InstanceFilter::from_query(&Query::default())?;
    filter.db_type = match query.get("db_type") {
        None => None,
        Some(t) => {
            Some(parse_db_type(t).ok_or_else(|| ApiError::field("db_type", "db_type must be mysql or postgresql"))?)
        }
    };
    filter.status = Some(StatusFilter::Active);
    filter.descending = false;
    let instances = filter
        .select(&state.caches.instance_index())
        .into_iter()
        .map(|(id, i)| InstanceOption {
            value: id,
            label: format!("{} ({}:{})", i.name_any(), i.spec.host, i.spec.port),
            db_type: i.spec.db_type.as_str(),
        })
        .collect();
    Ok(Reply::ok(OptionsData {
        instances,
        db_types: vec![
            DbTypeOption {
                value: "mysql",
                label: "MySQL / MariaDB",
            },
            DbTypeOption {
                value: "postgresql",
                label: "PostgreSQL",
            },
        ],
    }))
}

#[derive(Serialize, ToSchema, Default, Debug, PartialEq)]
pub struct Statistics {
    /// Instances not in the recycle bin.
    pub total: usize,
    pub active: usize,
    pub inactive: usize,
    pub recycled: usize,
    pub by_db_type: BTreeMap<String, usize>,
    pub by_status: BTreeMap<String, usize>,
    pub by_version: BTreeMap<String, usize>,
    pub total_capacity_bytes: u64,
    pub total_accounts: u64,
    pub tags: Vec<TagCount>,
    pub last_sync: LastSync,
}

#[derive(Serialize, ToSchema, Debug, PartialEq)]
pub struct TagCount {
    pub name: String,
    pub count: usize,
}

#[derive(Serialize, ToSchema, Default, Debug, PartialEq)]
pub struct LastSync {
    pub connection_checked_at: Option<String>,
    pub capacity_collected_at: Option<String>,
    pub accounts_synced_at: Option<String>,
}

/// Fleet-wide counts, over instances that are not in the recycle bin.
pub fn statistics_of(instances: &[Arc<DbInstance>]) -> Statistics {
    let mut stats = Statistics::default();
    let mut tags: BTreeMap<String, usize> = BTreeMap::new();
    let (mut connection, mut capacity, mut accounts) = (None::<Timestamp>, None::<Timestamp>, None::<Timestamp>);
    for instance in instances {
        if is_recycled(instance) {
            stats.recycled += 1;
            continue;
        }
        stats.total += 1;
        if instance.spec.is_active {
            stats.active += 1
        } else {
            stats.inactive += 1
        }
        *stats
            .by_db_type
            .entry(instance.spec.db_type.as_str().into())
            .or_default() += 1;
        *stats.by_status.entry(phase_name(instance).into()).or_default() += 1;
        for tag in &instance.spec.tags {
            *tags.entry(tag.clone()).or_default() += 1;
        }
        let Some(status) = instance.status.as_ref() else {
            continue;
        };
        if let Some(c) = &status.connection {
            if let Some(version) = &c.server_version {
                *stats.by_version.entry(version.clone()).or_default() += 1;
            }
            connection = connection.max(c.last_checked_at.as_ref().map(|t| t.0));
        }
        if let Some(c) = &status.capacity {
            stats.total_capacity_bytes += c.total_size_bytes;
            capacity = capacity.max(Some(c.collected_at.0));
        }
        if let Some(a) = &status.accounts {
            stats.total_accounts += u64::from(a.count);
            accounts = accounts.max(Some(a.synced_at.0));
        }
    }
    stats.tags = tags.into_iter().map(|(name, count)| TagCount { name, count }).collect();
    stats.last_sync = LastSync {
        connection_checked_at: connection.map(format_time),
        capacity_collected_at: capacity.map(format_time),
        accounts_synced_at: accounts.map(format_time),
    };
    stats
}

#[utoipa::path(get, path = "/api/v1/instances/statistics", tag = "instances",
    responses((status = 200, body = Statistics), (status = 401), (status = 403)))]
pub async fn statistics(State(state): State<AppState>, caller: Caller) -> ApiResult<Reply<Statistics>> {
    state
        .auth
        .require(&caller, Permission::View, Guarded::Instances)
        .await?;
    Ok(Reply::ok(statistics_of(&Caches::live(&state.caches.instances))))
}

// ---------------------------------------------------------------- one instance

/// The instance with `id`; recycled ones only when `recycled_too`. Two
/// instances carrying `id` are a 409 naming both.
pub fn find(state: &Shared, id: i64, recycled_too: bool) -> ApiResult<Arc<DbInstance>> {
    state
        .caches
        .instance_by_id(id)?
        .filter(|i| recycled_too || !is_recycled(i))
        .ok_or_else(|| ApiError::not_found(format!("instance {id}")))
}

pub fn view(state: &Shared, instance: &DbInstance) -> ApiResult<InstanceView> {
    lookup(state)
        .instance(instance)
        .ok_or_else(|| ApiError::not_found("instance"))
}

pub fn api(state: &Shared) -> Api<DbInstance> {
    Api::namespaced(state.client.clone(), &state.namespace)
}

/// The cached copy after a write, falling back to what the API returned.
async fn settled(state: &Shared, written: DbInstance) -> Arc<DbInstance> {
    let name = written.name_any();
    state
        .caches
        .wait_for_instance_version(&name, written.metadata.resource_version.as_deref())
        .await;
    state
        .caches
        .by_name(&state.caches.instances, &name)
        .unwrap_or_else(|| Arc::new(written))
}

pub fn id_error(error: IdError) -> ApiError {
    match error {
        IdError::Kube(e) => ApiError::kube(e),
        other => ApiError::new(Code::UpstreamUnavailable, other.to_string()),
    }
}

#[utoipa::path(get, path = "/api/v1/instances/{id}", tag = "instances", params(("id" = i64, Path)),
    responses((status = 200, body = InstanceView), (status = 401), (status = 403), (status = 404)))]
pub async fn detail(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Reply<InstanceView>> {
    state
        .auth
        .require(&caller, Permission::View, Guarded::Instances)
        .await?;
    let id = id_param(path, "instance")?;
    Ok(Reply::ok(view(&state, find(&state, id, false)?.as_ref())?))
}

#[utoipa::path(post, path = "/api/v1/instances", tag = "instances", request_body = InstanceInput,
    responses((status = 201, body = InstanceView), (status = 400), (status = 401), (status = 403), (status = 409)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    state
        .auth
        .require(&caller, Permission::Create, Guarded::Instances)
        .await?;
    let input: InstanceInput = parse_json(&body_or_error(body)?)?;
    let created = create_instance(&state, &input).await?;
    Ok(Reply::created(view(&state, &created)?))
}

/// Validates and creates one instance (also used by the CSV import).
pub async fn create_instance(state: &Shared, input: &InstanceInput) -> ApiResult<Arc<DbInstance>> {
    let known = Known::for_credential(&state.caches, input.credential_id)?;
    let spec = validate_instance(input, &known, None).map_err(ApiError::fields)?;
    if state
        .caches
        .instances
        .find(|i| i.metadata.name.as_deref() == Some(input.name.as_str()))
        .is_some()
    {
        return Err(name_conflict(&input.name));
    }
    let id = state.ids.allocate(IdKind::Instance).await.map_err(id_error)?;
    let mut instance = DbInstance::new(&input.name, spec);
    instance.metadata.labels = Some(BTreeMap::from([(ID_LABEL.to_string(), id.to_string())]));
    let created = match api(state).create(&PostParams::default(), &instance).await {
        Ok(created) => created,
        Err(kube::Error::Api(e)) if e.code == 409 => return Err(name_conflict(&input.name)),
        Err(e) => return Err(e.into()),
    };
    Ok(settled(state, created).await)
}

fn name_conflict(name: &str) -> ApiError {
    ApiError::new(
        Code::NameConflict,
        format!("an instance named {name:?} already exists (possibly in the recycle bin)"),
    )
    .with_data(json!({"errors": [{"field": "name", "message": "already exists"}]}))
}

/// A JSON merge patch guarded by the resourceVersion the decision was made
/// on: if the object changed since, the API server answers 409.
async fn patch_guarded(state: &Shared, current: &DbInstance, patch: Value) -> ApiResult<Arc<DbInstance>> {
    let patched = guarded::patch(&api(state), current, patch, unchanged).await?;
    Ok(settled(state, patched).await)
}

/// What a façade write to an instance decides on is as it was.
pub fn unchanged(a: &DbInstance, b: &DbInstance) -> bool {
    guarded::same_intent(|i: &DbInstance| json!(i.spec))(a, b)
}

/// The spec as a merge patch that also clears optional contract fields the
/// new body leaves out.
fn spec_patch(spec: &DbInstanceSpec) -> ApiResult<Value> {
    let mut value = serde_json::to_value(spec).map_err(|e| ApiError::field("body", e.to_string()))?;
    for key in ["databaseName", "credentialsSecretRef", "description", "tags"] {
        if value.get(key).is_none() {
            value[key] = Value::Null;
        }
    }
    Ok(json!({ "spec": value }))
}

#[utoipa::path(put, path = "/api/v1/instances/{id}", tag = "instances", params(("id" = i64, Path)),
    request_body = InstanceInput,
    responses((status = 200, body = InstanceView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Reply<InstanceView>> {
    state
        .auth
        .require(&caller, Permission::Update, Guarded::Instances)
        .await?;
    let id = id_param(path, "instance")?;
    let current = find(&state, id, false)?;
    let input: InstanceInput = parse_json(&body_or_error(body)?)?;
    if input.name != current.name_any() {
        return Err(ApiError::field(
            "name",
            "name cannot change: it is the DbInstance's metadata.name",
        ));
    }
    let known = Known::for_credential(&state.caches, input.credential_id)?;
    let spec = validate_instance(&input, &known, Some(&current.spec)).map_err(ApiError::fields)?;
    let updated = patch_guarded(&state, &current, spec_patch(&spec)?).await?;
    Ok(Reply::ok(view(&state, &updated)?))
}

#[derive(Serialize, ToSchema)]
pub struct DeletedData {
    pub id: i64,
    pub deleted_at: Option<String>,
    pub retained_until: Option<String>,
}

/// Moves an instance into the recycle bin.
pub async fn recycle(state: &Shared, current: &DbInstance) -> ApiResult<Arc<DbInstance>> {
    let patch = json!({"metadata": {
        "labels": {RECYCLED_LABEL: "true"},
        "annotations": {RECYCLED_AT_ANNOTATION: format_time(Timestamp::now())},
    }});
    patch_guarded(state, current, patch).await
}

#[utoipa::path(delete, path = "/api/v1/instances/{id}", tag = "instances", params(("id" = i64, Path)),
    responses((status = 200, body = DeletedData), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn soft_delete(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Reply<DeletedData>> {
    state
        .auth
        .require(&caller, Permission::Delete, Guarded::Instances)
        .await?;
    let id = id_param(path, "instance")?;
    let recycled = recycle(&state, find(&state, id, false)?.as_ref()).await?;
    let shown = view(&state, &recycled)?;
    Ok(Reply::ok(DeletedData {
        id,
        deleted_at: shown.deleted_at,
        retained_until: shown.retained_until,
    })
    .message("moved to the recycle bin"))
}

#[utoipa::path(post, path = "/api/v1/instances/{id}/actions/restore", tag = "instances", params(("id" = i64, Path)),
    responses((status = 200, body = InstanceView), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn restore(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Reply<InstanceView>> {
    state
        .auth
        .require(&caller, Permission::Update, Guarded::Instances)
        .await?;
    let id = id_param(path, "instance")?;
    let current = find(&state, id, true)?;
    if !is_recycled(&current) {
        return Ok(Reply::ok(view(&state, &current)?).message("not in the recycle bin; nothing to restore"));
    }
    let patch = json!({"metadata": {"labels": {RECYCLED_LABEL: null}, "annotations": {RECYCLED_AT_ANNOTATION: null}}});
    let restored = patch_guarded(&state, &current, patch).await?;
    Ok(Reply::ok(view(&state, &restored)?).message("restored"))
}

#[derive(Serialize, ToSchema)]
pub struct ConnectionStatusData {
    pub instance_id: i64,
    #[serde(flatten)]
    pub connection: super::views::ConnectionView,
}

#[utoipa::path(get, path = "/api/v1/instances/{id}/connection-status", tag = "instances", params(("id" = i64, Path)),
    responses((status = 200, body = ConnectionStatusData), (status = 401), (status = 403), (status = 404)))]
pub async fn connection_status(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Reply<ConnectionStatusData>> {
    state
        .auth
        .require(&caller, Permission::View, Guarded::Instances)
        .await?;
    let id = id_param(path, "instance")?;
    let shown = view(&state, find(&state, id, false)?.as_ref())?;
    Ok(Reply::ok(ConnectionStatusData {
        instance_id: id,
        connection: shown.connection,
    }))
}

// ---------------------------------------------------------------- batch delete

#[derive(Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeletionMode {
    /// Into the recycle bin.
    #[default]
    Soft,
    /// Deleted for good.
    Hard,
}

#[derive(Deserialize, ToSchema)]
pub struct BatchDeleteInput {
    pub instance_ids: Vec<i64>,
    #[serde(default)]
    pub deletion_mode: DeletionMode,
}

#[derive(Serialize, ToSchema)]
pub struct BatchDeleteItem {
    pub instance_id: i64,
    /// `success` or `failed`.
    pub result: &'static str,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct BatchDeleteData {
    pub results: Vec<BatchDeleteItem>,
    pub deleted_count: usize,
}

/// Ids in first-seen order without repeats; empty or oversized lists (by
/// their length as sent, as the OpenAPI `maxItems` says) are refused whole.
pub fn distinct_ids(ids: &[i64], field: &str, max: usize) -> ApiResult<Vec<i64>> {
    let mut seen = HashSet::new();
    let distinct: Vec<i64> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
    if distinct.is_empty() {
        return Err(ApiError::field(field, format!("{field} must list at least one id")));
    }
    if ids.len() > max {
        return Err(ApiError::new(
            Code::BatchTooLarge,
            format!("{field} lists {} ids; at most {max} per request", ids.len()),
        )
        .with_data(json!({"errors": [{"field": field, "message": format!("at most {max} ids")}]})));
    }
    Ok(distinct)
}

#[utoipa::path(post, path = "/api/v1/instances/actions/batch-delete", tag = "instances", request_body = BatchDeleteInput,
    responses((status = 200, body = BatchDeleteData), (status = 207, body = BatchDeleteData), (status = 400), (status = 401), (status = 403)))]
pub async fn batch_delete(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Reply<BatchDeleteData>> {
    state
        .auth
        .require(&caller, Permission::Delete, Guarded::Instances)
        .await?;
    let input: BatchDeleteInput = parse_json(&body_or_error(body)?)?;
    let ids = distinct_ids(&input.instance_ids, "instance_ids", MAX_BATCH_DELETE)?;
    let mut results = Vec::with_capacity(ids.len());
    for id in ids {
        let outcome = delete_one(&state, id, input.deletion_mode).await;
        results.push(match outcome {
            Ok(message) => BatchDeleteItem {
                instance_id: id,
                result: "success",
                message,
            },
            Err(e) => BatchDeleteItem {
                instance_id: id,
                result: "failed",
                message: e.message,
            },
        });
    }
    let deleted_count = results.iter().filter(|r| r.result == "success").count();
    let total = results.len();
    Ok(Reply::batch(
        BatchDeleteData { results, deleted_count },
        total - deleted_count,
        total,
    ))
}

async fn delete_one(state: &Shared, id: i64, mode: DeletionMode) -> ApiResult<String> {
    match mode {
        DeletionMode::Soft => {
            let current = find(state, id, true)?;
            if is_recycled(&current) {
                return Err(ApiError::new(
                    Code::Conflict,
                    format!("instance {id} is already in the recycle bin"),
                ));
            }
            recycle(state, &current).await?;
            Ok("moved to the recycle bin".into())
        }
        DeletionMode::Hard => {
            let current = find(state, id, true)?;
            let name = current.name_any();
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: current.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..Default::default()
            };
            api(state).delete(&name, &params).await?;
            state.caches.wait_for_instance_deletion(&name).await;
            Ok("deleted".into())
        }
    }
}

/// When a recycled instance is due for deletion.
pub fn retained_until(instance: &DbInstance, retention: k8s_openapi::jiff::SignedDuration) -> Option<Timestamp> {
    recycled_at(instance)?.checked_add(retention).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(name: &str, id: i64, spec: Value) -> Arc<DbInstance> {
        let mut i = DbInstance::new(name, serde_json::from_value(spec).unwrap());
        i.metadata.labels = Some(BTreeMap::from([(ID_LABEL.to_string(), id.to_string())]));
        Arc::new(i)
    }

    fn fleet() -> Vec<Arc<DbInstance>> {
        let mut recycled = (*instance(
            "old",
            4,
            json!({"dbType": "mysql", "host": "old.example", "port": 3306}),
        ))
        .clone();
        recycled.labels_mut().insert(RECYCLED_LABEL.into(), "true".into());
        vec![
            instance(
                "orders",
                1,
                json!({"dbType": "postgresql", "host": "pg1.example", "port": 5432, "tags": ["prod"]}),
            ),
            instance(
                "billing",
                2,
                json!({"dbType": "mysql", "host": "my1.example", "port": 3306, "description": "Invoices DB", "tags": ["prod", "eu"]}),
            ),
            instance(
                "scratch",
                3,
                json!({"dbType": "postgresql", "host": "pg2.example", "port": 5433, "isActive": false}),
            ),
            Arc::new(recycled),
            // Created with kubectl, not yet given an id: not addressable.
            Arc::new(DbInstance::new(
                "new",
                serde_json::from_value(json!({"dbType": "mysql", "host": "n", "port": 1})).unwrap(),
            )),
        ]
    }

    fn indexed(instances: Vec<Arc<DbInstance>>) -> InstanceIndex {
        let mut index = InstanceIndex::default();
        index.rebuild(instances);
        index
    }

    fn select_in(index: &InstanceIndex, query: &str) -> Vec<i64> {
        InstanceFilter::from_query(&Query::parse(query))
            .unwrap()
            .select(index)
            .iter()
            .map(|(id, _)| *id)
            .collect()
    }

    fn select(query: &str) -> Vec<i64> {
        select_in(&indexed(fleet()), query)
    }

    #[test]
    fn default_list_is_newest_id_first_without_the_recycle_bin() {
        assert_eq!(select(""), vec![3, 2, 1]);
        assert_eq!(select("include_deleted=yes&order=asc"), vec![1, 2, 3, 4]);
        assert_eq!(select("include_deleted=nonsense"), vec![3, 2, 1]);
    }

    #[test]
    fn filters_combine() {
        assert_eq!(select("search=INVOICE"), vec![2]);
        assert_eq!(select("search=pg"), vec![3, 1]);
        assert_eq!(select("db_type=postgresql&status=active"), vec![1]);
        assert_eq!(select("status=inactive"), vec![3]);
        assert_eq!(select("status=unknown&tags=eu"), vec![2]);
        assert_eq!(select("tags=eu&tags=prod&order=asc"), vec![1, 2]);
        assert_eq!(select("tags=nothing"), Vec::<i64>::new());
    }

    #[test]
    fn sorting_by_any_key_and_unknown_keys_fall_back_to_id() {
        assert_eq!(select("sort=name&order=asc"), vec![2, 1, 3]);
        assert_eq!(select("sort=port"), vec![3, 1, 2]);
        assert_eq!(select("sort=bogus&order=asc"), vec![1, 2, 3]);
    }

    #[test]
    fn bad_status_and_db_type_are_400s() {
        for query in ["status=sleepy", "db_type=oracle"] {
            let e = InstanceFilter::from_query(&Query::parse(query)).unwrap_err();
            assert_eq!(e.code, Code::ValidationError, "{query}");
        }
    }

    fn known() -> Known {
        Known {
            tags: HashSet::from(["prod".to_string()]),
            credentials: HashMap::from([(7, "pg-login".to_string())]),
        }
    }

    fn input(body: Value) -> InstanceInput {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn valid_input_becomes_a_spec() {
        let spec = validate_instance(
            &input(
                json!({"name": "orders", "db_type": "postgresql", "host": "10.0.0.1", "port": 5432,
                "credential_id": 7, "tag_names": ["prod", "prod"], "description": "  "}),
            ),
            &known(),
            None,
        )
        .unwrap();
        assert_eq!(spec.credentials_secret_ref.unwrap().name, "pg-login");
        assert_eq!(spec.tags, vec!["prod"]);
        assert_eq!(spec.description, None);
        assert!(spec.is_active);
    }

    #[test]
    fn every_bad_field_is_named() {
        let errors = validate_instance(
            &input(json!({"name": "Bad_Name", "db_type": "mysql", "host": "", "port": 0,
                "credential_id": 8, "tag_names": ["nope"]})),
            &known(),
            None,
        )
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "host", "port", "credential_id", "tag_names"]);
    }

    #[test]
    fn updates_keep_fields_outside_the_contract() {
        let mut base: DbInstanceSpec = serde_json::from_value(json!({"dbType": "mysql", "host": "a", "port": 1,
            "tls": {"mode": "require"},
            "credentialsSecretRef": {"name": "pg-login", "usernameKey": "user"}}))
        .unwrap();
        base.intervals.connection = "5m".into();
        let spec = validate_instance(
            &input(json!({"name": "x", "db_type": "mysql", "host": "b", "port": 2, "credential_id": 7})),
            &known(),
            Some(&base),
        )
        .unwrap();
        assert_eq!(spec.intervals.connection, "5m");
        assert_eq!(spec.credentials_secret_ref.unwrap().username_key, "user");
        assert_eq!(spec.host, "b");
    }

    #[test]
    fn batch_ids_are_deduplicated_and_bounded() {
        assert_eq!(distinct_ids(&[3, 1, 3], "ids", 3).unwrap(), vec![3, 1]);
        assert_eq!(
            distinct_ids(&[3, 1, 3], "ids", 2).unwrap_err().code,
            Code::BatchTooLarge
        );
        assert_eq!(distinct_ids(&[], "ids", 2).unwrap_err().code, Code::ValidationError);
        assert_eq!(
            distinct_ids(&[1, 2, 3], "ids", 2).unwrap_err().code,
            Code::BatchTooLarge
        );
    }

    #[test]
    fn statistics_leave_the_recycle_bin_out_of_the_totals() {
        let stats = statistics_of(&fleet());
        assert_eq!(
            (stats.total, stats.active, stats.inactive, stats.recycled),
            (4, 3, 1, 1)
        );
        assert_eq!(stats.by_db_type["postgresql"], 2);
        assert_eq!(
            stats.tags,
            vec![
                TagCount {
                    name: "eu".into(),
                    count: 1
                },
                TagCount {
                    name: "prod".into(),
                    count: 2
                }
            ]
        );
    }

    #[test]
    fn search_is_case_insensitive_for_any_text_and_never_spans_fields() {
        let fleet = indexed(vec![
            instance("a", 1, json!({"dbType": "mysql", "host": "Host-77.Example", "port": 1})),
            instance(
                "b",
                2,
                json!({"dbType": "mysql", "host": "h", "port": 1, "description": "Ünïcode DB"}),
            ),
        ]);
        assert_eq!(select_in(&fleet, "search=HOST-77&order=asc"), vec![1]);
        assert_eq!(select_in(&fleet, "search=ÜNÏ"), vec![2]);
        assert_eq!(select_in(&fleet, "search=&order=asc"), vec![1, 2]);
        assert_eq!(select_in(&fleet, "search=ah"), Vec::<i64>::new());
        assert_eq!(select_in(&fleet, "search=example%0Aa"), Vec::<i64>::new());
    }

    /// Instances whose sort keys all tie in pairs, so every order needs
    /// the id tie-break.
    fn ties() -> Vec<Arc<DbInstance>> {
        let at = |s: &str| k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(s.parse().unwrap());
        (1..=6)
            .map(|id| {
                let pair = (id + 1) / 2;
                let mut i = (*instance(
                    &format!("db-{}", 7 - id),
                    id,
                    json!({"dbType": if pair == 2 { "mysql" } else { "postgresql" }, "host": format!("h{}", 4 - pair),
                        "port": 5000 + pair % 3}),
                ))
                .clone();
                i.metadata.creation_timestamp = Some(at(&format!("2026-01-0{pair}T00:00:00Z")));
                i.metadata.managed_fields = Some(vec![
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry {
                        time: Some(at(&format!("2026-02-0{}T00:00:00Z", 4 - pair))),
                        ..Default::default()
                    },
                ]);
                if pair == 3 {
                    i.status = Some(serde_json::from_value(json!({"phase": "Ready"})).unwrap());
                }
                Arc::new(i)
            })
            .collect()
    }

    #[test]
    fn every_sort_key_orders_both_ways_with_ties_broken_by_id() {
        let fleet = indexed(ties());
        for (key, asc) in [
            ("id", vec![1, 2, 3, 4, 5, 6]),
            ("name", vec![6, 5, 4, 3, 2, 1]),
            ("db_type", vec![3, 4, 1, 2, 5, 6]),
            ("host", vec![5, 6, 3, 4, 1, 2]),
            ("port", vec![5, 6, 1, 2, 3, 4]),
            ("created_at", vec![1, 2, 3, 4, 5, 6]),
            ("updated_at", vec![5, 6, 3, 4, 1, 2]),
            ("status", vec![1, 2, 3, 4, 5, 6]),
        ] {
            assert_eq!(select_in(&fleet, &format!("sort={key}&order=asc")), asc, "{key} asc");
            let desc: Vec<i64> = asc.iter().rev().copied().collect();
            assert_eq!(select_in(&fleet, &format!("sort={key}&order=desc")), desc, "{key} desc");
            assert_eq!(
                select_in(&fleet, &format!("sort={key}")),
                desc,
                "{key} defaults to desc"
            );
        }
    }

    #[test]
    fn pages_are_slices_of_the_full_order() {
        let fleet = indexed(ties());
        for key in [
            "id",
            "name",
            "db_type",
            "host",
            "port",
            "created_at",
            "updated_at",
            "status",
        ] {
            for order in ["asc", "desc"] {
                for query in [
                    format!("sort={key}&order={order}"),
                    format!("sort={key}&order={order}&db_type=postgresql"),
                ] {
                    let filter = InstanceFilter::from_query(&Query::parse(&query)).unwrap();
                    let all = select_in(&fleet, &query);
                    for limit in 1..=7 {
                        for page in 1..=8 {
                            let paged = filter.page(&fleet, PageRequest { page, limit });
                            let ids: Vec<i64> = paged.items.iter().map(|(id, _)| *id).collect();
                            let expected: Vec<i64> = all.iter().copied().skip((page - 1) * limit).take(limit).collect();
                            assert_eq!(ids, expected, "{query} page {page} limit {limit}");
                            assert_eq!((paged.total, paged.pages), (all.len(), all.len().div_ceil(limit)));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn watch_updates_and_deletes_show_in_the_next_list() {
        let mut fleet = indexed(fleet());
        fleet.upsert(instance(
            "scratch",
            3,
            json!({"dbType": "mysql", "host": "pg2.example", "port": 5433}),
        ));
        assert_eq!(select("db_type=mysql"), vec![2]);
        assert_eq!(select_in(&fleet, "db_type=mysql"), vec![3, 2]);
        let mut recycled = (*instance(
            "orders",
            1,
            json!({"dbType": "postgresql", "host": "pg1.example", "port": 5432}),
        ))
        .clone();
        recycled.labels_mut().insert(RECYCLED_LABEL.into(), "true".into());
        fleet.upsert(Arc::new(recycled));
        assert_eq!(select_in(&fleet, ""), vec![3, 2]);
        assert_eq!(select_in(&fleet, "include_deleted=true"), vec![4, 3, 2, 1]);
        fleet.remove("billing");
        assert_eq!(select_in(&fleet, "sort=name&order=asc"), vec![3]);
        let page = InstanceFilter::from_query(&Query::default())
            .unwrap()
            .page(&fleet, PageRequest { page: 1, limit: 20 });
        assert_eq!((page.total, page.items.len()), (1, 1));
    }

    #[test]
    fn subdomain_names() {
        assert!(check_subdomain("db-1.eu").is_ok());
        for bad in ["", "-a", "a-", "A", "a..b", "a_b"] {
            assert!(check_subdomain(bad).is_err(), "{bad}");
        }
    }
}
