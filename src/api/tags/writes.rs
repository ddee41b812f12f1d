//! Every write the façade makes to a DbTag, answered only once the cache
//! has seen it (read-your-writes, SPEC §3.4).

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::ResourceExt;
use kube::api::{DeleteParams, PostParams, Preconditions};
use serde_json::json;

use super::rules::users_of;
use crate::api::envelope::{ApiError, ApiResult, Code};
use crate::api::guarded;
use crate::api::state::Shared;
use crate::crd::keys::ID_LABEL;
use crate::crd::{DbTag, DbTagSpec};
use crate::ids::IdKind;

async fn settled(state: &Shared, written: DbTag) -> Arc<DbTag> {
    let name = written.name_any();
    state
        .caches
        .wait_for_version(&state.caches.tags, &name, written.metadata.resource_version.as_deref())
        .await;
    state
        .caches
        .by_name(&state.caches.tags, &name)
        .unwrap_or_else(|| Arc::new(written))
}

/// Creates the tag `name` under a new id: 409 `NAME_CONFLICT` when the
/// name is taken.
pub async fn create(state: &Shared, name: &str, spec: DbTagSpec) -> ApiResult<Arc<DbTag>> {
    if state
        .caches
        .tags
        .find(|t| t.metadata.name.as_deref() == Some(name))
        .is_some()
    {
        return Err(name_conflict(name));
    }
    let id = state.ids.allocate(IdKind::Tag).await?;
    let mut tag = DbTag::new(name, spec);
    tag.metadata.labels = Some(BTreeMap::from([(ID_LABEL.to_string(), id.to_string())]));
    let created = match state.api::<DbTag>().create(&PostParams::default(), &tag).await {
        Ok(created) => created,
        Err(kube::Error::Api(e)) if e.code == 409 => return Err(name_conflict(name)),
        Err(e) => return Err(e.into()),
    };
    Ok(settled(state, created).await)
}

fn name_conflict(name: &str) -> ApiError {
    ApiError::new(Code::NameConflict, format!("a tag named {name:?} already exists"))
        .with_data(json!({"errors": [{"field": "name", "message": "already exists"}]}))
}

/// Replaces the tag's spec, guarded by the version it was decided on.
pub async fn update(state: &Shared, current: &DbTag, spec: &DbTagSpec) -> ApiResult<Arc<DbTag>> {
    let patch = json!({
        "spec": {"displayName": spec.display_name, "category": spec.category, "color": spec.color, "isActive": spec.is_active},
    });
    let patched = guarded::patch(
        &state.api::<DbTag>(),
        current,
        patch,
        guarded::same_intent(|t: &DbTag| json!(t.spec)),
    )
    .await?;
    Ok(settled(state, patched).await)
}

/// Deletes a tag no instance uses; 409 `TAG_IN_USE` (listing the users)
/// otherwise, decided from the cache before anything is written.
pub async fn delete(state: &Shared, id: i64) -> ApiResult<String> {
    let tag = super::find(state, id)?;
    let name = tag.name_any();
    let users = users_of(&state.caches.all(&state.caches.instances), &name);
    if !users.is_empty() {
        return Err(ApiError::new(
            Code::TagInUse,
            format!("tag {name:?} is used by {} instance(s)", users.len()),
        )
        .with_data(json!({"instances": users})));
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: tag.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    state.api::<DbTag>().delete(&name, &params).await?;
    state.caches.wait_for_deletion(&state.caches.tags, &name).await;
    Ok(name)
}
