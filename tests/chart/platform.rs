//! What a platform team needs to install the chart without edits: long
//! release names, NetworkPolicies, disruption budgets and spread,
//! per-component scheduling, optional CRDs of other projects, and a `helm
//! test` hook.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use kube::api::{DynamicObject, GroupVersionKind};
use kube::discovery::{Discovery, Scope};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use super::{deployment, documents, helm, of_kind, render, support};

/// Every object name and Lease name in a render (with the shard Leases the
/// controller derives from `--lease-name` and `--shards`).
fn generated_names(documents: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = documents
        .iter()
        .filter(|d| d["kind"] != "CustomResourceDefinition")
        .filter_map(|d| d["metadata"]["name"].as_str().map(String::from))
        .collect();
    names.extend(super::lease_names(documents));
    names
}

/// A release name of exactly `len` characters ending in `tail`.
fn release_name(len: usize, tail: &str) -> String {
    let head = "a-platform-teams-release-with-the-longest-name-helm-allows";
    let name = format!("{}{tail}", &head[..len - tail.len()]);
    assert_eq!(name.len(), len);
    name
}

#[test]
fn every_generated_name_fits_63_characters_and_stays_apart() {
    let every_object = [
        "controller.replicas=2",
        "controller.shards=64",
        "networkPolicy.enabled=true",
    ];
    // A name that fits is kept as it was, so an upgrade renames nothing.
    let short = documents(&render("d", "dbfleet", &every_object));
    let short_names = generated_names(&short);
    for name in [
        "d-dbfleet",
        "d-dbfleet-controller",
        "d-dbfleet-api",
        "d-dbfleet-leader-election",
        "d-dbfleet-api-auth",
        "d-dbfleet-stored-login-target",
        "d-dbfleet-test",
        "d-dbfleet-shard-63",
    ] {
        assert!(short_names.iter().any(|n| n == name), "{name}: {short_names:?}");
    }
    // Helm allows 53 characters; two such names differing only at the end.
    let first = generated_names(&documents(&render(&release_name(53, "one"), "dbfleet", &every_object)));
    let second = generated_names(&documents(&render(&release_name(53, "two"), "dbfleet", &every_object)));
    assert_eq!(first.len(), short_names.len());
    for name in first.iter().chain(&second) {
        assert!(name.len() <= 63, "{name}: {} characters", name.len());
    }
    let first_set: std::collections::BTreeSet<_> = first.iter().collect();
    for name in &second {
        if name != "dbfleet-csrf-key" {
            assert!(!first_set.contains(name), "{name} is generated for both releases");
        }
    }
    // The hash is stable: the same release renders the same names.
    let again = generated_names(&documents(&render(&release_name(53, "one"), "dbfleet", &every_object)));
    assert_eq!(first, again);
    // Each suffix is still there to tell the objects apart.
    for suffix in [
        "-controller",
        "-api",
        "-leader-election",
        "-stored-login-target",
        "-shard-63",
        "-test",
    ] {
        assert!(first.iter().any(|n| n.ends_with(suffix)), "{suffix}: {first:?}");
    }
}

/// `helm` with the test API server's admin kubeconfig.
fn helm_on_cluster(kubeconfig: &PathBuf, args: &[&str], values: &[&str]) -> std::process::Output {
    let mut all = vec!["--kubeconfig", kubeconfig.to_str().unwrap()];
    all.extend(args);
    helm(&all, values)
}

#[tokio::test]
async fn a_release_with_a_53_character_name_installs() {
    let plane = support::control_plane().await;
    let (client, ns) = support::admin_in_fresh_namespace("chart-long").await;
    let kubeconfig = std::env::temp_dir().join(format!("dbfleet-{ns}.kubeconfig"));
    std::fs::write(&kubeconfig, plane.admin_kubeconfig()).unwrap();
    // Cluster-scoped names are the release's: unique per test namespace.
    let release = release_name(53, &ns[ns.len() - 5..]);
    // scope=namespace keeps the admission policy's binding to this
    // namespace, away from the other tests' instances.
    let values = [
        "scope=namespace",
        "controller.replicas=2",
        "controller.shards=2",
        "networkPolicy.enabled=true",
        "networkPolicy.egress.databases[0].cidr=10.20.0.0/16",
        "networkPolicy.egress.databases[0].ports={5432}",
    ];
    let output = helm_on_cluster(
        &kubeconfig,
        &["install", &release, "charts/dbfleet", "--namespace", &ns],
        &values,
    );
    assert!(
        output.status.success(),
        "helm install {release}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // Everything Helm installed is there, under a name that fits.
    let manifests = render(&release, &ns, &values);
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let mut found = BTreeMap::new();
    for document in documents(&manifests) {
        let kind = document["kind"].as_str().unwrap().to_string();
        let hook = document["metadata"]["annotations"]["helm.sh/hook"].is_string();
        if kind == "CustomResourceDefinition" || hook {
            continue;
        }
        let object: DynamicObject = serde_json::from_value(document).unwrap();
        let gvk = GroupVersionKind::try_from(object.types.as_ref().unwrap()).unwrap();
        let (resource, capabilities) = discovery.resolve_gvk(&gvk).unwrap();
        let api: Api<DynamicObject> = match capabilities.scope {
            Scope::Cluster => Api::all_with(client.clone(), &resource),
            Scope::Namespaced => Api::namespaced_with(client.clone(), &ns, &resource),
        };
        let name = object.name_any();
        assert!(name.len() <= 63, "{kind} {name}: {} characters", name.len());
        let stored = api.get(&name).await.unwrap_or_else(|e| panic!("{kind} {name}: {e}"));
        assert_eq!(
            stored.labels().get("app.kubernetes.io/instance"),
            Some(&release),
            "{kind} {name}"
        );
        *found.entry(kind).or_insert(0) += 1;
    }
    for (kind, count) in [
        ("Deployment", 2),
        ("Service", 2),
        ("NetworkPolicy", 2),
        ("PodDisruptionBudget", 2),
        ("ValidatingAdmissionPolicy", 1),
        ("ClusterRole", 1),
    ] {
        assert_eq!(found.get(kind), Some(&count), "{kind}: {found:?}");
    }

    // A ServiceMonitor asked for on a cluster without the Prometheus
    // Operator's CRD: Helm reads the cluster's API versions, and the chart
    // says what is missing before anything is created.
    let other = release_name(53, &format!("sm{}", &ns[ns.len() - 5..]));
    let output = helm_on_cluster(
        &kubeconfig,
        &["install", &other, "charts/dbfleet", "--namespace", &ns],
        &["scope=namespace", "serviceMonitor.enabled=true"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "installed without the ServiceMonitor CRD");
    assert!(
        stderr.contains("no monitoring.coreos.com/v1 ServiceMonitor")
            && stderr.contains("serviceMonitor.enabled=false"),
        "{stderr}"
    );
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(client.clone(), &ns);
    assert_eq!(deployments.list(&Default::default()).await.unwrap().items.len(), 2);
    let _ = std::fs::remove_file(kubeconfig);
}

#[test]
fn a_service_monitor_renders_only_where_its_crd_is_known() {
    let output = helm(&["template", "sm", "charts/dbfleet"], &["serviceMonitor.enabled=true"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "rendered without the CRD");
    assert!(
        stderr.contains("--api-versions monitoring.coreos.com/v1/ServiceMonitor"),
        "{stderr}"
    );
    let output = helm(
        &[
            "template",
            "sm",
            "charts/dbfleet",
            "--api-versions",
            "monitoring.coreos.com/v1/ServiceMonitor",
        ],
        &["serviceMonitor.enabled=true"],
    );
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let rendered = documents(&String::from_utf8(output.stdout).unwrap());
    let monitor = of_kind(&rendered, "ServiceMonitor").next().expect("a ServiceMonitor");
    let ports: Vec<_> = monitor["spec"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["port"].as_str().unwrap())
        .collect();
    assert_eq!(ports, ["metrics", "http"]);
    // Not asked for, not rendered, whatever the cluster has.
    let output = helm(
        &[
            "template",
            "sm",
            "charts/dbfleet",
            "--api-versions",
            "monitoring.coreos.com/v1/ServiceMonitor",
        ],
        &[],
    );
    assert_eq!(
        of_kind(&documents(&String::from_utf8(output.stdout).unwrap()), "ServiceMonitor").count(),
        0
    );
}

fn pod_spec<'a>(documents: &'a [Value], suffix: &str) -> &'a Value {
    &deployment(documents, suffix)["spec"]["template"]["spec"]
}

fn pod_labels<'a>(documents: &'a [Value], suffix: &str) -> &'a serde_json::Map<String, Value> {
    deployment(documents, suffix)["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .unwrap()
}

/// Whether `selector` (matchLabels) selects pods with `labels`.
fn selects(selector: &Value, labels: &serde_json::Map<String, Value>) -> bool {
    let wanted = selector["matchLabels"].as_object().expect("matchLabels");
    !wanted.is_empty() && wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn named<'a>(documents: &'a [Value], kind: &'a str, suffix: &str) -> Option<&'a Value> {
    of_kind(documents, kind).find(|d| d["metadata"]["name"].as_str().is_some_and(|n| n.ends_with(suffix)))
}

#[test]
fn the_facade_survives_a_drain_and_the_controller_keeps_its_standby_model() {
    let defaults = documents(&render("av", "dbfleet", &[]));
    assert_eq!(deployment(&defaults, "-api")["spec"]["replicas"], 2);
    assert_eq!(deployment(&defaults, "-controller")["spec"]["replicas"], 1);
    let api_pdb = named(&defaults, "PodDisruptionBudget", "-api").expect("the façade's PDB");
    assert_eq!(api_pdb["spec"]["maxUnavailable"], 1);
    assert!(selects(&api_pdb["spec"]["selector"], pod_labels(&defaults, "-api")));
    assert!(!selects(
        &api_pdb["spec"]["selector"],
        pod_labels(&defaults, "-controller")
    ));
    assert!(
        named(&defaults, "PodDisruptionBudget", "-controller").is_none(),
        "one controller replica: a budget would only block drains"
    );
    // Spread over nodes by default, each component counting its own pods
    // of the same revision.
    for suffix in ["-api", "-controller"] {
        let constraints = &pod_spec(&defaults, suffix)["topologySpreadConstraints"];
        assert_eq!(constraints[0]["topologyKey"], "kubernetes.io/hostname", "{suffix}");
        assert_eq!(constraints[0]["whenUnsatisfiable"], "ScheduleAnyway", "{suffix}");
        assert_eq!(
            constraints[0]["matchLabelKeys"],
            json!(["pod-template-hash"]),
            "{suffix}"
        );
        assert!(
            selects(&constraints[0]["labelSelector"], pod_labels(&defaults, suffix)),
            "{suffix}"
        );
    }
    assert!(!selects(
        &pod_spec(&defaults, "-api")["topologySpreadConstraints"][0]["labelSelector"],
        pod_labels(&defaults, "-controller")
    ));

    let standby = documents(&render(
        "av",
        "dbfleet",
        &["controller.replicas=2", "api.podDisruptionBudget.maxUnavailable=50%"],
    ));
    let controller_pdb = named(&standby, "PodDisruptionBudget", "-controller").expect("a standby: a PDB");
    assert_eq!(controller_pdb["spec"]["maxUnavailable"], 1);
    assert!(selects(
        &controller_pdb["spec"]["selector"],
        pod_labels(&standby, "-controller")
    ));
    assert_eq!(
        named(&standby, "PodDisruptionBudget", "-api").unwrap()["spec"]["maxUnavailable"],
        "50%"
    );
    let off = documents(&render(
        "av",
        "dbfleet",
        &[
            "controller.replicas=2",
            "controller.podDisruptionBudget.enabled=false",
            "api.enabled=false",
        ],
    ));
    assert_eq!(of_kind(&off, "PodDisruptionBudget").count(), 0);
}

#[test]
fn each_component_is_scheduled_on_its_own_and_the_shared_keys_are_defaults() {
    // The shared keys of earlier versions still apply to both.
    let shared = documents(&render(
        "sc",
        "dbfleet",
        &[
            "nodeSelector.pool=shared",
            "tolerations[0].key=shared",
            "tolerations[0].operator=Exists",
            "affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight=1",
            "affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchExpressions[0].key=shared",
            "affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchExpressions[0].operator=Exists",
        ],
    ));
    for suffix in ["-controller", "-api"] {
        let spec = pod_spec(&shared, suffix);
        assert_eq!(spec["nodeSelector"], json!({"pool": "shared"}), "{suffix}");
        assert_eq!(spec["tolerations"][0]["key"], "shared", "{suffix}");
        assert!(spec["affinity"]["nodeAffinity"].is_object(), "{suffix}");
        assert!(spec.get("priorityClassName").is_none(), "{suffix}");
    }
    // A component's own value wins; the other keeps the shared one.
    let own = documents(&render(
        "sc",
        "dbfleet",
        &[
            "nodeSelector.pool=shared",
            "tolerations[0].key=shared",
            "controller.nodeSelector.pool=controllers",
            "api.tolerations[0].key=api",
            "api.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey=kubernetes.io/hostname",
            "api.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector.matchLabels.app\\.kubernetes\\.io/component=api",
            "controller.priorityClassName=system-cluster-critical",
            "api.priorityClassName=high",
            "api.topologySpreadConstraints[0].maxSkew=1",
            "api.topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
            "api.topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule",
            "controller.topologySpreadConstraints=null",
            "controller.resources.limits.memory=1Gi",
            "api.resources.requests.cpu=1",
        ],
    ));
    let (controller, api) = (pod_spec(&own, "-controller"), pod_spec(&own, "-api"));
    assert_eq!(controller["nodeSelector"], json!({"pool": "controllers"}));
    assert_eq!(api["nodeSelector"], json!({"pool": "shared"}));
    assert_eq!(controller["tolerations"][0]["key"], "shared");
    assert_eq!(api["tolerations"][0]["key"], "api");
    assert!(controller.get("affinity").is_none());
    assert_eq!(
        api["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"],
        "kubernetes.io/hostname"
    );
    assert_eq!(controller["priorityClassName"], "system-cluster-critical");
    assert_eq!(api["priorityClassName"], "high");
    assert!(controller.get("topologySpreadConstraints").is_none());
    let zone = &api["topologySpreadConstraints"];
    assert_eq!(zone.as_array().unwrap().len(), 1);
    assert_eq!(zone[0]["topologyKey"], "topology.kubernetes.io/zone");
    assert!(selects(&zone[0]["labelSelector"], pod_labels(&own, "-api")));
    assert_eq!(controller["containers"][0]["resources"]["limits"]["memory"], "1Gi");
    assert_eq!(api["containers"][0]["resources"]["requests"]["cpu"], 1);
    // The pods keep their hardening and the in-memory /tmp whatever is set.
    for spec in [controller, api] {
        assert_eq!(spec["containers"][0]["volumeMounts"][0]["mountPath"], "/tmp");
        assert_eq!(spec["volumes"][0]["emptyDir"]["medium"], "Memory");
    }
    // A typo in a component's scheduling is refused, like any value.
    for (set, complaint) in [
        ("api.nodeSelecter.a=b", "nodeSelecter"),
        ("controller.topologySpreadConstraints[0].maxSkew=0", "maxSkew"),
        ("api.priorityClassName[0]=x", "priorityClassName"),
    ] {
        let output = helm(&["template", "sc", "charts/dbfleet"], &[set]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "--set {set} was accepted");
        assert!(stderr.contains(complaint), "--set {set}: {stderr}");
    }
}

/// The ports and peers of a NetworkPolicy rule, as (port, protocol) pairs.
fn rule_ports(rule: &Value) -> Vec<(i64, String)> {
    rule["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["port"].as_i64().unwrap(), p["protocol"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn network_policies_let_in_callers_and_scrapers_and_let_out_only_the_api_dns_and_databases() {
    let defaults = documents(&render("np", "dbfleet", &[]));
    assert_eq!(of_kind(&defaults, "NetworkPolicy").count(), 0, "off by default");

    let rendered = documents(&render(
        "np",
        "dbfleet",
        &[
            "networkPolicy.enabled=true",
            "networkPolicy.api.from[0].namespaceSelector.matchLabels.team=web",
            "networkPolicy.api.from[1].podSelector.matchLabels.role=client",
            "networkPolicy.egress.kubernetesApi.cidrs={10.96.0.1/32,192.168.1.10/32}",
            "networkPolicy.egress.databases[0].cidr=10.20.0.0/16",
            "networkPolicy.egress.databases[0].ports={5432,3306}",
            "networkPolicy.egress.databases[1].cidr=2001:db8::/64",
            "networkPolicy.egress.databases[1].ports={3307}",
        ],
    ));
    let test_pod = of_kind(&rendered, "Pod").next().expect("the helm test pod");
    let test_labels = test_pod["metadata"]["labels"].as_object().unwrap();
    let monitoring = json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}});
    for (suffix, port) in [("-controller", 8080), ("-api", 8000)] {
        let policy = named(&rendered, "NetworkPolicy", suffix).unwrap_or_else(|| panic!("{suffix}"));
        let spec = &policy["spec"];
        assert!(selects(&spec["podSelector"], pod_labels(&rendered, suffix)), "{suffix}");
        assert_eq!(spec["policyTypes"], json!(["Ingress", "Egress"]), "{suffix}");
        // Ingress: one port, from the monitoring namespace and the test pod
        // (and, to the façade, its callers).
        let ingress = spec["ingress"].as_array().unwrap();
        assert_eq!(ingress.len(), 1, "{suffix}");
        assert_eq!(rule_ports(&ingress[0]), [(port, "TCP".to_string())], "{suffix}");
        let from = ingress[0]["from"].as_array().unwrap();
        assert!(from.contains(&monitoring), "{suffix}: {from:?}");
        assert!(
            from.iter()
                .any(|peer| peer.get("podSelector").is_some_and(|s| selects(s, test_labels))),
            "{suffix}: the helm test pod"
        );
        if suffix == "-api" {
            assert!(from.contains(&json!({"namespaceSelector": {"matchLabels": {"team": "web"}}})));
            assert!(from.contains(&json!({"podSelector": {"matchLabels": {"role": "client"}}})));
        } else {
            assert_eq!(from.len(), 2, "the controller serves only its metrics: {from:?}");
        }
        // Egress: the API, DNS, and the databases listed - nothing else.
        let egress = spec["egress"].as_array().unwrap();
        assert_eq!(egress.len(), 4, "{suffix}: {egress:?}");
        assert_eq!(rule_ports(&egress[0]), [(443, "TCP".into()), (6443, "TCP".into())]);
        assert_eq!(
            egress[0]["to"],
            json!([{"ipBlock": {"cidr": "10.96.0.1/32"}}, {"ipBlock": {"cidr": "192.168.1.10/32"}}])
        );
        assert_eq!(rule_ports(&egress[1]), [(53, "UDP".into()), (53, "TCP".into())]);
        assert_eq!(egress[1]["to"][0]["podSelector"]["matchLabels"]["k8s-app"], "kube-dns");
        assert_eq!(rule_ports(&egress[2]), [(5432, "TCP".into()), (3306, "TCP".into())]);
        assert_eq!(egress[2]["to"], json!([{"ipBlock": {"cidr": "10.20.0.0/16"}}]));
        assert_eq!(egress[3]["to"], json!([{"ipBlock": {"cidr": "2001:db8::/64"}}]));
    }
    // Without callers listed, anyone may call the façade (it authenticates
    // every request); the metrics port of the controller stays closed.
    let open = documents(&render("np", "dbfleet", &["networkPolicy.enabled=true"]));
    let api = named(&open, "NetworkPolicy", "-api").unwrap();
    assert!(api["spec"]["ingress"][0].get("from").is_none(), "{api}");
    let controller = named(&open, "NetworkPolicy", "-controller").unwrap();
    assert!(controller["spec"]["ingress"][0]["from"].is_array());
    // The test pod's own policy: out to the two processes and DNS only.
    let test_policy = named(&open, "NetworkPolicy", "-test").expect("the test pod's policy");
    assert_eq!(test_policy["metadata"]["annotations"]["helm.sh/hook"], "test");
    let egress = test_policy["spec"]["egress"].as_array().unwrap();
    assert_eq!(rule_ports(&egress[0]), [(8080, "TCP".into())]);
    assert!(selects(
        &egress[0]["to"][0]["podSelector"],
        pod_labels(&open, "-controller")
    ));
    assert_eq!(rule_ports(&egress[1]), [(8000, "TCP".into())]);
    assert!(selects(&egress[1]["to"][0]["podSelector"], pod_labels(&open, "-api")));
    assert_eq!(rule_ports(&egress[2]), [(53, "UDP".into()), (53, "TCP".into())]);
    // A database entry must say where and on which ports.
    for (set, complaint) in [
        ("networkPolicy.egress.databases[0].cidr=10.0.0.0/8", "ports"),
        ("networkPolicy.egress.databases[0].ports={5432}", "cidr"),
        ("networkPolicy.egress.kubernetesApi.cidrs={10.0.0.1}", "cidrs"),
        ("networkPolicy.api.from[0].pods.a=b", "pods"),
    ] {
        let output = helm(
            &[
                "template",
                "np",
                "charts/dbfleet",
                "--set",
                "networkPolicy.enabled=true",
            ],
            &[set],
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "--set {set} was accepted");
        assert!(stderr.contains(complaint), "--set {set}: {stderr}");
    }
}

/// The test pod's check, run here by `sh` against the real `/readyz` and
/// `/metrics` handlers, since pods never run on the test API server.
async fn run_test_script(pod: &Value, ready: bool) -> std::process::Output {
    let health = dbfleet::health::Health {
        metrics: Arc::new(dbfleet::metrics::Metrics::default()),
        ready: Arc::new(AtomicBool::new(ready)),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, dbfleet::health::router(health)).await });
    let container = &pod["spec"]["containers"][0];
    let command: Vec<String> = container["command"]
        .as_array()
        .unwrap()
        .iter()
        .chain(container["args"].as_array().unwrap())
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    // The pod's variables (the Services' URLs), each pointed at the server.
    let mut script = tokio::process::Command::new(&command[0]);
    script.args(&command[1..]).env_remove("API").env_remove("CONTROLLER");
    for variable in container["env"].as_array().unwrap() {
        script.env(variable["name"].as_str().unwrap(), &base);
    }
    let output = script.output().await.expect("run the test pod's script");
    server.abort();
    output
}

#[tokio::test]
async fn helm_test_checks_readyz_and_metrics() {
    let rendered = documents(&render("ht", "dbfleet", &[]));
    let pod = of_kind(&rendered, "Pod").next().expect("the helm test pod");
    assert_eq!(pod["metadata"]["annotations"]["helm.sh/hook"], "test");
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    assert_eq!(pod["spec"]["automountServiceAccountToken"], false);
    let container = &pod["spec"]["containers"][0];
    assert_eq!(container["image"], "docker.io/library/busybox:1.37.0");
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
    // Through the Services, as a client in the cluster reaches them.
    let env: BTreeMap<&str, &str> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["value"].as_str().unwrap()))
        .collect();
    assert_eq!(env["API"], "http://ht-dbfleet.dbfleet.svc:80");
    assert_eq!(env["CONTROLLER"], "http://ht-dbfleet-controller.dbfleet.svc:8080");
    let services: Vec<&str> = of_kind(&rendered, "Service")
        .map(|s| s["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(services, ["ht-dbfleet", "ht-dbfleet-controller"]);

    // The script passes against a ready process and fails against one that
    // is not.
    let passed = run_test_script(pod, true).await;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&passed.stdout),
        String::from_utf8_lossy(&passed.stderr),
    );
    assert!(passed.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout, "ok\n");
    for path in ["/readyz", "/metrics"] {
        assert!(stderr.contains(path), "{stderr}");
    }
    let failed = run_test_script(pod, false).await;
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        !failed.status.success() && stderr.contains("/readyz failed"),
        "{stderr}"
    );

    // Without the façade, it checks the controller alone.
    let controller_only = documents(&render("ht", "dbfleet", &["api.enabled=false"]));
    let pod = of_kind(&controller_only, "Pod").next().unwrap();
    assert!(pod["spec"]["containers"][0]["env"].as_array().unwrap().len() == 1);
    assert!(
        run_test_script(pod, false).await.status.success(),
        "the controller's metrics only"
    );
    let none = documents(&render("ht", "dbfleet", &["tests.enabled=false"]));
    assert_eq!(of_kind(&none, "Pod").count(), 0);
}
