//! DbHistories go when their instance goes, like DbInventories
//! (`inventory_gc`): the owner reference serves clusters with a garbage
//! collector; the instance watch deletes the history when it sees its
//! instance deleted, and a sweep when the controllers start removes the
//! histories whose instance went while no controller was watching.

use kube::api::{DeleteParams, ListParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};
use tracing::{info, warn};

use super::inventory_gc::orphans;
use crate::crd::{DbHistory, DbInstance};
use crate::watches::scoped;

/// Deletes the history of the instance `instance_uid` named `name`; one
/// that belongs to another instance of that name (created since) stays.
pub async fn delete(api: &Api<DbHistory>, name: &str, instance_uid: Option<&str>) {
    let meta = match api.get_metadata_opt(name).await {
        Ok(Some(meta)) => meta.metadata,
        Ok(None) => return,
        Err(error) => {
            warn!(history = %name, %error, "could not read the DbHistory of a deleted instance");
            return;
        }
    };
    let owners: Vec<&str> = meta.owner_references.iter().flatten().map(|o| o.uid.as_str()).collect();
    if let Some(uid) = instance_uid
        && !owners.is_empty()
        && !owners.contains(&uid)
    {
        return;
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: meta.uid,
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => info!(history = %name, "instance deleted; deleted its DbHistory"),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(error) => warn!(history = %name, %error, "could not delete the DbHistory of a deleted instance"),
    }
}

/// Deletes every history in scope whose instance is gone. Reads only
/// metadata.
pub async fn sweep(client: &Client, namespace: Option<&str>, instances: &Store<DbInstance>) {
    let api = scoped::<DbHistory>(client.clone(), namespace);
    let listed = match api.list_metadata(&ListParams::default()).await {
        Ok(listed) => listed,
        Err(error) => {
            warn!(%error, "could not list DbHistories to remove orphans");
            return;
        }
    };
    let names = listed.items.iter().map(|m| {
        (
            m.metadata.namespace.as_deref().unwrap_or_default(),
            m.metadata.name.as_deref().unwrap_or_default(),
        )
    });
    let exists = |ns: &str, name: &str| instances.get(&ObjectRef::new(name).within(ns)).is_some();
    for (ns, name) in orphans(names, exists) {
        // The cache may not have seen an instance created a moment ago;
        // the API server has the last word.
        let instances: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
        if let Ok(None) = instances.get_metadata_opt(&name).await {
            delete(&Api::namespaced(client.clone(), &ns), &name, None).await;
        }
    }
}
