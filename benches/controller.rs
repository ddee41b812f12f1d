//! Controller benchmark (issues 4 and 10): N DbInstances (default 1,000,
//! half PostgreSQL, half MariaDB) pointed at the local servers, then one
//! `dbfleet controller` process started against them. Measures the cold
//! sweep (seconds until all are Ready, reconciles per second, API-server
//! requests per reconcile) and then the fleet at rest for
//! `DBFLEET_BENCH_REST_SECONDS` (default 180): status and inventory writes,
//! API-server requests per second, the JSON size of a DbInstance and of a
//! DbInventory, and the controller's peak RSS.
//!
//!     eval "$(scripts/test-env.sh)"
//!     cargo bench --bench controller              # DBFLEET_BENCH_INSTANCES=1000
//!
//! It prints a Markdown table; docs/benchmarks.md keeps the results.
//! Nothing here asserts a timing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dbfleet::crd::DbInstance;
use dbfleet::crd::instance::Phase;
use dbfleet_testenv::{ControlPlane, DatabaseServer, Options};
use futures_util::StreamExt;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

const CONTROLLER_CONCURRENCY: &str = "32";
/// How long the sweep may take: 5 minutes, or 0.1 s per instance.
fn deadline(count: usize) -> Duration {
    Duration::from_secs(300).max(Duration::from_millis(100) * count as u32)
}

#[path = "common/mod.rs"]
mod common;

use common::{login_secret, status_kib};

#[tokio::main]
async fn main() -> Result<()> {
    let count: usize = std::env::var("DBFLEET_BENCH_INSTANCES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let plane = ControlPlane::start(Options {
        crd_dir: Some(root.join("crds")),
        ..Default::default()
    })
    .await?;
    let client = plane.client().await?;
    let ns = plane.create_namespace("bench").await?;
    let (pg, my) = (DatabaseServer::postgres()?, DatabaseServer::mysql()?);
    login_secret(&client, &ns, "pg-login", &pg).await?;
    login_secret(&client, &ns, "my-login", &my).await?;

    let instances: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    let started = Instant::now();
    let creates = futures_util::stream::iter(0..count).map(|i| {
        let (server, db_type, secret) = if i % 2 == 0 {
            (&pg, "postgresql", "pg-login")
        } else {
            (&my, "mysql", "my-login")
        };
        let manifest = json!({
            "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInstance",
            "metadata": {"name": format!("db-{i:05}")},
            "spec": {"dbType": db_type, "host": server.host, "port": server.port,
                     "credentialsSecretRef": {"name": secret}, "tls": {"mode": "disable"}},
        });
        let instances = instances.clone();
        async move {
            instances
                .create(&PostParams::default(), &serde_json::from_value(manifest)?)
                .await
                .map_err(anyhow::Error::from)
        }
    });
    let results: Vec<_> = creates.buffer_unordered(64).collect().await;
    results.into_iter().collect::<Result<Vec<_>>>()?;
    eprintln!("created {count} instances in {:.1} s", started.elapsed().as_secs_f64());

    let requests_before = apiserver_requests(&client).await?;
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut controller = std::process::Command::new(env!("CARGO_BIN_EXE_dbfleet"))
        .args([
            "controller",
            "--namespace",
            &ns,
            "--concurrency",
            CONTROLLER_CONCURRENCY,
        ])
        .args(["--http-addr", &format!("127.0.0.1:{metrics_port}")])
        .env("KUBECONFIG", plane.dir().join("kubeconfig"))
        .env("RUST_LOG", "warn")
        .spawn()
        .context("start the controller")?;
    let started = Instant::now();

    let mut polls = 0u64;
    let mut phases = BTreeMap::new();
    let elapsed = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        polls += 1;
        let list = instances.list(&ListParams::default()).await?;
        phases.clear();
        for i in &list.items {
            *phases
                .entry(format!("{:?}", i.status.as_ref().and_then(|s| s.phase)))
                .or_insert(0) += 1;
        }
        let ready = list
            .items
            .iter()
            .filter(|i| i.status.as_ref().and_then(|s| s.phase) == Some(Phase::Ready))
            .count();
        if ready == count {
            break started.elapsed();
        }
        if started.elapsed() > deadline(count) {
            let _ = controller.kill();
            bail!("not all Ready after {:?}: {phases:?}", deadline(count));
        }
    };
    let reconciles = controller_metric(metrics_port, "dbfleet_reconcile_total{controller=\"dbinstance\"").await?;
    let requests = apiserver_requests(&client).await? - requests_before - polls as f64 - 1.0;

    // At rest: the first sweep is over; what does an unchanged fleet cost?
    let rest: u64 = std::env::var("DBFLEET_BENCH_REST_SECONDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(180);
    let status_before = controller_metric(metrics_port, "dbfleet_instance_status_writes_total").await?;
    let inventory_before = controller_metric(metrics_port, "dbfleet_inventory_writes_total").await?;
    let requests_before = apiserver_requests(&client).await?;
    tokio::time::sleep(Duration::from_secs(rest)).await;
    let status_writes = controller_metric(metrics_port, "dbfleet_instance_status_writes_total").await? - status_before;
    let inventory_writes = controller_metric(metrics_port, "dbfleet_inventory_writes_total").await? - inventory_before;
    let rest_requests = apiserver_requests(&client).await? - requests_before - 1.0;
    let peak_rss_kib = status_kib(controller.id(), "VmHWM:")?;
    controller.kill()?;
    controller.wait()?;
    let stored = instances.list(&ListParams::default()).await?;
    let instance_bytes = mean_json_bytes(&stored.items);
    let inventories: Api<dbfleet::crd::DbInventory> = Api::namespaced(client.clone(), &ns);
    let inventory_bytes = mean_json_bytes(&inventories.list(&ListParams::default()).await?.items);
    let per_ten_minutes = |writes: f64| writes / count as f64 * 600.0 / rest as f64;

    println!("Cold sweep:\n");
    println!("| instances | all Ready after | reconciles | reconciles/s | API requests per reconcile |");
    println!("|---|---|---|---|---|");
    println!(
        "| {count} | {:.1} s | {reconciles:.0} | {:.0} | {:.2} |",
        elapsed.as_secs_f64(),
        reconciles / elapsed.as_secs_f64(),
        requests / reconciles,
    );
    println!("\nAt rest for {rest} s after the sweep:\n");
    println!(
        "| status writes per instance per 10 min | inventory writes per instance per 10 min | API requests/s | DbInstance JSON | DbInventory JSON | controller peak RSS |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {:.3} | {:.3} | {:.2} | {:.0} B | {:.0} B | {:.1} MiB |",
        per_ten_minutes(status_writes),
        per_ten_minutes(inventory_writes),
        rest_requests / rest as f64,
        instance_bytes,
        inventory_bytes,
        peak_rss_kib as f64 / 1024.0,
    );
    Ok(())
}

fn mean_json_bytes<T: serde::Serialize>(items: &[T]) -> f64 {
    if items.is_empty() {
        return 0.0;
    }
    let total: usize = items.iter().map(|i| serde_json::to_vec(i).map_or(0, |v| v.len())).sum();
    total as f64 / items.len() as f64
}

/// Sum of `apiserver_request_total` over every label set.
async fn apiserver_requests(client: &Client) -> Result<f64> {
    let text = client
        .request_text(http::Request::get("/metrics").body(Vec::new())?)
        .await?;
    Ok(sum_metric(&text, "apiserver_request_total{"))
}

async fn controller_metric(port: u16, prefix: &str) -> Result<f64> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    Ok(sum_metric(&text, prefix))
}

fn sum_metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
