//! DbInventories go when their instance goes. The owner reference lets a
//! cluster's garbage collector do it, but dbfleet does not rely on one:
//! the instance watch deletes an inventory (and the parts a big server's
//! inventory is spread over) when it sees its instance deleted, and a
//! sweep when the controllers start removes inventories and parts whose
//! instance went while no controller was watching.

use std::collections::HashSet;

use kube::api::{DeleteParams, ListParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};
use tracing::{info, warn};

use crate::crd::keys::INVENTORY_OWNER_LABEL;
use crate::crd::{DbInstance, DbInventory};
use crate::watches::scoped;

/// Deletes one inventory and its parts; a missing one is fine. The parts
/// are found by the owner label carrying the uid of the instance the
/// inventory belonged to (its owner reference says which). An object of
/// that name that is itself someone's part is not this instance's.
pub async fn delete(api: &Api<DbInventory>, name: &str) {
    let meta = match api.get_metadata_opt(name).await {
        Ok(Some(meta)) => meta.metadata,
        Ok(None) => return,
        Err(error) => {
            warn!(inventory = %name, %error, "could not read the DbInventory of a deleted instance");
            return;
        }
    };
    if meta
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(INVENTORY_OWNER_LABEL))
    {
        return;
    }
    for owner in meta.owner_references.iter().flatten() {
        delete_parts_of(api, &owner.uid).await;
    }
    delete_by_uid(api, name, meta.uid).await;
    info!(inventory = %name, "instance deleted; deleted its DbInventory");
}

/// Deletes every part labelled as belonging to instance `uid`.
async fn delete_parts_of(api: &Api<DbInventory>, uid: &str) {
    let selector = format!("{INVENTORY_OWNER_LABEL}={uid}");
    match api.list_metadata(&ListParams::default().labels(&selector)).await {
        Ok(parts) => {
            for part in parts.items {
                delete_by_uid(
                    api,
                    part.metadata.name.as_deref().unwrap_or_default(),
                    part.metadata.uid,
                )
                .await;
            }
        }
        Err(error) => warn!(instance_uid = %uid, %error, "could not list the DbInventory parts of a deleted instance"),
    }
}

/// Deletes `name` if it is still the object with `uid`.
async fn delete_by_uid(api: &Api<DbInventory>, name: &str, uid: Option<String>) {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid,
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(error) => warn!(inventory = %name, %error, "could not delete the DbInventory of a deleted instance"),
    }
}

/// What the sweep lists of one DbInventory.
#[derive(Clone, Debug, PartialEq)]
pub struct Listed<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: Option<&'a str>,
    /// A part: the uid and name of the instance it belongs to.
    pub part_of: Option<(&'a str, &'a str)>,
}

/// The parts whose instance (by uid) is not among `instance_uids`.
pub fn orphaned_parts<'a>(listed: &[Listed<'a>], instance_uids: &HashSet<&str>) -> Vec<Listed<'a>> {
    listed
        .iter()
        .filter(|l| l.part_of.is_some_and(|(uid, _)| !instance_uids.contains(uid)))
        .cloned()
        .collect()
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

/// Deletes every orphaned inventory and part in scope. Reads only
/// metadata.
pub async fn sweep(client: &Client, namespace: Option<&str>, instances: &Store<DbInstance>) {
    let api = scoped::<DbInventory>(client.clone(), namespace);
    let listed = match api.list_metadata(&ListParams::default()).await {
        Ok(listed) => listed,
        Err(error) => {
            warn!(%error, "could not list DbInventories to remove orphans");
            return;
        }
    };
    let all: Vec<Listed> = listed
        .items
        .iter()
        .map(|m| {
            let labels = m.metadata.labels.as_ref();
            let owner = m.metadata.owner_references.iter().flatten().next();
            Listed {
                namespace: m.metadata.namespace.as_deref().unwrap_or_default(),
                name: m.metadata.name.as_deref().unwrap_or_default(),
                uid: m.metadata.uid.as_deref(),
                part_of: labels
                    .and_then(|l| l.get(INVENTORY_OWNER_LABEL))
                    .map(|uid| (uid.as_str(), owner.map_or("", |o| o.name.as_str()))),
            }
        })
        .collect();
    let state = instances.state();
    let uids: HashSet<&str> = state.iter().filter_map(|i| i.metadata.uid.as_deref()).collect();
    for part in orphaned_parts(&all, &uids) {
        let (owner_uid, owner) = part.part_of.unwrap_or_default();
        // The API server has the last word on whether the owner is gone.
        let instances: Api<DbInstance> = Api::namespaced(client.clone(), part.namespace);
        if let Ok(found) = instances.get_metadata_opt(owner).await
            && found.is_none_or(|i| i.metadata.uid.as_deref() != Some(owner_uid))
        {
            let api = Api::namespaced(client.clone(), part.namespace);
            delete_by_uid(&api, part.name, part.uid.map(str::to_owned)).await;
        }
    }
    let names = all
        .iter()
        .filter(|l| l.part_of.is_none())
        .map(|l| (l.namespace, l.name));
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

    #[test]
    fn only_parts_whose_instance_is_gone_are_orphans() {
        let part = |name, uid| Listed {
            namespace: "a",
            name,
            uid: Some("part-uid"),
            part_of: Some((uid, "pg")),
        };
        let own = Listed {
            namespace: "a",
            name: "pg-accounts-1",
            uid: None,
            part_of: None,
        };
        let listed = [part("pg-accounts-1", "live"), part("pg-accounts-2", "gone"), own];
        let live = HashSet::from(["live"]);
        let found: Vec<&str> = orphaned_parts(&listed, &live).iter().map(|l| l.name).collect();
        assert_eq!(found, ["pg-accounts-2"], "an instance's own inventory is never a part");
    }
}
