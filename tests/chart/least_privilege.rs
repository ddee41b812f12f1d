//! What the rendered RBAC lets each ServiceAccount do to Secrets, asked the
//! way an auditor would: `kubectl auth can-i --as=system:serviceaccount:…`
//! against the test API server, after applying the chart's RBAC to it.
//! (`main.rs` runs both processes on the same RBAC, so every right taken
//! away here is one the code does not use.)

use std::path::PathBuf;
use std::process::Command;

use super::{apply_kinds, render, support};

/// The chart's ServiceAccounts and their RBAC, applied for a release in a
/// fresh namespace; the Deployments need an image, so they are left out.
struct Installed {
    namespace: String,
    controller: String,
    api: String,
    kubeconfig: PathBuf,
}

async fn install(prefix: &str, values: &[&str]) -> Installed {
    let plane = support::control_plane().await;
    let (admin, namespace) = support::admin_in_fresh_namespace(prefix).await;
    // Cluster-scoped names must not collide between tests.
    let release = format!("{prefix}-{}", &namespace[namespace.len() - 5..]);
    let controller = format!("{release}-controller-sa");
    let api = format!("{release}-api-sa");
    let mut all = vec![
        format!("controller.serviceAccount.name={controller}"),
        format!("api.serviceAccount.name={api}"),
    ];
    all.extend(values.iter().map(|v| v.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let manifests = render(&release, &namespace, &all);
    let kinds = [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
    ];
    apply_kinds(&admin, &namespace, &manifests, &kinds).await;
    let kubeconfig = std::env::temp_dir().join(format!("dbfleet-{namespace}.kubeconfig"));
    std::fs::write(&kubeconfig, plane.admin_kubeconfig()).unwrap();
    Installed {
        namespace,
        controller,
        api,
        kubeconfig,
    }
}

impl Installed {
    /// `kubectl auth can-i VERB RESOURCE -n NAMESPACE` as the ServiceAccount
    /// `account` of this release (`None`: across all namespaces).
    fn can(&self, account: &str, verb: &str, resource: &str, namespace: Option<&str>) -> bool {
        let assets = std::env::var("KUBEBUILDER_ASSETS").expect("KUBEBUILDER_ASSETS is set by scripts/test-env.sh");
        let mut command = Command::new(PathBuf::from(assets).join("kubectl"));
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["auth", "can-i", verb, resource])
            .arg(format!("--as=system:serviceaccount:{}:{account}", self.namespace));
        match namespace {
            Some(namespace) => command.args(["--namespace", namespace]),
            None => command.arg("--all-namespaces"),
        };
        let output = command.output().expect("run kubectl");
        let answer = String::from_utf8_lossy(&output.stdout).trim().to_string();
        match (output.status.code(), answer.as_str()) {
            (Some(0), "yes") => true,
            (Some(1), "no") => false,
            _ => panic!(
                "kubectl auth can-i {verb} {resource}: {:?} {answer:?} {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }

    /// Asserts `account` may do each of `verbs` on `resource` in
    /// `namespace` exactly when `allowed`.
    #[track_caller]
    fn assert(&self, account: &str, verbs: &[&str], resource: &str, namespace: Option<&str>, allowed: bool) {
        for verb in verbs {
            assert_eq!(
                self.can(account, verb, resource, namespace),
                allowed,
                "{account} {} {verb} {resource} in {namespace:?}",
                if allowed { "may not" } else { "may" }
            );
        }
    }
}

const WRITES: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

#[tokio::test]
async fn cluster_scope_the_controller_writes_no_secret_and_the_facade_reads_only_its_key() {
    let chart = install("lp-cluster", &[]).await;
    let (ns, controller, api) = (Some(chart.namespace.as_str()), &chart.controller, &chart.api);

    // The controller writes no Secret anywhere: not in kube-system, not in
    // its own namespace, not cluster-wide.
    for namespace in [Some("kube-system"), ns, None] {
        chart.assert(controller, &WRITES, "secrets", namespace, false);
    }
    // It reads labelled Secrets in every namespace: a label-selected watch
    // needs list and watch on all of them, which RBAC cannot narrow by
    // label (docs/security.md says so).
    chart.assert(controller, &["get", "list", "watch"], "secrets", None, true);
    // Its ConfigMap rights are the id ConfigMap's, by name.
    chart.assert(
        controller,
        &["get", "list", "watch", "update"],
        "configmaps/dbfleet-ids",
        ns,
        true,
    );
    chart.assert(controller, &["get", "list", "watch", "update"], "configmaps", ns, false);
    chart.assert(controller, &["get"], "configmaps/kube-root-ca.crt", ns, false);
    // and a get of the site's end-of-life dates, which it never writes.
    chart.assert(controller, &["get"], "configmaps/dbfleet-version-lifecycle", ns, true);
    chart.assert(
        controller,
        &["update", "patch", "delete"],
        "configmaps/dbfleet-version-lifecycle",
        ns,
        false,
    );

    // The façade reads no Secret data: no get, list or watch of Secrets,
    // here or anywhere, but get of its CSRF key by name; it writes none.
    for namespace in [ns, Some("kube-system"), None] {
        chart.assert(api, &["get", "list", "watch"], "secrets", namespace, false);
        chart.assert(api, &WRITES, "secrets", namespace, false);
    }
    chart.assert(api, &["get", "list", "watch"], "secrets/login", ns, false);
    chart.assert(api, &["get"], "secrets/dbfleet-csrf-key", ns, true);
    chart.assert(api, &["get"], "secrets/dbfleet-csrf-key", Some("kube-system"), false);
    chart.assert(
        api,
        &["get", "list", "watch", "update"],
        "configmaps/dbfleet-ids",
        ns,
        true,
    );
    chart.assert(api, &["list"], "configmaps", ns, false);
}

#[tokio::test]
async fn namespace_scope_keeps_the_controller_out_of_every_other_namespace() {
    let chart = install("lp-ns", &["scope=namespace"]).await;
    let (ns, controller) = (Some(chart.namespace.as_str()), &chart.controller);
    // Where the design can say "no Secret it will not use", it does: no
    // Secret outside the namespace it watches, neither read nor written.
    for namespace in [Some("kube-system"), Some("default"), None] {
        chart.assert(controller, &["get", "list", "watch"], "secrets", namespace, false);
        chart.assert(controller, &WRITES, "secrets", namespace, false);
    }
    chart.assert(controller, &["get"], "secrets/anything", Some("kube-system"), false);
    // Inside it: read, never written.
    chart.assert(controller, &["get", "list", "watch"], "secrets", ns, true);
    chart.assert(controller, &WRITES, "secrets", ns, false);
}

#[tokio::test]
async fn adhoc_credential_tests_let_the_facade_get_logins_and_nothing_more() {
    let chart = install("lp-adhoc", &["api.adhocCredentialTests=true"]).await;
    let (ns, api) = (Some(chart.namespace.as_str()), &chart.api);
    // The one feature that needs a login's data: get, by name, in its
    // namespace; still no list or watch, no write, nothing elsewhere.
    chart.assert(api, &["get"], "secrets/login", ns, true);
    chart.assert(api, &["list", "watch"], "secrets", ns, false);
    chart.assert(api, &WRITES, "secrets", ns, false);
    chart.assert(api, &["get"], "secrets", Some("kube-system"), false);
}
