//! `dbfleet run` as the process it is in production, against a private
//! control plane: it waits for a namespace that does not exist yet instead
//! of exiting, and it exits within 10 s of SIGTERM even when the API server
//! stops answering.

#[path = "../support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use dbfleet::crd::DbInstance;
use dbfleet::crd::instance::Phase;
use dbfleet_testenv::{ControlPlane, DatabaseServer, Options, Signal};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::json;
use support::controller as ctl;

/// What the issue promises: gone within 10 s of SIGTERM, whatever the API
/// server does (Kubernetes sends SIGKILL after 30 s).
const EXIT_DEADLINE: Duration = Duration::from_secs(10);

/// A `dbfleet run` process serving one namespace, its log in a file.
struct Dbfleet {
    child: tokio::process::Child,
    log: PathBuf,
    metrics: String,
    facade: String,
}

impl Dbfleet {
    async fn start(kubeconfig: &Path, namespace: &str, log: PathBuf) -> Dbfleet {
        let (metrics_port, facade_port) = (free_port(), free_port());
        let out = std::fs::File::create(&log).unwrap();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_dbfleet"))
            .args(["run", "--namespace", namespace, "--lease-namespace", namespace])
            .args(["--http-addr", &format!("127.0.0.1:{metrics_port}")])
            .args(["--listen", &format!("127.0.0.1:{facade_port}")])
            .args(["--connect-timeout", "3s"])
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .expect("start dbfleet run");
        Dbfleet {
            child,
            log,
            metrics: format!("http://127.0.0.1:{metrics_port}/readyz"),
            facade: format!("http://127.0.0.1:{facade_port}/readyz"),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics, with the log, when the process has exited.
    fn assert_running(&mut self, when: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("dbfleet exited ({status}) {when}; its log:\n{}", self.log());
        }
    }

    /// The `/readyz` statuses of the controllers and of the façade.
    async fn readiness(&self) -> (Option<u16>, Option<u16>) {
        let http = reqwest::Client::new();
        let status = |url: &str| {
            let request = http.get(url).timeout(Duration::from_secs(2)).send();
            async move { request.await.ok().map(|r| r.status().as_u16()) }
        };
        (status(&self.metrics).await, status(&self.facade).await)
    }

    /// SIGTERM, then how long until the process had exited, and how.
    async fn terminate(&mut self) -> (Duration, ExitStatus) {
        let pid = self.child.id().expect("dbfleet is running");
        let sent = Instant::now();
        dbfleet_testenv::signal(pid, Signal::Terminate).unwrap();
        match tokio::time::timeout(EXIT_DEADLINE * 3, self.child.wait()).await {
            Ok(status) => {
                let took = sent.elapsed();
                eprintln!("dbfleet exited {took:?} after SIGTERM");
                (took, status.unwrap())
            }
            Err(_) => panic!(
                "dbfleet still runs {:?} after SIGTERM; its log:\n{}",
                EXIT_DEADLINE * 3,
                self.log()
            ),
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A credential Secret with the local PostgreSQL's admin login, and a
/// DbInstance probing that server with it.
async fn create_instance(client: &Client, namespace: &str, name: &str) {
    let pg = DatabaseServer::postgres().unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "login", "labels": {"dbfleet.io/credential": "true"}},
        "stringData": {"username": pg.user, "password": pg.password},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let instance: DbInstance = serde_json::from_value(json!({
        "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInstance", "metadata": {"name": name},
        "spec": {"dbType": "postgresql", "host": pg.host, "port": pg.port,
                 "credentialsSecretRef": {"name": "login"}, "tls": {"mode": "disable"}},
    }))
    .unwrap();
    Api::<DbInstance>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &instance)
        .await
        .unwrap();
}

async fn ready_instance(client: &Client, namespace: &str, name: &str) {
    let api: Api<DbInstance> = Api::namespaced(client.clone(), namespace);
    ctl::instance_where(&api, name, "Ready", |i| {
        i.status.as_ref().and_then(|s| s.phase) == Some(Phase::Ready)
    })
    .await;
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dbfleet-lifecycle-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn it_waits_for_a_namespace_created_later_and_becomes_ready_without_a_restart() {
    let plane = support::control_plane().await;
    let client = plane.client().await.unwrap();
    let namespace = format!("late-{}", std::process::id());
    let dir = scratch_dir("late");
    let mut dbfleet = Dbfleet::start(&plane.dir().join("kubeconfig"), &namespace, dir.join("dbfleet.log")).await;

    // Ten seconds without its namespace: still running, not ready, and it
    // said once what it waits for (not once per retry).
    tokio::time::sleep(Duration::from_secs(10)).await;
    dbfleet.assert_running("while its namespace did not exist");
    assert_eq!(
        dbfleet.readiness().await,
        (Some(503), Some(503)),
        "ready without a namespace"
    );
    let log = dbfleet.log();
    for waits_for in ["the leader Lease", "the CSRF key Secret"] {
        let lines = log
            .lines()
            .filter(|l| l.contains(&format!("waiting for namespace \"{namespace}\"")) && l.contains(waits_for))
            .count();
        assert_eq!(lines, 1, "one line saying it waits for {waits_for}; the log:\n{log}");
    }

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let created: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap();
    namespaces.create(&PostParams::default(), &created).await.unwrap();
    create_instance(&client, &namespace, "late-db").await;
    ready_instance(&client, &namespace, "late-db").await;
    ctl::eventually(Duration::from_secs(30), "both /readyz 200", || async {
        let readiness = dbfleet.readiness().await;
        (
            (readiness == (Some(200), Some(200))).then_some(()),
            format!("{readiness:?}"),
        )
    })
    .await;
    dbfleet.assert_running("after its namespace appeared");

    let (took, status) = dbfleet.terminate().await;
    assert!(status.success(), "exit status {status}; the log:\n{}", dbfleet.log());
    assert!(took < EXIT_DEADLINE, "took {took:?} to exit");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn it_exits_within_ten_seconds_of_sigterm_while_the_api_server_is_frozen() {
    // A control plane of its own: freezing the shared one would stall the
    // other test.
    let plane = ControlPlane::start(Options {
        crd_dir: Some(support::repo_root().join("crds")),
        ..Default::default()
    })
    .await
    .expect("start a private control plane");
    let client = plane.client().await.unwrap();
    let namespace = plane.create_namespace("frozen").await.unwrap();
    create_instance(&client, &namespace, "db").await;
    let dir = scratch_dir("frozen");
    let mut dbfleet = Dbfleet::start(&plane.dir().join("kubeconfig"), &namespace, dir.join("dbfleet.log")).await;
    ready_instance(&client, &namespace, "db").await;
    ctl::eventually(Duration::from_secs(30), "both /readyz 200", || async {
        let readiness = dbfleet.readiness().await;
        (
            (readiness == (Some(200), Some(200))).then_some(()),
            format!("{readiness:?}"),
        )
    })
    .await;

    let frozen = plane.freeze_api_server().unwrap();
    // A façade request in flight, stuck on the frozen API server (its token
    // needs a TokenReview), so the façade has something to drain.
    let facade = dbfleet.facade.replace("/readyz", "/api/v1/instances");
    let stuck = tokio::spawn(async move {
        reqwest::Client::new()
            .get(facade)
            .bearer_auth("a-token-the-api-server-must-review")
            .send()
            .await
    });
    // Let the lease renewal, the watches and the request hang.
    tokio::time::sleep(Duration::from_secs(2)).await;
    dbfleet.assert_running("with the API server frozen");

    let (took, _) = dbfleet.terminate().await;
    drop(frozen);
    stuck.abort();
    let log = dbfleet.log();
    assert!(
        took < EXIT_DEADLINE,
        "took {took:?} to exit after SIGTERM with the API server frozen; the log:\n{log}"
    );
    assert!(log.contains("SIGTERM: shutting down"), "{log}");
    let _ = std::fs::remove_dir_all(dir);
}
