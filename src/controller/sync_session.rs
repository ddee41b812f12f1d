//! The DbSyncSession controller (SPEC §2.3): asks for one probe on each
//! selected instance with bounded concurrency — through the request
//! annotations, so the instance's own controller runs it and writes its
//! status — keeps the session's progress current, and deletes finished
//! sessions after their TTL. A session runs once: this process remembers
//! the sessions it runs, and reads the stored session before starting one.

use std::collections::HashMap;
use std::future::Future;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::core::Selector;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, ReflectHandle, Store};
use kube::{Api, ResourceExt};
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::{Context, Error, measured};
use crate::crd::bounds;
use crate::crd::sync_session::{SyncOperation, SyncPhase, SyncResult};
use crate::crd::{DbInstance, DbInstanceStatus, DbSyncSession, DbSyncSessionStatus};
use crate::ids;
use crate::observe::request::{self, Outcome};
use crate::observe::{self, Ops, status};

const CONTROLLER: &str = "dbsyncsession";
/// Progress is written at most this often while a session runs.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// Instances listed per page when a session selects its targets.
const LIST_PAGE: u32 = 500;
/// How long a session waits for the shared store to show an instance the
/// API server listed (the watch event is usually milliseconds behind).
const STORE_CATCH_UP: Duration = Duration::from_secs(10);

/// The sync-session reconciler's context: what every controller shares,
/// and the sessions this process runs or has finished, by uid, so a
/// reconcile that reads a cache behind its own writes never starts one over.
struct Sessions {
    shared: Arc<Context>,
    progress: Mutex<HashMap<String, Progress>>,
}

impl Deref for Sessions {
    type Target = Context;

    fn deref(&self) -> &Context {
        &self.shared
    }
}

/// The controller over the process's shared DbSyncSession watch: its store
/// and a subscription taken before the watch started.
pub fn controller(
    ctx: Arc<Context>,
    (store, changes): (Store<DbSyncSession>, ReflectHandle<DbSyncSession>),
    stop: CancellationToken,
) -> impl Future<Output = ()> {
    let sessions = Arc::new(Sessions {
        shared: ctx,
        progress: Mutex::new(HashMap::new()),
    });
    Controller::for_shared_stream(changes, store)
        .graceful_shutdown_on(stop.cancelled_owned())
        .run(
            reconcile,
            |session, error, ctx: Arc<Sessions>| super::error_policy(session, error, ctx.shared.clone()),
            sessions,
        )
        .for_each(|_| async {})
}

async fn reconcile(session: Arc<DbSyncSession>, ctx: Arc<Sessions>) -> Result<Action, Error> {
    if let Some(later) = super::standing_by(&ctx) {
        return Ok(later);
    }
    measured(&ctx, CONTROLLER, session.as_ref(), reconcile_session(&session, &ctx)).await
}

/// Where this process is with a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Progress {
    Running,
    Finished,
}

/// Whether a session the cache shows unfinished may (re)start: not while
/// this process runs it or has finished it (the cache is behind its own
/// writes), and not when the stored session is gone or finished (behind
/// another process's). `stored` is `None` before the stored session was
/// read, `Some(None)` when it does not exist, `Some(Some(finished))` after.
fn may_start(here: Option<Progress>, stored: Option<Option<bool>>) -> bool {
    here.is_none() && !matches!(stored, Some(None | Some(true)))
}

fn finished(status: Option<&DbSyncSessionStatus>) -> bool {
    status.is_some_and(|s| {
        s.finished_at.is_some()
            && matches!(
                s.phase,
                Some(SyncPhase::Succeeded | SyncPhase::PartiallyFailed | SyncPhase::Failed)
            )
    })
}

async fn reconcile_session(session: &DbSyncSession, ctx: &Sessions) -> Result<Action, Error> {
    let namespace = session.namespace().ok_or(Error::NotNamespaced)?;
    let api: Api<DbSyncSession> = Api::namespaced(ctx.client.clone(), &namespace);
    let uid = session.metadata.uid.clone().unwrap_or_default();
    let status = session.status.clone().unwrap_or_default();
    if let (true, Some(finished)) = (finished(Some(&status)), status.finished_at.as_ref()) {
        ctx.progress.lock().expect("sessions lock").remove(&uid);
        let expires = SystemTime::from(finished.0) + ctx.config.session_ttl;
        return match expires.duration_since(SystemTime::now()) {
            Ok(left) => Ok(Action::requeue(left.max(Duration::from_secs(1)))),
            Err(_) => {
                info!(session = %session.name_any(), "TTL ended; deleting");
                match api.delete(&session.name_any(), &DeleteParams::default()).await {
                    Ok(_) => Ok(Action::await_change()),
                    Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::await_change()),
                    Err(e) => Err(e.into()),
                }
            }
        };
    }
    // Running here, or finished here and the cache has not seen it yet.
    let here = ctx.progress.lock().expect("sessions lock").get(&uid).copied();
    if !may_start(here, None) {
        return Ok(Action::await_change());
    }
    // The cache may be behind another process's final write.
    let stored = api.get_opt(&session.name_any()).await?;
    let stored = stored.as_ref().map(|s| finished(s.status.as_ref()));
    if !may_start(here, Some(stored)) {
        return Ok(Action::await_change());
    }
    ctx.progress
        .lock()
        .expect("sessions lock")
        .insert(uid.clone(), Progress::Running);
    // Pending, or Running after a restart: (re)run from the start.
    let result = run_session(session, &api, ctx, &namespace).await;
    let mut sessions = ctx.progress.lock().expect("sessions lock");
    match &result {
        Ok(_) => sessions.insert(uid, Progress::Finished),
        Err(_) => sessions.remove(&uid),
    };
    result
}

async fn run_session(
    session: &DbSyncSession,
    api: &Api<DbSyncSession>,
    ctx: &Context,
    namespace: &str,
) -> Result<Action, Error> {
    let name = session.name_any();
    let mut status = DbSyncSessionStatus {
        phase: Some(SyncPhase::Running),
        started_at: Some(now()),
        ..Default::default()
    };
    let targets = match select_targets(ctx, namespace, session.spec.instance_selector.as_ref()).await {
        Ok(targets) => targets,
        Err(NotSelected::Api(error)) => return Err(error.into()),
        Err(NotSelected::InvalidSelector(reason)) => {
            status.phase = Some(SyncPhase::Failed);
            status.finished_at = Some(now());
            // Not an instance's failure, so not counted: the one result
            // says what failed.
            status.results.push(SyncResult {
                instance: String::new(),
                id: None,
                success: false,
                message: Some(bounds::message(&format!("spec.instanceSelector is invalid: {reason}"))),
                duration_ms: 0,
            });
            write(api, &name, &status).await?;
            return Ok(Action::requeue(ctx.config.session_ttl));
        }
    };
    status.total = u32::try_from(targets.len()).unwrap_or(u32::MAX);
    write(api, &name, &status).await?;
    info!(session = %name, operation = ?session.spec.operation, total = status.total, "sync session started");

    let ops = Ops::from(session.spec.operation);
    let mut outcomes = futures_util::stream::iter(targets)
        .map(|instance| sync_one(ctx, instance, ops, session.spec.operation))
        .buffer_unordered(ctx.config.session_concurrency.max(1));
    let mut last_write = Instant::now();
    while let Some(result) = outcomes.next().await {
        status.record(result, ctx.config.session_results_cap);
        if last_write.elapsed() >= PROGRESS_EVERY {
            write(api, &name, &status).await?;
            last_write = Instant::now();
        }
    }
    status.results.sort_by(|a, b| a.instance.cmp(&b.instance));
    status.phase = Some(match (status.succeeded, status.failed) {
        (_, 0) => SyncPhase::Succeeded,
        (0, _) => SyncPhase::Failed,
        _ => SyncPhase::PartiallyFailed,
    });
    status.finished_at = Some(now());
    write(api, &name, &status).await?;
    info!(session = %name, succeeded = status.succeeded, failed = status.failed, "sync session finished");
    Ok(Action::requeue(ctx.config.session_ttl))
}

/// Why a session has no targets to run over.
enum NotSelected {
    /// `spec.instanceSelector` is no selector, or one the API server
    /// refuses (a label value with a space): the session fails.
    InvalidSelector(String),
    /// The API server did not answer the list: the reconcile is retried.
    Api(kube::Error),
}

/// The active, unrecycled instances a session runs over, by name: those
/// the API server lists when it starts, each as the shared store holds it.
/// The store alone could still miss an instance created just before the
/// session; the list is of metadata only, a page at a time.
async fn select_targets(
    ctx: &Context,
    namespace: &str,
    selector: Option<&LabelSelector>,
) -> Result<Vec<Arc<DbInstance>>, NotSelected> {
    let api: Api<DbInstance> = Api::namespaced(ctx.client.clone(), namespace);
    let mut params = ListParams::default().limit(LIST_PAGE);
    if let Some(selector) = selector {
        let selector = Selector::try_from(selector.clone()).map_err(|e| NotSelected::InvalidSelector(e.to_string()))?;
        params = params.labels_from(&selector);
    }
    let asked = params.label_selector.clone().unwrap_or_default();
    let mut listed = Vec::new();
    loop {
        let page = api.list_metadata(&params).await.map_err(|error| match error {
            kube::Error::Api(answer) if answer.code == 400 => {
                NotSelected::InvalidSelector(format!("{asked}: {}", answer.message))
            }
            error => NotSelected::Api(error),
        })?;
        listed.extend(
            page.items
                .iter()
                .map(|meta| ObjectRef::<DbInstance>::new(&meta.name_any()).within(namespace)),
        );
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    // One deleted since the list never arrives: wait only so long for it.
    let deadline = Instant::now() + STORE_CATCH_UP;
    while listed.iter().any(|r| ctx.instances.get(r).is_none()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut targets: Vec<Arc<DbInstance>> = listed
        .iter()
        .filter_map(|r| ctx.instances.get(r))
        .filter(|i| i.spec.is_active && !i.is_recycled())
        .collect();
    targets.sort_by_key(|i| i.name_any());
    Ok(targets)
}

/// Asks the instance's controller for the session's probe and reads the
/// outcome from the status it writes.
async fn sync_one(ctx: &Context, instance: Arc<DbInstance>, ops: Ops, operation: SyncOperation) -> SyncResult {
    let started = Instant::now();
    let reference = ObjectRef::from(instance.as_ref());
    let name = instance.name_any();
    let namespace = instance.namespace().unwrap_or_default();
    let api: Api<DbInstance> = Api::namespaced(ctx.client.clone(), &namespace);
    let deadline = request::answer_deadline(&ctx.config.probes.timeouts);
    let (success, message) = match request::request(&api, &name, ops).await {
        Err(e) => (false, format!("could not ask for the probe: {e}")),
        Ok(token) => match request::await_answer(|| ctx.instances.get(&reference), ops, &token, deadline).await {
            Ok(answered) => describe(answered.status.as_ref(), operation),
            Err(e) => (false, e.to_string()),
        },
    };
    SyncResult {
        instance: name,
        id: ids::id_of(&instance.metadata),
        success,
        message: Some(bounds::message(&message)),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

/// The outcome of `operation` as the status that answered it records it.
fn describe(recorded: Option<&DbInstanceStatus>, operation: SyncOperation) -> (bool, String) {
    match request::outcome(recorded, operation) {
        Outcome::Succeeded { message } => (true, message.to_string()),
        Outcome::NotRun { message, .. }
        | Outcome::ConnectionFailed { message, .. }
        | Outcome::CollectionFailed { message, .. } => (false, message.to_string()),
        Outcome::Unrecorded => (false, "not run".into()),
    }
}

async fn write(api: &Api<DbSyncSession>, name: &str, status: &DbSyncSessionStatus) -> Result<(), Error> {
    let patch = serde_json::json!({"apiVersion": "dbfleet.io/v1alpha1", "kind": "DbSyncSession", "status": status});
    api.patch_status(
        name,
        &PatchParams::apply(observe::FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

fn now() -> Time {
    status::time(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_starts_only_when_nobody_runs_or_ran_it() {
        assert!(may_start(None, None));
        assert!(may_start(None, Some(Some(false))));
        // This process runs it, or finished it before the cache caught up.
        assert!(!may_start(Some(Progress::Running), None));
        assert!(!may_start(Some(Progress::Finished), Some(Some(false))));
        // Another process finished it, or it was deleted.
        assert!(!may_start(None, Some(Some(true))));
        assert!(!may_start(None, Some(None)));
    }
}
