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
use crate::api::auth::Caller;
use crate::api::envelope::{ApiError, ApiResult, Code, Reply};
use crate::api::extract::{Authorized, Conditionally, Create, Id, Instances, JsonBody, Update, View};
use crate::api::state::AppState;
use crate::api::views::{ConnectionView, InstanceView};
use crate::crd::login_target::{ConnectionField, stored_login_moves};

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
    description = "Needs `update` on dbinstances. Changing `host`, `port`, `credential_id` or `database_name` \
        of an instance that uses a stored credential (before or after the change) also needs `create` on \
        dbinstances, the right to create an instance with that credential: 403 naming the fields otherwise, \
        and nothing changes.",
    responses((status = 200, body = InstanceView), (status = 400), (status = 401),
        (status = 403, description = "PERMISSION_DENIED also when the update moves a stored login (`host`, `port`, \
            `credential_id` or `database_name` of an instance with a credential) and the caller lacks `create` on \
            dbinstances; `data.fields` names those fields"),
        (status = 404), (status = 409)))]
pub async fn update(
    State(state): State<AppState>,
    auth: Authorized<Update, Instances>,
    moving_a_stored_login: Conditionally<Create, Instances>,
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
    // Decided on `current`, the version the guarded patch below is
    // conditional on: a concurrent change makes it a 409, not a bypass.
    let moved = stored_login_moves(&current.spec, &spec);
    if !moved.is_empty() && !moving_a_stored_login.allowed(&state, &auth.caller).await? {
        return Err(moving_a_stored_login_denied(&auth.caller, &moved));
    }
    let updated = patch_guarded(&state, &current, spec_patch(&spec)?).await?;
    Ok(Reply::ok(view(&state, &updated)?))
}

/// The 403 for an update that would move a stored login without the right
/// to create an instance with it, naming the fields as the body does.
pub fn moving_a_stored_login_denied(caller: &Caller, moved: &[ConnectionField]) -> ApiError {
    let fields: Vec<&str> = moved.iter().map(|f| f.rest_name()).collect();
    ApiError::new(
        Code::PermissionDenied,
        format!(
            "{} may not change {} of this instance: it uses a stored credential, and choosing where that \
             login goes needs create on dbinstances (the right to create an instance with the credential), \
             not only update",
            caller.username,
            fields.join(", ")
        ),
    )
    .with_data(serde_json::json!({"fields": fields, "needs": "create dbinstances"}))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_denied_move_names_the_fields_and_the_right() {
        let caller = Caller {
            username: "system:serviceaccount:team:editor".into(),
            uid: String::new(),
            groups: vec![],
            extra: Default::default(),
        };
        let error = moving_a_stored_login_denied(&caller, &[ConnectionField::Host, ConnectionField::Credential]);
        assert_eq!(
            (error.code, error.code.status().as_u16()),
            (Code::PermissionDenied, 403)
        );
        assert!(
            error.message.contains("host, credential_id") && error.message.contains("create on dbinstances"),
            "{}",
            error.message
        );
        assert!(error.message.starts_with("system:serviceaccount:team:editor may not"));
        assert_eq!(error.data["fields"], serde_json::json!(["host", "credential_id"]));
    }
}
