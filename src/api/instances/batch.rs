//! `POST /instances/actions/batch-delete` (SPEC §3.5): soft or hard
//! deletes, each item reported.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::find;
use super::writes::{delete_for_good, recycle};
use crate::api::envelope::{ApiError, ApiResult, Code, Reply};
use crate::api::extract::{Authorized, Delete, Instances, JsonBody};
use crate::api::input::distinct_ids;
use crate::api::state::{AppState, Shared};

/// Per request; a larger batch is refused whole (`BATCH_TOO_LARGE`).
pub const MAX_BATCH_DELETE: usize = 100;

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

#[utoipa::path(post, path = "/api/v1/instances/actions/batch-delete", tag = "instances", request_body = BatchDeleteInput,
    responses((status = 200, body = BatchDeleteData), (status = 207, body = BatchDeleteData), (status = 400), (status = 401), (status = 403)))]
pub async fn batch_delete(
    State(state): State<AppState>,
    _: Authorized<Delete, Instances>,
    JsonBody(input): JsonBody<BatchDeleteInput>,
) -> ApiResult<Reply<BatchDeleteData>> {
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
            if current.is_recycled() {
                return Err(ApiError::new(
                    Code::Conflict,
                    format!("instance {id} is already in the recycle bin"),
                ));
            }
            recycle(state, &current).await?;
            Ok("moved to the recycle bin".into())
        }
        DeletionMode::Hard => {
            delete_for_good(state, find(state, id, true)?.as_ref()).await?;
            Ok("deleted".into())
        }
    }
}
