//! Two objects carrying the same `dbfleet.io/id` (labels copied with
//! kubectl): the façade acts on neither and says which two; the controller
//! warns with an Event on the instance.

use std::time::Duration;

use dbfleet::crd::keys::ID_LABEL;
use dbfleet::crd::{DbInstance, DbTag};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

use crate::harness::{Answer, Facade, User};
use crate::support::controller as ctl;

/// Gives `name` the id label `id`, as `kubectl label --overwrite` would.
async fn copy_id<K>(api: &Api<K>, name: &str, id: i64)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {ID_LABEL: id.to_string()}}})),
    )
    .await
    .unwrap();
}

/// Polls `path` until the façade answers 409, and returns that answer.
async fn conflict(facade: &Facade, user: &User, path: &str) -> Answer {
    for _ in 0..100 {
        let answer = facade.get(user, path).await;
        if answer.status == 409 {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never answered 409");
}

#[track_caller]
fn names_both(answer: &Answer, a: &str, b: &str) {
    answer.expect(409, "CONFLICT");
    let message = answer.body["message"].as_str().unwrap();
    assert!(message.contains(a) && message.contains(b), "{message}");
    assert_eq!(answer.data()["objects"], json!([a, b]), "{:#}", answer.body);
}

#[tokio::test]
async fn a_shared_id_is_a_conflict_naming_both_objects() {
    let facade = Facade::start("trust-dupid").await;
    let editor = facade.editor().await;
    let (client, ns) = (facade.admin.clone(), facade.namespace.clone());
    let first = facade.instance(&editor, "first", json!({})).await;
    let second = facade.instance(&editor, "second", json!({})).await;
    let instances: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    copy_id(&instances, "second", first).await;

    let answer = conflict(&facade, &editor, &format!("/api/v1/instances/{first}")).await;
    names_both(&answer, "first", "second");
    // Nor does any action pick one of them.
    for (path, body) in [
        (
            "/api/v1/instances/actions/test-connection",
            json!({"instance_id": first}),
        ),
        (
            &format!("/api/v1/instances/{first}/actions/sync-capacity") as &str,
            json!({}),
        ),
    ] {
        names_both(&facade.post(&editor, path, body).await, "first", "second");
    }
    let before = facade.snapshot().await;
    names_both(
        &facade.delete(&editor, &format!("/api/v1/instances/{first}")).await,
        "first",
        "second",
    );
    assert_eq!(facade.snapshot().await, before, "a refused delete changes nothing");
    facade
        .get(&editor, &format!("/api/v1/instances/{second}"))
        .await
        .expect(404, "NOT_FOUND");

    // Tags the same way.
    let red = facade.tag(&editor, "red").await;
    facade.tag(&editor, "blue").await;
    copy_id(&Api::<DbTag>::namespaced(client.clone(), &ns), "blue", red).await;
    let answer = conflict(&facade, &editor, &format!("/api/v1/tags/{red}")).await;
    names_both(&answer, "blue", "red");

    // Credentials too: their ids live in the id ConfigMap, where only a
    // hand edit can give two the same; a body naming that credential_id.
    let shared = crate::common::credential(&facade, &editor, "login-a", None).await;
    crate::common::credential(&facade, &editor, "login-b", None).await;
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .patch(
            dbfleet::ids::COUNTER_CONFIGMAP,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"credential.login-b": shared.to_string()}})),
        )
        .await
        .unwrap();
    let params = json!({"db_type": "postgresql", "port": 5432, "credential_id": shared});
    let mut answer = None;
    for _ in 0..100 {
        let attempt = facade
            .post(
                &editor,
                "/api/v1/instances/actions/validate-connection-params",
                params.clone(),
            )
            .await;
        if attempt.status == 409 {
            answer = Some(attempt);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    names_both(
        &answer.expect("validate-connection-params never answered 409"),
        "login-a",
        "login-b",
    );
    let mut create = params.clone();
    create["name"] = json!("third");
    create["host"] = json!("third.example.com");
    names_both(
        &facade.post(&editor, "/api/v1/instances", create).await,
        "login-a",
        "login-b",
    );

    // The controller warns on the instance.
    let _controllers = ctl::start(&client, &ns, |_| {});
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let note = ctl::eventually(Duration::from_secs(30), "a DuplicateId event", || async {
        let list = events.list(&ListParams::default()).await.unwrap();
        let found = list
            .items
            .iter()
            .find(|e| {
                e.reason.as_deref() == Some("DuplicateId")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("first")
            })
            .and_then(|e| e.note.clone());
        (found, format!("{} events", list.items.len()))
    })
    .await;
    assert!(note.contains("second") && note.contains(&first.to_string()), "{note}");
}
