//! The server-side Table view (what `kubectl get` prints) has the printer
//! columns of SPEC §1.1 with the values from labels, spec and status.

use dbfleet::crd::DbInstance;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::support;

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

#[tokio::test]
async fn kubectl_get_dbi_shows_the_printer_columns() {
    let (client, ns) = support::admin_in_fresh_namespace("table").await;
    let instances: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    let manifest = json!({
        "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInstance",
        "metadata": {"name": "orders", "labels": {"dbfleet.io/id": "7"}},
        "spec": {"dbType": "postgresql", "host": "orders.db.internal", "port": 5432},
    });
    instances
        .create(&PostParams::default(), &serde_json::from_value(manifest).unwrap())
        .await
        .unwrap();
    let status = json!({"status": {
        "phase": "Ready",
        "connection": {"status": "connected", "serverVersion": "15.4"},
        "capacity": {"totalSizeBytes": 1048576, "databaseCount": 2, "collectedAt": "2026-01-08T10:00:00Z", "durationMs": 12},
        "accounts": {"count": 12, "syncedAt": "2026-01-08T10:00:00Z", "durationMs": 30, "superuserCount": 1},
    }});
    instances
        .patch_status("orders", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();

    let request = http::Request::get(format!("/apis/dbfleet.io/v1alpha1/namespaces/{ns}/dbinstances"))
        .header(http::header::ACCEPT, TABLE)
        .body(Vec::new())
        .unwrap();
    let table: Value = serde_json::from_str(&client.request_text(request).await.unwrap()).unwrap();
    assert_eq!(table["kind"], "Table");
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            "Name", "ID", "Type", "Host", "Port", "Status", "Version", "Size", "Accounts", "Age"
        ]
    );
    let cells = table["rows"][0]["cells"].as_array().unwrap();
    assert_eq!(
        &cells[..9],
        &[
            json!("orders"),
            json!("7"),
            json!("postgresql"),
            json!("orders.db.internal"),
            json!(5432),
            json!("Ready"),
            json!("15.4"),
            json!(1048576),
            json!(12),
        ]
    );
}
