//! Instance actions that talk to databases (SPEC §3.5): connection tests,
//! on-demand capacity and account syncs, and connection-parameter checks.
//!
//! Existing instances are probed by their controller: an action sets the
//! request annotations (`crate::observe::request`) and answers from the status
//! the controller writes. Ad-hoc parameters are probed here, within the
//! process's probe budget (503 `PROBES_BUSY` when it stays full).

use std::sync::Arc;

use axum::extract::State;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{Api, ResourceExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::connection_test::ConnectionTestData;
use super::envelope::{ApiError, ApiResult, Code, FieldError, Reply, format_time};
use super::extract::{Authorized, Conditionally, Create, Id, Instances, JsonBody, Update, View};
use super::input::distinct_ids;
use super::instances::rules::check_port;
use super::instances::{self, DbTypeInput, Known};
use super::routes::Routes;
use super::state::{AppState, Shared};
use crate::crd::sync_session::SyncOperation;
use crate::crd::{DbInstance, DbInstanceSpec, DbInstanceStatus, DbInventory};
use crate::observe::request::{self, Outcome, WaitError};
use crate::observe::{self, CredentialsError, Ops, ProbeSettings, credentials};

/// The contract's bound on one batch of connection tests, all run at once.
pub const MAX_BATCH_TESTS: usize = 50;

pub fn routes() -> Routes {
    Routes::new()
        .post(
            "/instances/actions/validate-connection-params",
            validate_connection_params,
        )
        .post("/instances/actions/test-connection", test_connection)
        .post("/instances/actions/batch-test-connections", batch_test_connections)
        .post("/instances/{id}/actions/sync-capacity", sync_capacity)
        .post("/instances/{id}/actions/sync-accounts", sync_accounts)
}

/// Asks the instance's controller to run `ops` now (the request
/// annotations) and waits for the status that answers it: the façade never
/// writes a status itself.
async fn run_on(state: &Shared, cached: &DbInstance, ops: Ops) -> ApiResult<Arc<DbInstance>> {
    let name = cached.name_any();
    if !cached.spec.is_active {
        return Err(ApiError::new(
            Code::DatabaseConnectionError,
            format!("instance {name} is inactive (spec.isActive is false), so it is not probed"),
        )
        .with_data(json!({"error_kind": "Inactive"})));
    }
    let token = request::request(&state.api::<DbInstance>(), &name, ops).await?;
    let deadline = request::answer_deadline(&state.timeouts);
    let lookup = || state.caches.instance_index().get(&name).cloned();
    request::await_answer(lookup, ops, &token, deadline)
        .await
        .map_err(|e| match e {
            WaitError::Gone => ApiError::not_found(format!("instance {name}")),
            WaitError::NoAnswer(_) => ApiError::new(Code::UpstreamUnavailable, e.to_string()),
        })
}

/// The condition of `type_`, if the status has one.
fn condition<'s>(status: Option<&'s DbInstanceStatus>, type_: &str) -> Option<&'s Condition> {
    status.and_then(|s| observe::status::find(&s.conditions, type_))
}

/// The error for a sync that the status says failed: 409
/// `DATABASE_CONNECTION_ERROR` when it could not connect (or log in),
/// `SYNC_DATA_ERROR` when it connected and the collection failed.
fn failed_sync(status: Option<&DbInstanceStatus>, operation: SyncOperation) -> Option<ApiError> {
    if let Some(error) = refused_host(status) {
        return Some(error);
    }
    let (code, reason, message) = match request::outcome(status, operation) {
        Outcome::Succeeded { .. } | Outcome::Unrecorded => return None,
        Outcome::NotRun { reason, message } | Outcome::ConnectionFailed { reason, message } => {
            (Code::DatabaseConnectionError, reason, message)
        }
        Outcome::CollectionFailed { reason, message } => (Code::SyncDataError, reason, message),
    };
    Some(ApiError::new(code, message).with_data(json!({"error_kind": reason})))
}

/// Tests one existing instance: its controller runs the test and records
/// it in the status, unless this replica tested the same spec less than
/// `--test-connection-interval` ago: then that result, marked `cached`. A
/// host the credential may not be sent to is a 400 naming `host`.
async fn test_instance(state: &Shared, instance: &DbInstance) -> ApiResult<ConnectionTestData> {
    let key = format!(
        "{}/{}",
        instance.uid().unwrap_or_default(),
        instance.metadata.generation.unwrap_or_default()
    );
    let tested = state
        .last_tests
        .test(key, async {
            let answered = run_on(state, instance, Ops::CONNECTION).await?;
            if let Some(error) = refused_host(answered.status.as_ref()) {
                return Err(error);
            }
            Ok(ConnectionTestData::from_status(answered.status.as_ref()))
        })
        .await?;
    Ok(ConnectionTestData {
        cached: tested.cached,
        ..tested.result
    })
}

/// 400 naming `host`: the credential's `dbfleet.io/allowed-hosts` does not
/// list it, so nothing was sent.
fn host_not_allowed(reason: CredentialsError) -> ApiError {
    host_error(&reason.to_string())
}

fn host_error(message: &str) -> ApiError {
    let mut error = ApiError::field("host", message);
    error.data["error_kind"] = json!("HostNotAllowed");
    error
}

/// The 400 for an instance whose status says its credential may not be
/// sent to its host (`CredentialsResolved=False`, `HostNotAllowed`).
fn refused_host(status: Option<&DbInstanceStatus>) -> Option<ApiError> {
    condition(status, observe::status::CREDENTIALS_RESOLVED)
        .filter(|c| c.status == "False" && c.reason == "HostNotAllowed")
        .map(|c| host_error(&c.message))
}

/// Tests parameters that are not (yet) an instance, once the probe budget
/// has a slot (503 `PROBES_BUSY` when none frees up in time).
async fn test_spec(state: &Shared, spec: DbInstanceSpec) -> ApiResult<ConnectionTestData> {
    let secrets: Api<Secret> = Api::namespaced(state.client.clone(), &state.namespace);
    let fetched = observe::read_referenced_secrets(&secrets, &spec)
        .await
        .map_err(|e| match e {
            kube::Error::Api(refused) if refused.code == 403 => {
                ApiError::new(Code::PermissionDenied, ADHOC_CREDENTIALS_OFF)
            }
            other => other.into(),
        })?;
    let resolved = credentials::resolve(&spec, |name| {
        fetched.iter().find(|s| s.metadata.name.as_deref() == Some(name))
    });
    let instance = DbInstance::new("adhoc", spec);
    Ok(match resolved {
        Ok(creds) => {
            // The only probe the façade runs itself: it takes a slot in the
            // probe budget, or answers 503 `PROBES_BUSY` when none frees up
            // in time.
            let permit = state.probe_permit().await?;
            let settings = ProbeSettings {
                timeouts: state.timeouts,
                ..ProbeSettings::default()
            };
            let target = observe::target(&instance, &creds, &settings);
            match observe::run_probes(&target, Ops::CONNECTION, None, permit)
                .await
                .connection
            {
                Some(result) => ConnectionTestData::from_probe(result),
                None => ConnectionTestData::not_probed(CredentialsError::NotSpecified),
            }
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

/// What a caller is told when this façade may not read credential Secrets
/// (the chart's default): the test would need the stored login.
pub const ADHOC_CREDENTIALS_OFF: &str = "this façade does not read credential Secrets, so it cannot test a stored \
     credential ad hoc (the Helm chart's api.adhocCredentialTests grants it that right); test an instance that uses \
     the credential by its instance_id instead";

/// What a caller who may view instances but not create them is told when
/// testing a stored credential ad hoc.
pub const ADHOC_CREDENTIAL_DENIED: &str = "testing a stored credential against a new host needs create on \
     dbinstances (in addition to view): creating an instance is how a namespace grants the use of its credentials";

#[utoipa::path(post, path = "/api/v1/instances/actions/test-connection", tag = "instances",
    request_body = TestConnectionInput,
    description = "Needs `view` on dbinstances; an ad-hoc test (no `instance_id`) that names a `credential_id` \
        also needs `create` on dbinstances (403 otherwise). A host that the credential's \
        `dbfleet.io/allowed-hosts` annotation does not list is a 400 naming `host`.",
    responses((status = 200, body = ConnectionTestData), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409),
        (status = 503, description = "PROBES_BUSY: an ad-hoc test found no probe slot free in time; retry after Retry-After seconds")))]
pub async fn test_connection(
    State(state): State<AppState>,
    auth: Authorized<View, Instances>,
    adhoc_credential: Conditionally<Create, Instances>,
    JsonBody(input): JsonBody<TestConnectionInput>,
) -> ApiResult<Reply<ConnectionTestData>> {
    if input.sends_a_stored_login_to_a_new_host() && !adhoc_credential.allowed(&state, &auth.caller).await? {
        return Err(ApiError::new(
            Code::PermissionDenied,
            format!("{} may not do this: {ADHOC_CREDENTIAL_DENIED}", auth.caller.username),
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
    /// When the result's test was answered (RFC 3339, UTC); absent when the
    /// instance could not be tested (not found, no answer).
    pub tested_at: Option<String>,
    /// `true` when the instance was tested less than
    /// `--test-connection-interval` ago and this is that result (batch tests
    /// and single tests share the limit).
    pub cached: bool,
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
    _: Authorized<View, Instances>,
    JsonBody(input): JsonBody<BatchTestInput>,
) -> ApiResult<Reply<BatchTestData>> {
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
                    tested_at: Some(data.tested_at),
                    cached: data.cached,
                },
                Err(e) => BatchTestItem {
                    instance_id: id,
                    success: false,
                    message: e.message,
                    latency_ms: None,
                    tested_at: None,
                    cached: false,
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
    _: Authorized<Update, Instances>,
    Id(id, ..): Id<Instances>,
) -> ApiResult<Reply<ActionResult<CapacityResult>>> {
    let instance = instances::find(&state, id, false)?;
    let answered = run_on(&state, &instance, Ops::CAPACITY).await?;
    let status = answered.status.as_ref();
    if let Some(error) = failed_sync(status, SyncOperation::Capacity) {
        return Err(error);
    }
    let summary = status
        .and_then(|s| s.capacity.as_ref())
        .ok_or_else(|| ApiError::new(Code::SyncDataError, "the controller recorded no capacity"))?;
    let inventories: Api<DbInventory> = Api::namespaced(state.client.clone(), &state.namespace);
    // With the parts a big server's databases are spread over.
    let details = observe::read_inventory(&inventories, &answered.name_any())
        .await?
        .and_then(|i| i.capacity);
    Ok(Reply::ok(ActionResult {
        result: CapacityResult {
            inventory: Inventory {
                version: status
                    .and_then(|s| s.connection.as_ref())
                    .and_then(|c| c.server_version.clone())
                    .unwrap_or_default(),
                total_size_bytes: summary.total_size_bytes,
                database_count: summary.database_count as usize,
            },
            databases: details
                .map(|d| d.databases)
                .unwrap_or_default()
                .into_iter()
                .map(|d| DatabaseView {
                    name: d.name,
                    size_bytes: d.size_bytes,
                    table_count: d.table_count,
                })
                .collect(),
            collected_at: format_time(summary.collected_at.0),
            duration_ms: summary.duration_ms,
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
    _: Authorized<Update, Instances>,
    Id(id, ..): Id<Instances>,
) -> ApiResult<Reply<ActionResult<AccountsResult>>> {
    let instance = instances::find(&state, id, false)?;
    let answered = run_on(&state, &instance, Ops::ACCOUNTS).await?;
    let status = answered.status.as_ref();
    if let Some(error) = failed_sync(status, SyncOperation::Accounts) {
        return Err(error);
    }
    let accounts = status
        .and_then(|s| s.accounts.as_ref())
        .ok_or_else(|| ApiError::new(Code::SyncDataError, "the controller recorded no accounts"))?;
    let total = accounts.count as usize;
    Ok(Reply::ok(ActionResult {
        result: AccountsResult {
            success: true,
            status: "completed",
            message: format!("{total} accounts synced"),
            total,
            added: accounts.changes.added,
            removed: accounts.changes.removed,
            modified: accounts.changes.modified,
            duration_ms: accounts.duration_ms,
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
    if let Some(error) = check_port(input.port) {
        errors.push(error);
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
    _: Authorized<View, Instances>,
    JsonBody(input): JsonBody<ConnectionParamsInput>,
) -> ApiResult<Reply<ValidData>> {
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
    fn failed_syncs_map_to_the_contract_codes() {
        use crate::observe::status::{CAPACITY_SYNCED, CONNECTED};
        let condition = |type_: &str, status: &str, reason: &str| Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: format!("{type_} {reason}"),
            observed_generation: None,
            last_transition_time: observe::status::time(std::time::SystemTime::now()),
        };
        let status = |conditions| DbInstanceStatus {
            conditions,
            ..DbInstanceStatus::default()
        };
        let refused = status(vec![
            condition(CONNECTED, "False", "ConnectionRefused"),
            condition(CAPACITY_SYNCED, "False", "ConnectionRefused"),
        ]);
        let error = failed_sync(Some(&refused), SyncOperation::Capacity).unwrap();
        assert_eq!(error.code, Code::DatabaseConnectionError);
        let denied = status(vec![
            condition(CONNECTED, "True", "Connected"),
            condition(CAPACITY_SYNCED, "False", "PermissionDenied"),
        ]);
        let error = failed_sync(Some(&denied), SyncOperation::Capacity).unwrap();
        assert_eq!(error.code, Code::SyncDataError);
        assert_eq!(error.data["error_kind"], "PermissionDenied");
        let fine = status(vec![condition(CAPACITY_SYNCED, "True", "Synced")]);
        assert!(failed_sync(Some(&fine), SyncOperation::Capacity).is_none());
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
            address: "127.0.0.1:5432".into(),
            why: "its dbfleet.io/allowed-hosts annotation allows only db.example.com".into(),
        };
        let recorded = DbInstanceStatus {
            conditions: vec![Condition {
                type_: observe::status::CREDENTIALS_RESOLVED.into(),
                status: "False".into(),
                reason: reason.reason().into(),
                message: reason.to_string(),
                observed_generation: None,
                last_transition_time: observe::status::time(std::time::SystemTime::now()),
            }],
            ..DbInstanceStatus::default()
        };
        let from_status = failed_sync(Some(&recorded), SyncOperation::Capacity).unwrap();
        for error in [host_not_allowed(reason.clone()), from_status] {
            assert_eq!(error.code, Code::ValidationError);
            assert_eq!(error.data["errors"][0]["field"], "host");
            assert_eq!(error.data["error_kind"], "HostNotAllowed");
            assert!(error.message.contains("\"login\""), "{}", error.message);
        }
        let mut unlabelled = recorded.clone();
        unlabelled.conditions[0].reason = "SecretNotLabelled".into();
        let other = failed_sync(Some(&unlabelled), SyncOperation::Capacity).unwrap();
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
