//! DbTags: the instance count, and deletion held back while in use.

use std::time::Duration;

use dbfleet::crd::keys::TAG_IN_USE_FINALIZER;
use dbfleet::crd::{DbInstance, DbTag};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::fixtures::{self, instance};
use crate::support::{self, controller as ctl};

async fn tag_where(api: &Api<DbTag>, name: &str, what: &str, pick: impl Fn(Option<&DbTag>) -> bool) {
    ctl::eventually(Duration::from_secs(30), what, || async {
        let tag = api.get_opt(name).await.unwrap();
        (
            pick(tag.as_ref()).then_some(()),
            format!("{:?}", tag.map(|t| (t.finalizers().to_vec(), t.status))),
        )
    })
    .await
}

#[tokio::test]
async fn a_used_tag_survives_delete_until_the_last_instance_drops_it() {
    let (client, ns) = support::admin_in_fresh_namespace("tag-in-use").await;
    let pg = fixtures::postgres();
    let _controllers = ctl::start(&client, &ns, |_| {});
    let tags: Api<DbTag> = Api::namespaced(client.clone(), &ns);
    for name in ["prod", "spare"] {
        let tag = serde_json::from_value(json!({"apiVersion": "dbfleet.io/v1alpha1", "kind": "DbTag", "metadata": {"name": name}, "spec": {"displayName": name, "category": "env"}})).unwrap();
        tags.create(&PostParams::default(), &tag).await.unwrap();
    }
    let instances: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    for name in ["a", "b"] {
        fixtures::create(
            &instances,
            &instance(
                name,
                "postgresql",
                &pg,
                "login",
                json!({"isActive": false, "tags": ["prod"]}),
            ),
        )
        .await;
    }
    let protected = |t: Option<&DbTag>| t.is_some_and(|t| t.finalizers().iter().any(|f| f == TAG_IN_USE_FINALIZER));
    tag_where(&tags, "prod", "prod protected, counting 2", |t| {
        protected(t) && t.and_then(|t| t.status.as_ref()).is_some_and(|s| s.instance_count == 2)
    })
    .await;
    tag_where(&tags, "spare", "spare unprotected with an id", |t| {
        t.is_some_and(|t| {
            !protected(Some(t))
                && dbfleet::ids::id_of(&t.metadata).is_some()
                && t.status.as_ref().is_some_and(|s| s.instance_count == 0)
        })
    })
    .await;

    tags.delete("prod", &DeleteParams::default()).await.unwrap();
    let terminating = tags.get("prod").await.unwrap();
    assert!(
        terminating.metadata.deletion_timestamp.is_some(),
        "deletion is pending, not done"
    );

    let drop_tag = json!({"spec": {"tags": []}});
    instances
        .patch("a", &PatchParams::default(), &Patch::Merge(&drop_tag))
        .await
        .unwrap();
    tag_where(&tags, "prod", "count 1, still there", |t| {
        t.and_then(|t| t.status.as_ref()).is_some_and(|s| s.instance_count == 1)
    })
    .await;
    assert!(tags.get_opt("prod").await.unwrap().is_some());

    // The last user goes away by deletion this time.
    instances.delete("b", &DeleteParams::default()).await.unwrap();
    tag_where(&tags, "prod", "prod deleted", |t| t.is_none()).await;
    assert!(
        tags.get_opt("spare").await.unwrap().is_some(),
        "an unused tag is untouched"
    );
}
