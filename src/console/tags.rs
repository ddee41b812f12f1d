//! `GET /console/tags`: the tags and how many instances carry each —
//! `view dbtags`, as `GET /api/v1/tags/bulk/tags` (`usage`, `tag_view`),
//! each linking to the instances carrying it. Tags are put on and taken
//! off in bulk from the instance list (`actions.rs`).

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use kube::ResourceExt;

use super::access::Allowed;
use super::error::{PageError, html};
use super::frame::{Flash, Frame, Section};
use crate::api::extract::{Tags, View};
use crate::api::state::AppState;
use crate::api::tags::rules::usage;
use crate::api::views::{TagView, tag_view};
use crate::crd::{DbInstance, DbTag};

#[derive(Template)]
#[template(path = "tags.html")]
pub struct TagsPage {
    pub frame: Frame,
    pub tags: Vec<TagView>,
}

pub async fn page(
    State(state): State<AppState>,
    auth: Allowed<View, Tags>,
    flash: Flash,
) -> Result<Response, PageError> {
    let frame = Frame::of(&state, auth.caller(), Section::Tags, flash).await?;
    let tags = tag_views(
        &state.caches.live(&state.caches.tags),
        &state.caches.all(&state.caches.instances),
    );
    Ok(html(&TagsPage { frame, tags }))
}

/// Every tag with its use count, by id: pure.
pub fn tag_views(tags: &[Arc<DbTag>], instances: &[Arc<DbInstance>]) -> Vec<TagView> {
    let counts = usage(instances);
    let mut views: Vec<TagView> = tags
        .iter()
        .filter_map(|t| tag_view(t, counts.get(&t.name_any()).copied().unwrap_or(0)))
        .collect();
    views.sort_by_key(|t| t.id);
    views
}
