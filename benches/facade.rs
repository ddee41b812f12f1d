//! Façade list throughput and memory with 10,000 DbInstances stored,
//! against listing the same objects straight from the API server, in the
//! same run. Prints numbers; asserts nothing about timings.
//!
//!     eval "$(scripts/test-env.sh)"; cargo bench --bench facade
//!
//! `DBFLEET_BENCH_INSTANCES` and `DBFLEET_BENCH_REQUESTS` shrink it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dbfleet::crd::keys::ID_LABEL;
use dbfleet::crd::{DbInstance, DbTag};
use dbfleet_testenv::{ControlPlane, Options};
use futures_util::{StreamExt, stream};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// Requests in flight at once, for both sides.
const CONCURRENCY: usize = 8;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[path = "common/mod.rs"]
mod common;

use common::{FacadeProcess, Stats};

async fn measure<F, Fut>(requests: usize, call: F) -> Stats
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    common::measure(requests, CONCURRENCY, call).await
}

fn report(name: &str, s: &Stats) {
    println!(
        "{name:<48} {:>9.1} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms",
        s.rps,
        ms(s.p50),
        ms(s.p99)
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn seed(client: &Client, namespace: &str, count: usize) {
    let tags: Api<DbTag> = Api::namespaced(client.clone(), namespace);
    for (i, name) in ["prod", "staging", "eu", "us"].iter().enumerate() {
        let mut tag: DbTag = serde_json::from_value(json!({"apiVersion": "dbfleet.io/v1alpha1", "kind": "DbTag",
            "metadata": {"name": name, "labels": {ID_LABEL: (i + 1).to_string()}},
            "spec": {"displayName": name.to_uppercase(), "category": "env"}}))
        .unwrap();
        tag.metadata.namespace = Some(namespace.into());
        tags.create(&PostParams::default(), &tag).await.unwrap();
    }
    let api: Api<DbInstance> = Api::namespaced(client.clone(), namespace);
    let started = Instant::now();
    stream::iter(1..=count)
        .for_each_concurrent(32, |i| {
            let api = api.clone();
            async move {
                let tag = ["prod", "staging", "eu", "us"][i % 4];
                let instance: DbInstance = serde_json::from_value(json!({"apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInstance",
                    "metadata": {"name": format!("db-{i:05}"), "labels": {ID_LABEL: i.to_string()}},
                    "spec": {"dbType": if i % 3 == 0 { "mysql" } else { "postgresql" }, "host": format!("host-{i}.db.example.com"),
                        "port": 5432, "description": format!("inventory item {i}"), "tags": [tag]}}))
                .unwrap();
                api.create(&PostParams::default(), &instance).await.unwrap();
            }
        })
        .await;
    println!("seeded {count} DbInstances in {:.1} s", started.elapsed().as_secs_f64());
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let count = env_usize("DBFLEET_BENCH_INSTANCES", 10_000);
    let requests = env_usize("DBFLEET_BENCH_REQUESTS", 2_000);
    let crd_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let plane = ControlPlane::start(Options {
        crd_dir: Some(crd_dir),
        ..Default::default()
    })
    .await
    .unwrap();
    let client = plane.client().await.unwrap();
    let namespace = plane.create_namespace("bench").await.unwrap();
    seed(&client, &namespace, count).await;

    // The façade as its own process, so its RSS is its own.
    let mut facade = FacadeProcess::start(&plane, &namespace, Duration::from_secs(120))
        .await
        .unwrap();
    let base = facade.base.clone();
    let http = reqwest::Client::new();
    println!(
        "façade caches synced in {:.1} s; RSS {:.1} MiB",
        facade.synced_after.as_secs_f64(),
        facade.mib("VmRSS:").unwrap()
    );

    let listed: serde_json::Value = http
        .get(format!("{base}/api/v1/instances?limit=100"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["data"]["total"], count,
        "the façade serves every stored instance"
    );

    let http = Arc::new(http);
    let get = |path: &'static str| {
        let http = http.clone();
        let url = format!("{base}{path}");
        move || {
            let http = http.clone();
            let url = url.clone();
            async move {
                let response = http.get(&url).send().await.unwrap();
                assert_eq!(response.status(), 200);
                response.bytes().await.unwrap();
            }
        }
    };
    // Warm-up, then measure.
    measure(200, get("/api/v1/instances?limit=100")).await;
    let plain = measure(requests, get("/api/v1/instances?limit=100")).await;
    let search = measure(requests, get("/api/v1/instances?limit=100&search=host-77")).await;
    let tags = measure(requests, get("/api/v1/instances?limit=100&tags=eu&tags=us")).await;
    let rss = facade.mib("VmRSS:").unwrap();

    let api: Api<DbInstance> = Api::namespaced(client.clone(), &namespace);
    let direct = measure(requests / 10, || {
        let api = api.clone();
        async move {
            api.list(&ListParams::default().limit(100)).await.unwrap();
        }
    })
    .await;

    println!();
    println!("{count} DbInstances, {CONCURRENCY} requests in flight");
    report("façade GET /api/v1/instances?limit=100", &plain);
    report("façade … &search=host-77", &search);
    report("façade … &tags=eu&tags=us", &tags);
    report("API server LIST dbinstances (limit=100)", &direct);
    println!("façade / API server throughput: {:.1}x", plain.rps / direct.rps);
    println!("façade RSS after the run: {rss:.1} MiB");

    let _ = facade.child.kill();
    let _ = facade.child.wait();
}
