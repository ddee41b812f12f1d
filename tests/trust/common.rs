//! Secrets, instances and waits the trust tests share.

use std::collections::BTreeMap;
use std::time::Duration;

use dbfleet::crd::DbInstance;
use dbfleet::crd::keys::{ALLOWED_HOSTS_ANNOTATION, CREDENTIAL_LABEL};
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::harness::{Facade, User};
use crate::support::{self, controller as ctl};

/// The password every test login carries: it must never reach a tripwire,
/// a status, an event or an answer.
pub const PASSWORD: &str = "trust-test-password-4d1f7e";

/// A Secret named `name` with a username and [`PASSWORD`], carrying
/// `labels` and `annotations`.
pub async fn secret(
    client: &Client,
    namespace: &str,
    name: &str,
    labels: &[(&str, &str)],
    annotations: &[(&str, &str)],
) {
    let owned = |pairs: &[(&str, &str)]| {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        )
        .filter(|m| !m.is_empty())
    };
    let mut secret = support::login_secret(name, "monitor", PASSWORD);
    secret.metadata.labels = owned(labels);
    secret.metadata.annotations = owned(annotations);
    support::create_secret(client, namespace, &secret).await;
}

/// A credential Secret with an id (recorded in the id ConfigMap as the
/// controller would record it), pinned to `allowed_hosts` when given;
/// waits until the façade knows it.
pub async fn credential(facade: &Facade, user: &User, name: &str, allowed_hosts: Option<&str>) -> i64 {
    let annotations: Vec<(&str, &str)> = allowed_hosts
        .map(|h| (ALLOWED_HOSTS_ANNOTATION, h))
        .into_iter()
        .collect();
    secret(
        &facade.admin,
        &facade.namespace,
        name,
        &[(CREDENTIAL_LABEL, "true")],
        &annotations,
    )
    .await;
    let id = support::record_credential(&facade.admin, &facade.namespace, name).await;
    ctl::eventually(Duration::from_secs(10), "the façade to know the credential", || async {
        let answer = facade
            .post(
                user,
                "/api/v1/instances/actions/validate-connection-params",
                json!({"db_type": "postgresql", "port": 1, "credential_id": id}),
            )
            .await;
        ((answer.status == 200).then_some(()), answer.body.to_string())
    })
    .await;
    id
}

/// A DbInstance on 127.0.0.1:`port` using Secret `secret` without TLS,
/// merged with `extra` spec fields.
pub fn instance(name: &str, port: u16, secret: &str, extra: Value) -> DbInstance {
    let mut spec = json!({
        "dbType": "postgresql",
        "host": "127.0.0.1",
        "port": port,
        "credentialsSecretRef": {"name": secret},
        "tls": {"mode": "disable"},
    });
    for (k, v) in extra.as_object().expect("extra is an object") {
        spec[k] = v.clone();
    }
    serde_json::from_value(
        json!({"apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInstance", "metadata": {"name": name}, "spec": spec}),
    )
    .expect("a valid DbInstance")
}

pub async fn create(client: &Client, namespace: &str, instance: &DbInstance) -> DbInstance {
    Api::<DbInstance>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), instance)
        .await
        .expect("create DbInstance")
}

/// The message of the instance's `type_` condition.
pub fn condition_message(instance: &DbInstance, type_: &str) -> String {
    instance
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// Fails if [`PASSWORD`] shows anywhere in `text`.
#[track_caller]
pub fn assert_no_password(text: &str) {
    assert!(!text.contains(PASSWORD), "the password leaked into: {text}");
}

/// Waits long enough that a probe which was going to be sent would have
/// reached the listener (the controller probes right after resolving).
pub async fn settle() {
    tokio::time::sleep(Duration::from_secs(2)).await;
}
