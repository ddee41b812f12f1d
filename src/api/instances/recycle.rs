//! Handlers of the recycle bin: soft delete and restore (SPEC §2.4, §3.5);
//! its rules are `crd::recycle`'s.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::writes::{self, recycle};
use super::{find, view};
use crate::api::envelope::{ApiResult, Reply};
use crate::api::extract::{Authorized, Delete, Id, Instances, Update};
use crate::api::state::AppState;
use crate::api::views::InstanceView;

#[derive(Serialize, ToSchema)]
pub struct DeletedData {
    pub id: i64,
    pub deleted_at: Option<String>,
    pub retained_until: Option<String>,
}

#[utoipa::path(delete, path = "/api/v1/instances/{id}", tag = "instances", params(("id" = i64, Path)),
    responses((status = 200, body = DeletedData), (status = 401), (status = 403), (status = 404), (status = 409)))]
pub async fn soft_delete(
    State(state): State<AppState>,
    _: Authorized<Delete, Instances>,
    Id(id, ..): Id<Instances>,
) -> ApiResult<Reply<DeletedData>> {
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
    _: Authorized<Update, Instances>,
    Id(id, ..): Id<Instances>,
) -> ApiResult<Reply<InstanceView>> {
    let current = find(&state, id, true)?;
    if !current.is_recycled() {
        return Ok(Reply::ok(view(&state, &current)?).message("not in the recycle bin; nothing to restore"));
    }
    let restored = writes::restore(&state, &current).await?;
    Ok(Reply::ok(view(&state, &restored)?).message("restored"))
}
