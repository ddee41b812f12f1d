//! The recycle bin: recycled instances are not probed, show `Recycled` and
//! their retention, are deleted for good when it ends, and come back when
//! restored.

use std::time::Duration;

use dbfleet::crd::DbInstance;
use dbfleet::crd::instance::Phase;
use dbfleet::crd::keys::{RECYCLED_AT_ANNOTATION, RECYCLED_LABEL};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::fixtures::{self, instance};
use crate::support::{self, controller as ctl};

fn recycle_now() -> serde_json::Value {
    json!({"metadata": {"labels": {RECYCLED_LABEL: "true"}, "annotations": {RECYCLED_AT_ANNOTATION: Timestamp::now().to_string()}}})
}

fn phase(i: &DbInstance) -> Option<Phase> {
    i.status.as_ref().and_then(|s| s.phase)
}

#[tokio::test]
async fn a_recycled_instance_is_deleted_when_its_retention_ends() {
    let (client, ns) = support::admin_in_fresh_namespace("retention").await;
    let pg = fixtures::postgres();
    fixtures::create_login_secret(&client, &ns, "login", &pg.user, &pg.password).await;
    let _controllers = ctl::start(&client, &ns, |c| c.retention = Duration::from_secs(3));
    let api: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    fixtures::create(&api, &instance("db", "postgresql", &pg, "login", json!({}))).await;
    ctl::instance_where(&api, "db", "Ready", |i| phase(i) == Some(Phase::Ready)).await;

    api.patch("db", &PatchParams::default(), &Patch::Merge(&recycle_now()))
        .await
        .unwrap();
    let recycled = ctl::instance_where(&api, "db", "Recycled", |i| phase(i) == Some(Phase::Recycled)).await;
    let status = recycled.status.as_ref().unwrap();
    let (at, until) = (
        status.recycled_at.clone().unwrap().0,
        status.retained_until.clone().unwrap().0,
    );
    assert_eq!(until.duration_since(at).as_secs(), 3);
    assert!(ctl::has_condition(&recycled, "Ready", "False", "Recycled"));

    ctl::eventually(Duration::from_secs(20), "deletion after retention", || async {
        let gone = api.get_opt("db").await.unwrap().is_none();
        (gone.then_some(()), "still there".to_string())
    })
    .await;
}

#[tokio::test]
async fn a_restored_instance_is_probed_again() {
    let (client, ns) = support::admin_in_fresh_namespace("restore").await;
    let pg = fixtures::postgres();
    fixtures::create_login_secret(&client, &ns, "login", &pg.user, &pg.password).await;
    let _controllers = ctl::start(&client, &ns, |_| {});
    let api: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    fixtures::create(&api, &instance("db", "postgresql", &pg, "login", json!({}))).await;
    ctl::instance_where(&api, "db", "Ready", |i| phase(i) == Some(Phase::Ready)).await;
    api.patch("db", &PatchParams::default(), &Patch::Merge(&recycle_now()))
        .await
        .unwrap();
    let recycled = ctl::instance_where(&api, "db", "Recycled", |i| phase(i) == Some(Phase::Recycled)).await;
    let retained = recycled.status.as_ref().unwrap().retained_until.clone().unwrap().0;
    assert_eq!(
        retained
            .duration_since(recycled.status.as_ref().unwrap().recycled_at.clone().unwrap().0)
            .as_secs(),
        30 * 24 * 3600
    );

    // While recycled nothing probes it: the request annotation stays unanswered.
    let request = json!({"metadata": {"annotations": {"dbfleet.io/test-connection-requested-at": "while-recycled"}}});
    api.patch("db", &PatchParams::default(), &Patch::Merge(&request))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still = api.get("db").await.unwrap();
    let handled = |i: &DbInstance| i.status.as_ref().and_then(|s| s.handled_requests.connection.clone());
    assert_eq!(handled(&still), None);
    assert_eq!(phase(&still), Some(Phase::Recycled));

    let restore =
        json!({"metadata": {"labels": {RECYCLED_LABEL: null}, "annotations": {RECYCLED_AT_ANNOTATION: null}}});
    api.patch("db", &PatchParams::default(), &Patch::Merge(&restore))
        .await
        .unwrap();
    let back = ctl::instance_where(&api, "db", "probed again", |i| {
        phase(i) == Some(Phase::Ready) && handled(i).as_deref() == Some("while-recycled")
    })
    .await;
    let status = back.status.as_ref().unwrap();
    assert!(status.recycled_at.is_none() && status.retained_until.is_none());
}
