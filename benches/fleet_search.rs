//! Fleet-wide account search (`GET /api/v1/accounts`) over the façade's
//! indexes, in process: 10,000 instances with 100 and with 500 accounts
//! each. The fleet index is built through `FleetIndex::apply`, the path
//! the DbInventory watch events take (a relist: `Init`, one `InitApply`
//! per object, `InitDone`), each object made, applied and dropped as the
//! watcher's would be. Prints p50/p99 per query, the bytes each indexed
//! account costs and the process's RSS; asserts nothing about timings.
//!
//!     cargo bench --bench fleet_search
//!
//! Each size runs in a process of its own, so its RSS is its own.
//! `DBFLEET_BENCH_INSTANCES`, `DBFLEET_BENCH_ACCOUNTS` (a comma-separated
//! list) and `DBFLEET_BENCH_QUERIES` change the sizes.
//!
//! With `DBFLEET_BENCH_API_SERVER=1` (after `eval "$(scripts/test-env.sh)"`)
//! it instead stores the DbInstances and DbInventories in a real API server,
//! starts `dbfleet api` as its own process on them, and times the same
//! searches over HTTP (loopback), with the façade's RSS.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dbfleet::api::fleet_index::FleetIndex;
use dbfleet::api::input::Query;
use dbfleet::api::instance_index::InstanceIndex;
use dbfleet::api::inventory::fleet::{FleetAccountQuery, FleetDatabaseQuery};
use dbfleet::api::pagination::PageRequest;
use dbfleet::crd::inventory::{
    AccountDatabase, InventoryAccount, InventoryAccounts, InventoryCapacity, InventoryDatabase,
};
use dbfleet::crd::keys::ID_LABEL;
use dbfleet::crd::{DbInstance, DbInventory, DbInventorySpec};
use dbfleet_testenv::{ControlPlane, Options};
use futures_util::{StreamExt, stream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::watcher::Event;
use serde_json::json;

#[path = "common/mod.rs"]
mod common;

use common::FacadeProcess;

/// The account searches timed: an exact name on every instance, one on
/// a few, substrings matching many and few names, filter combinations.
const SEARCHES: [&str; 6] = [
    "name=monitoring",
    "name=svc_0042",
    "search=svc_00",
    "search=u12",
    "superuser=true&db_type=mysql&tags=prod",
    "search=app&can_login=true&locked=false&tags=eu&tags=us",
];

/// Names every server has (monitoring, backups, the admin).
const COMMON: [&str; 6] = ["monitoring", "backup", "app", "app_ro", "replicator", "migrations"];
/// Service accounts shared by teams across many servers.
const SHARED_POOL: usize = 2_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let sizes = std::env::var("DBFLEET_BENCH_ACCOUNTS").unwrap_or_else(|_| "100,500".into());
    if sizes.contains(',') {
        for size in sizes.split(',') {
            let status = Command::new(std::env::current_exe().unwrap())
                .env("DBFLEET_BENCH_ACCOUNTS", size.trim())
                .status()
                .unwrap();
            assert!(status.success());
        }
        return;
    }
    let (instances, accounts) = (
        env_usize("DBFLEET_BENCH_INSTANCES", 10_000),
        sizes.trim().parse().unwrap(),
    );
    if std::env::var_os("DBFLEET_BENCH_API_SERVER").is_some() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(through_api_server(instances, accounts));
    } else {
        run(instances, accounts);
    }
}

fn rss_kib() -> u64 {
    common::status_kib(std::process::id(), "VmRSS:").unwrap()
}

fn instance(i: usize) -> Arc<DbInstance> {
    let tag = ["prod", "staging", "eu", "us"][i % 4];
    let mut instance: DbInstance =
        serde_json::from_value(json!({"apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInstance",
        "metadata": {"name": format!("db-{i:05}"), "labels": {ID_LABEL: (i + 1).to_string()}},
        "spec": {"dbType": if i.is_multiple_of(2) { "mysql" } else { "postgresql" }, "host": format!("host-{i}.db.example.com"),
            "port": 5432, "description": format!("inventory item {i}"), "tags": [tag]}}))
        .unwrap();
    instance.metadata.labels.get_or_insert_with(BTreeMap::new);
    Arc::new(instance)
}

/// One server's inventory: the common accounts, a third from the shared
/// pool, the rest its own; one to three databases each, with privileges.
fn inventory(i: usize, accounts: usize) -> DbInventory {
    let mysql = i.is_multiple_of(2);
    let at = Time("2026-03-01T00:00:00Z".parse().unwrap());
    let databases: Vec<InventoryDatabase> = (0..5)
        .map(|d| InventoryDatabase {
            name: if d == 0 { "orders".into() } else { format!("db_{i}_{d}") },
            size_bytes: (i * 1000 + d) as u64,
            table_count: Some(d as u32 * 10),
        })
        .collect();
    let items: Vec<InventoryAccount> = (0..accounts)
        .map(|a| {
            let name = match a {
                a if a < COMMON.len() => COMMON[a].to_string(),
                a if a < accounts / 3 => format!("svc_{:04}", (i * 7 + a * 13) % SHARED_POOL),
                a => format!("u{i}_{a}"),
            };
            let superuser = a == 0 && i.is_multiple_of(5);
            let privileges = if mysql {
                vec!["INSERT".to_string(), "SELECT".into(), "UPDATE".into()]
            } else {
                vec!["CONNECT".to_string()]
            };
            InventoryAccount {
                name,
                host: mysql.then(|| if a % 3 == 0 { "%".into() } else { "10.0.%".into() }),
                superuser,
                can_login: a % 10 != 9,
                locked: a % 17 == 0,
                expired: false,
                roles: if mysql { vec![] } else { vec!["readers".into()] },
                roles_truncated: false,
                global_privileges: if mysql && a % 4 == 0 {
                    vec!["PROCESS".into()]
                } else {
                    vec![]
                },
                global_grant_option: false,
                attributes: vec![],
                valid_until: None,
                auth_plugin: mysql.then(|| "mysql_native_password".into()),
                databases: (0..1 + a % 3)
                    .map(|d| AccountDatabase {
                        name: databases[(a + d) % databases.len()].name.clone(),
                        privileges: privileges.clone(),
                        grant_option: d == 2,
                        owner: !mysql && a == 1 && d == 0,
                        object_grants: false,
                    })
                    .collect(),
                databases_truncated: false,
            }
        })
        .collect();
    DbInventory::new(
        &format!("db-{i:05}"),
        DbInventorySpec {
            db_type: if mysql { "mysql" } else { "postgresql" }.into(),
            capacity: Some(InventoryCapacity {
                collected_at: at.clone(),
                database_count: databases.len() as u32,
                total_size_bytes: 0,
                databases,
                truncated: false,
                omitted: 0,
                content_hash: "c".into(),
                parts: vec![],
            }),
            accounts: Some(InventoryAccounts {
                synced_at: at,
                count: accounts as u32,
                superuser_count: 0,
                items,
                truncated: false,
                omitted: 0,
                content_hash: "a".into(),
                parts: vec![],
            }),
            findings: None,
            part_of: None,
        },
    )
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn run(instance_count: usize, accounts: usize) {
    let queries = env_usize("DBFLEET_BENCH_QUERIES", 200);
    let start_kib = rss_kib();
    let mut instances = InstanceIndex::default();
    instances.rebuild((0..instance_count).map(instance));
    let instances_kib = rss_kib();

    let built = Instant::now();
    let mut fleet = FleetIndex::default();
    fleet.apply(&Event::Init);
    for i in 0..instance_count {
        fleet.apply(&Event::InitApply(inventory(i, accounts)));
    }
    fleet.apply(&Event::InitDone);
    let build = built.elapsed();
    let fleet_kib = rss_kib();
    let indexed = fleet.account_count();
    let (names, databases, texts) = fleet.distinct_strings();

    println!();
    println!(
        "{instance_count} instances x {accounts} accounts: {indexed} accounts indexed in {:.1} s \
         ({names} distinct account names, {databases} database names, {texts} other strings)",
        build.as_secs_f64()
    );
    println!(
        "RSS: {:.1} MiB at start, {:.1} MiB with the instance index, {:.1} MiB with the fleet index \
         ({:.0} bytes per indexed account)",
        start_kib as f64 / 1024.0,
        instances_kib as f64 / 1024.0,
        fleet_kib as f64 / 1024.0,
        (fleet_kib - instances_kib) as f64 * 1024.0 / indexed as f64
    );

    for search in SEARCHES {
        let query = FleetAccountQuery::from_query(&Query::parse(search)).unwrap();
        let mut times = Vec::with_capacity(queries);
        let mut total = 0;
        for _ in 0..queries {
            let t = Instant::now();
            let page = query.page(&instances, &fleet, PageRequest { page: 1, limit: 20 });
            times.push(t.elapsed());
            total = page.total;
        }
        times.sort();
        println!(
            "GET /api/v1/accounts?{search:<56} {total:>8} matches   p50 {:>7.2} ms   p99 {:>7.2} ms",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99))
        );
    }
    for search in ["name=orders", "search=db_12"] {
        let query = FleetDatabaseQuery::from_query(&Query::parse(search)).unwrap();
        let mut times = Vec::with_capacity(queries);
        let mut total = 0;
        for _ in 0..queries {
            let t = Instant::now();
            total = query.page(&instances, &fleet, PageRequest { page: 1, limit: 20 }).total;
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "GET /api/v1/databases?{search:<55} {total:>8} matches   p50 {:>7.2} ms   p99 {:>7.2} ms",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99))
        );
    }
    println!("RSS after the queries: {:.1} MiB", rss_kib() as f64 / 1024.0);
}

/// The same searches over HTTP, with the objects in a real API server and
/// the façade as its own process (its RSS is its own).
async fn through_api_server(instance_count: usize, accounts: usize) {
    let queries = env_usize("DBFLEET_BENCH_QUERIES", 200);
    let plane = ControlPlane::start(Options {
        crd_dir: Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds")),
        ..Default::default()
    })
    .await
    .unwrap();
    let client = plane.client().await.unwrap();
    let namespace = plane.create_namespace("fleet-bench").await.unwrap();
    let seeded = Instant::now();
    let (instances, inventories): (Api<DbInstance>, Api<DbInventory>) = (
        Api::namespaced(client.clone(), &namespace),
        Api::namespaced(client.clone(), &namespace),
    );
    stream::iter(0..instance_count)
        .for_each_concurrent(16, |i| {
            let (instances, inventories) = (instances.clone(), inventories.clone());
            async move {
                instances.create(&PostParams::default(), &instance(i)).await.unwrap();
                inventories
                    .create(&PostParams::default(), &inventory(i, accounts))
                    .await
                    .unwrap();
            }
        })
        .await;
    println!();
    println!(
        "stored {instance_count} DbInstances and DbInventories ({accounts} accounts each) in {:.0} s",
        seeded.elapsed().as_secs_f64()
    );

    let mut facade = FacadeProcess::start(&plane, &namespace, Duration::from_secs(900))
        .await
        .unwrap();
    let (base, http) = (facade.base.clone(), reqwest::Client::new());
    let kib = |key| facade.mib(key).unwrap();
    println!(
        "façade ready (caches and indexes synced) in {:.1} s; RSS {:.1} MiB, peak {:.1} MiB",
        facade.synced_after.as_secs_f64(),
        kib("VmRSS:"),
        kib("VmHWM:")
    );
    for search in SEARCHES {
        let url = format!("{base}/api/v1/accounts?{search}");
        let answer: serde_json::Value = http.get(&url).send().await.unwrap().json().await.unwrap();
        let stats = common::measure(queries, 1, || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let response = http.get(&url).send().await.unwrap();
                assert_eq!(response.status(), 200);
                response.bytes().await.unwrap();
            }
        })
        .await;
        println!(
            "HTTP GET /api/v1/accounts?{search:<51} {:>8} matches   p50 {:>7.2} ms   p99 {:>7.2} ms",
            answer["data"]["total"],
            ms(stats.p50),
            ms(stats.p99)
        );
    }
    println!(
        "façade RSS after the queries: {:.1} MiB, peak {:.1} MiB",
        kib("VmRSS:"),
        kib("VmHWM:")
    );
    let _ = facade.child.kill();
    let _ = facade.child.wait();
}
