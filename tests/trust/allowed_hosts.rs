//! `dbfleet.io/allowed-hosts` (issues 9 and 18): a credential pinned to
//! some hosts (and ports) is sent to no other, whichever path would send
//! it: the controller, a sync session, or any of the façade's actions.

use std::time::Duration;

use dbfleet::crd::keys::ALLOWED_HOSTS_ANNOTATION;
use dbfleet::crd::{DbInstance, DbSyncSession};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::common::{self, assert_no_password};
use crate::harness::{Answer, Facade};
use crate::support::controller as ctl;
use crate::tripwire::Tripwire;

#[track_caller]
fn refused_naming_host(answer: &Answer) {
    answer.expect(400, "VALIDATION_ERROR");
    assert_eq!(answer.field(), "host", "{:#}", answer.body);
    assert_eq!(answer.data()["error_kind"], "HostNotAllowed", "{:#}", answer.body);
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap()
            .contains(ALLOWED_HOSTS_ANNOTATION),
        "{:#}",
        answer.body
    );
    assert_no_password(&answer.body.to_string());
}

#[tokio::test]
async fn a_pinned_credential_goes_to_no_other_host() {
    let facade = Facade::start("trust-pinned").await;
    let (client, ns) = (facade.admin.clone(), facade.namespace.clone());
    let editor = facade.editor().await;
    let credential = common::credential(&facade, &editor, "pinned", Some("db.example.com, 10.0.0.0/8")).await;
    let _controllers = ctl::start(&client, &ns, |_| {});
    let api: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    let wire = Tripwire::start().await;

    // The controller: CredentialsResolved=False, HostNotAllowed.
    common::create(
        &client,
        &ns,
        &common::instance("elsewhere", wire.port, "pinned", json!({})),
    )
    .await;
    let refused = ctl::instance_where(&api, "elsewhere", "HostNotAllowed", |i| {
        ctl::has_condition(i, "CredentialsResolved", "False", "HostNotAllowed")
    })
    .await;
    let message = common::condition_message(&refused, "CredentialsResolved");
    assert!(
        message.contains(&format!("\"127.0.0.1:{}\"", wire.port))
            && message.contains("\"pinned\"")
            && message.contains("db.example.com"),
        "{message}"
    );
    assert_no_password(&serde_json::to_string(&refused.status).unwrap());
    let id = dbfleet::ids::id_of(&refused.metadata).expect("the controller gave it an id");

    // Every façade action that would send the login.
    let on_instance = json!({"instance_id": id});
    refused_naming_host(
        &facade
            .post(&editor, "/api/v1/instances/actions/test-connection", on_instance)
            .await,
    );
    refused_naming_host(
        &facade
            .post(
                &editor,
                &format!("/api/v1/instances/{id}/actions/sync-capacity"),
                json!({}),
            )
            .await,
    );
    refused_naming_host(
        &facade
            .post(
                &editor,
                &format!("/api/v1/instances/{id}/actions/sync-accounts"),
                json!({}),
            )
            .await,
    );
    refused_naming_host(
        &facade
            .post(
                &editor,
                "/api/v1/instances/actions/test-connection",
                json!({"db_type": "postgresql", "host": "127.0.0.1", "port": wire.port, "credential_id": credential}),
            )
            .await,
    );
    let batch = facade
        .post(
            &editor,
            "/api/v1/instances/actions/batch-test-connections",
            json!({"instance_ids": [id]}),
        )
        .await;
    batch.expect(200, "OK");
    let item = &batch.data()["results"][0];
    assert_eq!(item["success"], false, "{:#}", batch.body);
    assert!(
        item["message"].as_str().unwrap().contains("127.0.0.1"),
        "{:#}",
        batch.body
    );

    // A sync session over the namespace.
    let session: DbSyncSession = serde_json::from_value(json!({
        "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbSyncSession",
        "metadata": {"name": "check"}, "spec": {"operation": "connection"},
    }))
    .unwrap();
    let sessions: Api<DbSyncSession> = Api::namespaced(client.clone(), &ns);
    sessions.create(&PostParams::default(), &session).await.unwrap();
    let finished = ctl::eventually(Duration::from_secs(30), "the sync session to finish", || async {
        let session = sessions.get("check").await.unwrap();
        let status = session.status.clone().unwrap_or_default();
        let done = status.finished_at.is_some();
        (done.then_some(status), format!("{:?}", session.status))
    })
    .await;
    assert_eq!((finished.total, finished.failed), (1, 1), "{finished:?}");
    assert!(
        finished.results[0]
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("127.0.0.1"),
        "{finished:?}"
    );

    common::settle().await;
    assert_eq!(wire.connections(), 0, "a pinned login was sent to another host");

    // Allowing the host is what it takes: the controller then dials it.
    Api::<Secret>::namespaced(client.clone(), &ns)
        .patch(
            "pinned",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {ALLOWED_HOSTS_ANNOTATION: "db.example.com, 127.0.0.0/8"}}}),
            ),
        )
        .await
        .unwrap();
    ctl::eventually(Duration::from_secs(15), "a probe to reach the listener", || async {
        ((wire.connections() > 0).then_some(()), wire.connections().to_string())
    })
    .await;
}

#[tokio::test]
async fn an_unreadable_annotation_allows_no_host() {
    let facade = Facade::start("trust-badpin").await;
    let editor = facade.editor().await;
    let credential = common::credential(&facade, &editor, "typo", Some("127.0.0.1, 10.0.0.0/33")).await;
    let wire = Tripwire::start().await;
    let answer = facade
        .post(
            &editor,
            "/api/v1/instances/actions/test-connection",
            json!({"db_type": "postgresql", "host": "127.0.0.1", "port": wire.port, "credential_id": credential}),
        )
        .await;
    refused_naming_host(&answer);
    assert!(
        answer.body["message"].as_str().unwrap().contains("10.0.0.0/33"),
        "{:#}",
        answer.body
    );
    common::settle().await;
    assert_eq!(wire.connections(), 0);
}

/// An entry with a port allows that port only: the same host on another
/// port is refused by the controller and the façade alike, with a message
/// naming the host:port, and nothing is dialled there.
#[tokio::test]
async fn a_pinned_port_is_the_only_port_the_login_goes_to() {
    let facade = Facade::start("trust-pinport").await;
    let (client, ns) = (facade.admin.clone(), facade.namespace.clone());
    let editor = facade.editor().await;
    let (allowed, other) = (Tripwire::start().await, Tripwire::start().await);
    let pin = format!("db.example.com:5432, 127.0.0.1:{}", allowed.port);
    let credential = common::credential(&facade, &editor, "port-pinned", Some(&pin)).await;
    let _controllers = ctl::start(&client, &ns, |_| {});
    let api: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    let refused_address = format!("\"127.0.0.1:{}\"", other.port);

    // The controller: the right host on the wrong port is HostNotAllowed.
    common::create(
        &client,
        &ns,
        &common::instance("wrong-port", other.port, "port-pinned", json!({})),
    )
    .await;
    let refused = ctl::instance_where(&api, "wrong-port", "HostNotAllowed", |i| {
        ctl::has_condition(i, "CredentialsResolved", "False", "HostNotAllowed")
    })
    .await;
    let message = common::condition_message(&refused, "CredentialsResolved");
    assert!(
        message.contains(&refused_address) && message.contains(&format!("127.0.0.1:{}", allowed.port)),
        "{message}"
    );
    assert_no_password(&serde_json::to_string(&refused.status).unwrap());

    // The façade: an ad-hoc test on the wrong port is a 400 naming host,
    // whose message names the refused host:port.
    let adhoc =
        |port: u16| json!({"db_type": "postgresql", "host": "127.0.0.1", "port": port, "credential_id": credential});
    let answer = facade
        .post(&editor, "/api/v1/instances/actions/test-connection", adhoc(other.port))
        .await;
    refused_naming_host(&answer);
    assert!(
        answer.body["message"].as_str().unwrap().contains(&refused_address),
        "{:#}",
        answer.body
    );
    common::settle().await;
    assert_eq!(other.connections(), 0, "a port-pinned login was sent to another port");

    // The pinned port is allowed: the ad-hoc test dials it, and moving the
    // instance there makes the controller dial it too.
    let tested = facade
        .post(
            &editor,
            "/api/v1/instances/actions/test-connection",
            adhoc(allowed.port),
        )
        .await;
    tested.expect(200, "OK");
    assert_no_password(&tested.body.to_string());
    assert!(allowed.connections() >= 1, "the pinned port is dialled");
    let before = allowed.connections();
    api.patch(
        "wrong-port",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"port": allowed.port}})),
    )
    .await
    .unwrap();
    ctl::eventually(
        Duration::from_secs(15),
        "the controller to dial the pinned port",
        || async {
            let dialled = allowed.connections() > before;
            (dialled.then_some(()), allowed.connections().to_string())
        },
    )
    .await;
    assert_eq!(other.connections(), 0);
}
