//! A private Kubernetes control plane: etcd and kube-apiserver on free
//! loopback ports, RBAC on, an admin client certificate, the dbfleet CRDs
//! installed and Established.
//!
//! Binaries are found the way Go's envtest finds them: `TEST_ASSET_ETCD` and
//! `TEST_ASSET_KUBE_APISERVER`, else the directory in `KUBEBUILDER_ASSETS`.
//! `scripts/test-env.sh` builds them and sets that variable.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::certs;
use crate::process::{Signal, Supervisor, signal};

const READY_TIMEOUT: Duration = Duration::from_secs(90);
const FIELD_MANAGER: &str = "dbfleet-testenv";

#[derive(Default, Debug, Clone)]
pub struct Options {
    /// Keep state here (and leave it behind) instead of a fresh temporary
    /// directory that is removed on drop.
    pub state_dir: Option<PathBuf>,
    /// Port for the API server; a free one when absent.
    pub api_port: Option<u16>,
    /// Apply every `*.yaml` CRD in this directory and wait until Established.
    pub crd_dir: Option<PathBuf>,
}

pub struct ControlPlane {
    /// Owns the etcd and kube-apiserver processes; taken on drop.
    supervisor: Option<Supervisor>,
    apiserver_pid: u32,
    dir: PathBuf,
    remove_dir: bool,
    url: String,
    ca_pem: String,
    admin_kubeconfig: String,
}

impl ControlPlane {
    pub async fn start(options: Options) -> Result<ControlPlane> {
        let (etcd_bin, apiserver_bin) = binaries()?;
        let (dir, remove_dir) = match &options.state_dir {
            Some(dir) => (dir.clone(), false),
            None => (fresh_temp_dir()?, true),
        };
        std::fs::create_dir_all(&dir)?;
        let pki = certs::generate(&dir)?;

        let etcd_port = free_port()?;
        let etcd_peer_port = free_port()?;
        let api_port = match options.api_port {
            Some(port) => port,
            None => free_port()?,
        };
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer_port}");

        let supervisor = Supervisor::new();
        let mut etcd = Command::new(&etcd_bin);
        etcd.arg(format!("--data-dir={}", dir.join("etcd").display()))
            .arg(format!("--listen-client-urls={etcd_url}"))
            .arg(format!("--advertise-client-urls={etcd_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=default={peer_url}"))
            // Test data is throwaway: skipping fsync makes every write cheap.
            .arg("--unsafe-no-fsync")
            .arg("--log-level=warn");
        supervisor.spawn(etcd, dir.join("etcd.log"))?;

        let mut apiserver = Command::new(&apiserver_bin);
        apiserver
            .arg(format!("--etcd-servers={etcd_url}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg(format!("--secure-port={api_port}"))
            .arg(format!("--cert-dir={}", dir.display()))
            .arg(format!("--tls-cert-file={}", pki.serving_cert.display()))
            .arg(format!("--tls-private-key-file={}", pki.serving_key.display()))
            .arg(format!("--client-ca-file={}", pki.ca_cert.display()))
            .arg("--authorization-mode=RBAC")
            .arg("--service-account-issuer=https://kubernetes.default.svc")
            .arg(format!(
                "--service-account-key-file={}",
                pki.service_account_public.display()
            ))
            .arg(format!(
                "--service-account-signing-key-file={}",
                pki.service_account_private.display()
            ))
            .arg("--service-cluster-ip-range=10.0.0.0/24")
            // Without a controller-manager nothing reconciles the kubernetes
            // Service's endpoints; the default reconciler only logs errors.
            .arg("--endpoint-reconciler-type=none")
            .arg("--enable-priority-and-fairness=false")
            // `/debug/pprof` on request (`DBFLEET_APISERVER_PROFILING=1`), to
            // see where a benchmark's API-server time goes.
            .arg(format!(
                "--profiling={}",
                std::env::var_os("DBFLEET_APISERVER_PROFILING").is_some()
            ))
            .arg("--v=0");
        let apiserver_pid = supervisor.spawn(apiserver, dir.join("kube-apiserver.log"))?;

        let url = format!("https://127.0.0.1:{api_port}");
        let admin_kubeconfig = kubeconfig_yaml(
            &url,
            &pki.ca_pem,
            serde_json::json!({
                "client-certificate-data": b64(&pki.admin_cert_pem),
                "client-key-data": b64(&pki.admin_key_pem),
            }),
        );
        std::fs::write(dir.join("kubeconfig"), &admin_kubeconfig)?;

        let plane = ControlPlane {
            supervisor: Some(supervisor),
            apiserver_pid,
            dir,
            remove_dir,
            url,
            ca_pem: pki.ca_pem,
            admin_kubeconfig,
        };
        plane.wait_ready().await?;
        if let Some(crd_dir) = &options.crd_dir {
            plane.install_crds(crd_dir).await?;
        }
        Ok(plane)
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where the kubeconfig, certificates, etcd data and logs are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Freezes kube-apiserver (SIGSTOP): connections stay open and every
    /// request hangs, as when the API server or its etcd stops answering.
    /// It runs again when the returned guard is dropped.
    pub fn freeze_api_server(&self) -> Result<Frozen> {
        signal(self.apiserver_pid, Signal::Stop)?;
        Ok(Frozen(self.apiserver_pid))
    }

    /// A kubeconfig for a cluster admin (a client certificate in
    /// `system:masters`).
    pub fn admin_kubeconfig(&self) -> &str {
        &self.admin_kubeconfig
    }

    /// A new admin client. Build one per test: a client belongs to the tokio
    /// runtime it was created on.
    pub async fn client(&self) -> Result<Client> {
        client_from_kubeconfig(&self.admin_kubeconfig).await
    }

    /// A client that authenticates with a bearer token (e.g. a ServiceAccount's).
    pub async fn client_with_token(&self, token: &str) -> Result<Client> {
        let kubeconfig = kubeconfig_yaml(&self.url, &self.ca_pem, serde_json::json!({ "token": token }));
        client_from_kubeconfig(&kubeconfig).await
    }

    /// Creates the ServiceAccount if needed and mints a one-hour token for it
    /// through the TokenRequest API.
    pub async fn service_account_token(&self, namespace: &str, name: &str) -> Result<String> {
        let client = self.client().await?;
        let accounts: Api<ServiceAccount> = Api::namespaced(client, namespace);
        let account = ServiceAccount {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        match accounts.create(&PostParams::default(), &account).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..Default::default()
            }),
            ..Default::default()
        };
        let issued = accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await?;
        issued
            .status
            .and_then(|s| s.token)
            .context("TokenRequest returned no token")
    }

    /// Creates a namespace named `<prefix>-<unique suffix>` and returns its
    /// name. Tests each take their own: without a controller-manager a
    /// deleted namespace never finishes terminating.
    pub async fn create_namespace(&self, prefix: &str) -> Result<String> {
        let namespaces: Api<Namespace> = Api::all(self.client().await?);
        let ns = Namespace {
            metadata: kube::api::ObjectMeta {
                generate_name: Some(format!("{prefix}-")),
                ..Default::default()
            },
            ..Default::default()
        };
        let created = namespaces.create(&PostParams::default(), &ns).await?;
        created.metadata.name.context("created namespace has no name")
    }

    /// Server-side applies every CRD in `dir` and waits until each is
    /// Established.
    pub async fn install_crds(&self, dir: &Path) -> Result<()> {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client().await?);
        let mut names = Vec::new();
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("read {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path)?;
            let crd: CustomResourceDefinition =
                serde_yaml::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
            let name = crd.metadata.name.clone().context("CRD without a name")?;
            crds.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&crd))
                .await
                .with_context(|| format!("apply {}", path.display()))?;
            names.push(name);
        }
        for name in names {
            let established = kube::runtime::wait::await_condition(
                crds.clone(),
                &name,
                kube::runtime::wait::conditions::is_crd_established(),
            );
            tokio::time::timeout(Duration::from_secs(30), established)
                .await
                .with_context(|| format!("CRD {name} not Established within 30s"))??;
        }
        Ok(())
    }

    async fn wait_ready(&self) -> Result<()> {
        let started = Instant::now();
        let client = self.client().await?;
        let mut last_error = String::new();
        while started.elapsed() < READY_TIMEOUT {
            let request = http::Request::get("/readyz").body(Vec::new())?;
            match client.request_text(request).await {
                Ok(body) if body.trim() == "ok" => return Ok(()),
                Ok(body) => last_error = body,
                Err(e) => last_error = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!(
            "kube-apiserver not ready after {READY_TIMEOUT:?}: {last_error}\n--- kube-apiserver.log (tail) ---\n{}\n--- etcd.log (tail) ---\n{}",
            tail(&self.dir.join("kube-apiserver.log")),
            tail(&self.dir.join("etcd.log")),
        )
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // Stop the processes before removing their files.
        drop(self.supervisor.take());
        if self.remove_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn binaries() -> Result<(PathBuf, PathBuf)> {
    let assets = std::env::var_os("KUBEBUILDER_ASSETS").map(PathBuf::from);
    let find = |override_var: &str, name: &str| -> Result<PathBuf> {
        let path = std::env::var_os(override_var)
            .map(PathBuf::from)
            .or_else(|| assets.as_ref().map(|dir| dir.join(name)))
            .with_context(|| {
                format!("no {name}: set KUBEBUILDER_ASSETS (scripts/test-env.sh builds the binaries and prints it)")
            })?;
        if !path.is_file() {
            bail!("{} does not exist; run scripts/test-env.sh to build it", path.display());
        }
        Ok(path)
    };
    Ok((
        find("TEST_ASSET_ETCD", "etcd")?,
        find("TEST_ASSET_KUBE_APISERVER", "kube-apiserver")?,
    ))
}

/// A new directory under the system temp dir. Directories left behind by
/// runs that were killed (their pid is gone) are removed on the way.
fn fresh_temp_dir() -> Result<PathBuf> {
    let base = std::env::temp_dir();
    if let Ok(entries) = std::fs::read_dir(&base) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("dbfleet-testenv-")) else {
                continue;
            };
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = base.join(format!("dbfleet-testenv-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn kubeconfig_yaml(url: &str, ca_pem: &str, user: serde_json::Value) -> String {
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "dbfleet-testenv", "cluster": {
            "server": url,
            "certificate-authority-data": b64(ca_pem),
        }}],
        "users": [{"name": "dbfleet-testenv", "user": user}],
        "contexts": [{"name": "dbfleet-testenv", "context": {"cluster": "dbfleet-testenv", "user": "dbfleet-testenv"}}],
        "current-context": "dbfleet-testenv",
    });
    serde_yaml::to_string(&config).expect("a kubeconfig serializes")
}

async fn client_from_kubeconfig(yaml: &str) -> Result<Client> {
    let kubeconfig = Kubeconfig::from_yaml(yaml)?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// A frozen kube-apiserver; dropping this lets it run again (SIGCONT).
pub struct Frozen(u32);

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = signal(self.0, Signal::Continue);
    }
}
