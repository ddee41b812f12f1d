//! Handlers for one instance: read, create, update, connection status
//! (SPEC §3.5).

use axum::extract::State;
use axum::response::Response;
use kube::ResourceExt;
use serde::Serialize;
use utoipa::ToSchema;

use super::rules::{InstanceInput, Known, validate_instance};
use super::writes::{create_instance, patch_guarded, spec_patch};
use super::{find, view};
use crate::api::AppState;
use crate::api::envelope::{ApiError, ApiResult, Reply};
use crate::api::extract::{Authorized, Create, Id, Instances, JsonBody, Update, View};
use crate::api::views::{ConnectionView, InstanceView};

#[utoipa::path(get, path = "/api/v1/instances/{id}", tag = "instances", params(("id" = i64, Path)),
    responses((status = 200, body = InstanceView), (status = 401), (status = 403), (status = 404)))]
pub async fn detail(
    State(state): State<AppState>,
    _: Authorized<View, Instances>,
    Id(id, ..): Id<Instances>,
) -> ApiResult<Reply<InstanceView>> {
    Ok(Reply::ok(view(&state, find(&state, id, false)?.as_ref())?))
}

#[utoipa::path(post, path = "/api/v1/instances", tag = "instances", request_body = InstanceInput,
    responses((status = 201, body = InstanceView), (status = 400), (status = 401), (status = 403), (status = 409)))]
pub async fn create(
    State(state): State<AppState>,
    _: Authorized<Create, Instances>,
    JsonBody(input): JsonBody<InstanceInput>,
) -> ApiResult<Response> {
    let created = create_instance(&state, &input).await?;
    Ok(Reply::created(view(&state, &created)?))
}

#[utoipa::path(put, path = "/api/v1/instances/{id}", tag = "instances", params(("id" = i64, Path)),
    request_body = InstanceInput,
    responses((status = 200, body = InstanceView), (status = 400), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn update(
    State(state): State<AppState>,
    _: Authorized<Update, Instances>,
    Id(id, ..): Id<Instances>,
    input: Result<JsonBody<InstanceInput>, ApiError>,
) -> ApiResult<Reply<InstanceView>> {
    // An unknown id is a 404 whatever the body.
    let current = find(&state, id, false)?;
    let JsonBody(input) = input?;
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
pub struct ConnectionStatusData {
    pub instance_id: i64,
    #[serde(flatten)]
    pub connection: ConnectionView,
}

#[utoipa::path(get, path = "/api/v1/instances/{id}/connection-status", tag = "instances", params(("id" = i64, Path)),
    responses((status = 200, body = ConnectionStatusData), (status = 401), (status = 403), (status = 404)))]
pub async fn connection_status(
    State(state): State<AppState>,
    _: Authorized<View, Instances>,
    Id(id, ..): Id<Instances>,
) -> ApiResult<Reply<ConnectionStatusData>> {
    let shown = view(&state, find(&state, id, false)?.as_ref())?;
    Ok(Reply::ok(ConnectionStatusData {
        instance_id: id,
        connection: shown.connection,
    }))
}
