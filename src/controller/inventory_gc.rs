//! DbInventories go when their instance goes. The owner reference lets a
//! cluster's garbage collector do it, but dbfleet does not rely on one:
//! the instance watch deletes an inventory when it sees its instance
//! deleted, and a sweep when the controllers start removes inventories
//! whose instance went while no controller was watching.

use kube::api::{DeleteParams, ListParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};
use tracing::{info, warn};

use super::scoped;
use crate::crd::{DbInstance, DbInventory};

/// Deletes one inventory; a missing one is fine.
pub async fn delete(api: &Api<DbInventory>, name: &str) {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => info!(inventory = %name, "instance deleted; deleted its DbInventory"),
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(error) => warn!(inventory = %name, %error, "could not delete the DbInventory of a deleted instance"),
    }
}

/// The inventories (namespace, name) with no instance of the same name.
pub fn orphans<'a>(
    inventories: impl IntoIterator<Item = (&'a str, &'a str)>,
    instance_exists: impl Fn(&str, &str) -> bool,
) -> Vec<(String, String)> {
    inventories
        .into_iter()
        .filter(|(namespace, name)| !instance_exists(namespace, name))
        .map(|(namespace, name)| (namespace.to_string(), name.to_string()))
        .collect()
}

/// Deletes every orphaned inventory in scope. Reads only metadata.
pub async fn sweep(client: &Client, namespace: Option<&str>, instances: &Store<DbInstance>) {
    let api = scoped::<DbInventory>(client.clone(), namespace);
    let listed = match api.list_metadata(&ListParams::default()).await {
        Ok(listed) => listed,
        Err(error) => {
            warn!(%error, "could not list DbInventories to remove orphans");
            return;
        }
    };
    let names: Vec<(&str, &str)> = listed
        .items
        .iter()
        .map(|m| {
            (
                m.metadata.namespace.as_deref().unwrap_or_default(),
                m.metadata.name.as_deref().unwrap_or_default(),
            )
        })
        .collect();
    let exists = |ns: &str, name: &str| instances.get(&ObjectRef::new(name).within(ns)).is_some();
    for (ns, name) in orphans(names, exists) {
        // The cache may not have seen an instance created a moment ago;
        // the API server has the last word.
        let instances: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
        if let Ok(None) = instances.get_metadata_opt(&name).await {
            delete(&Api::namespaced(client.clone(), &ns), &name).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_inventories_without_an_instance_are_orphans() {
        let inventories = [("a", "pg"), ("a", "gone"), ("b", "pg")];
        let found = orphans(inventories, |ns, name| name == "pg" && ns == "a");
        assert_eq!(
            found,
            vec![
                ("a".to_string(), "gone".to_string()),
                ("b".to_string(), "pg".to_string())
            ]
        );
    }
}
