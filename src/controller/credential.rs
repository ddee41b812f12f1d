//! Credential Secrets (label `dbfleet.io/credential: "true"`) get an integer
//! id like instances and tags do (SPEC §3.2).

use std::future::Future;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::{Action, Controller};
use tokio_util::sync::CancellationToken;

use super::{Context, Error, assign_id, measured};
use crate::ids::{self, IdKind};

const CONTROLLER: &str = "credential";

/// Runs on the shared store of credential Secrets (`Context::secrets`,
/// watched with the credential label selector): no watch of its own.
pub fn controller(
    ctx: Arc<Context>,
    secrets: impl Stream<Item = Arc<Secret>> + Send + 'static,
    stop: CancellationToken,
) -> impl Future<Output = ()> {
    Controller::for_shared_stream(secrets, ctx.secrets.clone())
        .graceful_shutdown_on(stop.cancelled_owned())
        .run(reconcile, super::error_policy, ctx)
        .for_each(|_| async {})
}

async fn reconcile(secret: Arc<Secret>, ctx: Arc<Context>) -> Result<Action, Error> {
    if let Some(later) = super::standing_by(&ctx) {
        return Ok(later);
    }
    measured(&ctx, CONTROLLER, secret.as_ref(), async {
        if ids::id_of(&secret.metadata).is_none() {
            assign_id(&ctx, secret.as_ref(), IdKind::Credential).await?;
        }
        Ok(Action::await_change())
    })
    .await
}
