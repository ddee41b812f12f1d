//! The CRDs on a real API server: installation, examples, schema validation,
//! the status subresource and the printer columns.

#[path = "../support/mod.rs"]
mod support;

mod examples;
mod printer_columns;
mod status_subresource;
mod validation;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;

#[tokio::test]
async fn crds_are_established_with_their_names() {
    let client = support::control_plane().await.client().await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    for (name, short) in [
        ("dbinstances.dbfleet.io", "dbi"),
        ("dbtags.dbfleet.io", "dbtag"),
        ("dbsyncsessions.dbfleet.io", "dbsync"),
    ] {
        let crd = crds.get(name).await.unwrap();
        let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
        for wanted in ["Established", "NamesAccepted"] {
            assert!(
                conditions.iter().any(|c| c.type_ == wanted && c.status == "True"),
                "{name}: {wanted} is not True: {conditions:?}"
            );
        }
        assert_eq!(crd.spec.names.short_names, Some(vec![short.to_string()]), "{name}");
        assert_eq!(crd.spec.scope, "Namespaced", "{name}");
        let version = &crd.spec.versions[0];
        assert!(
            version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(),
            "{name}: no status subresource"
        );
    }
}
