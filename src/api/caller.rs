//! `/api/v1/auth` (SPEC §3.3): what the caller needs to know about itself,
//! a CSRF token bound to it and its permissions.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::{Caller, Guarded, Permission};
use super::envelope::{self, ApiResult, Reply};
use super::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct CsrfTokenData {
    pub csrf_token: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// A CSRF token bound to the caller.
#[utoipa::path(get, path = "/api/v1/auth/csrf-token", tag = "auth",
    responses((status = 200, body = CsrfTokenData), (status = 401)))]
pub async fn csrf_token(State(state): State<AppState>, caller: Caller) -> ApiResult<Reply<CsrfTokenData>> {
    let now = k8s_openapi::jiff::Timestamp::now();
    let (csrf_token, expires) = state.csrf()?.issue(&caller, now.as_second());
    let expires_at = k8s_openapi::jiff::Timestamp::from_second(expires)
        .map(envelope::format_time)
        .unwrap_or_default();
    Ok(Reply::ok(CsrfTokenData { csrf_token, expires_at }))
}

#[derive(Serialize, ToSchema)]
pub struct MeData {
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
    /// `view`, `create`, `update`, `delete` on instances and on tags, and
    /// `get` on inventories.
    pub permissions: MePermissions,
}

#[derive(Serialize, ToSchema)]
pub struct MePermissions {
    pub instances: Vec<&'static str>,
    pub tags: Vec<&'static str>,
    /// `["get"]` when the caller may read instances' databases and accounts
    /// (the inventory endpoints also need `view` on instances).
    pub inventories: Vec<&'static str>,
}

/// The caller and its permissions.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", responses((status = 200, body = MeData), (status = 401)))]
pub async fn me(State(state): State<AppState>, caller: Caller) -> ApiResult<Reply<MeData>> {
    let mut permissions = MePermissions {
        instances: vec![],
        tags: vec![],
        inventories: vec![],
    };
    if state
        .auth
        .allowed(&caller, Permission::Get, Guarded::Inventories)
        .await?
    {
        permissions.inventories.push(Permission::Get.name());
    }
    for permission in Permission::ALL {
        if state.auth.allowed(&caller, permission, Guarded::Instances).await? {
            permissions.instances.push(permission.name());
        }
        if state.auth.allowed(&caller, permission, Guarded::Tags).await? {
            permissions.tags.push(permission.name());
        }
    }
    Ok(Reply::ok(MeData {
        username: caller.username,
        uid: caller.uid,
        groups: caller.groups,
        permissions,
    }))
}
