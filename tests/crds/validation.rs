//! Bad manifests are refused by the API server itself, with a message that
//! names the field, and leave nothing behind.

use dbfleet::crd::{DbInstance, DbSyncSession, DbTag};
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use serde_json::{Value, json};

use crate::support;

fn instance(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInstance", "metadata": {"name": name}, "spec": spec})
}

fn valid_instance_spec() -> Value {
    json!({"dbType": "postgresql", "host": "db1.example.com", "port": 5432})
}

fn with(mut spec: Value, field: &str, value: Value) -> Value {
    spec[field] = value;
    spec
}

fn without(mut spec: Value, field: &str) -> Value {
    spec.as_object_mut().unwrap().remove(field);
    spec
}

/// Creates `manifest`; asserts the API server refuses it as invalid and that
/// nothing was stored. Returns the server's message.
async fn refused<K: Resource<DynamicType = ()>>(client: &Client, ns: &str, manifest: Value) -> String {
    let resource = ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    let object: DynamicObject = serde_json::from_value(manifest.clone()).unwrap();
    let name = object.metadata.name.clone().unwrap();
    let message = match api.create(&PostParams::default(), &object).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{manifest}: expected 422 Invalid, got {status:?}");
            status.message
        }
        other => panic!("{manifest} was accepted: {other:?}"),
    };
    assert!(
        api.get_opt(&name).await.unwrap().is_none(),
        "{name} was stored despite the error"
    );
    message
}

fn assert_mentions(message: &str, fragments: &[&str]) {
    for fragment in fragments {
        assert!(
            message.contains(fragment),
            "message {message:?} does not mention {fragment:?}"
        );
    }
}

#[tokio::test]
async fn bad_instances_are_refused_naming_the_field() {
    let (client, ns) = support::admin_in_fresh_namespace("bad-instances").await;
    let spec = valid_instance_spec;
    let cases: Vec<(&str, Value, &[&str])> = vec![
        (
            "port 0",
            with(spec(), "port", json!(0)),
            &["spec.port", "greater than or equal to 1"],
        ),
        (
            "port 70000",
            with(spec(), "port", json!(70000)),
            &["spec.port", "less than or equal to 65535"],
        ),
        (
            "port as a string",
            with(spec(), "port", json!("5432")),
            &["spec.port", "must be of type integer"],
        ),
        (
            "unknown dbType",
            with(spec(), "dbType", json!("oracle")),
            &["spec.dbType", "Unsupported value: \"oracle\""],
        ),
        (
            "missing host",
            without(spec(), "host"),
            &["spec.host", "Required value"],
        ),
        (
            "host with a space",
            with(spec(), "host", json!("db 1.example.com")),
            &["spec.host", "should match"],
        ),
        (
            "missing dbType",
            without(spec(), "dbType"),
            &["spec.dbType", "Required value"],
        ),
        (
            "over-long description",
            with(spec(), "description", json!("x".repeat(1025))),
            &["spec.description", "Too long"],
        ),
        (
            "duplicate tags",
            with(spec(), "tags", json!(["prod", "payments", "prod"])),
            &["spec.tags[2]", "Duplicate value"],
        ),
        (
            "tag that is not a DNS-1123 label",
            with(spec(), "tags", json!(["Prod_DB"])),
            &["spec.tags[0]", "should match"],
        ),
        (
            "unknown TLS mode",
            with(spec(), "tls", json!({"mode": "verify-ca"})),
            &["spec.tls.mode", "Unsupported value: \"verify-ca\""],
        ),
        (
            "CA without verify-full",
            with(spec(), "tls", json!({"mode": "require", "caSecretRef": {"name": "ca"}})),
            &["spec.tls.caSecretRef", "caSecretRef is only used with mode verify-full"],
        ),
        (
            "interval below one second",
            with(spec(), "intervals", json!({"connection": "500ms"})),
            &["spec.intervals.connection", "must be at least 1s"],
        ),
        (
            "interval that is not a duration",
            with(spec(), "intervals", json!({"capacity": "hourly"})),
            &["spec.intervals.capacity", "should match"],
        ),
        (
            "credentials without a Secret name",
            with(spec(), "credentialsSecretRef", json!({"usernameKey": "user"})),
            &["spec.credentialsSecretRef.name", "Required value"],
        ),
    ];
    for (i, (case, spec, fragments)) in cases.into_iter().enumerate() {
        let message = refused::<DbInstance>(&client, &ns, instance(&format!("bad-{i}"), spec)).await;
        eprintln!("{case}: {message}");
        assert_mentions(&message, fragments);
    }
}

#[tokio::test]
async fn bad_tags_are_refused_naming_the_field() {
    let (client, ns) = support::admin_in_fresh_namespace("bad-tags").await;
    let tag = |name: &str, spec: Value| json!({"apiVersion": "dbfleet.io/v1alpha1", "kind": "DbTag", "metadata": {"name": name}, "spec": spec});
    let cases: Vec<(&str, Value, &[&str])> = vec![
        (
            "a name that is a subdomain but not a label",
            tag("web.prod", json!({"displayName": "Web", "category": "env"})),
            &["metadata.name", "DNS-1123 label"],
        ),
        (
            "missing displayName",
            tag("t1", json!({"category": "env"})),
            &["spec.displayName", "Required value"],
        ),
        (
            "over-long displayName",
            tag("t2", json!({"displayName": "d".repeat(65), "category": "env"})),
            &["spec.displayName", "Too long"],
        ),
        (
            "empty category",
            tag("t3", json!({"displayName": "T", "category": ""})),
            &["spec.category"],
        ),
        (
            "a colour that is neither a name nor #rrggbb",
            tag("t4", json!({"displayName": "T", "category": "env", "color": "#12345"})),
            &["spec.color", "should match"],
        ),
    ];
    for (case, manifest, fragments) in cases {
        let message = refused::<DbTag>(&client, &ns, manifest).await;
        eprintln!("{case}: {message}");
        assert_mentions(&message, fragments);
    }
}

#[tokio::test]
async fn sync_sessions_validate_and_cannot_be_changed() {
    let (client, ns) = support::admin_in_fresh_namespace("bad-sessions").await;
    let session = |name: &str, operation: &str| json!({"apiVersion": "dbfleet.io/v1alpha1", "kind": "DbSyncSession", "metadata": {"name": name}, "spec": {"operation": operation}});
    let message = refused::<DbSyncSession>(&client, &ns, session("s1", "backup")).await;
    assert_mentions(&message, &["spec.operation", "Unsupported value: \"backup\""]);

    let sessions: Api<DbSyncSession> = Api::namespaced(client, &ns);
    let created: DbSyncSession = serde_json::from_value(session("s2", "accounts")).unwrap();
    sessions.create(&PostParams::default(), &created).await.unwrap();
    let change = json!({"spec": {"operation": "capacity"}});
    let error = sessions
        .patch("s2", &PatchParams::default(), &Patch::Merge(&change))
        .await
        .unwrap_err();
    assert_mentions(&error.to_string(), &["spec", "cannot change"]);
    assert_eq!(
        sessions.get("s2").await.unwrap().spec.operation,
        dbfleet::crd::sync_session::SyncOperation::Accounts
    );
}
