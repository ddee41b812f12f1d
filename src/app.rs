//! Wiring for the long-running subcommands: clients, HTTP endpoints, leader
//! election and one shutdown signal shared by all of them. This is where
//! flags become the library's plain configuration (`controller::Config`,
//! `api::ApiConfig`); no library module reads a CLI type.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use k8s_openapi::jiff::SignedDuration;
use kube::Client;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api;
use crate::api::auth::{AuthMode, FailedReviewLimit};
use crate::api::caches::Caches;
use crate::cli::{ApiArgs, AuthArg, ControllerArgs, RunArgs, ServeArgs};
use crate::controller::{self, leader};
use crate::health::{self, Health};
use crate::lifecycle;
use crate::metrics::Metrics;
use crate::observe::{InventoryLimits, ProbeBudget, ProbeSettings};
use crate::probe::Timeouts;
use crate::watches::Watches;

pub fn controller_config(args: &ControllerArgs) -> controller::Config {
    controller::Config {
        namespace: args.namespace.clone(),
        concurrency: args.concurrency.max(1),
        retention: args.retention,
        session_ttl: args.session_ttl,
        session_concurrency: args.session_concurrency.max(1),
        shards: args.shards.max(1),
        version_lifecycle: (&args.version_lifecycle).into(),
        history: (&args.history).into(),
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
    let watches = Watches::new(client.clone(), config.namespace.as_deref());
    let work = controllers(
        client,
        &args,
        config,
        Arc::new(Metrics::default()),
        watches,
        shutdown.clone(),
    );
    lifecycle::within_shutdown_budget(&shutdown, work).await?
}

/// `dbfleet api`: serves until SIGTERM or SIGINT, and exits within
/// [`lifecycle::SHUTDOWN_BUDGET`] of it.
pub async fn run_api(args: ApiArgs) -> anyhow::Result<()> {
    let client = Client::try_default()
        .await
        .context("connecting to the Kubernetes API")?;
    let config = api_config(
        &args.serve,
        args.namespace,
        args.retention,
        Timeouts::from(args.timeouts),
        ProbeBudget::new(args.max_concurrent_probes),
        Arc::default(),
    );
    let listener = api::bind(config.auth, args.serve.listen).await?;
    let shutdown = shutdown_on_signal();
    let served = lifecycle::within_shutdown_budget(&shutdown, api::serve(client, config, listener, shutdown.clone()));
    Ok(served.await??)
}

/// The façade's configuration from its flags and what it shares with the
/// controllers under `dbfleet run`.
pub fn api_config(
    serve: &ServeArgs,
    namespace: String,
    retention: std::time::Duration,
    timeouts: Timeouts,
    probe_budget: ProbeBudget,
    metrics: Arc<Metrics>,
) -> api::ApiConfig {
    api::ApiConfig {
        retention: SignedDuration::try_from(retention).unwrap_or(api::DEFAULT_RETENTION),
        metrics,
        timeouts,
        probe_budget,
        failed_reviews: FailedReviewLimit {
            per_minute: serve.failed_token_reviews_per_minute,
            burst: serve.failed_token_review_burst,
        },
        test_connection_interval: serve.test_connection_interval,
        console_idle: serve.console_idle_timeout,
        ..api::ApiConfig::new(namespace, auth_mode(serve.auth))
    }
}

fn auth_mode(flag: AuthArg) -> AuthMode {
    match flag {
        AuthArg::Kubernetes => AuthMode::Kubernetes,
        AuthArg::Disabled => AuthMode::Disabled,
    }
}

/// `dbfleet run`: the controllers and the façade in one process, sharing one
/// client, one watch of each kind both read, one metrics registry, one
/// probe budget and one shutdown signal. The façade serves `--namespace`
/// (default `default`).
pub async fn run_all(args: RunArgs) -> anyhow::Result<()> {
    let client = Client::try_default()
        .await
        .context("connecting to the Kubernetes API")?;
    let shutdown = shutdown_on_signal();
    let metrics = Arc::new(Metrics::default());
    let namespace = args.controller.namespace.clone().unwrap_or_else(|| "default".into());
    let config = controller_config(&args.controller);
    let api_config = api_config(
        &args.serve,
        namespace,
        args.controller.retention,
        Timeouts::from(args.controller.timeouts),
        config.probes.budget.clone(),
        metrics.clone(),
    );
    let listener = api::bind(api_config.auth, args.serve.listen).await?;
    // The façade adds its taps before the controllers start the watches.
    let mut watches = Watches::new(client.clone(), config.namespace.as_deref());
    let caches = Caches::attach(&mut watches, client.clone(), &api_config.namespace);
    let work = async {
        let facade = tokio::spawn(api::serve_from(
            client.clone(),
            api_config,
            caches,
            listener,
            shutdown.clone(),
        ));
        let result = controllers(client, &args.controller, config, metrics, watches, shutdown.clone()).await;
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
    watches: Watches,
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
    let result = run_when_ready(client, args, config, metrics, watches, &ready, &shutdown).await;
    shutdown.cancel();
    http.await??;
    result
}

async fn run_when_ready(
    client: Client,
    args: &ControllerArgs,
    config: controller::Config,
    metrics: Arc<Metrics>,
    watches: Watches,
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
    controller::run_leased_on(
        client,
        config,
        metrics,
        leader,
        watches,
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    #[test]
    fn api_flags_become_the_facade_configuration() {
        let Command::Api(args) = Cli::try_parse_from([
            "dbfleet",
            "api",
            "--namespace",
            "fleet",
            "--auth",
            "disabled",
            "--retention",
            "72h",
            "--connect-timeout",
            "2s",
        ])
        .expect("api parses")
        .command
        else {
            panic!("not api");
        };
        let config = api_config(
            &args.serve,
            args.namespace,
            args.retention,
            Timeouts::from(args.timeouts),
            ProbeBudget::new(args.max_concurrent_probes),
            Arc::default(),
        );
        assert_eq!(config.namespace, "fleet");
        assert_eq!(config.auth, AuthMode::Disabled);
        assert_eq!(config.retention, SignedDuration::from_hours(72));
        assert_eq!(config.timeouts.connect, std::time::Duration::from_secs(2));
        assert_eq!(config.probe_wait, api::DEFAULT_PROBE_WAIT);
        assert_eq!(config.failed_reviews, FailedReviewLimit::default());
        assert_eq!(config.test_connection_interval, api::DEFAULT_TEST_CONNECTION_INTERVAL);
        assert_eq!(config.console_idle, api::DEFAULT_CONSOLE_IDLE);
    }
}
