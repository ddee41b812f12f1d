//! The Helm chart, checked for real: helm renders and lints it, kube-score
//! finds nothing but documented exceptions, the API server accepts every
//! rendered object (server-side dry run), the RBAC it renders grants each
//! process only what it calls, and that RBAC is enough: the controllers and
//! the façade run on their own ServiceAccounts' tokens.

mod admission;
mod kube_score;
mod least_privilege;
mod monitoring;
mod platform;
mod prometheus;
#[path = "../support/mod.rs"]
mod support;
mod values;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use dbfleet::controller::{self, Config, leader};
use dbfleet::crd::instance::Phase;
use dbfleet::crd::sync_session::SyncPhase;
use dbfleet::crd::{DbInstance, DbInventory, DbSyncSession, DbTag};
use dbfleet::metrics::Metrics;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{DeleteParams, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde::Deserialize;
use serde_json::{Value, json};
use support::controller as ctl;
use tokio_util::sync::CancellationToken;

/// The credential ids the controller recorded in `namespace`'s id
/// ConfigMap, by Secret name.
async fn recorded_credential_ids(admin: &kube::Client, namespace: &str) -> std::collections::BTreeMap<String, i64> {
    let configmap = Api::<ConfigMap>::namespaced(admin.clone(), namespace)
        .get_opt(dbfleet::ids::COUNTER_CONFIGMAP)
        .await
        .unwrap();
    let data = configmap.and_then(|c| c.data).unwrap_or_default();
    dbfleet::ids::credential_ids(&data)
        .map(|(name, id)| (name.to_string(), id))
        .collect()
}

fn helm(args: &[&str], values: &[&str]) -> std::process::Output {
    let helm = std::env::var("DBFLEET_HELM").expect("DBFLEET_HELM is set by scripts/test-env.sh");
    let mut command = Command::new(helm);
    command.args(args);
    for value in values {
        command.args(["--set", value]);
    }
    command.current_dir(support::repo_root()).output().expect("run helm")
}

/// `helm template` of the chart with `--set` values.
fn render(release: &str, namespace: &str, values: &[&str]) -> String {
    let output = helm(
        &[
            "template",
            release,
            "charts/dbfleet",
            "--namespace",
            namespace,
            "--include-crds",
        ],
        values,
    );
    assert!(
        output.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 manifests")
}

/// The rendered objects, as JSON.
fn documents(manifests: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(manifests)
        .map(|document| serde_yaml::Value::deserialize(document).expect("YAML"))
        .filter(|value| !value.is_null())
        .map(|value| serde_json::to_value(value).expect("JSON-shaped YAML"))
        .collect()
}

/// Applies the objects of `kinds` from `manifests` in `namespace` (the
/// Deployments and Pods need an image and a kubelet, which the test control
/// plane does not have); returns how many.
async fn apply_kinds(admin: &kube::Client, namespace: &str, manifests: &str, kinds: &[&str]) -> usize {
    let objects: Vec<&str> = manifests
        .split("\n---")
        .filter(|doc| kinds.iter().any(|k| doc.contains(&format!("\nkind: {k}\n"))))
        .collect();
    support::apply_yaml(admin, namespace, &objects.join("\n---\n"))
        .await
        .unwrap();
    objects.len()
}

fn kinds(manifests: &str) -> Vec<String> {
    documents(manifests)
        .iter()
        .filter_map(|d| d["kind"].as_str().map(String::from))
        .collect()
}

fn of_kind<'a>(documents: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> {
    documents.iter().filter(move |d| d["kind"] == kind)
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

/// One verb on one resource, and the object names it is limited to (empty:
/// any).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    group: String,
    resource: String,
    verb: String,
    names: Vec<String>,
}

fn grants_of_rules(rules: &Value) -> Vec<Grant> {
    let mut grants = Vec::new();
    for rule in rules.as_array().into_iter().flatten() {
        let names = strings(&rule["resourceNames"]);
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    grants.push(Grant {
                        group: group.clone(),
                        resource: resource.clone(),
                        verb,
                        names: names.clone(),
                    });
                }
            }
        }
    }
    grants
}

/// Everything the rendered (Cluster)Roles grant the ServiceAccount `sa`
/// through the rendered bindings.
fn grants_to(documents: &[Value], sa: &str) -> Vec<Grant> {
    let mut grants = Vec::new();
    for binding in documents
        .iter()
        .filter(|d| d["kind"] == "RoleBinding" || d["kind"] == "ClusterRoleBinding")
    {
        let bound = binding["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s["kind"] == "ServiceAccount" && s["name"] == sa);
        if !bound {
            continue;
        }
        let role = documents
            .iter()
            .find(|d| d["kind"] == binding["roleRef"]["kind"] && d["metadata"]["name"] == binding["roleRef"]["name"])
            .unwrap_or_else(|| panic!("the role of {}", binding["metadata"]["name"]));
        grants.extend(grants_of_rules(&role["rules"]));
    }
    grants
}

/// The verbs `grants` allow on `resource`, on any object or some.
fn verb_names<'a>(grants: &'a [Grant], resource: &str) -> BTreeSet<&'a str> {
    grants
        .iter()
        .filter(|g| g.resource == resource)
        .map(|g| g.verb.as_str())
        .collect()
}

fn deployment<'a>(documents: &'a [Value], suffix: &str) -> &'a Value {
    of_kind(documents, "Deployment")
        .find(|d| d["metadata"]["name"].as_str().is_some_and(|n| n.ends_with(suffix)))
        .unwrap_or_else(|| panic!("no Deployment *{suffix}"))
}

fn container_args(deployment: &Value) -> Vec<String> {
    strings(&deployment["spec"]["template"]["spec"]["containers"][0]["args"])
}

fn lease_name(documents: &[Value]) -> String {
    container_args(deployment(documents, "-controller"))
        .iter()
        .find_map(|a| a.strip_prefix("--lease-name=").map(String::from))
        .expect("the controller is given its Lease")
}

/// The leader Lease and one Lease per shard, as the controller names them.
fn lease_names(documents: &[Value]) -> Vec<String> {
    let lease = lease_name(documents);
    let shards: u32 = container_args(deployment(documents, "-controller"))
        .iter()
        .find_map(|a| a.strip_prefix("--shards=").map(|n| n.parse().expect("a number")))
        .expect("the controller is given its shards");
    std::iter::once(lease.clone())
        .chain((0..shards).map(|shard| format!("{lease}-shard-{shard}")))
        .collect()
}

/// The rules every rendering must keep, whatever the values.
fn assert_least_privilege(documents: &[Value], what: &str) {
    let mut all = Vec::new();
    for role in documents
        .iter()
        .filter(|d| d["kind"] == "Role" || d["kind"] == "ClusterRole")
    {
        all.extend(grants_of_rules(&role["rules"]));
    }
    for grant in &all {
        assert!(
            ![&grant.group, &grant.resource, &grant.verb].contains(&&"*".to_string()),
            "{what}: a wildcard: {grant:?}"
        );
        match grant.resource.as_str() {
            // The ids by name; only creating them cannot be limited.
            "configmaps" if grant.names.is_empty() => {
                assert_eq!(grant.verb, "create", "{what}: ConfigMaps beyond create: {grant:?}")
            }
            "configmaps" if grant.names == ["dbfleet-version-lifecycle"] => {
                assert_eq!(
                    grant.verb, "get",
                    "{what}: the end-of-life dates are only read: {grant:?}"
                )
            }
            "configmaps" => assert_eq!(grant.names, ["dbfleet-ids"], "{what}: {grant:?}"),
            "leases" if grant.names.is_empty() => {
                assert_eq!(grant.verb, "create", "{what}: Leases beyond create: {grant:?}")
            }
            "leases" => assert_eq!(grant.names, lease_names(documents), "{what}: {grant:?}"),
            _ => {}
        }
    }
    // Each process has a ServiceAccount of its own.
    let controller = deployment(documents, "-controller");
    let controller_sa = controller["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .unwrap();
    let controller_grants = grants_to(documents, controller_sa);
    assert_eq!(
        verb_names(&controller_grants, "secrets"),
        BTreeSet::from(["get", "list", "watch"]),
        "{what}: the controller reads labelled Secrets and writes none (ids live in dbfleet-ids)"
    );
    assert_eq!(
        verb_names(&controller_grants, "dbinventories"),
        BTreeSet::from(["get", "list", "create", "patch", "delete"]),
        "{what}: the controller writes each instance's details and deletes them with it"
    );
    assert_eq!(
        verb_names(&controller_grants, "dbhistories"),
        BTreeSet::from(["get", "list", "create", "patch", "delete"]),
        "{what}: the controller writes each instance's history and deletes it with it"
    );
    assert!(
        controller_grants
            .iter()
            .any(|g| g.resource == "dbinstances/status" && g.verb == "patch"),
        "{what}: the controller writes the instances' status"
    );
    assert!(
        !controller_grants
            .iter()
            .any(|g| g.group.ends_with(".k8s.io") && g.group != "events.k8s.io" && g.group != "coordination.k8s.io"),
        "{what}: the controller reviews no tokens or access"
    );
    // Leader election is always on: nothing can switch it off.
    let args = container_args(controller);
    assert!(!args.iter().any(|a| a.contains("leader-election")), "{what}: {args:?}");
    assert!(!lease_name(documents).is_empty());

    let Some(api) =
        of_kind(documents, "Deployment").find(|d| d["metadata"]["name"].as_str().is_some_and(|n| n.ends_with("-api")))
    else {
        return;
    };
    let api_sa = api["spec"]["template"]["spec"]["serviceAccountName"].as_str().unwrap();
    assert_ne!(api_sa, controller_sa, "{what}: one ServiceAccount each");
    let api_grants = grants_to(documents, api_sa);
    let secret_grants: Vec<_> = api_grants.iter().filter(|g| g.resource == "secrets").collect();
    assert!(
        secret_grants
            .iter()
            .all(|g| g.verb == "get" && (g.names == ["dbfleet-csrf-key"] || g.names.is_empty())),
        "{what}: the façade reads its CSRF key (and logins only with api.adhocCredentialTests), writes none: \
         {secret_grants:?}"
    );
    let status: Vec<_> = api_grants.iter().filter(|g| g.resource.contains('/')).collect();
    assert!(
        status.is_empty(),
        "{what}: only the controller writes status; on-demand probes ask it: {status:?}"
    );
    assert_eq!(
        verb_names(&api_grants, "dbinventories"),
        BTreeSet::from(["get", "list", "watch"]),
        "{what}: the façade reads instances' details (one per request, and a watch for the fleet index), \
         and writes none"
    );
    assert_eq!(
        verb_names(&api_grants, "dbhistories"),
        BTreeSet::from(["get", "list", "watch"]),
        "{what}: the façade reads instances' histories (one per request, and a watch for the fleet's \
         account changes), and writes none"
    );
    assert!(
        verb_names(&api_grants, "leases").is_empty(),
        "{what}: the façade has no leases"
    );
    assert_eq!(
        verb_names(&api_grants, "events"),
        BTreeSet::from(["list"]),
        "{what}: the façade only lists Events (an instance's recent ones, on the console)"
    );
    assert!(
        !api_grants
            .iter()
            .any(|g| g.verb == "update" && g.resource != "configmaps"),
        "{what}: the façade's writes are guarded patches"
    );
    for cluster_role in of_kind(documents, "ClusterRole") {
        let bound_to_api = of_kind(documents, "ClusterRoleBinding").any(|b| {
            b["roleRef"]["name"] == cluster_role["metadata"]["name"]
                && b["subjects"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|s| s["name"] == api_sa)
        });
        if bound_to_api {
            let grants: BTreeSet<_> = grants_of_rules(&cluster_role["rules"])
                .into_iter()
                .map(|g| (g.resource, g.verb))
                .collect();
            assert_eq!(
                grants,
                BTreeSet::from([
                    ("subjectaccessreviews".to_string(), "create".to_string()),
                    ("tokenreviews".to_string(), "create".to_string())
                ]),
                "{what}: the façade's only cluster-wide rights check its callers"
            );
        }
    }
}

#[test]
fn the_chart_grants_each_process_only_what_it_calls() {
    for values in [
        vec![],
        vec!["scope=namespace"],
        vec!["scope=namespace", "api.enabled=false"],
        vec!["api.namespace=elsewhere", "controller.replicas=2", "api.replicas=3"],
        vec!["controller.serviceAccount.name=ctl", "api.serviceAccount.name=rest"],
        vec!["controller.shards=3", "controller.replicas=3"],
    ] {
        let what = format!("{values:?}");
        assert_least_privilege(&documents(&render("lp", "dbfleet", &values)), &what);
    }
    // Only api.adhocCredentialTests lets the façade read a Secret other
    // than its CSRF key.
    let reads_any_secret = |values: &[&str]| {
        let documents = documents(&render("lp", "dbfleet", values));
        grants_to(&documents, "lp-dbfleet-api")
            .iter()
            .any(|g| g.resource == "secrets" && g.names.is_empty())
    };
    assert!(!reads_any_secret(&[]));
    assert!(reads_any_secret(&["api.adhocCredentialTests=true"]));
    let scaled = documents(&render("lp", "dbfleet", &["controller.replicas=2", "api.replicas=3"]));
    assert_eq!(deployment(&scaled, "-controller")["spec"]["replicas"], 2);
    assert_eq!(deployment(&scaled, "-api")["spec"]["replicas"], 3);
    let api_args = container_args(deployment(&scaled, "-api"));
    for flag in [
        "--max-concurrent-probes=32",
        "--test-connection-interval=10s",
        "--failed-token-reviews-per-minute=60",
        "--failed-token-review-burst=20",
    ] {
        assert!(api_args.contains(&flag.to_string()), "{flag}: {api_args:?}");
    }
    let controller_args = container_args(deployment(&scaled, "-controller"));
    for flag in [
        "--max-concurrent-probes=32",
        "--status-report-interval=10m",
        "--inventory-size-threshold-percent=1",
        "--inventory-size-threshold-bytes=1048576",
        "--version-lifecycle-configmap=dbfleet-version-lifecycle",
        "--version-ending-soon=180d",
    ] {
        assert!(
            controller_args.contains(&flag.to_string()),
            "{flag}: {controller_args:?}"
        );
    }
    // The CSRF key is the chart's, in the namespace the façade serves.
    let key = of_kind(&scaled, "Secret")
        .find(|s| s["metadata"]["name"] == "dbfleet-csrf-key")
        .expect("the chart creates the CSRF key");
    assert!(key["data"]["key"].as_str().is_some_and(|k| k.len() >= 24));
    let without = documents(&render("lp", "dbfleet", &["api.csrfKeySecret.create=false"]));
    assert_eq!(of_kind(&without, "Secret").count(), 0);
}

#[test]
fn the_chart_lints_clean_and_refuses_values_it_no_longer_reads() {
    for values in [
        vec![],
        vec!["scope=namespace", "api.enabled=false"],
        vec!["networkPolicy.enabled=true", "controller.replicas=2"],
    ] {
        let output = helm(&["lint", "charts/dbfleet", "--strict"], &values);
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{values:?}: {text}");
        assert!(
            !text.contains("[WARNING]") && !text.contains("[ERROR]"),
            "{values:?}: {text}"
        );
    }
    for (old, key, hint) in [
        ("replicaCount=2", "replicaCount", "controller.replicas"),
        ("serviceAccount.name=x", "serviceAccount", "controller.serviceAccount"),
    ] {
        // The schema refuses the unknown key…
        let output = helm(&["template", "old", "charts/dbfleet"], &[old]);
        assert!(!output.status.success(), "{old} is refused");
        assert!(String::from_utf8_lossy(&output.stderr).contains(key), "{old}");
        // …and without the schema the chart names the replacement.
        let output = helm(
            &["template", "old", "charts/dbfleet", "--skip-schema-validation"],
            &[old],
        );
        assert!(!output.status.success(), "{old} is refused without the schema");
        assert!(String::from_utf8_lossy(&output.stderr).contains(hint), "{old}");
    }
}

#[tokio::test]
async fn every_rendered_object_is_accepted_by_the_api_server() {
    let (client, ns) = support::admin_in_fresh_namespace("chart").await;
    // The helm test pod runs as the namespace's default ServiceAccount,
    // which a cluster's controller-manager creates; the test API server has
    // none.
    let default_sa = serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap();
    Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &default_sa)
        .await
        .unwrap();
    let dry_run = PatchParams {
        dry_run: true,
        ..PatchParams::apply("dbfleet-chart-test").force()
    };
    // Every variant the chart renders: NetworkPolicies, PDBs, the longest
    // release name, per-component scheduling, the helm test pod and its
    // policy (hooks are rendered too).
    let long_name = "a-release-name-of-the-longest-length-helm-allows-53ch";
    assert_eq!(long_name.len(), 53);
    for (release, values) in [
        ("cluster-wide", vec![]),
        (
            "namespaced",
            vec!["scope=namespace", "controller.replicas=2", "api.enabled=false"],
        ),
        (
            "ha",
            vec![
                "controller.replicas=3",
                "controller.shards=3",
                "api.replicas=3",
                "api.podDisruptionBudget.maxUnavailable=34%",
                "networkPolicy.enabled=true",
                "networkPolicy.api.from[0].namespaceSelector.matchLabels.team=web",
                "networkPolicy.egress.kubernetesApi.cidrs={10.96.0.1/32}",
                "networkPolicy.egress.databases[0].cidr=10.20.0.0/16",
                "networkPolicy.egress.databases[0].ports={5432,3306}",
                "networkPolicy.egress.databases[1].cidr=2001:db8::/64",
                "networkPolicy.egress.databases[1].ports={5432}",
            ],
        ),
        (
            long_name,
            vec![
                "controller.replicas=2",
                "controller.shards=64",
                "networkPolicy.enabled=true",
            ],
        ),
        (
            "scheduled",
            vec![
                "nodeSelector.pool=shared",
                "controller.tolerations[0].key=dedicated",
                "controller.tolerations[0].operator=Exists",
                "controller.priorityClassName=system-cluster-critical",
                "api.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey=kubernetes.io/hostname",
                "api.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector.matchLabels.app\\.kubernetes\\.io/component=api",
                "api.topologySpreadConstraints[0].maxSkew=1",
                "api.topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
                "api.topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule",
            ],
        ),
    ] {
        let manifests = render(release, &ns, &values);
        let applied = support::apply_yaml_with(&client, &ns, &manifests, &dry_run)
            .await
            .unwrap_or_else(|e| panic!("{release}: {e}"));
        assert!(applied.len() >= 8, "{release}: only {} objects", applied.len());
        let applied_kinds: Vec<_> = applied
            .iter()
            .filter_map(|o| o.types.as_ref().map(|t| t.kind.as_str()))
            .collect();
        assert!(applied_kinds.contains(&"Pod"), "{release}: the helm test pod");
        if values.contains(&"networkPolicy.enabled=true") {
            let policies = applied_kinds.iter().filter(|k| **k == "NetworkPolicy").count();
            assert_eq!(
                policies, 3,
                "{release}: the controller's, the façade's and the test pod's"
            );
        }
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
        "Secret",
    ] {
        assert!(
            default_kinds.iter().any(|k| k == kind),
            "no {kind} in {default_kinds:?}"
        );
    }
    assert_eq!(
        default_kinds.iter().filter(|k| *k == "Deployment").count(),
        2,
        "the controller and the façade each run under their own ServiceAccount"
    );
    // The CRDs the chart ships are the generated ones.
    for crd in dbfleet::crd::definitions() {
        assert!(defaults.contains(&format!("name: {}", crd.metadata.name.unwrap())));
    }
    // Hardened pods: non-root, read-only root filesystem, nothing to
    // escalate, in both Deployments and the helm test pod.
    for needle in [
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "allowPrivilegeEscalation: false",
        "- ALL",
    ] {
        assert_eq!(defaults.matches(needle).count(), 3, "{needle} in every pod");
    }
    // Both processes open probe connections, and the MySQL relay's private
    // Unix sockets need a writable /tmp on the read-only root filesystem.
    let documents = documents(&defaults);
    for suffix in ["-controller", "-api"] {
        let pod = &deployment(&documents, suffix)["spec"]["template"]["spec"];
        assert_eq!(pod["containers"][0]["volumeMounts"][0]["mountPath"], "/tmp", "{suffix}");
        assert!(pod["volumes"][0]["emptyDir"].is_object(), "{suffix}");
    }
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
    let manifests = render(
        &release,
        &ns,
        &[
            "scope=namespace",
            "controller.serviceAccount.name=dbfleet-controller",
            "api.serviceAccount.name=dbfleet-api",
        ],
    );
    let chart_lease = lease_name(&documents(&manifests));
    // The ServiceAccounts, their RBAC and the CSRF key: the Deployments
    // need an image.
    let kinds = [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
        "Secret",
    ];
    let applied = apply_kinds(&admin, &ns, &manifests, &kinds).await;
    assert!(applied >= 11, "{applied} objects");
    let controller_token = plane.service_account_token(&ns, "dbfleet-controller").await.unwrap();
    let as_controller = plane.client_with_token(&controller_token).await.unwrap();
    let api_token = plane.service_account_token(&ns, "dbfleet-api").await.unwrap();
    let as_api = plane.client_with_token(&api_token).await.unwrap();

    // The controllers, as the chart runs them: the chart's leader Lease and
    // one shard Lease, scoped.
    let stop = CancellationToken::new();
    let config = Config {
        namespace: Some(ns.clone()),
        ..Config::default()
    };
    let lease = leader::LeaderConfig {
        lease_name: chart_lease,
        lease_namespace: ns.clone(),
        identity: "pod-0".into(),
        lease_seconds: 5,
    };
    let metrics = std::sync::Arc::new(Metrics::default());
    let task = {
        let (client, stop, metrics) = (as_controller.clone(), stop.clone(), metrics.clone());
        tokio::spawn(async move { controller::run_leased(client, config, metrics, lease, || {}, stop).await })
    };

    let pg = dbfleet_testenv::DatabaseServer::postgres().unwrap();
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &ns);
    let secret = serde_json::from_value(json!({"metadata": {"name": "login", "labels": {"dbfleet.io/credential": "true"}}, "stringData": {"username": pg.user, "password": pg.password}})).unwrap();
    secrets.create(&PostParams::default(), &secret).await.unwrap();
    // A credential an earlier dbfleet gave an id label.
    let legacy = serde_json::from_value(json!({"metadata": {"name": "legacy", "labels": {"dbfleet.io/credential": "true", "dbfleet.io/id": "77"}}, "stringData": {"username": "u", "password": "p"}})).unwrap();
    secrets.create(&PostParams::default(), &legacy).await.unwrap();
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
    // id labels, status, the DbInventory, the tag finalizer, Events, the
    // Lease, the id counter.
    let ready = ctl::instance_where(&instances, "db", "Ready", |i| {
        i.status.as_ref().and_then(|s| s.phase) == Some(Phase::Ready)
    })
    .await;
    assert!(dbfleet::ids::id_of(&ready.metadata).is_some());
    let inventories: Api<DbInventory> = Api::namespaced(admin.clone(), &ns);
    ctl::eventually(Duration::from_secs(30), "the instance's DbInventory", || async {
        let found = inventories.get_opt("db").await.unwrap();
        (found.as_ref().map(|_| ()), format!("{found:?}"))
    })
    .await;
    ctl::eventually(
        Duration::from_secs(20),
        "tag protected and credentials given ids",
        || async {
            let tag = tags.get("prod").await.unwrap();
            let protected = tag
                .finalizers()
                .iter()
                .any(|f| f == dbfleet::crd::keys::TAG_IN_USE_FINALIZER);
            let counted = tag.status.as_ref().is_some_and(|s| s.instance_count == 1);
            let ids = recorded_credential_ids(&admin, &ns).await;
            // A new credential gets the next id; one an earlier dbfleet
            // labelled keeps its label's.
            let recorded = ids.contains_key("login") && ids.get("legacy") == Some(&77);
            (
                (protected && counted && recorded).then_some(()),
                format!("protected={protected} counted={counted} ids={ids:?}"),
            )
        },
    )
    .await;
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(admin.clone(), &ns);
    assert!(
        !events.list(&Default::default()).await.unwrap().items.is_empty(),
        "the controllers recorded Events"
    );
    // The console's instance page lists them as the façade, with the same
    // field selector (written through events.k8s.io, read through the core
    // API: the same objects).
    let uid = ready.metadata.uid.clone().unwrap();
    let as_api_events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(as_api.clone(), &ns);
    let about = as_api_events
        .list(&dbfleet::console::events::about(&uid))
        .await
        .unwrap();
    assert!(
        !about.items.is_empty()
            && about
                .items
                .iter()
                .all(|e| e.involved_object.uid.as_deref() == Some(&uid)),
        "the façade lists the instance's Events: {:?}",
        about.items
    );
    // A sync session: fresh reads of the login and the tags, session status.
    let sessions: Api<DbSyncSession> = Api::namespaced(admin.clone(), &ns);
    let session = serde_json::from_value(json!({"apiVersion": "dbfleet.io/v1alpha1", "kind": "DbSyncSession", "metadata": {"name": "check"}, "spec": {"operation": "connection"}})).unwrap();
    sessions.create(&PostParams::default(), &session).await.unwrap();
    ctl::eventually(Duration::from_secs(30), "the session to succeed", || async {
        let status = sessions.get("check").await.unwrap().status;
        let phase = status.as_ref().and_then(|s| s.phase);
        (
            (phase == Some(SyncPhase::Succeeded)).then_some(()),
            format!("{status:?}"),
        )
    })
    .await;
    // Retention: deleting for good is allowed too.
    instances.delete("db", &DeleteParams::default()).await.unwrap();
    assert!(
        !metrics.encode().contains("result=\"kube_error\""),
        "a Kubernetes call was refused:\n{}",
        metrics.encode()
    );

    // The façade's ServiceAccount reads Secrets but writes none.
    let refused = Api::<Secret>::namespaced(as_api.clone(), &ns)
        .create(&PostParams::default(), &Secret::default())
        .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(e)) if e.code == 403),
        "{refused:?}"
    );

    // The façade, on its own token, serving a REST client that has the
    // examples' RBAC (view, create, update, delete on instances and tags).
    let client_rbac = std::fs::read_to_string(support::repo_root().join("examples/rest-client-rbac.yaml")).unwrap();
    support::apply_yaml(&admin, &ns, &client_rbac).await.unwrap();
    let caller = plane.service_account_token(&ns, "inventory-admin").await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/api/v1", listener.local_addr().unwrap());
    let config = dbfleet::api::ApiConfig::new(ns.clone(), dbfleet::api::auth::AuthMode::Kubernetes);
    let facade = tokio::spawn(dbfleet::api::serve(as_api.clone(), config, listener, stop.clone()));
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, csrf: Option<&str>, body: Option<Value>| {
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
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let ready = ctl::eventually(Duration::from_secs(20), "the façade's caches", || async {
        let (status, body) = call(reqwest::Method::GET, "/instances", None, None).await;
        ((status == 200).then_some(()), format!("{status} {body}"))
    });
    ready.await;
    let (_, token) = call(reqwest::Method::GET, "/auth/csrf-token", None, None).await;
    let csrf = token["data"]["csrf_token"].as_str().unwrap().to_string();
    // The controller wrote no Secret: the id is in the ConfigMap only.
    assert_eq!(dbfleet::ids::id_of(&secrets.get("login").await.unwrap().metadata), None);
    let credential_id = recorded_credential_ids(&admin, &ns).await["login"];
    // The controller recorded the id a moment ago; wait until the façade's
    // watch of the ConfigMap has seen it too.
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
    let (status, tag) = call(
        reqwest::Method::POST,
        "/tags",
        Some(&csrf),
        Some(json!({"name": "rest", "display_name": "REST", "category": "env"})),
    )
    .await;
    assert_eq!(status, 201, "{tag}");
    let tag_id = tag["data"]["id"].as_i64().unwrap();
    let steps: Vec<(reqwest::Method, String, Option<Value>, u16)> = vec![
        (
            reqwest::Method::PUT,
            format!("/tags/{tag_id}"),
            Some(json!({"name": "rest", "display_name": "REST API", "category": "env"})),
            200,
        ),
        (
            reqwest::Method::POST,
            "/instances".into(),
            Some(
                json!({"name": "via-rest", "db_type": "postgresql", "host": pg.host, "port": pg.port, "credential_id": credential_id, "tag_names": ["rest"]}),
            ),
            201,
        ),
        (
            reqwest::Method::POST,
            "/instances".into(),
            Some(json!({"name": "doomed", "db_type": "mysql", "host": "db.example.com", "port": 3306})),
            201,
        ),
        (
            reqwest::Method::POST,
            "/instances/actions/sync-accounts".into(),
            None,
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
    // On-demand syncs ask the controller (a patch of the instance's request
    // annotations) and answer from its status and DbInventory, under the
    // chart's RBAC; the façade writes no status.
    for action in ["sync-capacity", "sync-accounts"] {
        let (status, answer) = call(
            reqwest::Method::POST,
            &format!("/instances/{id}/actions/{action}"),
            Some(&csrf),
            None,
        )
        .await;
        assert_eq!(status, 200, "{action}: {answer}");
    }
    // A test by instance_id is the controller's login; the façade may not
    // read the credential itself, so an ad-hoc test with it is refused,
    // saying which chart value would allow it, and nothing is dialled.
    let (status, answer) = call(
        reqwest::Method::POST,
        "/instances/actions/test-connection",
        Some(&csrf),
        Some(json!({"instance_id": id})),
    )
    .await;
    assert_eq!((status, &answer["data"]["success"]), (200, &json!(true)), "{answer}");
    let (status, answer) = call(
        reqwest::Method::POST,
        "/instances/actions/test-connection",
        Some(&csrf),
        Some(json!({"db_type": "postgresql", "host": pg.host, "port": pg.port, "credential_id": credential_id})),
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (403, Some("PERMISSION_DENIED")),
        "{answer}"
    );
    assert!(
        answer["message"].as_str().unwrap().contains("api.adhocCredentialTests"),
        "{answer}"
    );
    // The inventory endpoints read the instance's DbInventory (get); the
    // fleet-wide search answers from an index kept from its watch (list,
    // watch), which readiness waits for too.
    let (status, answer) = call(reqwest::Method::GET, &format!("/instances/{id}/accounts"), None, None).await;
    assert_eq!((status, &answer["data"]["collected"]), (200, &json!(true)), "{answer}");
    let readyz = format!("{}/readyz", base.trim_end_matches("/api/v1"));
    assert_eq!(http.get(&readyz).send().await.unwrap().status(), 200);
    ctl::eventually(
        Duration::from_secs(20),
        "the fleet index to hold the accounts",
        || async {
            let (status, body) = call(reqwest::Method::GET, "/accounts?limit=1", None, None).await;
            let found = status == 200 && body["data"]["items"][0]["instance"]["id"].as_i64() == Some(id);
            (found.then_some(()), format!("{status} {body}"))
        },
    )
    .await;
    let (status, answer) = call(reqwest::Method::DELETE, &format!("/instances/{id}"), Some(&csrf), None).await;
    assert_eq!(status, 200, "{answer}");
    let (_, doomed) = call(reqwest::Method::GET, "/instances?search=doomed", None, None).await;
    let doomed = doomed["data"]["items"][0]["id"].as_i64().unwrap();
    let (status, answer) = call(
        reqwest::Method::POST,
        "/instances/actions/batch-delete",
        Some(&csrf),
        Some(json!({"instance_ids": [doomed], "deletion_mode": "hard"})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");

    stop.cancel();
    task.await.unwrap().unwrap();
    facade.await.unwrap().unwrap();
}
