//! Credential Secrets (label `dbfleet.io/credential: "true"`) get an integer
//! id like instances and tags do (SPEC §3.2).

use std::future::Future;
use std::sync::Arc;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;

use super::{Context, Error, assign_id, measured, scoped};
use crate::crd::keys::CREDENTIAL_LABEL;
use crate::ids::{self, IdKind};

const CONTROLLER: &str = "credential";

pub fn controller(ctx: Arc<Context>, stop: CancellationToken) -> impl Future<Output = ()> {
    let api = scoped::<Secret>(ctx.client.clone(), ctx.config.namespace.as_deref());
    // Only the labelled Secrets, and only their metadata matters here.
    let selector = watcher::Config::default().labels(&format!("{CREDENTIAL_LABEL}=true"));
    Controller::new(api, selector)
        .graceful_shutdown_on(stop.cancelled_owned())
        .run(reconcile, super::error_policy, ctx)
        .for_each(|_| async {})
}

async fn reconcile(secret: Arc<Secret>, ctx: Arc<Context>) -> Result<Action, Error> {
    measured(&ctx, CONTROLLER, secret.as_ref(), async {
        if ids::id_of(&secret.metadata).is_none() {
            assign_id(&ctx, secret.as_ref(), IdKind::Credential).await?;
        }
        Ok(Action::await_change())
    })
    .await
}
