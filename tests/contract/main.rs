//! The OpenAPI contract against the real façade (SPEC §3.7, §5): a
//! `dbfleet api` process serving a namespace no controller watches, on the
//! private control plane, with authentication on.
//!
//! - openapi-spec-validator accepts the committed and the served document;
//! - schemathesis fuzzes every operation that opens no database connection,
//!   with a real ServiceAccount token and its CSRF token, and its default
//!   checks find nothing; the same run against a document that lies fails;
//! - a client generated from `docs/openapi.json` by openapi-python-client
//!   creates, lists, updates and deletes an instance.
//!
//! The Python tools come from `scripts/python-tools.sh` (pinned, cached),
//! which `scripts/test.sh` runs: `DBFLEET_PYTHON_TOOLS` names its
//! virtualenv. Without it these tests fail, saying so.

#[path = "../support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use dbfleet::crd::{DbInstance, DbInventory, DbTag};

/// Ids of the objects every façade starts with, far above what the id
/// counters reach in a test, so the fuzzer does not delete them by chance.
const SEED_ID: i64 = 900_001;
const SEED_TAG: &str = "seed-tag";
const SEED_INSTANCE: &str = "seed-instance";
const SEED_CREDENTIAL: &str = "seed-login";

/// A port nothing listens on: the seeded instance points at it (no
/// controller probes it, and nothing the façade does here would).
const CLOSED_PORT: u16 = 1;

/// One Python tool at a time: the machine has two cores.
static PYTHON: Mutex<()> = Mutex::const_new(());

/// The virtualenv of scripts/python-tools.sh.
fn tools() -> PathBuf {
    let venv = std::env::var_os("DBFLEET_PYTHON_TOOLS").unwrap_or_else(|| {
        panic!(
            "DBFLEET_PYTHON_TOOLS is not set: the contract tests need schemathesis, openapi-spec-validator and \
             openapi-python-client. Run them with scripts/test.sh, or eval \"$(scripts/python-tools.sh)\" first."
        )
    });
    let venv = PathBuf::from(venv);
    assert!(
        venv.join(".installed").is_file(),
        "{} is not a complete virtualenv from scripts/python-tools.sh; run that script again",
        venv.display()
    );
    venv
}

fn tool(name: &str) -> PathBuf {
    tools().join("bin").join(name)
}

/// A `dbfleet api` process serving a fresh namespace, and a caller allowed
/// everything on instances and tags there.
struct Facade {
    base: String,
    token: String,
    csrf: String,
    _child: tokio::process::Child,
    log: PathBuf,
}

impl Facade {
    async fn start(prefix: &str) -> Facade {
        let plane = support::control_plane().await;
        let (admin, namespace) = support::admin_in_fresh_namespace(prefix).await;
        seed(&admin, &namespace).await;
        let token = caller(&admin, &namespace).await;
        let port = free_port();
        let log = plane.dir().join(format!("{namespace}-facade.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_dbfleet"))
            .args([
                "api",
                "--namespace",
                &namespace,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .env("KUBECONFIG", plane.dir().join("kubeconfig"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .expect("start dbfleet api");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let ready = async {
            loop {
                if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
                    if r.status() == 200 {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(60), ready).await.is_err() {
            panic!(
                "the façade never became ready; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        let answer: Value = http
            .get(format!("{base}/api/v1/auth/csrf-token"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let csrf = answer["data"]["csrf_token"].as_str().expect("a CSRF token").to_string();
        Facade {
            base,
            token,
            csrf,
            _child: child,
            log,
        }
    }

    async fn served_document(&self) -> Value {
        reqwest::get(format!("{}/api/v1/openapi.json", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A credential, a tag and an instance using both, with ids far from the
/// ones the fuzzer draws, so requests that must name existing objects can
/// (see `schemathesis_hooks.py`). Created as `kubectl` would, with their id
/// labels set (no controller runs to give them ids); the credential's id
/// recorded in the id ConfigMap as the controller would, from its label.
async fn seed(admin: &Client, namespace: &str) {
    let id = SEED_ID.to_string();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": SEED_CREDENTIAL, "labels": {"dbfleet.io/credential": "true", "dbfleet.io/id": id}},
        "stringData": {"username": "nobody", "password": "never-sent"},
    }))
    .unwrap();
    Api::<Secret>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    dbfleet::ids::IdAllocator::new(admin.clone(), namespace)
        .record_credentials(
            &[dbfleet::ids::CredentialSecret {
                name: SEED_CREDENTIAL.into(),
                labelled_id: Some(SEED_ID),
            }],
            false,
        )
        .await
        .unwrap();
    let tag: DbTag = serde_json::from_value(json!({
        "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbTag",
        "metadata": {"name": SEED_TAG, "labels": {"dbfleet.io/id": id}},
        "spec": {"displayName": "Seed", "category": "test"},
    }))
    .unwrap();
    Api::<DbTag>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &tag)
        .await
        .unwrap();
    let instance: DbInstance = serde_json::from_value(json!({
        "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInstance",
        "metadata": {"name": SEED_INSTANCE, "labels": {"dbfleet.io/id": id}},
        "spec": {"dbType": "postgresql", "host": "127.0.0.1", "port": CLOSED_PORT, "tags": [SEED_TAG],
            "credentialsSecretRef": {"name": SEED_CREDENTIAL}},
    }))
    .unwrap();
    Api::<DbInstance>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &instance)
        .await
        .unwrap();
    // Its details, so the inventory endpoints answer with content too.
    let inventory: DbInventory = serde_json::from_value(json!({
        "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInventory",
        "metadata": {"name": SEED_INSTANCE},
        "spec": {"dbType": "postgresql",
            "capacity": {"collectedAt": "2026-01-08T00:00:00Z", "databaseCount": 2, "totalSizeBytes": 30,
                "databases": [{"name": "orders", "sizeBytes": 20, "tableCount": 3}, {"name": "postgres", "sizeBytes": 10}],
                "contentHash": "c"},
            "accounts": {"syncedAt": "2026-01-08T00:00:00Z", "count": 2, "superuserCount": 1, "contentHash": "a",
                "items": [
                    {"name": "app", "superuser": false, "canLogin": true, "locked": false, "roles": ["readers"],
                     "validUntil": "2030-01-01T00:00:00Z",
                     "databases": [{"name": "orders", "privileges": ["CONNECT", "CREATE"], "grantOption": true}]},
                    {"name": "postgres", "superuser": true, "canLogin": true, "locked": false,
                     "attributes": ["CREATEDB"], "databases": [{"name": "orders", "owner": true}]}]}},
    }))
    .unwrap();
    Api::<DbInventory>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &inventory)
        .await
        .unwrap();
}

/// A ServiceAccount allowed every verb the façade checks on instances,
/// tags and inventories, and a token for it from the TokenRequest API.
async fn caller(admin: &Client, namespace: &str) -> String {
    let resources = ["dbinstances", "dbtags", "dbinventories"];
    let verbs = ["get", "list", "create", "update", "delete"];
    support::service_account_token(admin, namespace, "contract", &resources, &verbs).await
}

/// What a tool printed, and whether it succeeded.
struct Run {
    ok: bool,
    output: String,
    took: Duration,
}

/// Runs `command` to completion (at most `limit`), one Python tool at a time.
async fn run(mut command: tokio::process::Command, limit: Duration) -> Run {
    let _one_at_a_time = PYTHON.lock().await;
    let started = Instant::now();
    command.stdin(Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(limit, command.output())
        .await
        .unwrap_or_else(|_| panic!("{command:?} ran longer than {limit:?}"))
        .unwrap_or_else(|e| panic!("{command:?} did not start: {e}"));
    Run {
        ok: output.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
        took: started.elapsed(),
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dbfleet-contract-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn committed_document_path() -> PathBuf {
    support::repo_root().join("docs/openapi.json")
}

fn here() -> PathBuf {
    support::repo_root().join("tests/contract")
}

// ---------------------------------------------------------------- validator

async fn validate(path: &Path) -> Run {
    let mut command = tokio::process::Command::new(tool("openapi-spec-validator"));
    command.args(["--errors", "all"]).arg(path);
    run(command, Duration::from_secs(120)).await
}

#[tokio::test]
async fn the_committed_and_the_served_document_are_valid_openapi() {
    let committed = validate(&committed_document_path()).await;
    assert!(committed.ok, "docs/openapi.json:\n{}", committed.output);

    let facade = Facade::start("contract-valid").await;
    let served = facade.served_document().await;
    let dir = scratch("valid");
    let path = dir.join("served.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&served).unwrap()).unwrap();
    let checked = validate(&path).await;
    assert!(checked.ok, "/api/v1/openapi.json:\n{}", checked.output);
    let on_disk: Value = serde_json::from_slice(&std::fs::read(committed_document_path()).unwrap()).unwrap();
    assert_eq!(
        served, on_disk,
        "the façade serves a document other than docs/openapi.json"
    );

    // The validator is not a rubber stamp: a response without its
    // description (what the document had before) is refused.
    let mut broken = served.clone();
    broken["paths"]["/api/v1/auth/csrf-token"]["get"]["responses"]["200"]
        .as_object_mut()
        .unwrap()
        .remove("description");
    std::fs::write(&path, serde_json::to_vec(&broken).unwrap()).unwrap();
    let refused = validate(&path).await;
    assert!(
        !refused.ok && refused.output.contains("description"),
        "{}",
        refused.output
    );
}

// ---------------------------------------------------------------- fuzzer

/// Operations that make the façade open a database connection (an ad-hoc
/// connection test dials the host in the body) or wait for a controller's
/// answer (none runs here): never fuzzed, so no generated host is dialled.
/// `schemathesis_hooks.py` refuses to send a request to any of them.
const DIALLING: &str =
    "^/api/v1/instances/(actions/(test-connection|batch-test-connections)|\\{id\\}/actions/sync-(capacity|accounts))$";

/// Generated cases per operation and phase: enough to find what the first
/// run found, small enough for a few minutes on two shared cores.
const MAX_EXAMPLES: &str = "60";
const SEED: &str = "20260108";

fn schemathesis(facade: &Facade, schema: &str, dir: &Path, extra: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(tool("st"));
    command
        .current_dir(dir)
        .arg("--config-file")
        .arg(here().join("schemathesis.toml"))
        .args(["run", schema, "--url", &facade.base])
        .args(["--header", &format!("Authorization: Bearer {}", facade.token)])
        .args(["--header", &format!("X-CSRFToken: {}", facade.csrf)])
        .args(["--exclude-path-regex", DIALLING])
        .args(["--seed", SEED, "--max-examples", MAX_EXAMPLES])
        .args(["--workers", "1", "--request-timeout", "30", "--no-color"])
        .args(extra)
        .env("PYTHONPATH", here())
        .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
        .env("DBFLEET_URL", &facade.base)
        .env("DBFLEET_TOKEN", &facade.token)
        .env("DBFLEET_CSRF", &facade.csrf)
        .env("DBFLEET_SEED_CREDENTIAL_ID", SEED_ID.to_string())
        .env("DBFLEET_CLOSED_PORT", CLOSED_PORT.to_string())
        .env("DBFLEET_DIALLING", DIALLING);
    command
}

/// The summary line schemathesis ends with, e.g. "1234 generated in 95.1s".
fn summary(output: &str) -> String {
    output
        .lines()
        .filter(|l| l.contains("generated") || l.contains("passed") || l.contains("failed"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn schemathesis_finds_no_failure() {
    let facade = Facade::start("contract-fuzz").await;
    let dir = scratch("fuzz");
    let url = format!("{}/api/v1/openapi.json", facade.base);
    let run = run(schemathesis(&facade, &url, &dir, &[]), Duration::from_secs(600)).await;
    eprintln!("schemathesis took {:?}:\n{}", run.took, summary(&run.output));
    assert!(
        run.ok,
        "schemathesis found failures:\n{}\n\nthe façade's log:\n{}",
        run.output,
        facade.log()
    );
    assert!(!facade.log().contains("panicked"), "{}", facade.log());
}

/// The same run turns red when the document lies: here it claims a list's
/// `total` is a string, and that a port above 65535 is fine.
#[tokio::test]
async fn schemathesis_fails_on_a_document_that_lies() {
    let facade = Facade::start("contract-lies").await;
    let dir = scratch("lies");
    let truth = facade.served_document().await;

    let mut lie = truth.clone();
    lie["components"]["schemas"]["Paged_TagView"]["properties"]["total"] = json!({"type": "string"});
    let path = dir.join("response-lie.json");
    std::fs::write(&path, serde_json::to_vec(&lie).unwrap()).unwrap();
    let only_tag_list = ["--include-operation-id", "tags_list"];
    let run_lie = run(
        schemathesis(&facade, path.to_str().unwrap(), &dir, &only_tag_list),
        Duration::from_secs(300),
    )
    .await;
    assert!(
        !run_lie.ok && run_lie.output.contains("Response violates schema"),
        "{}",
        run_lie.output
    );

    let mut lie = truth.clone();
    lie["components"]["schemas"]["ConnectionParamsInput"]["properties"]["port"]
        .as_object_mut()
        .unwrap()
        .remove("maximum");
    let path = dir.join("request-lie.json");
    std::fs::write(&path, serde_json::to_vec(&lie).unwrap()).unwrap();
    let only_validate = ["--include-operation-id", "instances_validate_connection_params"];
    let run_lie = run(
        schemathesis(&facade, path.to_str().unwrap(), &dir, &only_validate),
        Duration::from_secs(300),
    )
    .await;
    assert!(
        !run_lie.ok && run_lie.output.contains("Valid data should have been accepted"),
        "{}",
        run_lie.output
    );

    // And the truth, on the same operations, is green.
    let path = dir.join("truth.json");
    std::fs::write(&path, serde_json::to_vec(&truth).unwrap()).unwrap();
    let both = [
        "--include-operation-id",
        "tags_list",
        "--include-operation-id",
        "instances_validate_connection_params",
    ];
    let run_truth = run(
        schemathesis(&facade, path.to_str().unwrap(), &dir, &both),
        Duration::from_secs(300),
    )
    .await;
    assert!(run_truth.ok, "{}", run_truth.output);
}

// ---------------------------------------------------------------- client

#[tokio::test]
async fn a_client_generated_from_the_document_round_trips_an_instance() {
    let dir = scratch("client");
    let mut generate = tokio::process::Command::new(tool("openapi-python-client"));
    // The generator formats its output with ruff, from the same virtualenv.
    let path = format!(
        "{}:{}",
        tools().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    generate
        .current_dir(&dir)
        .env("PATH", path)
        .args([
            "generate",
            "--meta",
            "none",
            "--output-path",
            "dbfleet_client",
            "--path",
        ])
        .arg(committed_document_path());
    let generated = run(generate, Duration::from_secs(300)).await;
    assert!(
        generated.ok,
        "openapi-python-client refused the document:\n{}",
        generated.output
    );
    assert!(
        !generated.output.contains("Warning"),
        "openapi-python-client could not read all of the document:\n{}",
        generated.output
    );

    let facade = Facade::start("contract-client").await;
    let mut round_trip = tokio::process::Command::new(tools().join("bin/python"));
    round_trip
        .arg(here().join("client_round_trip.py"))
        .env("PYTHONPATH", &dir)
        .env("DBFLEET_URL", &facade.base)
        .env("DBFLEET_TOKEN", &facade.token)
        .env("DBFLEET_CSRF", &facade.csrf)
        .env("DBFLEET_PORT", CLOSED_PORT.to_string());
    let ran = run(round_trip, Duration::from_secs(120)).await;
    assert!(ran.ok, "{}\n\nthe façade's log:\n{}", ran.output, facade.log());
    assert!(ran.output.contains("round trip: ok"), "{}", ran.output);
}
