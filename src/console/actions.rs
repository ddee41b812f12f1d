//! The console's buttons. Each calls the REST handler of its endpoint in
//! process, with the extractor that endpoint's signature names (extracted
//! here from the same request: the same TokenReview, CSRF check and
//! SubjectAccessReview), then goes back to the page it came from with the
//! answer as a notice. A refused permission or a missing CSRF token is a
//! 403 page, whatever the buttons showed.

use std::marker::PhantomData;

use axum::extract::State;
use axum::response::Response;

use super::access::Allowed;
use super::error::PageError;
use super::frame::{Notice, redirect_with};
use super::gate::FormFields;
use crate::api::actions::{self, TestConnectionInput};
use crate::api::envelope::{ApiError, ApiResult, Code, Reply};
use crate::api::extract::{Conditionally, Create, Delete, Id, Instances, JsonBody, Tags, Update, View};
use crate::api::input::Query;
use crate::api::instances::recycle;
use crate::api::state::AppState;
use crate::api::sync_sessions;
use crate::api::tags::bulk::{self, BulkInput};

/// Back to the form's page with what the handler answered: its message on
/// success, the error's otherwise; a refusal is the 403 page.
fn answered<T: serde::Serialize>(
    form: &Query,
    outcome: ApiResult<Reply<T>>,
    ok: impl FnOnce(String, T) -> String,
) -> Result<Response, PageError> {
    let notice = match outcome {
        Ok(reply) => {
            let (message, data) = reply.into_parts();
            Notice::ok(ok(message, data))
        }
        Err(e)
            if matches!(
                e.code,
                Code::PermissionDenied | Code::CsrfFailed | Code::Unauthenticated
            ) =>
        {
            return Err(e.into());
        }
        Err(e) => Notice::error(e.message),
    };
    Ok(redirect_with(form.get("back"), notice))
}

fn id_of(id: Result<Id<Instances>, ApiError>) -> Result<i64, PageError> {
    Ok(id?.0)
}

fn id(value: i64) -> Id<Instances> {
    Id(value, PhantomData)
}

/// `POST /api/v1/instances/actions/test-connection` with the instance's
/// id: `view dbinstances`.
pub async fn test_connection(
    State(state): State<AppState>,
    auth: Allowed<View, Instances>,
    adhoc: Conditionally<Create, Instances>,
    instance: Result<Id<Instances>, ApiError>,
    FormFields(form): FormFields,
) -> Result<Response, PageError> {
    let instance = id_of(instance)?;
    let input = TestConnectionInput {
        instance_id: Some(instance),
        db_type: None,
        host: None,
        port: None,
        credential_id: None,
        database_name: None,
        name: None,
    };
    let outcome = actions::test_connection(State(state), auth.0, adhoc, JsonBody(input)).await;
    answered(&form, outcome, |_, tested| {
        let cached = if tested.cached { " (tested moments ago)" } else { "" };
        if tested.success {
            format!("Connection test passed{cached}: {}", tested.message)
        } else {
            format!("Connection test failed{cached}: {}", tested.message)
        }
    })
}

/// `POST /api/v1/instances/{id}/actions/sync-capacity`: `update dbinstances`.
pub async fn sync_capacity(
    State(state): State<AppState>,
    auth: Allowed<Update, Instances>,
    instance: Result<Id<Instances>, ApiError>,
    FormFields(form): FormFields,
) -> Result<Response, PageError> {
    let instance = id_of(instance)?;
    let outcome = actions::sync_capacity(State(state), auth.0, id(instance)).await;
    answered(&form, outcome, |_, synced| {
        format!(
            "Capacity synced: {} database(s), {}.",
            synced.result.inventory.database_count,
            super::format::bytes(synced.result.inventory.total_size_bytes)
        )
    })
}

/// `POST /api/v1/instances/{id}/actions/sync-accounts`: `update dbinstances`.
pub async fn sync_accounts(
    State(state): State<AppState>,
    auth: Allowed<Update, Instances>,
    instance: Result<Id<Instances>, ApiError>,
    FormFields(form): FormFields,
) -> Result<Response, PageError> {
    let instance = id_of(instance)?;
    let outcome = actions::sync_accounts(State(state), auth.0, id(instance)).await;
    answered(&form, outcome, |_, synced| {
        let r = synced.result;
        format!(
            "Accounts synced: {} ({} added, {} removed, {} changed).",
            r.total, r.added, r.removed, r.modified
        )
    })
}

/// `DELETE /api/v1/instances/{id}` (to the recycle bin): `delete dbinstances`.
pub async fn recycle(
    State(state): State<AppState>,
    auth: Allowed<Delete, Instances>,
    instance: Result<Id<Instances>, ApiError>,
    FormFields(form): FormFields,
) -> Result<Response, PageError> {
    let instance = id_of(instance)?;
    let outcome = recycle::soft_delete(State(state), auth.0, id(instance)).await;
    // The instance's own page is gone now: back to the list.
    let back = match form.get("back") {
        Some(back) if back.starts_with(&format!("/console/instances/{instance}")) => "back=%2Fconsole%2Finstances",
        _ => "",
    };
    let form = if back.is_empty() { form } else { Query::parse(back) };
    answered(&form, outcome, |message, _| format!("Instance {instance} {message}."))
}

/// `POST /api/v1/instances/{id}/actions/restore`: `update dbinstances`.
pub async fn restore(
    State(state): State<AppState>,
    auth: Allowed<Update, Instances>,
    instance: Result<Id<Instances>, ApiError>,
    FormFields(form): FormFields,
) -> Result<Response, PageError> {
    let instance = id_of(instance)?;
    let outcome = recycle::restore(State(state), auth.0, id(instance)).await;
    answered(&form, outcome, |message, view| format!("{}: {message}.", view.name))
}

fn bulk_input(form: &Query) -> Result<BulkInput, PageError> {
    let ids = |key: &str| -> Result<Vec<i64>, PageError> {
        form.all(key)
            .into_iter()
            .map(|v| {
                v.parse()
                    .map_err(|_| ApiError::field(key, format!("{v:?} is not an id")).into())
            })
            .collect()
    };
    Ok(BulkInput {
        instance_ids: ids("instance_ids")?,
        tag_ids: ids("tag_ids")?,
    })
}

/// `POST /api/v1/tags/bulk/actions/assign`: `create dbtags`.
pub async fn assign_tags(
    State(state): State<AppState>,
    auth: Allowed<Create, Tags>,
    FormFields(form): FormFields,
) -> Result<Response, PageError> {
    let input = bulk_input(&form)?;
    let outcome = bulk::assign(State(state), auth.0, JsonBody(input)).await;
    answered(&form, outcome, |_, done| {
        format!("{} tag(s) assigned.", done.assigned_count)
    })
}

/// `POST /api/v1/tags/bulk/actions/remove`: `create dbtags`.
pub async fn remove_tags(
    State(state): State<AppState>,
    auth: Allowed<Create, Tags>,
    FormFields(form): FormFields,
) -> Result<Response, PageError> {
    let input = bulk_input(&form)?;
    let outcome = bulk::remove(State(state), auth.0, JsonBody(input)).await;
    answered(&form, outcome, |_, done| {
        format!("{} tag(s) removed.", done.removed_count)
    })
}

/// `POST /api/v1/instances/actions/sync-accounts` (every instance, one
/// session): `update dbinstances`. Goes to the session's page.
pub async fn sync_all_accounts(
    State(state): State<AppState>,
    auth: Allowed<Update, Instances>,
) -> Result<Response, PageError> {
    let response = sync_sessions::start_account_sync(State(state), auth.0).await?;
    // The handler answers the envelope; its session id is what to show.
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .map_err(|e| ApiError::new(Code::UpstreamUnavailable, e.to_string()))?;
    let envelope: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let session = envelope["data"]["session_id"].as_str().unwrap_or_default();
    let running = envelope["data"]["already_running"].as_bool().unwrap_or(false);
    let notice = if running {
        Notice::ok(format!("A full account sync is already running: {session}."))
    } else {
        Notice::ok(format!("Started {session}."))
    };
    Ok(redirect_with(
        Some(&format!("/console/sync-sessions/{session}")),
        notice,
    ))
}
