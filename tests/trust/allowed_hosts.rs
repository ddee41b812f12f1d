//! `dbfleet.io/allowed-hosts` (issue 9): a credential pinned to some hosts
//! is sent to no other, whichever path would send it: the controller, a
//! sync session, or any of the façade's actions.

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
        message.contains("\"127.0.0.1\"") && message.contains("\"pinned\"") && message.contains("db.example.com"),
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
