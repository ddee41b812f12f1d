//! The console's pages at 10,000 instances, in process: the server's work
//! per page (select over the same indexes the façade keeps, then render
//! the template) over an instance index and a fleet index of 10,000
//! realistic instances (status with conditions, capacity, versions,
//! growth; 50 accounts, 5 databases and 2 findings each). Authentication
//! is left out: it is the REST API's, answered from a 10 s cache. The one
//! instance page's reads (its DbInventory, its DbHistory, its Events: one
//! GET and one list to the API server) are left out too; it is timed with
//! them in hand: 90 daily samples, 500 account changes, 20 Events.
//! Prints p50/p99 per page; asserts nothing about timings.
//!
//!     cargo bench --bench console
//!
//! `DBFLEET_BENCH_INSTANCES` and `DBFLEET_BENCH_REQUESTS` change the sizes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use askama::Template;
use dbfleet::api::fleet_index::FleetIndex;
use dbfleet::api::input::Query;
use dbfleet::api::instance_index::InstanceIndex;
use dbfleet::api::views::Lookup;
use dbfleet::console::access::Can;
use dbfleet::console::events::{self, RecentEvents};
use dbfleet::console::frame::{Frame, Section};
use dbfleet::console::{findings, instance, instances, overview, search, tags};
use dbfleet::crd::inventory::{
    AccountDatabase, InventoryAccount, InventoryAccounts, InventoryCapacity, InventoryDatabase,
};
use dbfleet::crd::keys::ID_LABEL;
use dbfleet::crd::{DbHistorySpec, DbInstance, DbInventory, DbInventorySpec, DbTag};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::runtime::watcher::Event;
use serde_json::json;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

const TAGS: [&str; 4] = ["prod", "staging", "eu", "us"];

fn instance(i: usize) -> Arc<DbInstance> {
    let mysql = i.is_multiple_of(3);
    let failed = i.is_multiple_of(17);
    let (line, eol, support) = match i % 5 {
        0 => ("PostgreSQL 12", "2024-11-21", "EndOfLife"),
        1 => ("PostgreSQL 13", "2025-11-13", "EndingSoon"),
        2 => ("MariaDB 10.11", "2028-02-16", "Supported"),
        3 => ("PostgreSQL 16", "2028-11-09", "Supported"),
        _ => ("MySQL 8.0", "2026-04-30", "Supported"),
    };
    let now = "2026-03-01T00:00:00Z";
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastTransitionTime": now, "observedGeneration": 1})
    };
    Arc::new(
        serde_json::from_value(json!({"apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInstance",
        "metadata": {"name": format!("db-{i:05}"), "labels": {ID_LABEL: (i + 1).to_string()},
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"dbType": if mysql { "mysql" } else { "postgresql" }, "host": format!("host-{i}.db.example.com"),
            "port": 5432, "description": format!("inventory item {i} of team {}", i % 40), "tags": [TAGS[i % 4]]},
        "status": {
            "phase": if failed { "Failed" } else { "Ready" },
            "conditions": [
                if failed { condition("Ready", "False", "ConnectionFailed", "connection refused by host") }
                else { condition("Ready", "True", "Ready", "ready") },
                condition("Connected", if failed { "False" } else { "True" }, "Connected", "ok"),
                condition("VersionSupported", "True", support, "support state"),
                condition("LoginPrivileges", "True", "LeastPrivilege", "least privilege"),
            ],
            "connection": {"status": if failed { "failed" } else { "connected" }, "lastCheckedAt": now,
                "latencyMs": 3, "serverVersion": format!("{line}.{}", i % 9),
                "message": if failed { "connection refused" } else { "ok" }},
            "capacity": {"totalSizeBytes": (i as u64 * 7_919_113) % 900_000_000_000, "databaseCount": 5,
                "collectedAt": now, "durationMs": 40},
            "accounts": {"count": 50, "syncedAt": now, "durationMs": 30, "superuserCount": 1},
            "release": {"line": line, "endOfLife": eol},
            "capacityGrowth": {"samples": 90, "lastSampleAt": now, "lastTotalBytes": (i as u64 * 7_919_113) % 900_000_000_000,
                "bytesPerDay": (i as i64 % 97) * 1_000_000 - 10_000_000, "rSquared": 0.9},
        }}))
        .expect("a valid DbInstance"),
    )
}

fn inventory(i: usize) -> DbInventory {
    let mysql = i.is_multiple_of(3);
    let at = Time("2026-03-01T00:00:00Z".parse().unwrap());
    let databases: Vec<InventoryDatabase> = (0..5)
        .map(|d| InventoryDatabase {
            name: if d == 0 { "orders".into() } else { format!("db_{i}_{d}") },
            size_bytes: (i * 1000 + d) as u64,
            table_count: Some(d as u32 * 10),
        })
        .collect();
    let items: Vec<InventoryAccount> = (0..50)
        .map(|a| InventoryAccount {
            name: if a < 4 {
                ["monitoring", "app", "backup", "replicator"][a].into()
            } else {
                format!("u{i}_{a}")
            },
            host: mysql.then(|| "%".into()),
            superuser: a == 0,
            can_login: true,
            locked: false,
            expired: false,
            roles: vec![],
            roles_truncated: false,
            global_privileges: vec![],
            global_grant_option: false,
            attributes: vec![],
            valid_until: None,
            auth_plugin: None,
            databases: vec![AccountDatabase {
                name: databases[a % 5].name.clone(),
                privileges: vec!["SELECT".into()],
                grant_option: false,
                owner: false,
                object_grants: false,
            }],
            databases_truncated: false,
        })
        .collect();
    DbInventory::new(
        &format!("db-{i:05}"),
        DbInventorySpec {
            db_type: if mysql { "mysql" } else { "postgresql" }.into(),
            capacity: Some(InventoryCapacity {
                collected_at: at.clone(),
                database_count: 5,
                total_size_bytes: 0,
                databases,
                truncated: false,
                omitted: 0,
                content_hash: "c".into(),
                parts: vec![],
            }),
            accounts: Some(InventoryAccounts {
                synced_at: at,
                count: 50,
                superuser_count: 1,
                items,
                truncated: false,
                omitted: 0,
                content_hash: "a".into(),
                parts: vec![],
            }),
            part_of: None,
            findings: Some(
                serde_json::from_value(json!({"checkedAt": "2026-03-01T00:00:00Z",
                    "counts": {"high": 1, "medium": 0, "low": 1},
                    "items": [
                        {"code": "superuser_password_never_expires", "severity": "high", "account": "monitoring",
                            "host": if mysql { Some("%") } else { None }, "message": "m"},
                        {"code": "native_password", "severity": "low", "account": "app", "host": "%", "message": "m"}],
                    "contentHash": "f"}))
                .expect("valid findings"),
            ),
        },
    )
}

/// 90 daily samples of a growing server and 500 account changes.
fn history() -> DbHistorySpec {
    let day = |d: i64| Timestamp::from_second(1_764_547_200 + d * 86_400).unwrap().to_string();
    let samples: Vec<_> = (0..90)
        .map(|d| {
            json!({"at": day(d), "totalSizeBytes": 50_000_000_000u64 + d as u64 * 300_000_000,
            "databaseCount": 5, "databases": [{"name": "orders", "sizeBytes": 40_000_000_000u64}]})
        })
        .collect();
    let changes: Vec<_> = (0..500)
        .map(|n| {
            json!({"at": day(n / 6), "account": format!("u{n}"), "host": "%",
            "kind": if n % 2 == 0 { "privileges_gained" } else { "account_added" },
            "database": "orders", "privileges": if n % 2 == 0 { vec!["SELECT", "INSERT"] } else { vec![] }})
        })
        .collect();
    serde_json::from_value(json!({"dbType": "mysql",
        "capacity": {"sampleCount": 90, "samples": samples},
        "accounts": {"entryCount": 500, "dropped": 0, "entries": changes}}))
    .expect("a valid DbHistory")
}

/// 20 Events about one instance, as the API server lists them.
fn recent_events() -> Vec<k8s_openapi::api::core::v1::Event> {
    (0..20)
        .map(|n| {
            serde_json::from_value(json!({"metadata": {"name": format!("db.{n:x}")},
                "involvedObject": {"kind": "DbInstance", "name": "db"}, "reason": "Connected",
                "message": "connected in 3 ms", "eventTime": format!("2026-03-01T00:{n:02}:00.000000Z"),
                "type": "Normal"}))
            .unwrap()
        })
        .collect()
}

fn frame() -> Frame {
    let mut frame = Frame::anonymous();
    frame.user = "system:serviceaccount:dbfleet:inventory-admin".into();
    frame.csrf = "1767225600.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into();
    frame.section = Section::Instances;
    frame.can = Can::everything();
    frame
}

fn time(name: &str, requests: usize, mut page: impl FnMut() -> usize) {
    let mut took: Vec<Duration> = (0..requests)
        .map(|_| {
            let started = Instant::now();
            let bytes = page();
            assert!(bytes > 1000, "{name}: rendered {bytes} bytes");
            started.elapsed()
        })
        .collect();
    took.sort();
    let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)].as_secs_f64() * 1000.0;
    println!("{name:<44} p50 {:>7.2} ms   p99 {:>7.2} ms", at(0.5), at(0.99));
}

fn main() {
    let count = env_usize("DBFLEET_BENCH_INSTANCES", 10_000);
    let requests = env_usize("DBFLEET_BENCH_REQUESTS", 200);
    let instances: Vec<Arc<DbInstance>> = (0..count).map(instance).collect();
    let mut index = InstanceIndex::default();
    index.rebuild(instances.iter().cloned());
    let mut fleet = FleetIndex::default();
    fleet.apply(&Event::Init);
    for i in 0..count {
        fleet.apply(&Event::InitApply(inventory(i)));
    }
    fleet.apply(&Event::InitDone);
    let tag_objects: Vec<Arc<DbTag>> = TAGS
        .iter()
        .enumerate()
        .map(|(n, name)| {
            Arc::new(
                serde_json::from_value(json!({"apiVersion": "dbfleet.io/v1alpha1", "kind": "DbTag",
                    "metadata": {"name": name, "labels": {ID_LABEL: (n + 1).to_string()}},
                    "spec": {"displayName": name.to_uppercase(), "category": "env"}}))
                .unwrap(),
            )
        })
        .collect();
    let lookup = || Lookup::new(&tag_objects, vec![], SignedDuration::from_hours(720));
    println!("{count} instances, {requests} renders per page");

    time("overview", requests, || {
        let data = overview::overview(&instances, &index, Some(&fleet), Timestamp::now());
        overview::OverviewPage { frame: frame(), data }.render().unwrap().len()
    });
    // The overview's parts, to show where its time goes.
    time("  of which statistics_of", requests, || {
        dbfleet::api::instances::statistics::statistics_of(&instances, Timestamp::now()).total
    });
    time("  overview without findings", requests, || {
        let data = overview::overview(&instances, &index, None, Timestamp::now());
        overview::OverviewPage { frame: frame(), data }.render().unwrap().len()
    });
    for (name, query) in [
        ("instances (first page)", ""),
        ("instances (sorted by name, page 50)", "sort=name&order=asc&page=50"),
        ("instances (search, 100 per page)", "search=team%207&limit=100"),
        ("instances (status=stale)", "status=stale"),
    ] {
        let query = Query::parse(query);
        time(name, requests, || {
            let data = instances::list(&index, &lookup(), &tag_objects, &query).unwrap();
            instances::InstancesPage { frame: frame(), data }
                .render()
                .unwrap()
                .len()
        });
    }
    let one = instances[4242 % count].clone();
    let spec = inventory(4242 % count).spec;
    let history = history();
    let events = recent_events();
    time("one instance (all panels)", requests, || {
        let view = lookup().instance(&one).unwrap();
        let reads = instance::Reads {
            inventory: Some(Some(spec.clone())),
            history: Some(Some(history.clone())),
            findings: Some(instance::findings_of(view.id, &index, &fleet)),
            events: RecentEvents::Listed(events::newest(events.clone(), events::SHOWN)),
        };
        let data = instance::detail(&one, view, reads, &Query::default());
        instance::InstancePage { frame: frame(), data }.render().unwrap().len()
    });
    for (name, query) in [("findings", ""), ("findings (severity=high)", "severity=high")] {
        let query = Query::parse(query);
        time(name, requests, || {
            let data = findings::findings(&index, &fleet, &query).unwrap();
            findings::FindingsListPage { frame: frame(), data }
                .render()
                .unwrap()
                .len()
        });
    }
    for (name, kind, query) in [
        ("search accounts \"app\"", "accounts", "search=app"),
        ("search accounts \"u42\"", "accounts", "search=u42"),
        ("search databases \"orders\"", "databases", "search=orders"),
    ] {
        let query = Query::parse(query);
        time(name, requests, || {
            let results = search::search(&index, &fleet, kind, &query).unwrap();
            search::SearchPage {
                frame: frame(),
                kind: kind.into(),
                search: String::new(),
                results,
            }
            .render()
            .unwrap()
            .len()
        });
    }
    time("tags", requests, || {
        let tags = tags::tag_views(&tag_objects, &instances);
        tags::TagsPage { frame: frame(), tags }.render().unwrap().len()
    });
}
