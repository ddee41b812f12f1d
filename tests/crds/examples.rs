//! Every manifest in examples/ is accepted by the API server as written.

use dbfleet::crd::{DbInstance, DbSyncSession, DbTag};
use kube::Api;

use crate::support;

#[tokio::test]
async fn every_example_applies() {
    let (client, ns) = support::admin_in_fresh_namespace("examples").await;
    let mut files: Vec<_> = std::fs::read_dir(support::repo_root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "examples/ should hold the documented manifests");
    for file in &files {
        let yaml = std::fs::read_to_string(file).unwrap();
        let applied = support::apply_yaml(&client, &ns, &yaml)
            .await
            .unwrap_or_else(|e| panic!("{} was rejected: {e}", file.display()));
        assert!(!applied.is_empty(), "{} holds no manifest", file.display());
    }

    // What was applied reads back through the typed API, defaults filled in.
    let instances: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    let orders = instances.get("orders-pg").await.unwrap();
    assert!(orders.spec.is_active);
    assert_eq!(orders.spec.intervals.connection, "30s");
    let catalog = instances.get("catalog-mariadb").await.unwrap();
    assert_eq!(catalog.spec.intervals.accounts, "6h", "server-side default");
    let credentials = catalog.spec.credentials_secret_ref.unwrap();
    assert_eq!(
        (credentials.username_key.as_str(), credentials.password_key.as_str()),
        ("username", "password")
    );
    assert_eq!(instances.list(&Default::default()).await.unwrap().items.len(), 4);

    let tags: Api<DbTag> = Api::namespaced(client.clone(), &ns);
    let mut categories: Vec<_> = tags
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|t| t.spec.category)
        .collect();
    categories.sort();
    categories.dedup();
    assert_eq!(categories, ["environment", "team"]);

    let sessions: Api<DbSyncSession> = Api::namespaced(client, &ns);
    assert_eq!(sessions.list(&Default::default()).await.unwrap().items.len(), 1);
}
