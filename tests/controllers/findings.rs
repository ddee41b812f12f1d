//! Hygiene findings through the controller: an account sync writes the
//! counts into the DbInstance status, the list into the DbInventory, and a
//! fixed account drops out at the next sync. Only this test's own account
//! is looked at: other tests share the server.

use dbfleet::crd::DbInstance;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::fixtures::{self, create, instance, unique};
use crate::support::{self, controller as ctl};

#[tokio::test]
async fn an_empty_password_is_found_recorded_and_cleared() {
    let (client, ns) = support::admin_in_fresh_namespace("findings").await;
    let my = fixtures::mysql();
    fixtures::create_login_secret(&client, &ns, "login", &my.user, &my.password).await;
    let user = unique("nopw");
    fixtures::mysql_exec(&format!("CREATE USER '{user}'@'localhost' IDENTIFIED BY ''")).await;
    let _controllers = ctl::start(&client, &ns, |_| {});
    let api: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    create(
        &api,
        &instance("db", "mysql", &my, "login", json!({"intervals": {"accounts": "6h"}})),
    )
    .await;
    let synced = ctl::instance_where(&api, "db", "findings counted", |i| {
        i.status.as_ref().is_some_and(|s| s.findings.is_some())
    })
    .await;
    let counts = synced.status.unwrap().findings.unwrap();
    assert!(counts.high >= 1, "{counts:?}");
    assert!(
        counts
            .by_code
            .iter()
            .any(|c| c.code == "empty_password" && c.count >= 1),
        "{counts:?}"
    );
    let ours = |inventory: &dbfleet::crd::DbInventory| {
        inventory
            .spec
            .findings
            .as_ref()
            .expect("findings in the DbInventory")
            .items
            .iter()
            .filter(|f| f.account.as_deref() == Some(user.as_str()))
            .map(|f| (f.code.clone(), f.severity.clone(), f.host.clone()))
            .collect::<Vec<_>>()
    };
    let details = fixtures::inventory(&client, &ns, "db").await;
    let empty = (
        "empty_password".to_string(),
        "high".to_string(),
        Some("localhost".to_string()),
    );
    assert!(ours(&details).contains(&empty), "{:?}", ours(&details));

    fixtures::mysql_exec(&format!(
        "ALTER USER '{user}'@'localhost' IDENTIFIED BY 'Now-a-password-1'"
    ))
    .await;
    let request =
        json!({"metadata": {"annotations": {"dbfleet.io/sync-accounts-requested-at": "2026-12-06T09:00:00Z"}}});
    api.patch("db", &PatchParams::default(), &Patch::Merge(&request))
        .await
        .unwrap();
    ctl::instance_where(&api, "db", "the request answered", |i| {
        i.status
            .as_ref()
            .is_some_and(|s| s.handled_requests.accounts.as_deref() == Some("2026-12-06T09:00:00Z"))
    })
    .await;
    let details = fixtures::inventory(&client, &ns, "db").await;
    let left = ours(&details);
    assert!(!left.contains(&empty), "a password set clears the finding: {left:?}");
    // Its other finding stays: mysql_native_password on a server with
    // ed25519 (scripts/test-env.sh loads it).
    assert!(left.iter().any(|(code, ..)| code == "native_password"), "{left:?}");
    let json = serde_json::to_string(&details.spec.findings).unwrap();
    assert!(!json.contains("Now-a-password-1"));
    fixtures::mysql_exec(&format!("DROP USER '{user}'@'localhost'")).await;
}
