//! The DbTag controller (SPEC §2.2): `status.instanceCount`, and the
//! in-use finalizer on exactly the tags that instances reference, so a used
//! tag's deletion waits until no instance uses it.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::{Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use tokio_util::sync::CancellationToken;

use super::{Context, Error, assign_id, instances_where, measured};
use crate::crd::keys::TAG_IN_USE_FINALIZER;
use crate::crd::{DbInstance, DbTag, DbTagStatus};
use crate::ids::{self, IdKind};
use crate::observe::FIELD_MANAGER;

const CONTROLLER: &str = "dbtag";
/// Instances named in the `InUse` condition's message; the count has the rest.
const NAMED_USERS: usize = 5;

pub fn controller(
    ctx: Arc<Context>,
    tag_changes: impl Stream<Item = Arc<DbTag>> + Send + 'static,
    instance_changes: impl Stream<Item = Arc<DbInstance>> + Send + 'static,
    woken: impl Stream<Item = ObjectRef<DbTag>> + Send + 'static,
    stop: CancellationToken,
) -> impl Future<Output = ()> {
    let tags = ctx.tags.clone();
    let config = kube::runtime::controller::Config::default().concurrency(ctx.config.concurrency);
    Controller::for_shared_stream(tag_changes, ctx.tags.clone())
        .with_config(config)
        // An instance's tags may have just lost a name, so every tag of its
        // namespace is looked at again (tags are few; the queue dedups).
        .watches_shared_stream(instance_changes, move |instance: Arc<DbInstance>| {
            let namespace = instance.namespace();
            tags.state()
                .iter()
                .filter(|t| t.namespace() == namespace)
                .map(|t| ObjectRef::from(t.as_ref()))
                .collect::<Vec<_>>()
        })
        .reconcile_on(woken)
        .graceful_shutdown_on(stop.cancelled_owned())
        .run(reconcile, super::error_policy, ctx)
        .for_each(|_| async {})
}

async fn reconcile(tag: Arc<DbTag>, ctx: Arc<Context>) -> Result<Action, Error> {
    if let Some(later) = super::standing_by(&ctx) {
        return Ok(later);
    }
    measured(&ctx, CONTROLLER, tag.as_ref(), reconcile_tag(&tag, &ctx)).await
}

async fn reconcile_tag(tag: &DbTag, ctx: &Context) -> Result<Action, Error> {
    let namespace = tag.namespace().ok_or(Error::NotNamespaced)?;
    let name = tag.name_any();
    let api: Api<DbTag> = Api::namespaced(ctx.client.clone(), &namespace);
    let deleting = tag.metadata.deletion_timestamp.is_some();
    if ids::id_of(&tag.metadata).is_none() && !deleting {
        assign_id(ctx, tag, IdKind::Tag).await?;
        return Ok(Action::await_change());
    }

    let mut users: Vec<String> = instances_where(&ctx.instances, Some(&namespace), |i| i.spec.tags.contains(&name))
        .into_iter()
        .map(|r| r.name)
        .collect();
    users.sort();
    let finalizers = tag.finalizers();
    let protected = finalizers.iter().any(|f| f == TAG_IN_USE_FINALIZER);
    match (users.is_empty(), protected) {
        // A finalizer cannot be added to an object already being deleted.
        (false, false) if !deleting => {
            set_finalizers(
                &api,
                tag,
                finalizers
                    .iter()
                    .cloned()
                    .chain([TAG_IN_USE_FINALIZER.to_string()])
                    .collect(),
            )
            .await?
        }
        (true, true) => {
            set_finalizers(
                &api,
                tag,
                finalizers
                    .iter()
                    .filter(|f| *f != TAG_IN_USE_FINALIZER)
                    .cloned()
                    .collect(),
            )
            .await?;
            if deleting {
                return Ok(Action::await_change());
            }
        }
        _ => {}
    }

    let next = tag_status(
        tag.status.as_ref(),
        tag.metadata.generation,
        &users,
        deleting,
        SystemTime::now(),
    );
    if tag.status.as_ref() != Some(&next) {
        let patch = serde_json::json!({"apiVersion": "dbfleet.io/v1alpha1", "kind": "DbTag", "status": next});
        api.patch_status(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
            .await?;
    }
    // Instance deletions are forwarded to this controller; the periodic
    // look is a safety net for anything a restart could have missed.
    Ok(Action::requeue(Duration::from_secs(600)))
}

/// Replaces the finalizer list, on the condition that the tag is unchanged
/// since it was read.
async fn set_finalizers(api: &Api<DbTag>, tag: &DbTag, finalizers: Vec<String>) -> Result<(), Error> {
    let patch =
        serde_json::json!({"metadata": {"resourceVersion": tag.metadata.resource_version, "finalizers": finalizers}});
    match api
        .patch(&tag.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        // Changed or gone meanwhile: the watch brings the new state.
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn tag_status(
    previous: Option<&DbTagStatus>,
    generation: Option<i64>,
    users: &[String],
    deleting: bool,
    now: SystemTime,
) -> DbTagStatus {
    let (status, reason, message) = match (users.len(), deleting) {
        (0, _) => ("False", "Unused", "no DbInstance uses this tag".to_string()),
        (n, deleting) => {
            let mut named = users.iter().take(NAMED_USERS).cloned().collect::<Vec<_>>().join(", ");
            if n > NAMED_USERS {
                named.push_str(&format!(" and {} more", n - NAMED_USERS));
            }
            let waiting = if deleting {
                "; deletion waits until none does"
            } else {
                ""
            };
            ("True", "InUse", format!("used by {n} instance(s): {named}{waiting}"))
        }
    };
    let transition = previous
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == "InUse"))
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| crate::observe::status::time(now));
    DbTagStatus {
        instance_count: u32::try_from(users.len()).unwrap_or(u32::MAX),
        observed_generation: generation,
        conditions: vec![Condition {
            type_: "InUse".into(),
            status: status.into(),
            reason: reason.into(),
            message,
            observed_generation: generation,
            last_transition_time: transition,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_counts_users_and_names_a_few() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let users: Vec<String> = (1..=7).map(|i| format!("db{i}")).collect();
        let status = tag_status(None, Some(3), &users, true, now);
        assert_eq!(status.instance_count, 7);
        let message = &status.conditions[0].message;
        assert!(message.contains("db1, db2, db3, db4, db5 and 2 more"), "{message}");
        assert!(message.contains("deletion waits"), "{message}");

        let unused = tag_status(Some(&status), Some(3), &[], false, now + Duration::from_secs(10));
        assert_eq!(
            (unused.instance_count, unused.conditions[0].status.as_str()),
            (0, "False")
        );
        assert_ne!(
            unused.conditions[0].last_transition_time,
            status.conditions[0].last_transition_time
        );
        let again = tag_status(Some(&unused), Some(3), &[], false, now + Duration::from_secs(99));
        assert_eq!(again, unused, "an unchanged status is rewritten identically");
    }
}
