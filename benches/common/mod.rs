//! Shared by the benchmark programs (`#[path = "common/mod.rs"]`); each
//! uses part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use dbfleet::crd::keys::CREDENTIAL_LABEL;
use dbfleet_testenv::DatabaseServer;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

/// A labelled credential Secret with `server`'s admin login.
pub async fn login_secret(client: &Client, ns: &str, name: &str, server: &DatabaseServer) -> Result<()> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([(CREDENTIAL_LABEL.to_string(), "true".to_string())])),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([
            ("username".into(), server.user.clone()),
            ("password".into(), server.password.clone()),
        ])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await?;
    Ok(())
}

/// A `/proc/<pid>/status` line's value in KiB (`VmRSS:`, `VmHWM:`).
pub fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with(key)).context(key.to_string())?;
    Ok(line.split_whitespace().nth(1).context("value")?.parse()?)
}

/// Throughput and latency of one measured call.
pub struct Stats {
    pub rps: f64,
    pub p50: std::time::Duration,
    pub p99: std::time::Duration,
}

/// Runs `requests` calls of `call`, `concurrency` at a time.
pub async fn measure<F, Fut>(requests: usize, concurrency: usize, call: F) -> Stats
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use futures_util::StreamExt;
    let started = std::time::Instant::now();
    let mut latencies: Vec<std::time::Duration> = futures_util::stream::iter(0..requests)
        .map(|_| {
            let call = call();
            async move {
                let t = std::time::Instant::now();
                call.await;
                t.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Stats {
        rps: requests as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    }
}

/// `dbfleet api` as a process of its own (so its RSS is its own), auth off,
/// serving `namespace` of `plane`.
pub struct FacadeProcess {
    pub child: std::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// From the start until `/readyz` said every cache and index is synced.
    pub synced_after: std::time::Duration,
}

impl FacadeProcess {
    /// Starts it and waits until it is ready, at most `patience`.
    pub async fn start(
        plane: &dbfleet_testenv::ControlPlane,
        namespace: &str,
        patience: std::time::Duration,
    ) -> Result<FacadeProcess> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dbfleet"))
            .args(["api", "--auth", "disabled", "--namespace", namespace])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("KUBECONFIG", plane.dir().join("kubeconfig"))
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("start the façade")?;
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let started = std::time::Instant::now();
        while !http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            if started.elapsed() > patience {
                let _ = child.kill();
                anyhow::bail!("the façade was not ready within {patience:?}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Ok(FacadeProcess {
            synced_after: started.elapsed(),
            child,
            base,
        })
    }

    /// A `/proc/<pid>/status` value in MiB (`VmRSS:`, `VmHWM:`).
    pub fn mib(&self, key: &str) -> Result<f64> {
        Ok(status_kib(self.child.id(), key)? as f64 / 1024.0)
    }
}
