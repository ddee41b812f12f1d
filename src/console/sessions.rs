//! `GET /console/sync-sessions` and `/{name}`: sync sessions and their
//! progress — `view dbinstances`, as `GET /api/v1/sync-sessions`
//! (`select`, `session_view`). A page with a session still running
//! refreshes itself (the script, every 2 s).

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::access::Allowed;
use super::error::{PageError, html};
use super::format::{When, when};
use super::frame::{Flash, Frame, Section};
use crate::api::envelope::ApiError;
use crate::api::extract::{Instances, Name, Sessions, View};
use crate::api::input::Query;
use crate::api::pagination::{MAX_INSTANCE_LIMIT, PageRequest};
use crate::api::state::AppState;
use crate::api::sync_sessions::{SessionView, select, session_view};

pub struct SessionRow {
    pub view: SessionView,
    pub created: Option<When>,
    pub finished: Option<When>,
}

impl SessionRow {
    fn of(view: SessionView) -> SessionRow {
        SessionRow {
            created: when(view.created_at.as_deref()),
            finished: when(view.finished_at.as_deref()),
            view,
        }
    }

    pub fn running(&self) -> bool {
        matches!(self.view.status, "pending" | "running")
    }
}

#[derive(Template)]
#[template(path = "sessions.html")]
pub struct SessionsPage {
    pub frame: Frame,
    pub sessions: Vec<SessionRow>,
    pub total: usize,
    pub refresh: bool,
}

#[derive(Template)]
#[template(path = "session.html")]
pub struct SessionPage {
    pub frame: Frame,
    pub session: SessionRow,
    pub refresh: bool,
}

pub async fn list(
    State(state): State<AppState>,
    auth: Allowed<View, Instances>,
    flash: Flash,
    query: Query,
) -> Result<Response, PageError> {
    let frame = Frame::of(&state, auth.caller(), Section::Sessions, flash).await?;
    let selected = select(state.caches.live(&state.caches.sessions), &query)?;
    let paged = PageRequest::from_query(&query, MAX_INSTANCE_LIMIT).apply(selected);
    let sessions: Vec<SessionRow> = paged
        .items
        .iter()
        .map(|s| SessionRow::of(session_view(s, false)))
        .collect();
    let refresh = sessions.iter().any(SessionRow::running);
    Ok(html(&SessionsPage {
        frame,
        sessions,
        total: paged.total,
        refresh,
    }))
}

pub async fn detail(
    State(state): State<AppState>,
    auth: Allowed<View, Instances>,
    name: Result<Name<Sessions>, ApiError>,
    flash: Flash,
) -> Result<Response, PageError> {
    let Name(name, ..) = name?;
    let frame = Frame::of(&state, auth.caller(), Section::Sessions, flash).await?;
    let session = state
        .caches
        .by_name(&state.caches.sessions, &name)
        .ok_or_else(|| ApiError::not_found(format!("sync session {name}")))?;
    let session = SessionRow::of(session_view(&session, true));
    let refresh = session.running();
    Ok(html(&SessionPage {
        frame,
        session,
        refresh,
    }))
}
