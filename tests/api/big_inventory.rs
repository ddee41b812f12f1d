//! A server with more accounts and databases than fit one DbInventory: the
//! controller spreads them over parts, and every inventory query still
//! finds every one; parts no longer needed, and all of them with their
//! instance, are deleted.
//!
//! The per-object budgets are lowered through the controller's config
//! (8 KiB of accounts, 256 bytes of databases) so a few hundred roles make
//! many parts: the same code paths as 20,000 accounts at the default
//! budgets, in seconds rather than minutes on a shared server (the
//! benchmark covers the real size).

use std::collections::BTreeSet;
use std::time::Duration;

use dbfleet::crd::keys::INVENTORY_OWNER_LABEL;
use dbfleet::crd::{DbInstance, DbInventory};
use kube::api::{DeleteParams, ListParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use crate::actions::fleet;
use crate::harness::{Facade, User};
use crate::support;
use crate::support::controller::eventually;
use crate::support::databases::{postgres_exec, unique};

const ROLES: usize = 300;
const DATABASES: usize = 6;

/// Every item of a paginated list answer whose `total` satisfies `ready`.
async fn all_pages(facade: &Facade, user: &User, path: &str, ready: impl Fn(u64) -> bool) -> Vec<Value> {
    eventually(Duration::from_secs(90), path, || async {
        let mut items = Vec::new();
        for page in 1.. {
            let answer = facade.get(user, &format!("{path}&limit=100&page={page}")).await;
            if answer.status != 200 || !ready(answer.data()["total"].as_u64().unwrap_or_default()) {
                return (None, format!("{} {:#}", answer.status, answer.body));
            }
            let got = answer.data()["items"].as_array().cloned().unwrap_or_default();
            let done = got.len() < 100;
            items.extend(got);
            if done {
                break;
            }
        }
        (Some(items), String::new())
    })
    .await
}

fn names(items: &[Value], at: &[&str]) -> BTreeSet<String> {
    items
        .iter()
        .map(|item| at.iter().fold(item, |v, key| &v[*key]).as_str().unwrap().to_string())
        .collect()
}

async fn parts_of(api: &Api<DbInventory>, uid: &str) -> Vec<DbInventory> {
    let selector = format!("{INVENTORY_OWNER_LABEL}={uid}");
    api.list(&ListParams::default().labels(&selector)).await.unwrap().items
}

#[tokio::test]
async fn a_server_bigger_than_one_object_is_inventoried_whole() {
    let facade = Facade::start("api-big-inventory").await;
    let _controllers = support::controller::start(&facade.admin, &facade.namespace, |config| {
        config.probes.inventory.accounts_budget = 8 * 1024;
        config.probes.inventory.capacity_budget = 256;
    });
    let editor = facade.editor().await;
    let prefix = unique("big");
    let roles: Vec<String> = (0..ROLES).map(|i| format!("{prefix}_{i:03}")).collect();
    let databases: Vec<String> = (0..DATABASES).map(|i| format!("{prefix}_db{i}")).collect();
    let create: String = roles.iter().map(|r| format!("CREATE ROLE {r} NOLOGIN;")).collect();
    postgres_exec(&create).await;
    for db in &databases {
        postgres_exec(&format!("CREATE DATABASE {db} OWNER {}", roles[ROLES - 1])).await;
    }
    let (pg, _, _, _) = fleet(&facade, &editor).await;

    // Every role, through the instance's accounts and the fleet search.
    let expected: BTreeSet<String> = roles.iter().cloned().collect();
    let path = format!("/api/v1/instances/{pg}/accounts?search={prefix}");
    let found = all_pages(&facade, &editor, &path, |total| total == ROLES as u64).await;
    assert_eq!(names(&found, &["name"]), expected);
    let path = format!("/api/v1/accounts?search={prefix}");
    let found = all_pages(&facade, &editor, &path, |total| total == ROLES as u64).await;
    assert_eq!(names(&found, &["account", "name"]), expected);
    let middle = facade
        .get(&editor, &format!("/api/v1/instances/{pg}/accounts/{}", roles[150]))
        .await;
    middle.expect(200, "OK");
    assert_eq!(middle.data()["can_login"], false, "{:#}", middle.body);

    // Every database, with its owner from another part.
    let expected_dbs: BTreeSet<String> = databases.iter().cloned().collect();
    let path = format!("/api/v1/instances/{pg}/databases?search={prefix}");
    let found = all_pages(&facade, &editor, &path, |total| total == DATABASES as u64).await;
    assert_eq!(names(&found, &["name"]), expected_dbs);
    let path = format!("/api/v1/databases?search={prefix}");
    let found = all_pages(&facade, &editor, &path, |total| total == DATABASES as u64).await;
    assert_eq!(names(&found, &["name"]), expected_dbs);
    assert!(
        found.iter().all(|d| d["owner"] == roles[ROLES - 1].as_str()),
        "{found:#?}"
    );

    // The parts: listed by the instance's own DbInventory, labelled with
    // its uid, each within the budget.
    let instances: Api<DbInstance> = Api::namespaced(facade.admin.clone(), &facade.namespace);
    let uid = instances.get("pg").await.unwrap().uid().unwrap();
    let inventories: Api<DbInventory> = Api::namespaced(facade.admin.clone(), &facade.namespace);
    let head = inventories.get("pg").await.unwrap();
    let accounts = head.spec.accounts.as_ref().unwrap();
    assert!(accounts.parts.len() >= 3, "{} account parts", accounts.parts.len());
    assert!(accounts.items.is_empty() && !accounts.truncated);
    assert!(!head.spec.capacity.as_ref().unwrap().parts.is_empty());
    let parts = parts_of(&inventories, &uid).await;
    let listed: BTreeSet<String> = accounts
        .parts
        .iter()
        .chain(&head.spec.capacity.as_ref().unwrap().parts)
        .map(|p| p.name.clone())
        .collect();
    assert_eq!(parts.iter().map(|p| p.name_any()).collect::<BTreeSet<_>>(), listed);
    for part in &parts {
        let bytes = serde_json::to_vec(&part.spec).unwrap().len();
        assert!(bytes < 16 * 1024, "{}: {bytes} bytes", part.name_any());
    }

    // Fewer accounts: fewer parts, the others deleted.
    let dropped: String = roles[..250].iter().map(|r| format!("DROP ROLE {r};")).collect();
    postgres_exec(&dropped).await;
    facade
        .post(
            &editor,
            &format!("/api/v1/instances/{pg}/actions/sync-accounts"),
            json!({}),
        )
        .await
        .expect(200, "OK");
    let path = format!("/api/v1/instances/{pg}/accounts?search={prefix}");
    let found = all_pages(&facade, &editor, &path, |total| total == 50).await;
    assert_eq!(names(&found, &["name"]), roles[250..].iter().cloned().collect());
    let path = format!("/api/v1/accounts?search={prefix}");
    all_pages(&facade, &editor, &path, |total| total == 50).await;
    let head = inventories.get("pg").await.unwrap();
    let still_listed: BTreeSet<String> = head
        .spec
        .accounts
        .iter()
        .flat_map(|a| &a.parts)
        .chain(head.spec.capacity.iter().flat_map(|c| &c.parts))
        .map(|p| p.name.clone())
        .collect();
    let left: BTreeSet<String> = parts_of(&inventories, &uid)
        .await
        .iter()
        .map(|p| p.name_any())
        .collect();
    assert_eq!(left, still_listed, "parts no longer listed are deleted");

    // The instance goes, and every part with it.
    instances.delete("pg", &DeleteParams::default()).await.unwrap();
    eventually(
        Duration::from_secs(30),
        "the DbInventory and its parts deleted",
        || async {
            let head = inventories.get_opt("pg").await.unwrap();
            let parts = parts_of(&inventories, &uid).await;
            let done = head.is_none() && parts.is_empty();
            (
                done.then_some(()),
                format!("head {}, {} parts", head.is_some(), parts.len()),
            )
        },
    )
    .await;

    for db in &databases {
        postgres_exec(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await;
    }
    let rest: String = roles[250..]
        .iter()
        .map(|r| format!("DROP ROLE IF EXISTS {r};"))
        .collect();
    postgres_exec(&rest).await;
}
