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
use crate::sync::{self, CredentialsError, Ops, ProbeSettings, RunError, credentials};

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

/// Probes an instance now and records the outcome in its status. The
/// stored object is read first: the cache keeps a slimmed copy, and the
/// new status is derived from the complete previous one.
async fn run_on(
    state: &Shared,
    cached: &DbInstance,
    ops: Ops,
) -> ApiResult<Result<(sync::ProbeRun, DbInstance), CredentialsError>> {
    let name = cached.name_any();
    let stored = instances::api(state)
        .get_opt(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("instance {name}")))?;
    match sync::run_now(&state.client, &stored, ops, &ProbeSettings::default()).await {
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

/// Tests one existing instance; its status records the result. A host the
/// credential may not be sent to is a 400 naming `host`.
async fn test_instance(state: &Shared, instance: &DbInstance) -> ApiResult<ConnectionTestData> {
    Ok(match run_on(state, instance, Ops::CONNECTION).await? {
        Ok((run, _)) => match run.connection {
            Some(result) => ConnectionTestData::from_probe(result),
            None => ConnectionTestData::not_probed(CredentialsError::NotSpecified),
        },
        Err(reason @ CredentialsError::HostNotAllowed { .. }) => return Err(host_not_allowed(reason)),
        Err(reason) => ConnectionTestData::not_probed(reason),
    })
}

/// 400 naming `host`: the credential's `dbfleet.io/allowed-hosts` does not
/// list it, so nothing was sent.
fn host_not_allowed(reason: CredentialsError) -> ApiError {
    let mut error = ApiError::field("host", reason.to_string());
    error.data["error_kind"] = json!(reason.reason());
    error
}

/// Tests parameters that are not (yet) an instance.
async fn test_spec(state: &Shared, spec: DbInstanceSpec) -> ApiResult<ConnectionTestData> {
    let secrets: Api<Secret> = Api::namespaced(state.client.clone(), &state.namespace);
    let fetched = sync::read_referenced_secrets(&secrets, &spec).await?;
    let resolved = credentials::resolve(&spec, |name| {
        fetched.iter().find(|s| s.metadata.name.as_deref() == Some(name))
    });
    let instance = DbInstance::new("adhoc", spec);
    Ok(match resolved {
        Ok(creds) => {
            let target = sync::target(&instance, &creds, &ProbeSettings::default());
            ConnectionTestData::from_probe(probe::test_connection(&target).await)
        }
        Err(reason @ CredentialsError::HostNotAllowed { .. }) => return Err(host_not_allowed(reason)),
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

impl TestConnectionInput {
    /// Whether the test would send a stored login to a host of the caller's
    /// choosing rather than to an instance's own host.
    pub fn sends_a_stored_login_to_a_new_host(&self) -> bool {
        self.instance_id.is_none() && self.credential_id.is_some()
    }
}

/// What a caller who may view instances but not create them is told when
/// testing a stored credential ad hoc.
pub const ADHOC_CREDENTIAL_DENIED: &str = "testing a stored credential against a new host needs create on \
     dbinstances (in addition to view): creating an instance is how a namespace grants the use of its credentials";

#[utoipa::path(post, path = "/api/v1/instances/actions/test-connection", tag = "instances",
    request_body = TestConnectionInput,
    description = "Needs `view` on dbinstances; an ad-hoc test (no `instance_id`) that names a `credential_id` \
        also needs `create` on dbinstances (403 otherwise). A host that the credential's \
        `dbfleet.io/allowed-hosts` annotation does not list is a 400 naming `host`.",
    responses((status = 200, body = ConnectionTestData), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
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
    if input.sends_a_stored_login_to_a_new_host()
        && !state
            .auth
            .allowed(&caller, Permission::Create, Guarded::Instances)
            .await?
    {
        return Err(ApiError::new(
            Code::PermissionDenied,
            format!("{} may not do this: {ADHOC_CREDENTIAL_DENIED}", caller.username),
        ));
    }
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
    let known = Known::for_credential(&state.caches, params.credential_id)?;
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
    if let CredentialsError::HostNotAllowed { .. } = reason {
        return host_not_allowed(reason);
    }
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
    responses((status = 200, body = ActionResult<CapacityResult>), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
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
    responses((status = 200, body = ActionResult<AccountsResult>), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
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
    let errors = check_connection_params(&input, &Known::for_credential(&state.caches, input.credential_id)?);
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
    fn only_an_adhoc_test_with_a_stored_credential_needs_create() {
        let input = |body: serde_json::Value| serde_json::from_value::<TestConnectionInput>(body).unwrap();
        let adhoc = json!({"db_type": "mysql", "host": "127.0.0.1", "port": 3306});
        let mut with_credential = adhoc.clone();
        with_credential["credential_id"] = json!(1);
        assert!(input(with_credential).sends_a_stored_login_to_a_new_host());
        assert!(!input(adhoc).sends_a_stored_login_to_a_new_host());
        assert!(!input(json!({"instance_id": 3})).sends_a_stored_login_to_a_new_host());
        // The instance's own host is used; the credential_id is ignored.
        assert!(!input(json!({"instance_id": 3, "credential_id": 1})).sends_a_stored_login_to_a_new_host());
        assert!(ADHOC_CREDENTIAL_DENIED.contains("create on dbinstances"));
    }

    #[test]
    fn a_host_the_credential_may_not_reach_is_a_400_naming_host() {
        let reason = CredentialsError::HostNotAllowed {
            secret: "login".into(),
            host: "127.0.0.1".into(),
            why: "its dbfleet.io/allowed-hosts annotation allows only db.example.com".into(),
        };
        for error in [host_not_allowed(reason.clone()), not_probed_error(reason)] {
            assert_eq!(error.code, Code::ValidationError);
            assert_eq!(error.data["errors"][0]["field"], "host");
            assert_eq!(error.data["error_kind"], "HostNotAllowed");
            assert!(error.message.contains("\"login\""), "{}", error.message);
        }
        let other = not_probed_error(CredentialsError::SecretNotLabelled("app".into()));
        assert_eq!(other.code, Code::DatabaseConnectionError);
        assert_eq!(other.data["error_kind"], "SecretNotLabelled");
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
