//! Controller benchmark (issues 4 and 10): N DbInstances (default 1,000)
//! pointed at local servers, then `dbfleet controller` started against
//! them (one process, or one per shard). Measures, in one run:
//! - the cold sweep: seconds until every instance is Ready (its connection
//!   tested) and until every one is inventoried (capacity and accounts
//!   collected), database logins, API-server requests;
//! - what bounds it: the same number of bare logins from this process;
//! - the fleet at rest for `DBFLEET_BENCH_REST_SECONDS` (default 180):
//!   status and inventory writes, API-server requests per second, stored
//!   sizes, each controller process's peak RSS;
//! - the façade on the same objects: RSS with everything cached, and its
//!   list throughput against the API server's LIST.
//!
//! The mix: with `scripts/bench-servers.sh`'s exports present,
//! `DBFLEET_BENCH_LARGE_PERCENT` (default 10) of the instances point at its
//! servers of 200 databases and 2,000 accounts; the others at the test
//! servers, which the benchmark gives 20 databases and 40 accounts each
//! (`DBFLEET_BENCH_SMALL_FIXTURE=0` leaves them as they are).
//!
//!     eval "$(bash scripts/test-env.sh)"; eval "$(bash scripts/bench-servers.sh)"
//!     cargo bench --bench controller       # DBFLEET_BENCH_INSTANCES, DBFLEET_BENCH_SHARDS
//!
//! `DBFLEET_BENCH_READY_ONLY=1` stops once every instance is Ready.
//! `DBFLEET_BENCH_CONCURRENCY` (32) and `DBFLEET_BENCH_PROBES` (16) set each
//! process's `--concurrency` and `--max-concurrent-probes`.
//! `DBFLEET_BENCH_PROCESS=run` measures `dbfleet run` (controllers and
//! façade in one process) instead of `dbfleet controller`;
//! `DBFLEET_BENCH_BINARY` points at another build to compare with.
//!
//! It prints Markdown tables; docs/benchmarks.md keeps the results.
//! Nothing here asserts a timing.

use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dbfleet::crd::instance::{DbType, Phase, TlsMode};
use dbfleet::crd::{DbInstance, DbInventory};
use dbfleet::probe::{self, Password, Target, TlsSettings};
use dbfleet_testenv::{ControlPlane, DatabaseServer, Options};
use futures_util::{StreamExt, TryStreamExt};
use kube::api::{ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::json;

#[path = "common/mod.rs"]
mod common;

use common::{FacadeProcess, login_secret, measure, status_kib};

/// `--concurrency` of each controller process (`DBFLEET_BENCH_CONCURRENCY`).
fn controller_concurrency() -> String {
    env_or("DBFLEET_BENCH_CONCURRENCY", 32).to_string()
}
const SMALL_DATABASES: usize = 20;
const SMALL_ACCOUNTS: usize = 40;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// How long the sweep may take: 10 minutes, or 0.6 s per instance.
fn deadline(count: usize) -> Duration {
    Duration::from_secs(600).max(Duration::from_millis(600) * count as u32)
}

/// Probes at once per controller process. Every instance here shares one
/// of four servers, so the default (32, each PostgreSQL capacity run
/// holding up to five sessions) would exceed PostgreSQL's default
/// `max_connections` of 100; a real fleet spreads them over its servers.
fn probes_per_process() -> String {
    env_or("DBFLEET_BENCH_PROBES", 16).to_string()
}

/// One kind of server an instance points at.
struct Server {
    db_type: DbType,
    host: String,
    port: u16,
    secret: &'static str,
}

struct Mix {
    small_pg: Server,
    small_my: Server,
    large: Option<(Server, Server)>,
    /// Every `large_every`-th instance points at a large server.
    large_every: usize,
}

impl Mix {
    fn server(&self, i: usize) -> &Server {
        match &self.large {
            Some((pg, my)) if i % self.large_every == 0 => {
                if (i / self.large_every) % 2 == 0 {
                    pg
                } else {
                    my
                }
            }
            _ if i % 2 == 0 => &self.small_pg,
            _ => &self.small_my,
        }
    }

    fn describe(&self, count: usize, small_fixture: bool) -> String {
        let large = (0..count)
            .filter(|&i| self.large.is_some() && i % self.large_every == 0)
            .count();
        let small = if small_fixture {
            format!("about {SMALL_DATABASES} databases and {SMALL_ACCOUNTS} accounts")
        } else {
            "the test environment's few databases and accounts".to_string()
        };
        format!(
            "{large} of {count} instances at servers with 200 databases and 2,000 accounts, \
             the rest at servers with {small}; half PostgreSQL, half MariaDB"
        )
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let count: usize = env_or("DBFLEET_BENCH_INSTANCES", 1000);
    let rest: u64 = env_or("DBFLEET_BENCH_REST_SECONDS", 180);
    let shards: usize = env_or("DBFLEET_BENCH_SHARDS", 1);
    let large_percent: usize = env_or("DBFLEET_BENCH_LARGE_PERCENT", 10);
    let small_fixture = env_or("DBFLEET_BENCH_SMALL_FIXTURE", 1) == 1;
    // Stop once every instance is Ready (the connection tests of a cold
    // sweep), without waiting for the collections, the rest and the façade.
    let ready_only = env_or("DBFLEET_BENCH_READY_ONLY", 0) == 1;

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
    if small_fixture {
        small_fixtures(&pg, &my, true).await?;
    }
    let large_port = |name: &str| std::env::var(name).ok().and_then(|p| p.parse::<u16>().ok());
    let large = match (
        large_port("DBFLEET_BENCH_LARGE_POSTGRES_PORT"),
        large_port("DBFLEET_BENCH_LARGE_MYSQL_PORT"),
    ) {
        (Some(pg_port), Some(my_port)) if large_percent > 0 => Some((
            Server {
                db_type: DbType::Postgresql,
                host: pg.host.clone(),
                port: pg_port,
                secret: "pg-login",
            },
            Server {
                db_type: DbType::Mysql,
                host: my.host.clone(),
                port: my_port,
                secret: "my-login",
            },
        )),
        _ => {
            eprintln!("[bench] no large servers (run scripts/bench-servers.sh): every instance is small");
            None
        }
    };
    let mix = Mix {
        small_pg: Server {
            db_type: DbType::Postgresql,
            host: pg.host.clone(),
            port: pg.port,
            secret: "pg-login",
        },
        small_my: Server {
            db_type: DbType::Mysql,
            host: my.host.clone(),
            port: my.port,
            secret: "my-login",
        },
        large,
        large_every: (100 / large_percent.clamp(1, 100)).max(1),
    };
    println!("Mix: {}.\n", mix.describe(count, small_fixture));

    let ceiling = login_ceiling(&mix, &pg, &my, count.min(1000)).await?;

    let instances: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    let started = Instant::now();
    let creates = futures_util::stream::iter(0..count).map(|i| {
        let server = mix.server(i);
        let manifest = json!({
            "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInstance",
            "metadata": {"name": format!("db-{i:05}")},
            "spec": {"dbType": server.db_type.as_str(), "host": server.host, "port": server.port,
                     "credentialsSecretRef": {"name": server.secret}, "tls": {"mode": "disable"}},
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
    // One more at the server of 20,000 accounts and 2,000 databases, when
    // scripts/bench-servers.sh runs it: its inventory spreads over parts.
    let huge_port = large_port("DBFLEET_BENCH_HUGE_MYSQL_PORT");
    if let Some(port) = huge_port {
        let manifest = json!({
            "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInstance",
            "metadata": {"name": HUGE},
            "spec": {"dbType": "mysql", "host": my.host, "port": port,
                     "credentialsSecretRef": {"name": "my-login"}, "tls": {"mode": "disable"}},
        });
        instances
            .create(&PostParams::default(), &serde_json::from_value(manifest)?)
            .await?;
    }
    let count = count + usize::from(huge_port.is_some());

    // Progress comes from a watch, not from polling LISTs that would load
    // the API server as much as the controller does.
    let progress = Arc::new(std::sync::Mutex::new(BTreeMap::<String, (Option<Phase>, bool)>::new()));
    let watching = {
        let progress = progress.clone();
        let stream = watcher(instances.clone(), watcher::Config::default()).applied_objects();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Ok(Some(instance)) = stream.try_next().await {
                let status = instance.status.as_ref();
                let phase = status.and_then(|s| s.phase);
                let inventoried = status.is_some_and(|s| s.capacity.is_some() && s.accounts.is_some());
                let name = instance.metadata.name.unwrap_or_default();
                progress.lock().unwrap().insert(name, (phase, inventoried));
            }
        })
    };

    let requests_before = apiserver_metric(&client, "apiserver_request_total{").await?;
    let storage_before = apiserver_metric(&client, "apiserver_storage_size_bytes{").await?;
    let mut controllers = Vec::new();
    for shard in 0..shards {
        controllers.push(start_controller(&plane, &ns, shards, shard)?);
    }
    let started = Instant::now();
    let (mut all_ready, mut all_inventoried) = (None, None);
    // When each tenth of the fleet was Ready and inventoried.
    let mut ready_at = [None; 10];
    let mut inventoried_at = [None; 10];
    let mut last_report = Instant::now();
    while all_inventoried.is_none() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (ready, failed, inventoried) = {
            let progress = progress.lock().unwrap();
            (
                progress.values().filter(|p| p.0 == Some(Phase::Ready)).count(),
                progress.values().filter(|p| p.0 == Some(Phase::Failed)).count(),
                progress.values().filter(|p| p.1).count(),
            )
        };
        if last_report.elapsed() > Duration::from_secs(30) {
            eprintln!(
                "[bench] {:.0} s: {ready} Ready, {failed} Failed, {inventoried} inventoried of {count}",
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        for tenth in 0..10 {
            let reached = |done: usize| done * 10 >= count * (tenth + 1);
            if reached(ready) && ready_at[tenth].is_none() {
                ready_at[tenth] = Some(started.elapsed());
            }
            if reached(inventoried) && inventoried_at[tenth].is_none() {
                inventoried_at[tenth] = Some(started.elapsed());
            }
        }
        if ready == count && all_ready.is_none() {
            all_ready = Some(started.elapsed());
            if ready_only {
                return report_ready(&mut controllers, count, shards, started.elapsed(), &ready_at, ceiling).await;
            }
        }
        if inventoried == count {
            all_inventoried = Some(started.elapsed());
        }
        if started.elapsed() > deadline(count) {
            for (child, _) in &mut controllers {
                let _ = child.kill();
            }
            bail!(
                "after {:?}: {ready} Ready, {inventoried} inventoried of {count}",
                deadline(count)
            );
        }
    }
    let (all_ready, all_inventoried) = (all_ready.unwrap_or_default(), all_inventoried.unwrap_or_default());
    let sweep_requests = apiserver_metric(&client, "apiserver_request_total{").await? - requests_before;
    let sum = async |metric: &str| -> Result<f64> {
        let mut total = 0.0;
        for (_, port) in &controllers {
            total += controller_metric(*port, metric).await?;
        }
        Ok(total)
    };
    let reconciles = sum("dbfleet_reconcile_total{controller=\"dbinstance\"").await?;
    let logins = sum("dbfleet_database_logins_total").await?;
    let status_sweep = sum("dbfleet_instance_status_writes_total").await?;
    let inventory_sweep = sum("dbfleet_inventory_writes_total").await?;
    let reconcile_seconds = sum("dbfleet_reconcile_duration_seconds_sum{controller=\"dbinstance\"").await?;
    let slot_wait_seconds = sum("dbfleet_probe_wait_seconds_sum").await?;
    let mut probe_means = Vec::new();
    for probe in ["connection", "capacity", "accounts"] {
        let total = sum(&format!("dbfleet_probe_duration_seconds_sum{{probe=\"{probe}\"")).await?;
        let runs = sum(&format!("dbfleet_probe_duration_seconds_count{{probe=\"{probe}\"")).await?;
        probe_means.push((probe, total / runs.max(1.0)));
    }

    // At rest: the first sweep is over; what does an unchanged fleet cost?
    let status_before = sum("dbfleet_instance_status_writes_total").await?;
    let inventory_before = sum("dbfleet_inventory_writes_total").await?;
    let requests_before = apiserver_metric(&client, "apiserver_request_total{").await?;
    tokio::time::sleep(Duration::from_secs(rest)).await;
    let status_writes = sum("dbfleet_instance_status_writes_total").await? - status_before;
    let inventory_writes = sum("dbfleet_inventory_writes_total").await? - inventory_before;
    let rest_requests = apiserver_metric(&client, "apiserver_request_total{").await? - requests_before;
    let storage_after = apiserver_metric(&client, "apiserver_storage_size_bytes{").await?;
    let peaks: Vec<f64> = controllers
        .iter()
        .map(|(child, _)| status_kib(child.id(), "VmHWM:").map(|k| k as f64 / 1024.0))
        .collect::<Result<_>>()?;
    for (child, _) in &mut controllers {
        child.kill()?;
        child.wait()?;
    }
    watching.abort();

    let stored = instances.list(&ListParams::default()).await?;
    let instance_bytes = mean_json_bytes(&stored.items);
    let inventories: Api<DbInventory> = Api::namespaced(client.clone(), &ns);
    let stored_inventories = inventories.list(&ListParams::default()).await?.items;
    let inventory_bytes = mean_json_bytes(&stored_inventories);
    let largest_inventory = stored_inventories
        .iter()
        .map(|i| serde_json::to_vec(i).map_or(0, |v| v.len()))
        .max()
        .unwrap_or(0);
    let per_ten_minutes = |writes: f64| writes / count as f64 * 600.0 / rest as f64;

    println!(
        "Cold sweep ({shards} controller process(es), --shards {shards}, --concurrency {} and --max-concurrent-probes {} each):\n",
        controller_concurrency(),
        probes_per_process()
    );
    println!(
        "| instances | all Ready after | all inventoried after | reconciles | database logins | API requests | status writes | inventory writes |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {count} | {:.1} s | {:.1} s | {reconciles:.0} | {logins:.0} | {sweep_requests:.0} | {status_sweep:.0} | {inventory_sweep:.0} |",
        all_ready.as_secs_f64(),
        all_inventoried.as_secs_f64(),
    );
    let seconds = |at: &Option<Duration>| at.map_or("–".to_string(), |d| format!("{:.1}", d.as_secs_f64()));
    println!("\nProgress (seconds until this share of the fleet was Ready / inventoried):\n");
    println!(
        "| share | {} |",
        (1..=10).map(|t| format!("{}0 %", t)).collect::<Vec<_>>().join(" | ")
    );
    println!("|---|{}", "---|".repeat(10));
    println!(
        "| Ready | {} |",
        ready_at.iter().map(seconds).collect::<Vec<_>>().join(" | ")
    );
    println!(
        "| inventoried | {} |",
        inventoried_at.iter().map(seconds).collect::<Vec<_>>().join(" | ")
    );
    let sweep_seconds = all_inventoried.as_secs_f64() * shards as f64;
    println!(
        "\nWhere the reconciles' time went: {reconcile_seconds:.0} s of reconciles in flight \
         ({:.1} on average, {:.1} ms each), of which {slot_wait_seconds:.0} s waiting for a probe slot; \
         mean probe time: {}.",
        reconcile_seconds / sweep_seconds.max(0.001),
        reconcile_seconds * 1000.0 / reconciles.max(1.0),
        probe_means
            .iter()
            .map(|(probe, mean)| format!("{probe} {:.1} ms", mean * 1000.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "\nThe same machine, from this process alone: {} bare logins (connection tests, 32 at a time) in {:.1} s ({:.0} logins/s).",
        ceiling.0,
        ceiling.1.as_secs_f64(),
        ceiling.0 as f64 / ceiling.1.as_secs_f64()
    );
    println!("\nAt rest for {rest} s after the sweep:\n");
    println!(
        "| status writes per instance per 10 min | inventory writes per instance per 10 min | API requests/s | DbInstance JSON | DbInventory JSON (mean / largest) | etcd growth per instance | controller peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {:.3} | {:.3} | {:.2} | {:.0} B | {:.0} B / {largest_inventory} B | {:.0} B | {} |",
        per_ten_minutes(status_writes),
        per_ten_minutes(inventory_writes),
        rest_requests / rest as f64,
        instance_bytes,
        inventory_bytes,
        (storage_after - storage_before) / count as f64,
        peaks
            .iter()
            .map(|p| format!("{p:.1} MiB"))
            .collect::<Vec<_>>()
            .join(" + "),
    );

    if huge_port.is_some() {
        huge_inventory(&stored_inventories, &stored.items, inventory_writes, rest);
    }
    facade(&plane, &client, &ns, count).await?;
    if small_fixture {
        small_fixtures(&pg, &my, false).await?;
    }
    Ok(())
}

/// `DBFLEET_BENCH_READY_ONLY=1`: what the connection tests of a cold sweep
/// cost, reported once every instance is Ready; the processes are stopped.
async fn report_ready(
    controllers: &mut [(Child, u16)],
    count: usize,
    shards: usize,
    ready: Duration,
    ready_at: &[Option<Duration>; 10],
    ceiling: (usize, Duration),
) -> Result<()> {
    let mut reconciles = 0.0;
    let mut logins = 0.0;
    let mut peaks = Vec::new();
    for (child, port) in controllers.iter_mut() {
        reconciles += controller_metric(*port, "dbfleet_reconcile_total{controller=\"dbinstance\"").await?;
        logins += controller_metric(*port, "dbfleet_database_logins_total").await?;
        peaks.push(status_kib(child.id(), "VmHWM:")? as f64 / 1024.0);
        child.kill()?;
        child.wait()?;
    }
    let floor = logins / (ceiling.0 as f64 / ceiling.1.as_secs_f64());
    println!("Ready only ({shards} process(es), --shards {shards}):\n");
    println!(
        "| instances | all Ready after | logins (login floor at the bare-login rate) | reconciles per instance | peak RSS per process |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| {count} | {:.1} s | {logins:.0} ({floor:.1} s at {:.0}/s) | {:.1} | {} |",
        ready.as_secs_f64(),
        ceiling.0 as f64 / ceiling.1.as_secs_f64(),
        reconciles / count as f64,
        peaks
            .iter()
            .map(|p| format!("{p:.0} MiB"))
            .collect::<Vec<_>>()
            .join(" + ")
    );
    let seconds = |at: &Option<Duration>| at.map_or("–".to_string(), |d| format!("{:.1}", d.as_secs_f64()));
    println!(
        "\nReady by tenths: {} s.",
        ready_at.iter().map(seconds).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

/// The instance at the server of 20,000 accounts and 2,000 databases.
const HUGE: &str = "db-huge";

/// The huge server's inventory: how many objects, how many bytes, and
/// whether it is complete.
fn huge_inventory(inventories: &[DbInventory], instances: &[DbInstance], fleet_writes_at_rest: f64, rest: u64) {
    let parts: Vec<&DbInventory> = inventories
        .iter()
        .filter(|i| {
            i.metadata.name.as_deref() == Some(HUGE) || i.spec.part_of.as_ref().is_some_and(|p| p.instance == HUGE)
        })
        .collect();
    let bytes: Vec<usize> = parts
        .iter()
        .map(|i| serde_json::to_vec(i).map_or(0, |v| v.len()))
        .collect();
    let accounts: usize = parts
        .iter()
        .map(|i| i.spec.accounts.as_ref().map_or(0, |a| a.items.len()))
        .sum();
    let databases: usize = parts
        .iter()
        .map(|i| i.spec.capacity.as_ref().map_or(0, |c| c.databases.len()))
        .sum();
    let status = instances
        .iter()
        .find(|i| i.metadata.name.as_deref() == Some(HUGE))
        .and_then(|i| i.status.as_ref());
    println!("\nThe server of 20,000 accounts and 2,000 databases (`{HUGE}`):\n");
    println!(
        "| DbInventory objects | bytes (total / largest) | accounts listed / in status | databases listed / in status | fleet inventory writes at rest |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| {} | {} / {} | {accounts} / {} | {databases} / {} | {fleet_writes_at_rest:.0} in {rest} s |",
        parts.len(),
        bytes.iter().sum::<usize>(),
        bytes.iter().max().copied().unwrap_or(0),
        status.and_then(|s| s.accounts.as_ref()).map_or(0, |a| a.count),
        status.and_then(|s| s.capacity.as_ref()).map_or(0, |c| c.database_count),
    );
}

/// `dbfleet controller` for shard `shard` of `shards`, with its metrics
/// port; with `DBFLEET_BENCH_PROCESS=run`, `dbfleet run` (the façade in the
/// same process, sharing its watches). `DBFLEET_BENCH_BINARY` runs another
/// build of dbfleet (an older commit's, to compare).
fn start_controller(plane: &ControlPlane, ns: &str, shards: usize, shard: usize) -> Result<(Child, u16)> {
    let free_port = || -> Result<u16> { Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()) };
    let metrics_port = free_port()?;
    let binary = std::env::var("DBFLEET_BENCH_BINARY").unwrap_or_else(|_| env!("CARGO_BIN_EXE_dbfleet").into());
    let mut command = Command::new(binary);
    if std::env::var("DBFLEET_BENCH_PROCESS").as_deref() == Ok("run") {
        let listen = format!("127.0.0.1:{}", free_port()?);
        command.args(["run", "--auth", "disabled", "--listen", &listen]);
    } else {
        command.arg("controller");
    }
    let child = command
        .args(["--namespace", ns, "--concurrency", &controller_concurrency()])
        .args(["--shards", &shards.to_string(), "--identity", &format!("bench-{shard}")])
        .args(["--max-concurrent-probes", &probes_per_process()])
        .args(["--http-addr", &format!("127.0.0.1:{metrics_port}")])
        .env("KUBECONFIG", plane.dir().join("kubeconfig"))
        .env("RUST_LOG", "warn")
        .spawn()
        .context("start the controller")?;
    Ok((child, metrics_port))
}

/// Bare logins from this process against the servers the fleet uses, as
/// many as the fleet's first pass needs: the floor under a cold sweep.
async fn login_ceiling(
    mix: &Mix,
    pg: &DatabaseServer,
    my: &DatabaseServer,
    logins: usize,
) -> Result<(usize, Duration)> {
    let target = |server: &Server| {
        let login = if server.db_type == DbType::Postgresql { pg } else { my };
        Target::new(
            server.db_type,
            server.host.clone(),
            server.port,
            login.user.clone(),
            Password::new(login.password.clone()),
        )
        .with_tls(TlsSettings {
            mode: TlsMode::Disable,
            ca_pem: None,
        })
    };
    let targets: Vec<Target> = (0..logins).map(|i| target(mix.server(i))).collect();
    let started = Instant::now();
    let results: Vec<_> = futures_util::stream::iter(&targets)
        .map(probe::test_connection)
        .buffer_unordered(32)
        .collect()
        .await;
    for result in results {
        result?;
    }
    Ok((logins, started.elapsed()))
}

/// The façade on the fleet the controller left: RSS with every object
/// cached, and list throughput against the API server's.
async fn facade(plane: &ControlPlane, client: &Client, ns: &str, count: usize) -> Result<()> {
    let mut facade = FacadeProcess::start(plane, ns, Duration::from_secs(120)).await?;
    let (base, http) = (facade.base.clone(), reqwest::Client::new());
    let synced_rss = facade.mib("VmRSS:")?;
    let url = format!("{base}/api/v1/instances?limit=100");
    let get = || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let response = http.get(&url).send().await.expect("façade answers");
            assert_eq!(response.status(), 200);
            response.bytes().await.expect("a body");
        }
    };
    measure(200, 8, get).await;
    let via_facade = measure(2000, 8, get).await;
    let api: Api<DbInstance> = Api::namespaced(client.clone(), ns);
    let direct = measure(200, 8, || {
        let api = api.clone();
        async move {
            api.list(&ListParams::default().limit(100)).await.expect("LIST");
        }
    })
    .await;
    let peak = facade.mib("VmHWM:")?;
    let _ = facade.child.kill();
    let _ = facade.child.wait();
    println!("\nThe façade on these {count} instances (8 requests in flight, `limit=100`):\n");
    println!(
        "| façade RSS when synced | façade peak RSS | façade list req/s (p99) | API server LIST req/s (p99) | ratio |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| {synced_rss:.1} MiB | {peak:.1} MiB | {:.0} ({:.1} ms) | {:.0} ({:.1} ms) | {:.0}× |",
        via_facade.rps,
        via_facade.p99.as_secs_f64() * 1000.0,
        direct.rps,
        direct.p99.as_secs_f64() * 1000.0,
        via_facade.rps / direct.rps
    );
    Ok(())
}

/// Gives the test servers tens of databases and accounts (`create`), or
/// drops them again.
async fn small_fixtures(pg: &DatabaseServer, my: &DatabaseServer, create: bool) -> Result<()> {
    let (client, connection) = tokio_postgres::Config::new()
        .host(&pg.host)
        .port(pg.port)
        .user(&pg.user)
        .password(&pg.password)
        .dbname("postgres")
        .connect(tokio_postgres::NoTls)
        .await?;
    tokio::spawn(connection);
    for i in 0..SMALL_DATABASES {
        let name = format!("dbfleet_bench_small_db_{i:02}");
        let present = !client
            .query("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await?
            .is_empty();
        match (create, present) {
            (true, false) => client.batch_execute(&format!("CREATE DATABASE {name}")).await?,
            (false, true) => {
                client
                    .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
                    .await?
            }
            _ => {}
        }
    }
    for i in 0..SMALL_ACCOUNTS {
        let name = format!("dbfleet_bench_small_user_{i:02}");
        let sql = if create {
            format!(
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') THEN CREATE ROLE {name} LOGIN; END IF; END $$"
            )
        } else {
            format!("DROP ROLE IF EXISTS {name}")
        };
        client.batch_execute(&sql).await?;
    }

    use mysql_async::prelude::Queryable;
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(my.host.clone())
        .tcp_port(my.port)
        .user(Some(my.user.clone()))
        .pass(Some(my.password.clone()))
        .prefer_socket(false);
    let mut conn = mysql_async::Conn::new(opts).await?;
    for i in 0..SMALL_DATABASES {
        let name = format!("dbfleet_bench_small_db_{i:02}");
        let sql = if create {
            format!("CREATE DATABASE IF NOT EXISTS {name}")
        } else {
            format!("DROP DATABASE IF EXISTS {name}")
        };
        conn.query_drop(sql).await?;
    }
    for i in 0..SMALL_ACCOUNTS {
        let name = format!("'dbfleet_bench_small_user_{i:02}'@'127.0.0.1'");
        let sql = if create {
            format!("CREATE USER IF NOT EXISTS {name}")
        } else {
            format!("DROP USER IF EXISTS {name}")
        };
        conn.query_drop(sql).await?;
    }
    conn.disconnect().await?;
    Ok(())
}

fn mean_json_bytes<T: serde::Serialize>(items: &[T]) -> f64 {
    if items.is_empty() {
        return 0.0;
    }
    let total: usize = items.iter().map(|i| serde_json::to_vec(i).map_or(0, |v| v.len())).sum();
    total as f64 / items.len() as f64
}

/// Sum of an API-server metric over every label set.
async fn apiserver_metric(client: &Client, prefix: &str) -> Result<f64> {
    let text = client
        .request_text(http::Request::get("/metrics").body(Vec::new())?)
        .await?;
    Ok(sum_metric(&text, prefix))
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
