//! Many instances at once: every one gets its own id.

use std::collections::BTreeSet;
use std::time::Duration;

use dbfleet::crd::DbInstance;
use kube::Api;
use serde_json::json;

use crate::fixtures::{self, instance};
use crate::support::{self, controller as ctl};

#[tokio::test]
async fn two_hundred_instances_created_at_once_get_two_hundred_ids() {
    let (client, ns) = support::admin_in_fresh_namespace("fleet").await;
    let pg = fixtures::postgres();
    let _controllers = ctl::start(&client, &ns, |_| {});
    let api: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    // Inactive: this test is about ids, not probes.
    let creates = (0..200).map(|i| {
        let api = api.clone();
        let manifest = instance(
            &format!("db-{i:03}"),
            "postgresql",
            &pg,
            "login",
            json!({"isActive": false}),
        );
        async move { fixtures::create(&api, &manifest).await }
    });
    futures_util::future::join_all(creates).await;

    let ids = ctl::eventually(Duration::from_secs(60), "200 labelled instances", || async {
        let items = api.list(&Default::default()).await.unwrap().items;
        let ids: Vec<i64> = items.iter().filter_map(|i| dbfleet::ids::id_of(&i.metadata)).collect();
        let summary = format!("{} of {} have ids", ids.len(), items.len());
        ((ids.len() == 200).then_some(ids), summary)
    })
    .await;
    let distinct: BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), 200, "ids are distinct");
    assert_eq!(
        distinct,
        (1..=200).collect(),
        "and dense: none skipped in a quiet namespace"
    );
}
