//! What unrelated Secrets cost the controller (issue 9): stores N Secrets of
//! 10 KiB that dbfleet has nothing to do with (default 5,000), two labelled
//! login Secrets and a few DbInstances on the local servers, then runs one
//! `dbfleet controller` process and reports its resident memory once every
//! instance has a phase (its caches are synced and it has reconciled).
//!
//!     eval "$(scripts/test-env.sh)"
//!     cargo bench --bench unrelated_secrets
//!     # another build of the controller, e.g. before the label selector:
//!     DBFLEET_BENCH_CONTROLLER=/path/to/dbfleet cargo bench --bench unrelated_secrets
//!
//! `cargo test --bench unrelated_secrets` runs the same with debug builds.
//! It prints a Markdown row; docs/benchmarks.md keeps the results. Nothing
//! here asserts a number.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dbfleet::crd::DbInstance;
use dbfleet_testenv::{ControlPlane, DatabaseServer, Options};
use futures_util::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ListParams, ObjectMeta, PostParams};
use serde_json::json;

/// Size of each unrelated Secret's one value.
const SECRET_BYTES: usize = 10 * 1024;
const INSTANCES: usize = 20;
const DEADLINE: Duration = Duration::from_secs(300);
/// After every instance has a phase, let the process settle before reading
/// its memory.
const SETTLE: Duration = Duration::from_secs(5);

#[path = "common/mod.rs"]
mod common;

use common::{login_secret, status_kib};

#[tokio::main]
async fn main() -> Result<()> {
    let count: usize = std::env::var("DBFLEET_BENCH_SECRETS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5000);
    let binary = std::env::var("DBFLEET_BENCH_CONTROLLER").unwrap_or_else(|_| env!("CARGO_BIN_EXE_dbfleet").into());
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let plane = ControlPlane::start(Options {
        crd_dir: Some(root.join("crds")),
        ..Default::default()
    })
    .await?;
    let client = plane.client().await?;
    let ns = plane.create_namespace("bench-secrets").await?;
    let (pg, my) = (DatabaseServer::postgres()?, DatabaseServer::mysql()?);

    // The unrelated Secrets: distinct, incompressible-looking values.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let started = Instant::now();
    let creates = futures_util::stream::iter(0..count).map(|i| {
        let secrets = secrets.clone();
        async move {
            let value: Vec<u8> = (0..SECRET_BYTES)
                .map(|j| (j.wrapping_mul(31).wrapping_add(i.wrapping_mul(7919)) % 251) as u8)
                .collect();
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(format!("app-{i:05}")),
                    ..Default::default()
                },
                data: Some(BTreeMap::from([("blob".to_string(), ByteString(value))])),
                ..Default::default()
            };
            secrets
                .create(&PostParams::default(), &secret)
                .await
                .map_err(anyhow::Error::from)
        }
    });
    let results: Vec<_> = creates.buffer_unordered(32).collect().await;
    results.into_iter().collect::<Result<Vec<_>>>()?;
    eprintln!(
        "stored {count} unrelated Secrets of {SECRET_BYTES} bytes in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    login_secret(&client, &ns, "pg-login", &pg).await?;
    login_secret(&client, &ns, "my-login", &my).await?;
    let instances: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    for i in 0..INSTANCES {
        let (server, db_type, secret) = if i % 2 == 0 {
            (&pg, "postgresql", "pg-login")
        } else {
            (&my, "mysql", "my-login")
        };
        let manifest = json!({
            "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInstance",
            "metadata": {"name": format!("db-{i:03}")},
            "spec": {"dbType": db_type, "host": server.host, "port": server.port,
                     "credentialsSecretRef": {"name": secret}, "tls": {"mode": "disable"}},
        });
        instances
            .create(&PostParams::default(), &serde_json::from_value(manifest)?)
            .await?;
    }

    let mut controller = std::process::Command::new(&binary)
        .args(["controller", "--namespace", &ns])
        .args(["--http-addr", "127.0.0.1:0"])
        .env("KUBECONFIG", plane.dir().join("kubeconfig"))
        .env("RUST_LOG", "warn")
        .spawn()
        .with_context(|| format!("start {binary}"))?;
    let started = Instant::now();
    let elapsed = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let list = instances.list(&ListParams::default()).await?;
        let with_phase = list
            .items
            .iter()
            .filter(|i| i.status.as_ref().and_then(|s| s.phase).is_some())
            .count();
        if with_phase == INSTANCES {
            break started.elapsed();
        }
        if started.elapsed() > DEADLINE {
            let _ = controller.kill();
            bail!("only {with_phase} of {INSTANCES} instances have a phase after {DEADLINE:?}");
        }
    };
    tokio::time::sleep(SETTLE).await;
    let (rss, peak) = (
        status_kib(controller.id(), "VmRSS:")?,
        status_kib(controller.id(), "VmHWM:")?,
    );
    controller.kill()?;
    controller.wait()?;

    println!("| unrelated Secrets | instances | every instance reconciled after | RSS then | peak RSS |");
    println!("|---|---|---|---|---|");
    println!(
        "| {count} × {} KiB | {INSTANCES} | {:.1} s | {:.1} MiB | {:.1} MiB |",
        SECRET_BYTES / 1024,
        elapsed.as_secs_f64(),
        rss as f64 / 1024.0,
        peak as f64 / 1024.0,
    );
    Ok(())
}
