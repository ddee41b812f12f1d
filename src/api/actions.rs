//! Instance actions that talk to databases (SPEC §3.5): connection tests,
//! on-demand capacity and account syncs, and connection-parameter checks.
//!
//! Existing instances are probed through `crate::sync::run_now`, the path
//! the controllers use, so the instance's status is written exactly as a
//! scheduled run would write it; ad-hoc parameters are probed directly.

use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::routing::post;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::{Api, ResourceExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::auth::{Caller, Guarded, Permission};
use super::envelope::{ApiError, ApiResult, Code, FieldError, Reply, format_time};
use super::input::{body_or_error, id_param, parse_json};
use super::instances::{self, DbTypeInput, Known, distinct_ids};
use super::{AppState, Shared};
use crate::crd::{DbInstance, DbInstanceSpec};
use crate::probe::{self, ProbeError};
use crate::sync::{self, CredentialsError, Ops, RunError, credentials};

/// The contract's bound on one batch of connection tests, all run at once.
pub const MAX_BATCH_TESTS: usize = 50;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/instances/actions/validate-connection-params",
            post(validate_connection_params),
        )
        .route("/instances/actions/test-connection", post(test_connection))
        .route(
            "/instances/actions/batch-test-connections",
            post(batch_test_connections),
        )
        .route("/instances/{id}/actions/sync-capacity", post(sync_capacity))
        .route("/instances/{id}/actions/sync-accounts", post(sync_accounts))
}

/// Probes an instance now, once the probe budget has a slot (503
/// `PROBES_BUSY` when none frees up in time), and records the outcome in
/// its status. The stored object is read first: the cache keeps a slimmed
/// copy, and the new status is derived from the complete previous one.
async fn run_on(
    state: &Shared,
    cached: &DbInstance,
    ops: Ops,
) -> ApiResult<Result<(sync::ProbeRun, DbInstance), CredentialsError>> {
    let permit = state.probe_permit().await?;
    let name = cached.name_any();
    let stored = instances::api(state)
        .get_opt(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("instance {name}")))?;
    match sync::run_now(&state.client, &stored, ops, &state.probes, permit).await {
        Ok(report) => {
            let version = report.instance.metadata.resource_version.clone();
            state.caches.wait_for_instance_version(&name, version.as_deref()).await;
            Ok(Ok((report.run, report.instance)))
        }
        Err(RunError::Credentials(e)) => Ok(Err(e)),
        Err(RunError::Kube(e)) => Err(e.into()),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn system_time(t: SystemTime) -> String {
    Timestamp::try_from(t).map(format_time).unwrap_or_default()
}

#[derive(Serialize, ToSchema, Debug)]
pub struct ConnectionTestData {
    pub success: bool,
    pub message: String,
    pub latency_ms: Option<u64>,
    pub version: Option<String>,
    /// `Timeout`, `ConnectionRefused`, `AuthenticationFailed`, … when it failed.
    pub error_kind: Option<&'static str>,
}

impl ConnectionTestData {
    fn from_probe(result: Result<probe::ConnectionInfo, ProbeError>) -> Self {
        match result {
            Ok(info) => ConnectionTestData {
                success: true,
                message: format!("connected in {} ms", millis(info.latency)),
                latency_ms: Some(millis(info.latency)),
                version: Some(info.server_version),
                error_kind: None,
            },
            Err(e) => ConnectionTestData {
                success: false,
                message: e.message,
                latency_ms: None,
                version: None,
                error_kind: Some(e.kind.as_str()),
            },
        }
    }

    fn not_probed(reason: CredentialsError) -> Self {
        ConnectionTestData {
            success: false,
            message: reason.to_string(),
            latency_ms: None,
            version: None,
            error_kind: Some(reason.reason()),
        }
    }
}

/// Tests one existing instance; its status records the result.
async fn test_instance(state: &Shared, instance: &DbInstance) -> ApiResult<ConnectionTestData> {
    Ok(match run_on(state, instance, Ops::CONNECTION).await? {
        Ok((run, _)) => match run.connection {
            Some(result) => ConnectionTestData::from_probe(result),
            None => ConnectionTestData::not_probed(CredentialsError::NotSpecified),
        },
        Err(reason) => ConnectionTestData::not_probed(reason),
    })
}

/// Tests parameters that are not (yet) an instance.
async fn test_spec(state: &Shared, spec: DbInstanceSpec) -> ApiResult<ConnectionTestData> {
    let secrets: Api<Secret> = Api::namespaced(state.client.clone(), &state.namespace);
    let mut fetched = Vec::new();
    for name in credentials::referenced_secrets(&spec) {
        fetched.extend(secrets.get_opt(name).await?);
    }
    let resolved = credentials::resolve(&spec, |name| {
        fetched.iter().find(|s| s.metadata.name.as_deref() == Some(name))
    });
    let instance = DbInstance::new("adhoc", spec);
    Ok(match resolved {
        Ok(creds) => {
            let permit = state.probe_permit().await?;
            let target = sync::target(&instance, &creds, &state.probes);
            match sync::run_probes(&target, Ops::CONNECTION, permit).await.connection {
                Some(result) => ConnectionTestData::from_probe(result),
                None => ConnectionTestData::not_probed(CredentialsError::NotSpecified),
            }
        }
        Err(reason) => ConnectionTestData::not_probed(reason),
    })
}

/// Either an existing instance or ad-hoc parameters.
#[derive(Deserialize, ToSchema)]
pub struct TestConnectionInput {
    #[serde(default)]
    pub instance_id: Option<i64>,
    #[serde(default)]
    pub db_type: Option<DbTypeInput>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub port: Option<i64>,
    #[serde(default)]
    pub credential_id: Option<i64>,
    #[serde(default)]
    pub database_name: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/instances/actions/test-connection", tag = "instances",
    request_body = TestConnectionInput,
    responses((status = 200, body = ConnectionTestData), (status = 400), (status = 401), (status = 403), (status = 404),
        (status = 503, description = "PROBES_BUSY: no probe slot freed up in time; retry after Retry-After seconds")))]
pub async fn test_connection(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Reply<ConnectionTestData>> {
    state
        .auth
        .require(&caller, Permission::View, Guarded::Instances)
        .await?;
    let input: TestConnectionInput = parse_json(&body_or_error(body)?)?;
    if let Some(id) = input.instance_id {
        let instance = instances::find(&state, id, false)?;
        return Ok(Reply::ok(test_instance(&state, &instance).await?));
    }
    let missing: Vec<FieldError> = [
        ("db_type", input.db_type.is_none()),
        ("host", input.host.as_deref().is_none_or(|h| h.trim().is_empty())),
        ("port", input.port.is_none()),
    ]
    .into_iter()
    .filter(|(_, missing)| *missing)
    .map(|(field, _)| FieldError::new(field, format!("{field} is required (or give instance_id)")))
    .collect();
    if !missing.is_empty() {
        return Err(ApiError::fields(missing));
    }
    let params = ConnectionParamsInput {
        db_type: input.db_type.unwrap_or(DbTypeInput::Mysql),
        port: input.port.unwrap_or_default(),
        credential_id: input.credential_id,
    };
    let known = Known::from_caches(&state.caches);
    let errors = check_connection_params(&params, &known);
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    let spec: DbInstanceSpec = serde_json::from_value(json!({
        "dbType": DbTypeInput::from(params.db_type).as_str(),
        "host": input.host.unwrap_or_default().trim(),
        "port": params.port,
        "databaseName": input.database_name.filter(|d| !d.trim().is_empty()),
        "credentialsSecretRef": params.credential_id.and_then(|id| known.credentials.get(&id)).map(|name| json!({"name": name})),
    }))
    .map_err(|e| ApiError::field("body", e.to_string()))?;
    Ok(Reply::ok(test_spec(&state, spec).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct BatchTestInput {
    pub instance_ids: Vec<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchTestItem {
    pub instance_id: i64,
    pub success: bool,
    pub message: String,
    pub latency_ms: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchTestData {
    pub results: Vec<BatchTestItem>,
    pub total: usize,
    pub success_count: usize,
    pub failed_count: usize,
}

#[utoipa::path(post, path = "/api/v1/instances/actions/batch-test-connections", tag = "instances",
    request_body = BatchTestInput,
    responses((status = 200, body = BatchTestData), (status = 400), (status = 401), (status = 403)))]
pub async fn batch_test_connections(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Reply<BatchTestData>> {
    state
        .auth
        .require(&caller, Permission::View, Guarded::Instances)
        .await?;
    let input: BatchTestInput = parse_json(&body_or_error(body)?)?;
    let ids = distinct_ids(&input.instance_ids, "instance_ids", MAX_BATCH_TESTS)?;
    let state_ref = &state;
    let results: Vec<BatchTestItem> = futures_util::stream::iter(ids)
        .map(|id| async move {
            let outcome = match instances::find(state_ref, id, false) {
                Ok(instance) => test_instance(state_ref, &instance).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(data) => BatchTestItem {
                    instance_id: id,
                    success: data.success,
                    message: data.message,
                    latency_ms: data.latency_ms,
                },
                Err(e) => BatchTestItem {
                    instance_id: id,
                    success: false,
                    message: e.message,
                    latency_ms: None,
                },
            }
        })
        .buffered(MAX_BATCH_TESTS)
        .collect()
        .await;
    let success_count = results.iter().filter(|r| r.success).count();
    let total = results.len();
    Ok(Reply::ok(BatchTestData {
        results,
        total,
        success_count,
        failed_count: total - success_count,
    }))
}

/// A probe that could not connect is a 409 `DATABASE_CONNECTION_ERROR`;
/// one that connected but failed to collect is 409 `SYNC_DATA_ERROR`.
fn sync_error(error: ProbeError) -> ApiError {
    let code = if error.is_connect() {
        Code::DatabaseConnectionError
    } else {
        Code::SyncDataError
    };
    ApiError::new(code, error.message).with_data(json!({"error_kind": error.kind.as_str()}))
}

fn not_probed_error(reason: CredentialsError) -> ApiError {
    ApiError::new(Code::DatabaseConnectionError, reason.to_string()).with_data(json!({"error_kind": reason.reason()}))
}

#[derive(Serialize, ToSchema)]
pub struct Inventory {
    pub version: String,
    pub total_size_bytes: u64,
    pub database_count: usize,
}

#[derive(Serialize, ToSchema)]
pub struct DatabaseView {
    pub name: String,
    pub size_bytes: u64,
    pub table_count: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct CapacityResult {
    pub inventory: Inventory,
    pub databases: Vec<DatabaseView>,
    pub collected_at: String,
    pub duration_ms: u64,
}

#[derive(Serialize, ToSchema)]
pub struct ActionResult<T> {
    pub result: T,
}

#[utoipa::path(post, path = "/api/v1/instances/{id}/actions/sync-capacity", tag = "instances", params(("id" = i64, Path)),
    responses((status = 200, body = ActionResult<CapacityResult>), (status = 401), (status = 403), (status = 404), (status = 409),
        (status = 503, description = "PROBES_BUSY: no probe slot freed up in time; retry after Retry-After seconds")))]
pub async fn sync_capacity(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Reply<ActionResult<CapacityResult>>> {
    state
        .auth
        .require(&caller, Permission::Update, Guarded::Instances)
        .await?;
    let instance = instances::find(&state, id_param(path, "instance")?, false)?;
    let ops = Ops::CAPACITY;
    let (run, _) = run_on(&state, &instance, ops).await?.map_err(not_probed_error)?;
    let capacity = run
        .capacity
        .ok_or_else(|| not_probed_error(CredentialsError::NotSpecified))?
        .map_err(sync_error)?;
    Ok(Reply::ok(ActionResult {
        result: CapacityResult {
            inventory: Inventory {
                version: capacity.server_version.clone(),
                total_size_bytes: capacity.total_size_bytes(),
                database_count: capacity.databases.len(),
            },
            databases: capacity
                .databases
                .iter()
                .map(|d| DatabaseView {
                    name: d.name.clone(),
                    size_bytes: d.size_bytes,
                    table_count: d.table_count,
                })
                .collect(),
            collected_at: system_time(capacity.collected_at),
            duration_ms: millis(capacity.duration),
        },
    }))
}

#[derive(Serialize, ToSchema)]
pub struct AccountsResult {
    pub success: bool,
    pub status: &'static str,
    pub message: String,
    pub total: usize,
    pub added: u32,
    pub removed: u32,
    pub modified: u32,
    pub duration_ms: u64,
}

#[utoipa::path(post, path = "/api/v1/instances/{id}/actions/sync-accounts", tag = "instances", params(("id" = i64, Path)),
    responses((status = 200, body = ActionResult<AccountsResult>), (status = 401), (status = 403), (status = 404), (status = 409),
        (status = 503, description = "PROBES_BUSY: no probe slot freed up in time; retry after Retry-After seconds")))]
pub async fn sync_accounts(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Reply<ActionResult<AccountsResult>>> {
    state
        .auth
        .require(&caller, Permission::Update, Guarded::Instances)
        .await?;
    let instance = instances::find(&state, id_param(path, "instance")?, false)?;
    let ops = Ops::ACCOUNTS;
    let (run, stored) = run_on(&state, &instance, ops).await?.map_err(not_probed_error)?;
    let accounts = run
        .accounts
        .ok_or_else(|| not_probed_error(CredentialsError::NotSpecified))?
        .map_err(sync_error)?;
    // The changes as the shared status logic computed them from the
    // previous sync.
    let changes = stored
        .status
        .and_then(|s| s.accounts)
        .map(|a| a.changes)
        .unwrap_or_default();
    let total = accounts.accounts.len();
    Ok(Reply::ok(ActionResult {
        result: AccountsResult {
            success: true,
            status: "completed",
            message: format!("{total} accounts synced"),
            total,
            added: changes.added,
            removed: changes.removed,
            modified: changes.modified,
            duration_ms: millis(accounts.duration),
        },
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct ConnectionParamsInput {
    pub db_type: DbTypeInput,
    pub port: i64,
    #[serde(default)]
    pub credential_id: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct ValidData {
    pub valid: bool,
}

/// Every problem with a set of connection parameters.
pub fn check_connection_params(input: &ConnectionParamsInput, known: &Known) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if !(1..=65535).contains(&input.port) {
        errors.push(FieldError::new("port", "port must be between 1 and 65535"));
    }
    if let Some(id) = input.credential_id.filter(|id| !known.credentials.contains_key(id)) {
        errors.push(FieldError::new("credential_id", format!("no credential with id {id}")));
    }
    errors
}

#[utoipa::path(post, path = "/api/v1/instances/actions/validate-connection-params", tag = "instances",
    request_body = ConnectionParamsInput,
    responses((status = 200, body = ValidData), (status = 400), (status = 401), (status = 403)))]
pub async fn validate_connection_params(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Reply<ValidData>> {
    state
        .auth
        .require(&caller, Permission::View, Guarded::Instances)
        .await?;
    let input: ConnectionParamsInput = parse_json(&body_or_error(body)?)?;
    let errors = check_connection_params(&input, &Known::from_caches(&state.caches));
    if errors.is_empty() {
        Ok(Reply::ok(ValidData { valid: true }))
    } else {
        Err(ApiError::fields(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    #[test]
    fn probe_failures_map_to_the_contract_codes() {
        use crate::probe::{ErrorKind, Stage};
        let refused = sync_error(ProbeError::new(ErrorKind::ConnectionRefused, Stage::Connect, "refused"));
        assert_eq!(refused.code, Code::DatabaseConnectionError);
        let denied = sync_error(ProbeError::new(ErrorKind::PermissionDenied, Stage::Query, "denied"));
        assert_eq!(denied.code, Code::SyncDataError);
        assert_eq!(denied.data["error_kind"], "PermissionDenied");
    }

    #[test]
    fn connection_params_name_each_bad_field() {
        let known = Known {
            tags: HashSet::new(),
            credentials: HashMap::from([(1, "login".to_string())]),
        };
        let input = |port, credential_id| ConnectionParamsInput {
            db_type: DbTypeInput::Mysql,
            port,
            credential_id,
        };
        assert!(check_connection_params(&input(3306, Some(1)), &known).is_empty());
        let fields: Vec<_> = check_connection_params(&input(0, Some(2)), &known)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["port", "credential_id"]);
    }
}
