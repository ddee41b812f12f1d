//! The Helm chart, checked for real: helm renders it, the API server accepts
//! every rendered object (server-side dry run), and the RBAC it grants is
//! enough for the controllers to do their work with the chart's
//! ServiceAccount token.

#[path = "../support/mod.rs"]
mod support;
mod values;

use std::process::Command;
use std::time::Duration;

use dbfleet::controller::{self, Config, leader};
use dbfleet::crd::instance::Phase;
use dbfleet::crd::{DbInstance, DbTag};
use dbfleet::metrics::Metrics;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use support::controller as ctl;
use tokio_util::sync::CancellationToken;

/// `helm template` of the chart with `--set` values.
fn render(release: &str, namespace: &str, values: &[&str]) -> String {
    let helm = std::env::var("DBFLEET_HELM").expect("DBFLEET_HELM is set by scripts/test-env.sh");
    let mut command = Command::new(helm);
    command.args([
        "template",
        release,
        "charts/dbfleet",
        "--namespace",
        namespace,
        "--include-crds",
    ]);
    for value in values {
        command.args(["--set", value]);
    }
    let output = command.current_dir(support::repo_root()).output().expect("run helm");
    assert!(
        output.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 manifests")
}

fn kinds(manifests: &str) -> Vec<String> {
    manifests
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn every_rendered_object_is_accepted_by_the_api_server() {
    let (client, ns) = support::admin_in_fresh_namespace("chart").await;
    let dry_run = PatchParams {
        dry_run: true,
        ..PatchParams::apply("dbfleet-chart-test").force()
    };
    for (release, values) in [
        ("cluster-wide", vec![]),
        (
            "namespaced",
            vec!["scope=namespace", "replicaCount=2", "api.enabled=false"],
        ),
    ] {
        let manifests = render(release, &ns, &values);
        let applied = support::apply_yaml_with(&client, &ns, &manifests, &dry_run)
            .await
            .unwrap_or_else(|e| panic!("{release}: {e}"));
        assert!(applied.len() >= 8, "{release}: only {} objects", applied.len());
    }

    let defaults = render("d", &ns, &[]);
    let default_kinds = kinds(&defaults);
    for kind in [
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "Role",
        "Deployment",
        "Service",
    ] {
        assert!(
            default_kinds.iter().any(|k| k == kind),
            "no {kind} in {default_kinds:?}"
        );
    }
    // The CRDs the chart ships are the generated ones.
    for crd in dbfleet::crd::definitions() {
        assert!(defaults.contains(&format!("name: {}", crd.metadata.name.unwrap())));
    }
    // Hardened pod: non-root, read-only root filesystem, nothing to escalate.
    for needle in [
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "allowPrivilegeEscalation: false",
        "- ALL",
    ] {
        assert!(defaults.contains(needle), "{needle} missing");
    }
    assert!(defaults.contains("--leader-election=false"));
    assert!(render("ha", &ns, &["replicaCount=3"]).contains("--leader-election=true"));
    assert!(
        kinds(&render("sm", &ns, &["serviceMonitor.enabled=true"]))
            .iter()
            .any(|k| k == "ServiceMonitor")
    );
    let namespaced = kinds(&render("ns", &ns, &["scope=namespace", "api.enabled=false"]));
    assert!(
        !namespaced.iter().any(|k| k == "ClusterRole"),
        "a namespaced install without the façade needs no ClusterRole"
    );
}

#[tokio::test]
async fn the_chart_rbac_is_enough_for_the_controllers_and_the_facade() {
    let plane = support::control_plane().await;
    let (admin, ns) = support::admin_in_fresh_namespace("chart-rbac").await;
    let release = format!("rbac-{}", &ns[ns.len() - 5..]);
    let manifests = render(&release, &ns, &["scope=namespace", "serviceAccount.name=dbfleet"]);
    // Only the ServiceAccount and its RBAC: the Deployment needs an image.
    let kinds = [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
    ];
    let rbac: Vec<&str> = manifests
        .split("\n---")
        .filter(|doc| kinds.iter().any(|k| doc.contains(&format!("\nkind: {k}\n"))))
        .collect();
    assert!(rbac.len() >= 9, "{} RBAC documents", rbac.len());
    support::apply_yaml(&admin, &ns, &rbac.join("\n---\n")).await.unwrap();
    let token = plane.service_account_token(&ns, "dbfleet").await.unwrap();
    let restricted = plane.client_with_token(&token).await.unwrap();

    // The controllers, as the chart runs them: leader election on, scoped.
    let stop = CancellationToken::new();
    let config = Config {
        namespace: Some(ns.clone()),
        ..Config::default()
    };
    let lease = leader::LeaderConfig {
        lease_name: release.clone(),
        lease_namespace: ns.clone(),
        identity: "pod-0".into(),
        lease_seconds: 5,
    };
    let metrics = std::sync::Arc::new(Metrics::default());
    let task = {
        let (client, stop, metrics) = (restricted.clone(), stop.clone(), metrics.clone());
        tokio::spawn(async move {
            leader::run_while_leading(client.clone(), lease, stop, |term| {
                controller::run_controllers(client.clone(), config.clone(), metrics.clone(), term)
            })
            .await
        })
    };

    let pg = dbfleet_testenv::DatabaseServer::postgres().unwrap();
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &ns);
    let secret = serde_json::from_value(json!({"metadata": {"name": "login", "labels": {"dbfleet.io/credential": "true"}}, "stringData": {"username": pg.user, "password": pg.password}})).unwrap();
    secrets.create(&PostParams::default(), &secret).await.unwrap();
    let tags: Api<DbTag> = Api::namespaced(admin.clone(), &ns);
    let tag = serde_json::from_value(json!({"apiVersion": "dbfleet.io/v1alpha1", "kind": "DbTag", "metadata": {"name": "prod"}, "spec": {"displayName": "Prod", "category": "env"}})).unwrap();
    tags.create(&PostParams::default(), &tag).await.unwrap();
    let instances: Api<DbInstance> = Api::namespaced(admin.clone(), &ns);
    let instance = serde_json::from_value(json!({
        "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInstance", "metadata": {"name": "db"},
        "spec": {"dbType": "postgresql", "host": pg.host, "port": pg.port, "credentialsSecretRef": {"name": "login"}, "tls": {"mode": "disable"}, "tags": ["prod"]},
    }))
    .unwrap();
    instances.create(&PostParams::default(), &instance).await.unwrap();

    // Every kind of write the controllers make, under the chart's RBAC:
    // id labels, status, the tag finalizer, Events, the Lease, the id counter.
    let ready = ctl::instance_where(&instances, "db", "Ready", |i| {
        i.status.as_ref().and_then(|s| s.phase) == Some(Phase::Ready)
    })
    .await;
    assert!(dbfleet::ids::id_of(&ready.metadata).is_some());
    ctl::eventually(
        Duration::from_secs(20),
        "tag protected and credential labelled",
        || async {
            let tag = tags.get("prod").await.unwrap();
            let protected = tag
                .finalizers()
                .iter()
                .any(|f| f == dbfleet::crd::keys::TAG_IN_USE_FINALIZER);
            let counted = tag.status.as_ref().is_some_and(|s| s.instance_count == 1);
            let labelled = dbfleet::ids::id_of(&secrets.get("login").await.unwrap().metadata).is_some();
            (
                (protected && counted && labelled).then_some(()),
                format!("protected={protected} counted={counted} labelled={labelled}"),
            )
        },
    )
    .await;
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(admin.clone(), &ns);
    assert!(
        !events.list(&Default::default()).await.unwrap().items.is_empty(),
        "the controllers recorded Events"
    );
    // Retention: deleting for good is allowed too.
    instances.delete("db", &DeleteParams::default()).await.unwrap();
    assert!(
        !metrics.encode().contains("result=\"kube_error\""),
        "a Kubernetes call was refused:\n{}",
        metrics.encode()
    );

    // The façade, on the same token, serving a REST client that has the
    // examples' RBAC (view, create, update, delete on instances and tags).
    let client_rbac = std::fs::read_to_string(support::repo_root().join("examples/rest-client-rbac.yaml")).unwrap();
    support::apply_yaml(&admin, &ns, &client_rbac).await.unwrap();
    let caller = plane.service_account_token(&ns, "inventory-admin").await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/api/v1", listener.local_addr().unwrap());
    let config = dbfleet::api::ApiConfig {
        namespace: ns.clone(),
        auth: dbfleet::api::auth::AuthMode::Kubernetes,
        retention: dbfleet::api::DEFAULT_RETENTION,
        metrics: Default::default(),
        timeouts: Default::default(),
    };
    let facade = tokio::spawn(dbfleet::api::serve(restricted.clone(), config, listener, stop.clone()));
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, csrf: Option<&str>, body: Option<serde_json::Value>| {
        let mut request = http.request(method, format!("{base}{path}")).bearer_auth(&caller);
        if let Some(csrf) = csrf {
            request = request.header("X-CSRFToken", csrf);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    let ready = ctl::eventually(Duration::from_secs(20), "the façade's caches", || async {
        let (status, body) = call(reqwest::Method::GET, "/instances", None, None).await;
        ((status == 200).then_some(()), format!("{status} {body}"))
    });
    ready.await;
    let (_, token) = call(reqwest::Method::GET, "/auth/csrf-token", None, None).await;
    let csrf = token["data"]["csrf_token"].as_str().unwrap().to_string();
    let credential_id = dbfleet::ids::id_of(&secrets.get("login").await.unwrap().metadata).unwrap();
    // The controller labelled the credential a moment ago; wait until the
    // façade's cache has seen that label too.
    ctl::eventually(Duration::from_secs(20), "the façade to know the credential", || async {
        let params = json!({"db_type": "postgresql", "port": pg.port, "credential_id": credential_id});
        let (status, body) = call(
            reqwest::Method::POST,
            "/instances/actions/validate-connection-params",
            Some(&csrf),
            Some(params),
        )
        .await;
        ((status == 200).then_some(()), format!("{status} {body}"))
    })
    .await;
    let steps: Vec<(reqwest::Method, String, Option<serde_json::Value>, u16)> = vec![
        (
            reqwest::Method::POST,
            "/tags".into(),
            Some(json!({"name": "rest", "display_name": "REST", "category": "env"})),
            201,
        ),
        (
            reqwest::Method::POST,
            "/instances".into(),
            Some(
                json!({"name": "via-rest", "db_type": "postgresql", "host": pg.host, "port": pg.port, "credential_id": credential_id, "tag_names": ["rest"]}),
            ),
            201,
        ),
    ];
    for (method, path, body, expected) in steps {
        let (status, answer) = call(method.clone(), &path, Some(&csrf), body).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
    }
    let (_, list) = call(reqwest::Method::GET, "/instances?search=via-rest", None, None).await;
    let id = list["data"]["items"][0]["id"]
        .as_i64()
        .expect("the new instance is listed");
    // An on-demand probe writes the instance's status under the chart's RBAC.
    let (status, answer) = call(
        reqwest::Method::POST,
        &format!("/instances/{id}/actions/sync-capacity"),
        Some(&csrf),
        None,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = call(reqwest::Method::DELETE, &format!("/instances/{id}"), Some(&csrf), None).await;
    assert_eq!(status, 200, "{answer}");

    stop.cancel();
    task.await.unwrap().unwrap();
    facade.await.unwrap().unwrap();
}
