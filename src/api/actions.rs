//! Instance actions that talk to databases (SPEC §3.5): connection tests,
//! on-demand capacity and account syncs, and connection-parameter checks.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::routing::post;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::{Caller, Guarded, Permission};
use super::envelope::{ApiError, ApiResult, FieldError, Reply};
use super::input::{body_or_error, parse_json};
use super::instances::{DbTypeInput, Known};

pub fn routes() -> Router<AppState> {
    Router::new().route("/instances/actions/validate-connection-params", post(validate_connection_params))
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
    state.auth.require(&caller, Permission::View, Guarded::Instances).await?;
    let input: ConnectionParamsInput = parse_json(&body_or_error(body)?)?;
    let errors = check_connection_params(&input, &Known::from_caches(&state.caches));
    if errors.is_empty() { Ok(Reply::ok(ValidData { valid: true })) } else { Err(ApiError::fields(errors)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    #[test]
    fn connection_params_name_each_bad_field() {
        let known = Known { tags: HashSet::new(), credentials: HashMap::from([(1, "login".to_string())]) };
        let input = |port, credential_id| ConnectionParamsInput { db_type: DbTypeInput::Mysql, port, credential_id };
        assert!(check_connection_params(&input(3306, Some(1)), &known).is_empty());
        let fields: Vec<_> = check_connection_params(&input(0, Some(2)), &known).into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["port", "credential_id"]);
    }
}
