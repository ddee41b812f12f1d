//! Status is written only through the status subresource: a spec write
//! ignores status, a status write ignores spec.

use dbfleet::crd::DbInstance;
use dbfleet::crd::instance::Phase;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support;

#[tokio::test]
async fn status_and_spec_are_written_separately() {
    let (client, ns) = support::admin_in_fresh_namespace("status").await;
    let instances: Api<DbInstance> = Api::namespaced(client, &ns);
    let manifest = json!({
        "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInstance",
        "metadata": {"name": "db1"},
        "spec": {"dbType": "postgresql", "host": "db1.example.com", "port": 5432},
    });
    let created = instances
        .create(&PostParams::default(), &serde_json::from_value(manifest).unwrap())
        .await
        .unwrap();
    assert_eq!(created.status, None);
    let generation = created.metadata.generation;

    let status = json!({"status": {"phase": "Ready", "connection": {"status": "connected", "serverVersion": "15.4"}}});
    let written = instances
        .patch_status("db1", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(written.status.as_ref().and_then(|s| s.phase), Some(Phase::Ready));
    assert_eq!(
        written.metadata.generation, generation,
        "a status write does not bump the generation"
    );

    // A spec write that also carries status changes the spec only.
    let spec_and_status = json!({"spec": {"port": 5433}, "status": {"phase": "Failed"}});
    let updated = instances
        .patch("db1", &PatchParams::default(), &Patch::Merge(&spec_and_status))
        .await
        .unwrap();
    assert_eq!(updated.spec.port, 5433);
    assert_eq!(updated.status.as_ref().and_then(|s| s.phase), Some(Phase::Ready));
    assert!(updated.metadata.generation > generation);

    // A status write that also carries spec changes the status only.
    let status_and_spec = json!({"spec": {"port": 1}, "status": {"phase": "Failed"}});
    let updated = instances
        .patch_status("db1", &PatchParams::default(), &Patch::Merge(&status_and_spec))
        .await
        .unwrap();
    assert_eq!(updated.spec.port, 5433);
    assert_eq!(updated.status.as_ref().and_then(|s| s.phase), Some(Phase::Failed));

    // The status schema is enforced too.
    let bad = json!({"status": {"phase": "Exploded"}});
    let error = instances
        .patch_status("db1", &PatchParams::default(), &Patch::Merge(&bad))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("status.phase"), "{error}");
}
