//! The history endpoints over a real PostgreSQL (issue 21): an account
//! created between two syncs shows in the instance's history and in the
//! fleet's changes, filters work, bad filters are 400s naming the
//! parameter, and the inventory's permission is needed.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::Facade;
use crate::instances::credential;
use crate::support;
use crate::support::databases::{postgres, postgres_exec, unique};

#[tokio::test]
async fn an_account_created_between_two_syncs_is_in_both_histories() {
    let facade = Facade::start("api-history").await;
    let _controllers = support::controller::start(&facade.admin, &facade.namespace, |_| {});
    let editor = facade.editor().await;
    let pg = postgres();
    let login = credential(&facade, &editor, "pg-login", &pg.user, &pg.password).await;
    let body = json!({"host": pg.host, "port": pg.port, "credential_id": login});
    let id = facade.instance(&editor, "pg", body).await;
    let sync = format!("/api/v1/instances/{id}/actions/sync-accounts");
    // The baseline.
    facade.post(&editor, &sync, json!({})).await.expect(200, "OK");
    let role = unique("apihist");
    postgres_exec(&format!("CREATE ROLE {role} LOGIN")).await;
    facade.post(&editor, &sync, json!({})).await.expect(200, "OK");

    let history = facade
        .get(
            &editor,
            &format!("/api/v1/instances/{id}/accounts/history?account={role}"),
        )
        .await;
    history.expect(200, "OK");
    let items = history.data()["items"].as_array().unwrap();
    let kinds: Vec<&str> = items.iter().map(|i| i["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["account_added"], "{:#}", history.body);
    assert_eq!(items[0]["account"], role.as_str());
    assert!(items[0]["host"].is_null());
    let filtered = facade
        .get(
            &editor,
            &format!("/api/v1/instances/{id}/accounts/history?account={role}&kind=locked"),
        )
        .await;
    assert_eq!(filtered.data()["total"], 0);

    let changes: Value = support::controller::eventually(Duration::from_secs(30), "the fleet's changes", || async {
        let answer = facade
            .get(
                &editor,
                &format!("/api/v1/accounts/changes?since=2020-01-01T00:00:00Z&account={role}"),
            )
            .await;
        answer.expect(200, "OK");
        let found = (answer.data()["total"] == 1).then(|| answer.data().clone());
        (found, answer.body.to_string())
    })
    .await;
    assert_eq!(changes["items"][0]["instance"]["id"], id);
    assert_eq!(changes["items"][0]["change"]["kind"], "account_added");
    let later = facade
        .get(
            &editor,
            &format!("/api/v1/accounts/changes?since=2999-01-01T00:00:00Z&account={role}"),
        )
        .await;
    assert_eq!(later.data()["total"], 0);

    let capacity = facade
        .get(&editor, &format!("/api/v1/instances/{id}/capacity/history"))
        .await;
    capacity.expect(200, "OK");
    assert_eq!(capacity.data()["fit"]["reason"], "TooFewSamples", "{:#}", capacity.body);
    assert!(capacity.data()["fit"]["bytes_per_day"].is_null());

    for (path, field) in [
        (format!("/api/v1/instances/{id}/accounts/history?kind=granted"), "kind"),
        ("/api/v1/accounts/changes?since=yesterday".to_string(), "since"),
    ] {
        let answer = facade.get(&editor, &path).await;
        answer.expect(400, "VALIDATION_ERROR");
        assert_eq!(answer.field(), field);
    }
    // Listing instances is not enough: the history says as much as the
    // inventory.
    let viewer = facade.user("viewer", &["dbinstances"], &["list"]).await;
    for path in [
        format!("/api/v1/instances/{id}/accounts/history"),
        format!("/api/v1/instances/{id}/capacity/history"),
        "/api/v1/accounts/changes".to_string(),
    ] {
        facade.get(&viewer, &path).await.expect(403, "PERMISSION_DENIED");
    }
    postgres_exec(&format!("DROP ROLE {role}")).await;
}
