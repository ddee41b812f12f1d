//! Every write the façade makes to a DbInstance: guarded by the
//! resourceVersion it was decided on (`guarded`), and answered only once
//! the cache has seen it (read-your-writes, SPEC §3.4).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{DeleteParams, PostParams, Preconditions};
use serde_json::{Value, json};

use super::rules::{InstanceInput, Known, validate_instance};
use crate::api::envelope::{ApiError, ApiResult, Code, format_time};
use crate::api::guarded;
use crate::api::state::Shared;
use crate::crd::keys::ID_LABEL;
use crate::crd::recycle::{recycle_patch, restore_patch};
use crate::crd::{DbInstance, DbInstanceSpec};
use crate::ids::IdKind;

/// The cached copy after a write, falling back to what the API returned.
pub async fn settled(state: &Shared, written: DbInstance) -> Arc<DbInstance> {
    let name = written.name_any();
    state
        .caches
        .wait_for_instance_version(&name, written.metadata.resource_version.as_deref())
        .await;
    state
        .caches
        .by_name(&state.caches.instances, &name)
        .unwrap_or_else(|| Arc::new(written))
}

/// Validates and creates one instance (also used by the CSV import).
pub async fn create_instance(state: &Shared, input: &InstanceInput) -> ApiResult<Arc<DbInstance>> {
    let known = Known::for_credential(&state.caches, input.credential_id)?;
    let spec = validate_instance(input, &known, None).map_err(ApiError::fields)?;
    if state
        .caches
        .instances
        .find(|i| i.metadata.name.as_deref() == Some(input.name.as_str()))
        .is_some()
    {
        return Err(name_conflict(&input.name));
    }
    let id = state.ids.allocate(IdKind::Instance).await?;
    let mut instance = DbInstance::new(&input.name, spec);
    instance.metadata.labels = Some(BTreeMap::from([(ID_LABEL.to_string(), id.to_string())]));
    let created = match state
        .api::<DbInstance>()
        .create(&PostParams::default(), &instance)
        .await
    {
        Ok(created) => created,
        Err(kube::Error::Api(e)) if e.code == 409 => return Err(name_conflict(&input.name)),
        Err(e) => return Err(e.into()),
    };
    Ok(settled(state, created).await)
}

pub fn name_conflict(name: &str) -> ApiError {
    ApiError::new(
        Code::NameConflict,
        format!("an instance named {name:?} already exists (possibly in the recycle bin)"),
    )
    .with_data(json!({"errors": [{"field": "name", "message": "already exists"}]}))
}

/// A JSON merge patch guarded by the resourceVersion the decision was made
/// on: if the object changed since, the API server answers 409.
pub async fn patch_guarded(state: &Shared, current: &DbInstance, patch: Value) -> ApiResult<Arc<DbInstance>> {
    let patched = guarded::patch(&state.api::<DbInstance>(), current, patch, unchanged).await?;
    Ok(settled(state, patched).await)
}

/// What a façade write to an instance decides on is as it was.
pub fn unchanged(a: &DbInstance, b: &DbInstance) -> bool {
    guarded::same_intent(|i: &DbInstance| json!(i.spec))(a, b)
}

/// The spec as a merge patch that also clears optional contract fields the
/// new body leaves out.
pub fn spec_patch(spec: &DbInstanceSpec) -> ApiResult<Value> {
    let mut value = serde_json::to_value(spec).map_err(|e| ApiError::field("body", e.to_string()))?;
    for key in ["databaseName", "credentialsSecretRef", "description", "tags"] {
        if value.get(key).is_none() {
            value[key] = Value::Null;
        }
    }
    Ok(json!({ "spec": value }))
}

/// Moves an instance into the recycle bin.
pub async fn recycle(state: &Shared, current: &DbInstance) -> ApiResult<Arc<DbInstance>> {
    patch_guarded(state, current, recycle_patch(&format_time(Timestamp::now()))).await
}

/// Takes an instance out of the recycle bin.
pub async fn restore(state: &Shared, current: &DbInstance) -> ApiResult<Arc<DbInstance>> {
    patch_guarded(state, current, restore_patch()).await
}

/// Deletes an instance for good (the uid precondition keeps a namesake
/// created since safe) and waits until the cache has seen it go.
pub async fn delete_for_good(state: &Shared, current: &DbInstance) -> ApiResult<()> {
    let name = current.name_any();
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: current.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    state.api::<DbInstance>().delete(&name, &params).await?;
    state.caches.wait_for_instance_deletion(&name).await;
    Ok(())
}

/// Writes `tags` as the instance's tag list, guarded, and waits until the
/// cache has seen it (the bulk tag endpoints).
pub async fn set_tags(state: &Shared, current: &DbInstance, tags: &[String]) -> ApiResult<()> {
    let patched = guarded::patch(
        &state.api::<DbInstance>(),
        current,
        json!({"spec": {"tags": tags}}),
        unchanged,
    )
    .await?;
    state
        .caches
        .wait_for_instance_version(&patched.name_any(), patched.metadata.resource_version.as_deref())
        .await;
    Ok(())
}
