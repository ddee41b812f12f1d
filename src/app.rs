//! Wiring for the long-running subcommands: clients, HTTP endpoints, leader
//! election and one shutdown signal shared by all of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use kube::Client;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api;
use crate::cli::{ControllerArgs, RunArgs};
use crate::controller::{self, leader};
use crate::health::{self, Health};
use crate::lifecycle;
use crate::metrics::Metrics;
use crate::probe::Timeouts;
use crate::sync::{InventoryLimits, ProbeBudget, ProbeSettings};

pub fn controller_config(args: &ControllerArgs) -> controller::Config {
    controller::Config {
        namespace: args.namespace.clone(),
        concurrency: args.concurrency.max(1),
        retention: args.retention,
        session_ttl: args.session_ttl,
        session_concurrency: args.session_concurrency.max(1),
        shards: args.shards.max(1),
        probes: ProbeSettings {
            timeouts: Timeouts::from(args.timeouts),
            inventory: InventoryLimits {
                size_ratio: args.inventory_size_threshold_percent.max(0.0) / 100.0,
                size_bytes: args.inventory_size_threshold_bytes,
                ..InventoryLimits::default()
            },
            report_interval: args.status_report_interval,
            budget: ProbeBudget::new(args.max_concurrent_probes),
        },
        ..controller::Config::default()
    }
}

/// `dbfleet controller`: runs until SIGTERM or SIGINT, and exits within
/// [`lifecycle::SHUTDOWN_BUDGET`] of it.
pub async fn run_controller(args: ControllerArgs) -> anyhow::Result<()> {
    let client = Client::try_default()
        .await
        .context("connecting to the Kubernetes API")?;
    let shutdown = shutdown_on_signal();
    let config = controller_config(&args);
    let work = controllers(client, &args, config, Arc::new(Metrics::default()), shutdown.clone());
    lifecycle::within_shutdown_budget(&shutdown, work).await?
}

/// `dbfleet run`: the controllers and the façade in one process, sharing one
/// client, one metrics registry, one probe budget and one shutdown signal.
/// The façade serves
/// `--namespace` (default `default`).
pub async fn run_all(args: RunArgs) -> anyhow::Result<()> {
    let client = Client::try_default()
        .await
        .context("connecting to the Kubernetes API")?;
    let shutdown = shutdown_on_signal();
    let metrics = Arc::new(Metrics::default());
    let namespace = args.controller.namespace.clone().unwrap_or_else(|| "default".into());
    let config = controller_config(&args.controller);
    let (api_config, listener) = api::configure(
        &args.serve,
        namespace,
        args.controller.retention,
        Timeouts::from(args.controller.timeouts),
        config.probes.budget.clone(),
        metrics.clone(),
    )
    .await?;
    let work = async {
        let facade = tokio::spawn(api::serve(client.clone(), api_config, listener, shutdown.clone()));
        let result = controllers(client, &args.controller, config, metrics, shutdown.clone()).await;
        // Whatever stopped the controllers stops the façade too.
        shutdown.cancel();
        let served = facade.await;
        result?;
        Ok(served??)
    };
    lifecycle::within_shutdown_budget(&shutdown, work).await?
}

/// Runs the controllers under leader election, and their health endpoints,
/// until `shutdown` is cancelled. There is no way to run them without the
/// Lease: a second process (a rolling update's new pod, a forgotten
/// `dbfleet run`) waits instead of writing beside the first. `/readyz`
/// answers 200 once the API server answered and the Lease exists — both
/// waited for, not failed on.
async fn controllers(
    client: Client,
    args: &ControllerArgs,
    config: controller::Config,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let ready = Arc::new(AtomicBool::new(false));
    let http = health::serve(
        args.http_addr,
        health::router(Health {
            metrics: metrics.clone(),
            ready: ready.clone(),
        }),
        shutdown.clone(),
    );
    let http = tokio::spawn(http);
    let result = run_when_ready(client, args, config, metrics, &ready, &shutdown).await;
    shutdown.cancel();
    http.await??;
    result
}

async fn run_when_ready(
    client: Client,
    args: &ControllerArgs,
    config: controller::Config,
    metrics: Arc<Metrics>,
    ready: &AtomicBool,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let version = lifecycle::until_available("the Kubernetes API server", shutdown, || client.apiserver_version())
        .await
        .context("asking the API server for its version")?;
    let Some(version) = version else { return Ok(()) };
    info!(kubernetes = %version.git_version, "connected to the API server");

    let leader = leader::LeaderConfig {
        lease_name: args.lease_name.clone(),
        lease_namespace: args
            .lease_namespace
            .clone()
            .or_else(|| args.namespace.clone())
            .unwrap_or_else(|| "default".into()),
        identity: args.identity.clone().unwrap_or_else(default_identity),
        lease_seconds: args.lease_seconds.max(2),
    };
    controller::run_leased(
        client,
        config,
        metrics,
        leader,
        || ready.store(true, Ordering::Relaxed),
        shutdown.clone(),
    )
    .await
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}-{}", host.trim(), std::process::id())
}

/// A token cancelled on the first SIGTERM or SIGINT.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(error) => {
                warn!(%error, "cannot listen for SIGTERM");
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => info!("SIGINT: shutting down"),
        }
        cancel.cancel();
    });
    token
}
