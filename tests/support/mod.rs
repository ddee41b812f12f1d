//! Shared by the integration-test binaries (`#[path = "../support/mod.rs"]`):
//! one private control plane per test binary, started on first use.
//!
//! The control plane is never dropped (it lives in a static); its processes
//! die with the test binary (see `dbfleet_testenv`'s supervisor) and its
//! temporary directory is swept by the next run.
#![allow(dead_code)] // each test binary uses its own subset

pub mod controller;
pub mod databases;

use std::collections::BTreeMap;
use std::path::PathBuf;

use dbfleet::crd::keys::CREDENTIAL_LABEL;
use dbfleet_testenv::{ControlPlane, Options};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DynamicObject, GroupVersionKind, ObjectMeta, Patch, PatchParams, PostParams};
use kube::discovery::Discovery;
use kube::{Api, Client};
use serde::Deserialize;
use tokio::sync::OnceCell;

static CONTROL_PLANE: OnceCell<ControlPlane> = OnceCell::const_new();

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The control plane for this test binary, with the CRDs from `crds/`
/// installed and Established.
pub async fn control_plane() -> &'static ControlPlane {
    CONTROL_PLANE
        .get_or_init(|| async {
            let options = Options {
                crd_dir: Some(repo_root().join("crds")),
                ..Default::default()
            };
            ControlPlane::start(options)
                .await
                .expect("start the test control plane")
        })
        .await
}

/// An admin client and a fresh namespace for one test.
pub async fn admin_in_fresh_namespace(prefix: &str) -> (Client, String) {
    let plane = control_plane().await;
    let namespace = plane.create_namespace(prefix).await.expect("create a test namespace");
    (plane.client().await.expect("admin client"), namespace)
}

/// A login Secret as a user writes it: `username` and `password`,
/// labelled as a credential.
pub fn login_secret(name: &str, username: &str, password: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([(CREDENTIAL_LABEL.to_string(), "true".to_string())])),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([
            ("username".to_string(), username.to_string()),
            ("password".to_string(), password.to_string()),
        ])),
        ..Default::default()
    }
}

/// Creates `secret` in `namespace`.
pub async fn create_secret(client: &Client, namespace: &str, secret: &Secret) {
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), secret)
        .await
        .expect("create Secret");
}

/// Records credential Secret `name` in the namespace's `dbfleet-ids`
/// ConfigMap, as the controller does, and returns its id.
pub async fn record_credential(client: &Client, namespace: &str, name: &str) -> i64 {
    use dbfleet::ids::{CredentialSecret, IdAllocator};
    let secret = CredentialSecret {
        name: name.into(),
        labelled_id: None,
    };
    let recorded = IdAllocator::new(client.clone(), namespace)
        .record_credentials(&[secret], false)
        .await
        .expect("record the credential id");
    recorded[name]
}

/// A ServiceAccount `name` in `namespace`, allowed `verbs` on `resources`
/// of `dbfleet.io` by a Role and RoleBinding of the same name (none when
/// `verbs` is empty), and a token for it from the TokenRequest API.
pub async fn service_account_token(
    admin: &Client,
    namespace: &str,
    name: &str,
    resources: &[&str],
    verbs: &[&str],
) -> String {
    use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
    use kube::api::{ObjectMeta, PostParams};

    if !verbs.is_empty() {
        let meta = || ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        };
        let role = Role {
            metadata: meta(),
            rules: Some(vec![PolicyRule {
                api_groups: Some(vec!["dbfleet.io".into()]),
                resources: Some(resources.iter().map(|r| r.to_string()).collect()),
                verbs: verbs.iter().map(|v| v.to_string()).collect(),
                ..Default::default()
            }]),
        };
        Api::<Role>::namespaced(admin.clone(), namespace)
            .create(&PostParams::default(), &role)
            .await
            .expect("create the Role");
        let binding = RoleBinding {
            metadata: meta(),
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "Role".into(),
                name: name.into(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: name.into(),
                namespace: Some(namespace.into()),
                ..Default::default()
            }]),
        };
        Api::<RoleBinding>::namespaced(admin.clone(), namespace)
            .create(&PostParams::default(), &binding)
            .await
            .expect("create the RoleBinding");
    }
    control_plane()
        .await
        .service_account_token(namespace, name)
        .await
        .expect("a token from the TokenRequest API")
}

/// Server-side applies every document of a multi-document YAML file into
/// `namespace`, resolving each kind through API discovery.
pub async fn apply_yaml(client: &Client, namespace: &str, yaml: &str) -> Result<Vec<DynamicObject>, String> {
    apply_yaml_with(client, namespace, yaml, &PatchParams::apply("dbfleet-tests").force()).await
}

/// [`apply_yaml`] with explicit patch parameters (e.g. a server-side dry
/// run); cluster-scoped kinds are applied cluster-wide.
pub async fn apply_yaml_with(
    client: &Client,
    namespace: &str,
    yaml: &str,
    params: &PatchParams,
) -> Result<Vec<DynamicObject>, String> {
    let discovery = Discovery::new(client.clone()).run().await.map_err(|e| e.to_string())?;
    let mut applied = Vec::new();
    for document in serde_yaml::Deserializer::from_str(yaml) {
        let value = serde_yaml::Value::deserialize(document).map_err(|e| e.to_string())?;
        if value.is_null() {
            continue;
        }
        let object: DynamicObject = serde_yaml::from_value(value).map_err(|e| e.to_string())?;
        let types = object.types.as_ref().ok_or("document without apiVersion/kind")?;
        let gvk = GroupVersionKind::try_from(types).map_err(|e| e.to_string())?;
        let (resource, capabilities) = discovery.resolve_gvk(&gvk).ok_or(format!("unknown kind {gvk:?}"))?;
        let api: Api<DynamicObject> = match capabilities.scope {
            kube::discovery::Scope::Cluster => Api::all_with(client.clone(), &resource),
            kube::discovery::Scope::Namespaced => Api::namespaced_with(client.clone(), namespace, &resource),
        };
        let name = object.metadata.name.clone().ok_or("document without metadata.name")?;
        let result = api
            .patch(&name, params, &Patch::Apply(&object))
            .await
            .map_err(|e| format!("{} {name}: {e}", resource.kind))?;
        applied.push(result);
    }
    Ok(applied)
}
