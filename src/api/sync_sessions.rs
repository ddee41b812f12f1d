//! Sync sessions (SPEC §1.3, §3.5): the full account sync starts a
//! DbSyncSession, which the controller runs; these endpoints start one and
//! report progress.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, ResourceExt};
use serde::Serialize;
use utoipa::ToSchema;

use super::envelope::{ApiError, ApiResult, Code, Reply, format_time};
use super::extract::{Authorized, Instances, Name, Sessions, Update, View};
use super::input::Query;
use super::pagination::{MAX_INSTANCE_LIMIT, PageRequest, Paged};
use super::routes::Routes;
use super::state::AppState;
use crate::crd::sync_session::{SyncOperation, SyncPhase};
use crate::crd::{DbSyncSession, DbSyncSessionSpec};

pub fn routes() -> Routes {
    Routes::new()
        .get("/sync-sessions", list)
        .get("/sync-sessions/{session_id}", detail)
        .post("/instances/actions/sync-accounts", start_account_sync)
}

#[derive(Serialize, ToSchema)]
pub struct SessionResult {
    pub instance: String,
    pub instance_id: Option<i64>,
    pub success: bool,
    pub message: Option<String>,
    pub duration_ms: u64,
}

#[derive(Serialize, ToSchema)]
pub struct SessionView {
    pub session_id: String,
    /// `accounts`, `capacity` or `connection`.
    pub operation: &'static str,
    /// `pending`, `running`, `succeeded`, `partially_failed`, `failed`.
    pub status: &'static str,
    pub total: u32,
    pub succeeded: u32,
    pub failed: u32,
    /// Percentage of instances done.
    pub progress: u32,
    pub created_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Per-instance outcomes, at most 500: every failure before any
    /// success (only in the detail).
    pub results: Vec<SessionResult>,
    /// Failures counted in `failed` but left out of `results`.
    pub omitted_failures: u32,
    /// Successes counted in `succeeded` but left out of `results`.
    pub omitted_successes: u32,
}

pub fn operation_name(op: SyncOperation) -> &'static str {
    match op {
        SyncOperation::Accounts => "accounts",
        SyncOperation::Capacity => "capacity",
        SyncOperation::Connection => "connection",
    }
}

pub fn phase_name(phase: Option<SyncPhase>) -> &'static str {
    match phase {
        None | Some(SyncPhase::Pending) => "pending",
        Some(SyncPhase::Running) => "running",
        Some(SyncPhase::Succeeded) => "succeeded",
        Some(SyncPhase::PartiallyFailed) => "partially_failed",
        Some(SyncPhase::Failed) => "failed",
    }
}

pub fn session_view(session: &DbSyncSession, with_results: bool) -> SessionView {
    let status = session.status.clone().unwrap_or_default();
    let done = status.succeeded + status.failed;
    SessionView {
        session_id: session.name_any(),
        operation: operation_name(session.spec.operation),
        status: phase_name(status.phase),
        total: status.total,
        succeeded: status.succeeded,
        failed: status.failed,
        progress: if status.total == 0 {
            0
        } else {
            (done.min(status.total) * 100) / status.total
        },
        created_at: session.metadata.creation_timestamp.as_ref().map(|t| format_time(t.0)),
        started_at: status.started_at.as_ref().map(|t| format_time(t.0)),
        finished_at: status.finished_at.as_ref().map(|t| format_time(t.0)),
        results: if with_results {
            status
                .results
                .into_iter()
                .map(|r| SessionResult {
                    instance: r.instance,
                    instance_id: r.id,
                    success: r.success,
                    message: r.message,
                    duration_ms: r.duration_ms,
                })
                .collect()
        } else {
            Vec::new()
        },
        omitted_failures: status.omitted_failures,
        omitted_successes: status.omitted_successes,
    }
}

/// Sessions newest first, optionally by operation and status.
pub fn select(sessions: Vec<Arc<DbSyncSession>>, query: &Query) -> ApiResult<Vec<Arc<DbSyncSession>>> {
    let operation = query.get("operation");
    if let Some(op) = operation.filter(|o| !["accounts", "capacity", "connection"].contains(o)) {
        return Err(ApiError::field(
            "operation",
            format!("operation must be accounts, capacity or connection, not {op:?}"),
        ));
    }
    let status = query.get("status");
    let mut selected: Vec<_> = sessions
        .into_iter()
        .filter(|s| operation.is_none_or(|o| o == operation_name(s.spec.operation)))
        .filter(|s| status.is_none_or(|st| st == phase_name(s.status.as_ref().and_then(|x| x.phase))))
        .collect();
    selected.sort_by(|a, b| {
        let key = |s: &DbSyncSession| (s.metadata.creation_timestamp.as_ref().map(|t| t.0), s.name_any());
        key(b).cmp(&key(a))
    });
    Ok(selected)
}

#[utoipa::path(get, path = "/api/v1/sync-sessions", tag = "sync-sessions",
    params(("operation" = Option<String>, Query), ("status" = Option<String>, Query),
        ("page" = Option<String>, Query), ("limit" = Option<String>, Query)),
    responses((status = 200, body = Paged<SessionView>), (status = 400), (status = 401), (status = 403)))]
pub async fn list(
    State(state): State<AppState>,
    _: Authorized<View, Instances>,
    query: Query,
) -> ApiResult<Reply<Paged<SessionView>>> {
    let page = PageRequest::from_query(&query, MAX_INSTANCE_LIMIT);
    let selected = select(state.caches.live(&state.caches.sessions), &query)?;
    let paged = page.apply(selected);
    Ok(Reply::ok(Paged {
        items: paged.items.iter().map(|s| session_view(s, false)).collect(),
        total: paged.total,
        page: paged.page,
        pages: paged.pages,
        limit: paged.limit,
    }))
}

#[utoipa::path(get, path = "/api/v1/sync-sessions/{session_id}", tag = "sync-sessions",
    params(("session_id" = String, Path)),
    responses((status = 200, body = SessionView), (status = 401), (status = 403), (status = 404)))]
pub async fn detail(
    State(state): State<AppState>,
    _: Authorized<View, Instances>,
    Name(name, ..): Name<Sessions>,
) -> ApiResult<Reply<SessionView>> {
    let session = state
        .caches
        .by_name(&state.caches.sessions, &name)
        .ok_or_else(|| ApiError::not_found(format!("sync session {name}")))?;
    Ok(Reply::ok(session_view(&session, true)))
}

#[derive(Serialize, ToSchema)]
pub struct SessionStarted {
    pub session_id: String,
    /// True when a full account sync was already pending or running and
    /// `session_id` is that one: nothing new was started.
    pub already_running: bool,
}

/// Prefix of the full account syncs the façade starts; a number follows.
const FULL_SYNC_PREFIX: &str = "accounts-";

/// Names tried before giving up when other replicas keep starting syncs.
const START_ATTEMPTS: u64 = 8;

/// What `POST /instances/actions/sync-accounts` does.
#[derive(Debug, PartialEq, Eq)]
pub enum AccountSyncPlan {
    /// A full account sync is pending or running (the oldest if several):
    /// answer with it.
    Running(String),
    /// None is: start one under this name.
    Start(String),
}

/// The number in a full account sync's name (`accounts-7` → 7).
fn sequence(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(FULL_SYNC_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The running full account sync, or the name to start one under: the
/// next number after every `accounts-N` session that exists, and at least
/// `floor`. Two replicas that both find none pick the same name, so the
/// API server lets only one of them create it; the other is told it
/// exists and answers with it. A number is only passed over once its
/// session has finished, so two full syncs never run at once.
pub fn plan_account_sync(sessions: &[Arc<DbSyncSession>], floor: u64) -> AccountSyncPlan {
    let running = sessions
        .iter()
        .filter(|s| s.is_full_account_sync() && s.is_unfinished())
        .min_by_key(|s| (s.metadata.creation_timestamp.as_ref().map(|t| t.0), s.name_any()));
    if let Some(running) = running {
        return AccountSyncPlan::Running(running.name_any());
    }
    let next = sessions
        .iter()
        .filter_map(|s| sequence(&s.name_any()))
        .max()
        .map_or(1, |last| last.saturating_add(1));
    AccountSyncPlan::Start(format!("{FULL_SYNC_PREFIX}{}", next.max(floor)))
}

/// Starts a full account sync over every active instance, unless one is
/// already pending or running in the namespace: then that one's id is
/// returned (200, `already_running: true`) and nothing new starts. The
/// controller runs the session; this answers at once.
#[utoipa::path(post, path = "/api/v1/instances/actions/sync-accounts", tag = "instances",
    responses((status = 201, description = "a new full account sync was started", body = SessionStarted),
        (status = 200, description = "one was already pending or running: its id, `already_running: true`", body = SessionStarted),
        (status = 401), (status = 403), (status = 409)))]
pub async fn start_account_sync(
    State(state): State<AppState>,
    _: Authorized<Update, Instances>,
) -> ApiResult<Response> {
    let api: Api<DbSyncSession> = Api::namespaced(state.client.clone(), &state.namespace);
    let already_running = |name: String| {
        Reply::ok(SessionStarted {
            session_id: name,
            already_running: true,
        })
        .into_response()
    };
    let mut floor = 1;
    for _ in 0..START_ATTEMPTS {
        let name = match plan_account_sync(&state.caches.live(&state.caches.sessions), floor) {
            AccountSyncPlan::Running(name) => return Ok(already_running(name)),
            AccountSyncPlan::Start(name) => name,
        };
        let session = DbSyncSession {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            spec: DbSyncSessionSpec {
                operation: SyncOperation::Accounts,
                instance_selector: None,
            },
            status: None,
        };
        match api.create(&PostParams::default(), &session).await {
            Ok(created) => {
                state
                    .caches
                    .wait_for_version(
                        &state.caches.sessions,
                        &name,
                        created.metadata.resource_version.as_deref(),
                    )
                    .await;
                return Ok(Reply::created(SessionStarted {
                    session_id: name,
                    already_running: false,
                }));
            }
            // The name is taken: another replica (or request) just started
            // it, or this cache has not seen it yet.
            Err(kube::Error::Api(e)) if e.code == 409 => match api.get_opt(&name).await? {
                Some(taken) if taken.is_full_account_sync() && taken.is_unfinished() => {
                    return Ok(already_running(name));
                }
                _ => floor = sequence(&name).unwrap_or(floor).saturating_add(1),
            },
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(
        Code::Conflict,
        "full account syncs kept being started concurrently; try again",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::DbSyncSessionStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn session(name: &str, op: SyncOperation, created: &str, phase: Option<SyncPhase>) -> Arc<DbSyncSession> {
        let mut s = DbSyncSession::new(
            name,
            DbSyncSessionSpec {
                operation: op,
                instance_selector: None,
            },
        );
        s.metadata.creation_timestamp = Some(Time(created.parse().unwrap()));
        s.status = Some(DbSyncSessionStatus {
            phase,
            total: 4,
            succeeded: 2,
            failed: 1,
            ..Default::default()
        });
        Arc::new(s)
    }

    #[test]
    fn sessions_are_newest_first_and_filterable() {
        let all = vec![
            session(
                "a",
                SyncOperation::Accounts,
                "2026-01-01T00:00:00Z",
                Some(SyncPhase::Succeeded),
            ),
            session("b", SyncOperation::Capacity, "2026-01-03T00:00:00Z", None),
            session(
                "c",
                SyncOperation::Accounts,
                "2026-01-02T00:00:00Z",
                Some(SyncPhase::Running),
            ),
        ];
        let names = |q: &str| -> Vec<String> {
            select(all.clone(), &Query::parse(q))
                .unwrap()
                .iter()
                .map(|s| s.name_any())
                .collect()
        };
        assert_eq!(names(""), ["b", "c", "a"]);
        assert_eq!(names("operation=accounts"), ["c", "a"]);
        assert_eq!(names("status=pending"), ["b"]);
        assert!(select(all.clone(), &Query::parse("operation=nope")).is_err());
    }

    fn full_sync(name: &str, created: &str, phase: Option<SyncPhase>) -> Arc<DbSyncSession> {
        session(name, SyncOperation::Accounts, created, phase)
    }

    #[test]
    fn the_first_full_sync_is_started_as_number_one() {
        assert_eq!(plan_account_sync(&[], 1), AccountSyncPlan::Start("accounts-1".into()));
        assert_eq!(plan_account_sync(&[], 5), AccountSyncPlan::Start("accounts-5".into()));
    }

    #[test]
    fn a_pending_or_running_full_sync_is_returned_instead_of_starting_another() {
        let finished = full_sync("accounts-1", "2026-01-01T00:00:00Z", Some(SyncPhase::Succeeded));
        let running = full_sync("accounts-2", "2026-01-02T00:00:00Z", Some(SyncPhase::Running));
        let pending = full_sync("accounts-3", "2026-01-03T00:00:00Z", None);
        assert_eq!(
            plan_account_sync(&[finished.clone(), pending.clone(), running], 1),
            AccountSyncPlan::Running("accounts-2".into()),
            "the oldest unfinished one"
        );
        assert_eq!(
            plan_account_sync(&[finished, pending], 1),
            AccountSyncPlan::Running("accounts-3".into())
        );
    }

    #[test]
    fn other_sessions_do_not_count_as_a_running_full_sync() {
        let capacity = session("capacity-x", SyncOperation::Capacity, "2026-01-01T00:00:00Z", None);
        let mut selected = DbSyncSession::new(
            "accounts-9",
            DbSyncSessionSpec {
                operation: SyncOperation::Accounts,
                instance_selector: Some(Default::default()),
            },
        );
        selected.metadata.creation_timestamp = Some(Time("2026-01-01T00:00:00Z".parse().unwrap()));
        let done = full_sync("accounts-4", "2026-01-02T00:00:00Z", Some(SyncPhase::PartiallyFailed));
        let legacy = full_sync("accounts-x7k2q", "2026-01-02T00:00:00Z", Some(SyncPhase::Failed));
        assert_eq!(
            plan_account_sync(&[capacity, Arc::new(selected), done, legacy], 1),
            AccountSyncPlan::Start("accounts-10".into()),
            "numbered after every accounts-N, whatever its selector"
        );
    }

    #[test]
    fn only_a_number_after_the_prefix_is_a_sequence() {
        assert_eq!(sequence("accounts-12"), Some(12));
        for name in [
            "accounts-",
            "accounts-1a",
            "accounts--1",
            "capacity-3",
            "accounts-99999999999999999999",
        ] {
            assert_eq!(sequence(name), None, "{name}");
        }
    }

    #[test]
    fn progress_counts_finished_instances() {
        let view = session_view(
            &session("a", SyncOperation::Accounts, "2026-01-01T00:00:00Z", None),
            true,
        );
        assert_eq!((view.progress, view.status), (75, "pending"));
    }
}
