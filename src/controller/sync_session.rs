//! The DbSyncSession controller (SPEC §2.3): runs one probe over the
//! selected instances with bounded concurrency, writes each instance's
//! status as a normal sync would, keeps the session's progress current, and
//! deletes finished sessions after their TTL.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::{Context, Error, measured, scoped};
use crate::crd::bounds;
use crate::crd::keys::RECYCLED_LABEL;
use crate::crd::sync_session::{SyncOperation, SyncPhase, SyncResult};
use crate::crd::{DbInstance, DbSyncSession, DbSyncSessionStatus};
use crate::ids;
use crate::sync::{self, Ops, ProbeRun, RunError};

const CONTROLLER: &str = "dbsyncsession";
/// Progress is written at most this often while a session runs.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

pub fn controller(ctx: Arc<Context>, stop: CancellationToken) -> impl Future<Output = ()> {
    let api = scoped::<DbSyncSession>(ctx.client.clone(), ctx.config.namespace.as_deref());
    Controller::new(api, watcher::Config::default())
        .graceful_shutdown_on(stop.cancelled_owned())
        .run(reconcile, super::error_policy, ctx)
        .for_each(|_| async {})
}

async fn reconcile(session: Arc<DbSyncSession>, ctx: Arc<Context>) -> Result<Action, Error> {
    measured(&ctx, CONTROLLER, session.as_ref(), reconcile_session(&session, &ctx)).await
}

async fn reconcile_session(session: &DbSyncSession, ctx: &Context) -> Result<Action, Error> {
    let namespace = session.namespace().ok_or(Error::NotNamespaced)?;
    let api: Api<DbSyncSession> = Api::namespaced(ctx.client.clone(), &namespace);
    let status = session.status.clone().unwrap_or_default();
    match (status.phase, status.finished_at) {
        (Some(SyncPhase::Succeeded | SyncPhase::PartiallyFailed | SyncPhase::Failed), Some(finished)) => {
            let expires = SystemTime::from(finished.0) + ctx.config.session_ttl;
            match expires.duration_since(SystemTime::now()) {
                Ok(left) => Ok(Action::requeue(left.max(Duration::from_secs(1)))),
                Err(_) => {
                    info!(session = %session.name_any(), "TTL ended; deleting");
                    match api.delete(&session.name_any(), &DeleteParams::default()).await {
                        Ok(_) => Ok(Action::await_change()),
                        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::await_change()),
                        Err(e) => Err(e.into()),
                    }
                }
            }
        }
        // Pending, or Running after a restart: (re)run from the start.
        _ => run_session(session, &api, ctx, &namespace).await,
    }
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
    let selector = match session
        .spec
        .instance_selector
        .clone()
        .map(Selector::try_from)
        .transpose()
    {
        Ok(selector) => selector,
        Err(error) => {
            status.phase = Some(SyncPhase::Failed);
            status.finished_at = Some(now());
            // Not an instance's failure, so not counted: the one result
            // says what failed.
            status.results.push(SyncResult {
                instance: String::new(),
                id: None,
                success: false,
                message: Some(bounds::message(&format!("spec.instanceSelector is invalid: {error}"))),
                duration_ms: 0,
            });
            write(api, &name, &status).await?;
            return Ok(Action::requeue(ctx.config.session_ttl));
        }
    };
    let mut targets: Vec<Arc<DbInstance>> = ctx
        .instances
        .state()
        .into_iter()
        .filter(|i| i.namespace().as_deref() == Some(namespace))
        .filter(|i| i.spec.is_active && i.labels().get(RECYCLED_LABEL).is_none_or(|v| v != "true"))
        .filter(|i| selector.as_ref().is_none_or(|s| s.matches(i.labels())))
        .collect();
    targets.sort_by_key(|i| i.name_any());
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

/// Probes one instance (its freshest cached copy, once the probe budget
/// has a slot) and records the result in its status.
async fn sync_one(ctx: &Context, instance: Arc<DbInstance>, ops: Ops, operation: SyncOperation) -> SyncResult {
    let permit = ctx.config.probes.budget.acquire().await;
    let started = Instant::now();
    let latest = ctx
        .instances
        .get(&ObjectRef::from(instance.as_ref()))
        .unwrap_or(instance);
    let outcome = sync::run_now(&ctx.client, &latest, ops, &ctx.config.probes, permit).await;
    let (success, message) = match outcome {
        Ok(report) => describe(&report.run, operation),
        Err(RunError::Credentials(e)) => (false, e.to_string()),
        Err(RunError::Kube(e)) => (false, format!("could not record the result: {e}")),
    };
    SyncResult {
        instance: latest.name_any(),
        id: ids::id_of(&latest.metadata),
        success,
        message: Some(message),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

fn describe(run: &ProbeRun, operation: SyncOperation) -> (bool, String) {
    match operation {
        SyncOperation::Connection => match &run.connection {
            Some(Ok(info)) => (
                true,
                format!(
                    "connected to {} in {} ms",
                    info.server_version,
                    info.latency.as_millis()
                ),
            ),
            Some(Err(e)) => (false, e.message.clone()),
            None => (false, "not run".into()),
        },
        SyncOperation::Capacity => match &run.capacity {
            Some(Ok(c)) => (
                true,
                format!("{} databases, {} bytes", c.databases.len(), c.total_size_bytes()),
            ),
            Some(Err(e)) => (false, e.message.clone()),
            None => (false, "not run".into()),
        },
        SyncOperation::Accounts => match &run.accounts {
            Some(Ok(a)) => (true, format!("{} accounts", a.accounts.len())),
            Some(Err(e)) => (false, e.message.clone()),
            None => (false, "not run".into()),
        },
    }
}

async fn write(api: &Api<DbSyncSession>, name: &str, status: &DbSyncSessionStatus) -> Result<(), Error> {
    let patch = serde_json::json!({"apiVersion": "dbfleet.io/v1alpha1", "kind": "DbSyncSession", "status": status});
    api.patch_status(
        name,
        &PatchParams::apply(sync::FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

fn now() -> Time {
    sync::status::time(SystemTime::now())
}
