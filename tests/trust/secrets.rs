//! Only Secrets that opt in with a label are read (issue 9): an instance
//! naming any other Secret gets `SecretNotLabelled`, and nothing is dialled.

use std::time::Duration;

use dbfleet::crd::DbInstance;
use dbfleet::crd::keys::{CA_LABEL, CREDENTIAL_LABEL};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::common::{self, assert_no_password};
use crate::harness::Facade;
use crate::support::controller as ctl;
use crate::tripwire::Tripwire;

#[tokio::test]
async fn an_unlabelled_secret_is_never_read_as_a_login() {
    let facade = Facade::start("trust-unlabelled").await;
    let (client, ns) = (facade.admin.clone(), facade.namespace.clone());
    let _controllers = ctl::start(&client, &ns, |_| {});
    let api: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    let wire = Tripwire::start().await;

    // An application Secret with a token, named as a login by someone who
    // may create instances but not read Secrets.
    common::secret(&client, &ns, "app-token", &[], &[]).await;
    common::create(
        &client,
        &ns,
        &common::instance("steal", wire.port, "app-token", json!({})),
    )
    .await;
    let refused = ctl::instance_where(&api, "steal", "SecretNotLabelled", |i| {
        ctl::has_condition(i, "CredentialsResolved", "False", "SecretNotLabelled")
    })
    .await;
    let message = common::condition_message(&refused, "CredentialsResolved");
    assert!(
        message.contains("\"app-token\"") && message.contains(CREDENTIAL_LABEL),
        "{message}"
    );
    assert_no_password(&serde_json::to_string(&refused.status).unwrap());

    // A CA bundle needs a label too (a login alone is not enough).
    common::secret(&client, &ns, "login", &[(CREDENTIAL_LABEL, "true")], &[]).await;
    common::secret(&client, &ns, "plain-ca", &[], &[]).await;
    let verify_full = json!({"tls": {"mode": "verify-full", "caSecretRef": {"name": "plain-ca", "key": "username"}}});
    common::create(
        &client,
        &ns,
        &common::instance("unlabelled-ca", wire.port, "login", verify_full),
    )
    .await;
    let refused = ctl::instance_where(&api, "unlabelled-ca", "SecretNotLabelled", |i| {
        ctl::has_condition(i, "CredentialsResolved", "False", "SecretNotLabelled")
    })
    .await;
    let message = common::condition_message(&refused, "CredentialsResolved");
    assert!(
        message.contains("\"plain-ca\"") && message.contains(CA_LABEL),
        "{message}"
    );

    // The façade's on-demand test refuses the same way.
    let editor = facade.editor().await;
    let id = dbfleet::ids::id_of(&api.get("steal").await.unwrap().metadata).unwrap();
    let tested = facade
        .post(
            &editor,
            "/api/v1/instances/actions/test-connection",
            json!({"instance_id": id}),
        )
        .await;
    tested.expect(200, "OK");
    assert_eq!(tested.data()["error_kind"], "SecretNotLabelled", "{:#}", tested.body);
    common::settle().await;
    assert_eq!(wire.connections(), 0, "an unlabelled Secret's value went out");

    // Opting in is what it takes: labelling the Secret wakes the instance
    // (the labelled watch sees it arrive) and it is probed.
    Api::<Secret>::namespaced(client.clone(), &ns)
        .patch(
            "app-token",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {CREDENTIAL_LABEL: "true"}}})),
        )
        .await
        .unwrap();
    ctl::instance_where(&api, "steal", "credentials resolved once labelled", |i| {
        ctl::has_condition(i, "CredentialsResolved", "True", "Resolved")
    })
    .await;
    ctl::eventually(Duration::from_secs(15), "a probe to reach the listener", || async {
        ((wire.connections() > 0).then_some(()), wire.connections().to_string())
    })
    .await;
}
