//! The DbInventory beside each instance: written with the details, and gone
//! with the instance, without a garbage collector (the test control plane
//! has none).

use std::time::Duration;

use dbfleet::crd::{DbInstance, DbInventory};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

use crate::fixtures::{self, create, instance};
use crate::support::{self, controller as ctl};

async fn gone(api: &Api<DbInventory>, name: &str) {
    ctl::eventually(
        Duration::from_secs(30),
        &format!("DbInventory {name} deleted"),
        || async {
            match api.get_opt(name).await {
                Ok(None) => (Some(()), String::new()),
                Ok(Some(_)) => (None, "still there".into()),
                Err(e) => (None, e.to_string()),
            }
        },
    )
    .await
}

#[tokio::test]
async fn an_inventory_goes_with_its_instance_and_orphans_are_swept() {
    let (client, ns) = support::admin_in_fresh_namespace("inventory").await;
    let pg = fixtures::postgres();
    fixtures::create_login_secret(&client, &ns, "login", &pg.user, &pg.password).await;
    let inventories: Api<DbInventory> = Api::namespaced(client.clone(), &ns);
    // Left behind by an instance deleted while no controller ran.
    let orphan: DbInventory = serde_json::from_value(json!({
        "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInventory",
        "metadata": {"name": "deleted-long-ago"}, "spec": {"dbType": "postgresql"},
    }))
    .unwrap();
    inventories.create(&PostParams::default(), &orphan).await.unwrap();

    let _controllers = ctl::start(&client, &ns, |_| {});
    let api: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    create(&api, &instance("pg", "postgresql", &pg, "login", json!({}))).await;
    let details = fixtures::inventory(&client, &ns, "pg").await;
    assert!(details.spec.capacity.is_some() || details.spec.accounts.is_some());
    let owner = &details.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("DbInstance", "pg"));
    gone(&inventories, "deleted-long-ago").await;

    api.delete("pg", &DeleteParams::default()).await.unwrap();
    gone(&inventories, "pg").await;
}
