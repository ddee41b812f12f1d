//! The chart's ValidatingAdmissionPolicy on a real API server (issue 18):
//! through kubectl, a user who may update DbInstances but not create them
//! cannot move a stored login (host, port, tls, credential, database), a
//! view-only user changes nothing, a create-capable one may; dbfleet's own
//! controller and façade, on the chart's ServiceAccounts, are never
//! refused; and through REST the façade gives the same answers.
//!
//! Every host is on loopback and every port a local listener: the
//! controllers running here dial nothing else.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use dbfleet::crd::DbInstance;
use dbfleet::crd::keys::CREDENTIAL_LABEL;
use dbfleet::crd::login_target::ConnectionField;
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::{self, controller as ctl};
use crate::{apply_kinds, documents, of_kind, render};

/// What the policy says when it refuses.
const NEEDS_CREATE: &str = "needs create on dbinstances.dbfleet.io";

/// A loopback port that accepts and drops connections: a database stand-in
/// the controller may dial.
async fn listener() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { while listener.accept().await.is_ok() {} });
    port
}

/// kubectl as one ServiceAccount: a kubeconfig holding only its token.
struct Kubectl {
    kubeconfig: PathBuf,
    namespace: String,
}

impl Kubectl {
    /// `admin_kubeconfig` gives the server and its CA.
    fn new(admin_kubeconfig: &str, namespace: &str, name: &str, token: &str) -> Kubectl {
        let mut config: serde_yaml::Value = serde_yaml::from_str(admin_kubeconfig).unwrap();
        config["users"][0]["user"] = serde_yaml::to_value(json!({"token": token})).unwrap();
        let kubeconfig = std::env::temp_dir().join(format!("dbfleet-{namespace}-{name}.kubeconfig"));
        std::fs::write(&kubeconfig, serde_yaml::to_string(&config).unwrap()).unwrap();
        Kubectl {
            kubeconfig,
            namespace: namespace.to_string(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let assets = std::env::var("KUBEBUILDER_ASSETS").expect("KUBEBUILDER_ASSETS is set by scripts/test-env.sh");
        Command::new(PathBuf::from(assets).join("kubectl"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--namespace", &self.namespace])
            .args(args)
            .output()
            .expect("run kubectl")
    }

    /// `kubectl patch dbinstance NAME --type merge -p PATCH`.
    fn patch(&self, name: &str, patch: &Value) -> Output {
        self.run(&["patch", "dbinstance", name, "--type", "merge", "-p", &patch.to_string()])
    }
}

impl Drop for Kubectl {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
fn allowed(output: &Output, what: &str) {
    assert!(output.status.success(), "{what} was refused: {}", stderr(output));
}

/// Refused by the policy, naming `field` and the right needed.
#[track_caller]
fn refused_by_the_policy(output: &Output, field: &str, what: &str) {
    let message = stderr(output);
    assert!(!output.status.success(), "{what} was allowed");
    assert!(
        message.contains(NEEDS_CREATE) && message.contains(&format!("changing {field}")),
        "{what}: {message}"
    );
}

/// Refused by RBAC: the user may not update at all.
#[track_caller]
fn refused_by_rbac(output: &Output, what: &str) {
    let message = stderr(output);
    assert!(!output.status.success(), "{what} was allowed");
    assert!(
        message.contains("Forbidden") && !message.contains(NEEDS_CREATE),
        "{what}: {message}"
    );
}

async fn spec_of(api: &Api<DbInstance>, name: &str) -> Value {
    serde_json::to_value(api.get(name).await.unwrap().spec).unwrap()
}

fn instance(name: &str, port: u16, credential: Option<&str>) -> DbInstance {
    serde_json::from_value(json!({
        "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInstance", "metadata": {"name": name},
        "spec": {"dbType": "postgresql", "host": "127.0.0.1", "port": port, "databaseName": "app",
            "tls": {"mode": "disable"},
            "credentialsSecretRef": credential.map(|c| json!({"name": c}))},
    }))
    .unwrap()
}

/// A credential Secret with an id (recorded in the id ConfigMap, as the
/// controller would record it).
async fn credential(client: &Client, namespace: &str, name: &str) -> i64 {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {CREDENTIAL_LABEL: "true"}},
        "stringData": {"username": "monitor", "password": "admission-test-password"},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    support::record_credential(client, namespace, name).await
}

#[test]
fn the_policy_names_every_field_the_facade_checks() {
    let manifests = render("fields", "fields", &[]);
    let docs = documents(&manifests);
    let policy = of_kind(&docs, "ValidatingAdmissionPolicy")
        .next()
        .expect("the policy is on by default");
    let moved = policy["spec"]["variables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "moved")
        .expect("the moved variable");
    let expression = moved["expression"].as_str().unwrap();
    for field in ConnectionField::ALL {
        assert!(
            expression.contains(&format!("['{}']", field.spec_name())),
            "the policy does not check {field}: {expression}"
        );
    }
    let binding = of_kind(&docs, "ValidatingAdmissionPolicyBinding").next().unwrap();
    assert_eq!(binding["spec"]["policyName"], policy["metadata"]["name"]);
    assert_eq!(binding["spec"]["validationActions"], json!(["Deny"]));
    assert!(
        binding["spec"].get("matchResources").is_none(),
        "scope: cluster covers every namespace"
    );

    let namespaced = documents(&render("fields", "team-a", &["scope=namespace"]));
    let binding = of_kind(&namespaced, "ValidatingAdmissionPolicyBinding").next().unwrap();
    assert_eq!(
        binding["spec"]["matchResources"]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "team-a"
    );
    let off = documents(&render("fields", "fields", &["admissionPolicy.enabled=false"]));
    assert!(of_kind(&off, "ValidatingAdmissionPolicy").next().is_none());
    assert!(of_kind(&off, "ValidatingAdmissionPolicyBinding").next().is_none());
}

#[tokio::test]
async fn only_a_user_who_may_create_instances_moves_a_stored_login() {
    let plane = support::control_plane().await;
    let (admin, ns) = support::admin_in_fresh_namespace("chart-admission").await;
    let release = format!("adm-{}", &ns[ns.len() - 5..]);
    let manifests = render(
        &release,
        &ns,
        &[
            "scope=namespace",
            "controller.serviceAccount.name=dbfleet-controller",
            "api.serviceAccount.name=dbfleet-api",
        ],
    );
    // The chart's ServiceAccounts, RBAC, CSRF key and policy (the
    // Deployments would need an image).
    let kinds = [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
        "Secret",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ];
    apply_kinds(&admin, &ns, &manifests, &kinds).await;

    let (port, other_port) = (listener().await, listener().await);
    credential(&admin, &ns, "login").await;
    let other_login = credential(&admin, &ns, "other-login").await;
    let instances: Api<DbInstance> = Api::namespaced(admin.clone(), &ns);
    for created in [instance("orders", port, Some("login")), instance("plain", port, None)] {
        instances.create(&PostParams::default(), &created).await.unwrap();
    }

    let user = |name: &'static str, verbs: &'static [&'static str]| {
        let (admin, ns) = (admin.clone(), ns.clone());
        async move {
            let token = support::service_account_token(&admin, &ns, name, &["dbinstances"], verbs).await;
            (Kubectl::new(plane.admin_kubeconfig(), &ns, name, &token), token)
        }
    };
    let (viewer, _) = user("viewer", &["get", "list", "watch"]).await;
    let (updater, updater_token) = user("updater", &["get", "list", "watch", "update", "patch"]).await;
    let (creator, creator_token) = user("creator", &["get", "list", "watch", "update", "patch", "create"]).await;

    // A policy takes effect once the API server has loaded it.
    ctl::eventually(Duration::from_secs(30), "the policy to be enforced", || async {
        let out = updater.run(&[
            "patch",
            "dbinstance",
            "orders",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"host":"localhost"}}"#,
            "--dry-run=server",
        ]);
        let enforced = !out.status.success() && stderr(&out).contains(NEEDS_CREATE);
        (enforced.then_some(()), stderr(&out))
    })
    .await;

    // Update-only: every move of the stored login is refused, naming the
    // field, and nothing changes.
    let before = spec_of(&instances, "orders").await;
    for (patch, field) in [
        (json!({"spec": {"host": "localhost"}}), "host"),
        (json!({"spec": {"port": other_port}}), "port"),
        (json!({"spec": {"tls": {"mode": "require"}}}), "tls"),
        (
            json!({"spec": {"credentialsSecretRef": {"name": "other-login"}}}),
            "credentialsSecretRef",
        ),
        (
            json!({"spec": {"credentialsSecretRef": {"usernameKey": "admin-user"}}}),
            "credentialsSecretRef",
        ),
        (json!({"spec": {"credentialsSecretRef": null}}), "credentialsSecretRef"),
        (json!({"spec": {"databaseName": "payroll"}}), "databaseName"),
        (
            json!({"spec": {"host": "localhost", "port": other_port, "description": "moved"}}),
            "host, port",
        ),
    ] {
        refused_by_the_policy(&updater.patch("orders", &patch), field, &format!("update-only {patch}"));
    }
    assert_eq!(
        spec_of(&instances, "orders").await,
        before,
        "a refused update changed the spec"
    );

    // View-only: RBAC refuses any update before the policy is asked.
    refused_by_rbac(
        &viewer.patch("orders", &json!({"spec": {"host": "localhost"}})),
        "view-only move",
    );
    refused_by_rbac(
        &viewer.patch("orders", &json!({"spec": {"description": "x"}})),
        "view-only edit",
    );
    assert_eq!(spec_of(&instances, "orders").await, before);

    // Update-only, harmless edits: labels, annotations, other spec fields,
    // and a whole-object replace that keeps the connection fields.
    allowed(
        &updater.run(&["label", "dbinstance", "orders", "team=payments"]),
        "label",
    );
    allowed(
        &updater.run(&["annotate", "dbinstance", "orders", "note=checked"]),
        "annotate",
    );
    allowed(
        &updater.patch("orders", &json!({"spec": {"description": "primary", "tags": ["prod"]}})),
        "description, tags",
    );
    let got = updater.run(&["get", "dbinstance", "orders", "-o", "json"]);
    allowed(&got, "get");
    let mut object: Value = serde_json::from_slice(&got.stdout).unwrap();
    object["spec"]["description"] = json!("replaced");
    let replaced_file = std::env::temp_dir().join(format!("dbfleet-{ns}-orders.json"));
    std::fs::write(&replaced_file, object.to_string()).unwrap();
    let replaced = updater.run(&["replace", "-f", replaced_file.to_str().unwrap()]);
    std::fs::remove_file(&replaced_file).unwrap();
    allowed(&replaced, "replace keeping the connection fields");
    let edited = spec_of(&instances, "orders").await;
    assert_eq!(edited["description"], "replaced");
    for field in ConnectionField::ALL {
        assert_eq!(edited[field.spec_name()], before[field.spec_name()], "{field}");
    }

    // Without a stored credential no login moves: update is enough; giving
    // it a credential is choosing where that login goes.
    allowed(
        &updater.patch("plain", &json!({"spec": {"port": other_port}})),
        "moving an instance without a credential",
    );
    refused_by_the_policy(
        &updater.patch("plain", &json!({"spec": {"credentialsSecretRef": {"name": "login"}}})),
        "credentialsSecretRef",
        "adding a credential",
    );

    // Create-capable: the moves go through.
    allowed(
        &creator.patch(
            "orders",
            &json!({"spec": {"port": other_port, "credentialsSecretRef": {"name": "other-login"}}}),
        ),
        "create-capable move",
    );
    allowed(
        &creator.patch("plain", &json!({"spec": {"credentialsSecretRef": {"name": "login"}}})),
        "create-capable adding a credential",
    );
    let moved = spec_of(&instances, "orders").await;
    assert_eq!(
        (&moved["port"], &moved["credentialsSecretRef"]["name"]),
        (&json!(other_port), &json!("other-login"))
    );

    // dbfleet's own writes under the chart's ServiceAccounts: the
    // controllers (id labels, status, finalizers, Events) and the façade
    // (request annotations, guarded spec patches) are never refused.
    let as_controller = plane
        .client_with_token(&plane.service_account_token(&ns, "dbfleet-controller").await.unwrap())
        .await
        .unwrap();
    let as_api = plane
        .client_with_token(&plane.service_account_token(&ns, "dbfleet-api").await.unwrap())
        .await
        .unwrap();
    let controllers = ctl::start(&as_controller, &ns, |_| {});
    ctl::instance_where(&instances, "orders", "an id and a status", |i| {
        dbfleet::ids::id_of(&i.metadata).is_some() && ctl::condition(i, "CredentialsResolved").is_some()
    })
    .await;
    let stop = CancellationToken::new();
    let rest = Rest::serve(as_api, &ns, stop.clone()).await;
    let orders_id = dbfleet::ids::id_of(&instances.get("orders").await.unwrap().metadata).unwrap();
    let path = format!("/instances/{orders_id}");
    let current = json!({"name": "orders", "db_type": "postgresql", "host": "127.0.0.1", "port": other_port,
        "database_name": "app", "credential_id": other_login, "description": "replaced", "is_active": true});
    // REST, update-only: a harmless edit passes the policy on the façade's
    // ServiceAccount; a move is the façade's own 403, naming the fields.
    let update_only_edit = with(&current, json!({"description": "via REST"}));
    let (status, answer) = rest
        .call(&updater_token, reqwest::Method::PUT, &path, Some(update_only_edit))
        .await;
    assert_eq!(status, 200, "{answer}");
    for (changes, fields) in [
        (json!({"port": port}), json!(["port"])),
        (json!({"host": "localhost"}), json!(["host"])),
        (json!({"credential_id": null}), json!(["credential_id"])),
    ] {
        let (status, answer) = rest
            .call(
                &updater_token,
                reqwest::Method::PUT,
                &path,
                Some(with(&current, changes)),
            )
            .await;
        assert_eq!(
            (status, answer["code"].as_str(), &answer["data"]["fields"]),
            (403, Some("PERMISSION_DENIED"), &fields),
            "{answer}"
        );
    }
    // REST, create-capable: the façade writes the move on its own
    // ServiceAccount, which the policy lets through.
    let (status, answer) = rest
        .call(
            &creator_token,
            reqwest::Method::PUT,
            &path,
            Some(with(&current, json!({"host": "localhost", "port": port}))),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(spec_of(&instances, "orders").await["host"], "localhost");
    // An on-demand test asks the controller through a request annotation.
    let (status, answer) = rest
        .call(
            &updater_token,
            reqwest::Method::POST,
            "/instances/actions/test-connection",
            Some(json!({"instance_id": orders_id})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        !controllers.metrics.encode().contains("result=\"kube_error\""),
        "a controller write was refused:\n{}",
        controllers.metrics.encode()
    );
    stop.cancel();
}

fn with(body: &Value, changes: Value) -> Value {
    let mut body = body.clone();
    for (k, v) in changes.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// The façade, on the chart's ServiceAccount, and a client for it.
struct Rest {
    base: String,
    http: reqwest::Client,
}

impl Rest {
    async fn serve(client: Client, namespace: &str, stop: CancellationToken) -> Rest {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/api/v1", listener.local_addr().unwrap());
        let config = dbfleet::api::ApiConfig::new(namespace, dbfleet::api::auth::AuthMode::Kubernetes);
        tokio::spawn(dbfleet::api::serve(client, config, listener, stop));
        let rest = Rest {
            base,
            http: reqwest::Client::new(),
        };
        let readyz = rest.base.replace("/api/v1", "/readyz");
        ctl::eventually(Duration::from_secs(30), "the façade to be ready", || async {
            let ready = rest.http.get(&readyz).send().await.is_ok_and(|r| r.status() == 200);
            (ready.then_some(()), String::new())
        })
        .await;
        rest
    }

    /// A call as the caller holding `token`, with its CSRF token.
    async fn call(&self, token: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let csrf: Value = self
            .http
            .get(format!("{}/auth/csrf-token", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("X-CSRFToken", csrf["data"]["csrf_token"].as_str().unwrap());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}
