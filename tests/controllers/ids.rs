//! Id allocation against the real API server: concurrent allocators never
//! hand out the same number.

use std::collections::BTreeSet;

use dbfleet::ids::{IdAllocator, IdKind};

use crate::support;

#[tokio::test]
async fn concurrent_allocators_never_share_an_id() {
    let (client, ns) = support::admin_in_fresh_namespace("ids").await;
    // Separate allocators, as separate façade replicas and the controller are.
    let allocations = (0..50).map(|i| {
        let allocator = IdAllocator::new(client.clone(), &ns);
        let kind = if i % 5 == 0 { IdKind::Tag } else { IdKind::Instance };
        async move { (kind, allocator.allocate(kind).await.unwrap()) }
    });
    let results = futures_util::future::join_all(allocations).await;
    let instance_ids: BTreeSet<i64> = results
        .iter()
        .filter(|(k, _)| *k == IdKind::Instance)
        .map(|(_, id)| *id)
        .collect();
    let tag_ids: BTreeSet<i64> = results
        .iter()
        .filter(|(k, _)| *k == IdKind::Tag)
        .map(|(_, id)| *id)
        .collect();
    assert_eq!(instance_ids, (1..=40).collect(), "instance ids are 1..=40, each once");
    assert_eq!(tag_ids, (1..=10).collect(), "tag ids count separately");

    // The counter carries on; nothing is reused.
    let next = IdAllocator::new(client, &ns).allocate(IdKind::Instance).await.unwrap();
    assert_eq!(next, 41);
}

/// The credential ids recorded in `namespace`'s id ConfigMap, by Secret.
async fn recorded(client: &kube::Client, namespace: &str) -> std::collections::BTreeMap<String, i64> {
    let configmap = kube::Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), namespace)
        .get_opt(dbfleet::ids::COUNTER_CONFIGMAP)
        .await
        .unwrap();
    let data = configmap.and_then(|c| c.data).unwrap_or_default();
    dbfleet::ids::credential_ids(&data)
        .map(|(name, id)| (name.to_string(), id))
        .collect()
}

async fn credential_secret(client: &kube::Client, namespace: &str, name: &str, id_label: Option<&str>) {
    let mut labels = serde_json::json!({"dbfleet.io/credential": "true"});
    if let Some(id) = id_label {
        labels["dbfleet.io/id"] = id.into();
    }
    let secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": labels},
        "stringData": {"username": "u", "password": "p"},
    }))
    .unwrap();
    kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), namespace)
        .create(&Default::default(), &secret)
        .await
        .unwrap();
}

#[tokio::test]
async fn credential_ids_are_kept_in_the_configmap_across_restarts() {
    use std::time::Duration;
    let (client, ns) = support::admin_in_fresh_namespace("credential-ids").await;
    let secrets = kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &ns);
    // Before the upgrade: one Secret an earlier dbfleet labelled with id 5.
    credential_secret(&client, &ns, "old", Some("5")).await;
    let running = support::controller::start(&client, &ns, |_| {});
    credential_secret(&client, &ns, "new", None).await;
    let ids = support::controller::eventually(Duration::from_secs(20), "both credentials to get ids", || async {
        let ids = recorded(&client, &ns).await;
        ((ids.len() == 2).then(|| ids.clone()), format!("{ids:?}"))
    })
    .await;
    assert_eq!(ids["old"], 5, "the label's id is adopted");
    assert_eq!(ids["new"], 6, "a new one comes after it");
    let untouched = secrets.get("new").await.unwrap();
    assert_eq!(dbfleet::ids::id_of(&untouched.metadata), None, "no Secret is written");

    // A restarted controller keeps them; a credential deleted around the
    // restart (seen going, or found gone at start) gives its id up for good.
    drop(running);
    secrets.delete("old", &Default::default()).await.unwrap();
    let _running = support::controller::start(&client, &ns, |_| {});
    credential_secret(&client, &ns, "newer", None).await;
    let ids = support::controller::eventually(Duration::from_secs(20), "the deleted one forgotten", || async {
        let ids = recorded(&client, &ns).await;
        let settled = !ids.contains_key("old") && ids.contains_key("newer");
        (settled.then(|| ids.clone()), format!("{ids:?}"))
    })
    .await;
    assert_eq!((ids["new"], ids["newer"]), (6, 7), "{ids:?}");
}
