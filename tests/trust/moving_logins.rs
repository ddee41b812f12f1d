//! Who may choose where a stored login goes, through REST (issue 18): a
//! PUT that changes the host, port, credential or database of an instance
//! that uses a stored credential needs `create` on dbinstances, as creating
//! the instance did; `update` alone gets a 403 naming the fields, and
//! nothing changes. (`tests/chart/admission.rs` tries the same through
//! kubectl and the chart's admission policy.)

use dbfleet::crd::DbInstance;
use kube::Api;
use serde_json::{Value, json};

use crate::common::{self, assert_no_password};
use crate::harness::{Answer, Facade};

/// The PUT body of an instance `name` on `host:port`, with the credential
/// when given.
fn body(name: &str, host: &str, port: u16, credential_id: Option<i64>) -> Value {
    json!({"name": name, "db_type": "postgresql", "host": host, "port": port,
        "credential_id": credential_id, "database_name": "app", "description": "before"})
}

fn with(mut body: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

#[track_caller]
fn denied_naming(answer: &Answer, fields: &[&str]) {
    answer.expect(403, "PERMISSION_DENIED");
    let message = answer.body["message"].as_str().unwrap();
    assert!(
        message.contains(&fields.join(", ")) && message.contains("create on dbinstances"),
        "{message}"
    );
    assert_eq!(answer.data()["fields"], json!(fields), "{:#}", answer.body);
    assert_no_password(&answer.body.to_string());
}

#[tokio::test]
async fn only_a_caller_who_may_create_instances_moves_a_stored_login() {
    let facade = Facade::start("trust-move").await;
    let editor = facade.editor().await;
    let updater = facade
        .user("updater", &["dbinstances"], &["get", "list", "update"])
        .await;
    let viewer = facade.user("viewer", &["dbinstances"], &["get", "list"]).await;
    let login = common::credential(&facade, &editor, "login", None).await;
    let other_login = common::credential(&facade, &editor, "other-login", None).await;
    // No controller runs: nothing here is ever dialled.
    let original = body("orders", "orders.db.example.com", 5432, Some(login));
    let id = facade.instance(&editor, "orders", original.clone()).await;
    let path = format!("/api/v1/instances/{id}");
    let before = facade.snapshot().await;

    // Update-only: every move of the stored login is a 403 naming what it
    // would change, and nothing is written.
    for (changes, fields) in [
        (json!({"host": "attacker.example.org"}), vec!["host"]),
        (json!({"port": 6543}), vec!["port"]),
        (json!({"credential_id": other_login}), vec!["credential_id"]),
        (json!({"database_name": "payroll"}), vec!["database_name"]),
        (json!({"credential_id": null}), vec!["credential_id"]),
        (
            json!({"host": "attacker.example.org", "port": 1, "description": "moved"}),
            vec!["host", "port"],
        ),
    ] {
        let answer = facade.put(&updater, &path, with(original.clone(), changes)).await;
        denied_naming(&answer, &fields);
    }
    assert_eq!(facade.snapshot().await, before, "a refused update changed something");

    // View-only: no update at all.
    let answer = facade
        .put(
            &viewer,
            &path,
            with(original.clone(), json!({"host": "attacker.example.org"})),
        )
        .await;
    answer.expect(403, "PERMISSION_DENIED");
    let answer = facade
        .put(&viewer, &path, with(original.clone(), json!({"description": "x"})))
        .await;
    answer.expect(403, "PERMISSION_DENIED");
    assert_eq!(facade.snapshot().await, before);

    // Update-only, harmless edits: allowed.
    let harmless = with(original.clone(), json!({"description": "after", "is_active": false}));
    let answer = facade.put(&updater, &path, harmless.clone()).await;
    answer.expect(200, "OK");
    assert_eq!(answer.data()["description"], "after", "{:#}", answer.body);

    // Create-capable: the same move goes through.
    let moved = with(
        harmless,
        json!({"host": "orders-2.db.example.com", "port": 5433, "credential_id": other_login}),
    );
    let answer = facade.put(&editor, &path, moved).await;
    answer.expect(200, "OK");
    let stored = Api::<DbInstance>::namespaced(facade.admin.clone(), &facade.namespace)
        .get("orders")
        .await
        .unwrap();
    assert_eq!(
        (
            stored.spec.host.as_str(),
            stored.spec.port,
            stored.spec.credentials_secret_ref.map(|r| r.name)
        ),
        ("orders-2.db.example.com", 5433, Some("other-login".to_string()))
    );
}

#[tokio::test]
async fn without_a_stored_credential_moving_is_an_update() {
    let facade = Facade::start("trust-move-plain").await;
    let editor = facade.editor().await;
    let updater = facade
        .user("updater", &["dbinstances"], &["get", "list", "update"])
        .await;
    let login = common::credential(&facade, &editor, "login", None).await;
    let original = body("plain", "plain.db.example.com", 5432, None);
    let id = facade.instance(&editor, "plain", original.clone()).await;
    let path = format!("/api/v1/instances/{id}");

    // No login goes anywhere: update is enough to move it.
    let moved = with(
        original.clone(),
        json!({"host": "plain-2.db.example.com", "port": 5433}),
    );
    facade.put(&updater, &path, moved.clone()).await.expect(200, "OK");

    // Giving it a stored credential is choosing where that login goes.
    let before = facade.snapshot().await;
    let answer = facade
        .put(&updater, &path, with(moved.clone(), json!({"credential_id": login})))
        .await;
    denied_naming(&answer, &["credential_id"]);
    assert_eq!(facade.snapshot().await, before);
    facade
        .put(&editor, &path, with(moved, json!({"credential_id": login})))
        .await
        .expect(200, "OK");
}
