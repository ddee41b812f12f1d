//! The server-side Table view (what `kubectl get` prints, and with `-o wide`
//! the columns of priority 1 too) of all three kinds, with the values from
//! labels, spec and status.

use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::support;

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// The Table for `plural` in `ns`: (column name, priority) pairs and the
/// first row's cells by column name.
async fn table(client: &Client, ns: &str, plural: &str) -> (Vec<(String, i64)>, serde_json::Map<String, Value>) {
    let request = http::Request::get(format!("/apis/dbfleet.io/v1alpha1/namespaces/{ns}/{plural}"))
        .header(http::header::ACCEPT, TABLE)
        .body(Vec::new())
        .unwrap();
    let table: Value = serde_json::from_str(&client.request_text(request).await.unwrap()).unwrap();
    assert_eq!(table["kind"], "Table");
    let columns: Vec<(String, i64)> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["priority"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    let cells = table["rows"][0]["cells"].as_array().unwrap();
    let row = columns
        .iter()
        .map(|(name, _)| name.clone())
        .zip(cells.iter().cloned())
        .collect();
    (columns, row)
}

fn names(columns: &[(String, i64)], priority: i64) -> Vec<&str> {
    columns
        .iter()
        .filter(|(_, p)| *p == priority)
        .map(|(n, _)| n.as_str())
        .collect()
}

/// Creates an object from `manifest` and sets its status.
async fn create_with_status(client: &Client, ns: &str, plural: &str, manifest: Value, status: Value) {
    let name = manifest["metadata"]["name"].as_str().unwrap().to_string();
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &kube::api::ApiResource {
            group: "dbfleet.io".into(),
            version: "v1alpha1".into(),
            api_version: "dbfleet.io/v1alpha1".into(),
            kind: manifest["kind"].as_str().unwrap().into(),
            plural: plural.into(),
        },
    );
    api.create(&Default::default(), &serde_json::from_value(manifest).unwrap())
        .await
        .unwrap();
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(&json!({ "status": status })),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn kubectl_get_dbi_reads_like_a_mature_operator() {
    let (client, ns) = support::admin_in_fresh_namespace("table").await;
    let checked = k8s_openapi::jiff::Timestamp::now().to_string();
    create_with_status(
        &client,
        &ns,
        "dbinstances",
        json!({
            "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInstance",
            "metadata": {"name": "orders", "labels": {"dbfleet.io/id": "7"}},
            "spec": {"dbType": "postgresql", "host": "orders.db.internal", "port": 5432},
        }),
        // What the controller writes for a Debian PostgreSQL 15 holding 1.4 GiB.
        json!({
            "phase": "Ready",
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "Ready", "message": "15.18 (Debian 15.18-0+deb12u1) in 4 ms", "lastTransitionTime": checked},
                {"type": "VersionSupported", "status": "True", "reason": "EndingSoon", "message": "PostgreSQL 15 reaches end of life on 2027-11-11", "lastTransitionTime": checked},
            ],
            "release": {"line": "PostgreSQL 15", "endOfLife": "2027-11-11"},
            "connection": {"status": "connected", "serverVersion": "15.18 (Debian 15.18-0+deb12u1)", "version": "15.18", "lastCheckedAt": checked},
            "capacity": {"totalSizeBytes": 1526026690u64, "totalSize": "1.4 GiB", "databaseCount": 2, "collectedAt": checked, "durationMs": 12},
            "accounts": {"count": 12, "syncedAt": checked, "durationMs": 30, "superuserCount": 1},
            "replication": {"role": "primary", "clusterId": "postgresql:7642011472967116994", "replicaCount": 1},
        }),
    )
    .await;

    let (columns, row) = table(&client, &ns, "dbinstances").await;
    assert_eq!(
        names(&columns, 0),
        [
            "Name", "ID", "Type", "Host", "Port", "Status", "Version", "Size", "Accounts", "Checked", "Age"
        ]
    );
    assert_eq!(
        names(&columns, 1),
        [
            "TLS",
            "Databases",
            "Capacity Synced",
            "Accounts Synced",
            "Server Version",
            "Role",
            "Cluster",
            "Version Support",
            "End Of Life",
            "Reason",
            "Message"
        ]
    );
    let expected = json!({
        "Name": "orders", "ID": "7", "Type": "postgresql", "Host": "orders.db.internal", "Port": 5432,
        "Status": "Ready", "Version": "15.18", "Size": "1.4 GiB", "Accounts": 12,
        "TLS": "prefer", "Databases": 2, "Server Version": "15.18 (Debian 15.18-0+deb12u1)", "Reason": "Ready",
        "Role": "primary", "Cluster": "postgresql:7642011472967116994",
        "Version Support": "EndingSoon", "End Of Life": "2027-11-11",
    });
    for (column, value) in expected.as_object().unwrap() {
        assert_eq!(row.get(column), Some(value), "{column}");
    }
    // Date columns are relative ages: data checked just now reads as seconds.
    for column in ["Checked", "Capacity Synced", "Accounts Synced"] {
        let age = row[column].as_str().unwrap_or_default();
        assert!(age.ends_with('s') && age.len() <= 3, "{column}: {age:?}");
    }
}

#[tokio::test]
async fn kubectl_get_dbtag_and_dbsync_show_their_state() {
    let (client, ns) = support::admin_in_fresh_namespace("table").await;
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    create_with_status(
        &client,
        &ns,
        "dbtags",
        json!({
            "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbTag",
            "metadata": {"name": "production", "labels": {"dbfleet.io/id": "3"}},
            "spec": {"displayName": "Production", "category": "environment", "color": "#d73a49"},
        }),
        json!({"instanceCount": 2, "conditions": [{"type": "InUse", "status": "True", "reason": "InUse", "message": "used by 2 instance(s): a, b", "lastTransitionTime": now}]}),
    )
    .await;
    let (columns, row) = table(&client, &ns, "dbtags").await;
    assert_eq!(
        names(&columns, 0),
        [
            "Name",
            "ID",
            "Display Name",
            "Category",
            "Color",
            "Active",
            "Instances",
            "Age"
        ]
    );
    assert_eq!(names(&columns, 1), ["Used By"]);
    let expected = json!({"ID": "3", "Display Name": "Production", "Category": "environment", "Active": true, "Instances": 2, "Used By": "used by 2 instance(s): a, b"});
    for (column, value) in expected.as_object().unwrap() {
        assert_eq!(row.get(column), Some(value), "{column}");
    }

    create_with_status(
        &client,
        &ns,
        "dbsyncsessions",
        json!({
            "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbSyncSession",
            "metadata": {"name": "nightly"}, "spec": {"operation": "accounts"},
        }),
        json!({"phase": "PartiallyFailed", "total": 3, "succeeded": 2, "failed": 1, "startedAt": now, "finishedAt": now}),
    )
    .await;
    let (columns, row) = table(&client, &ns, "dbsyncsessions").await;
    assert_eq!(
        names(&columns, 0),
        ["Name", "Operation", "Phase", "Total", "Succeeded", "Failed", "Age"]
    );
    assert_eq!(names(&columns, 1), ["Started", "Finished"]);
    let expected =
        json!({"Operation": "accounts", "Phase": "PartiallyFailed", "Total": 3, "Succeeded": 2, "Failed": 1});
    for (column, value) in expected.as_object().unwrap() {
        assert_eq!(row.get(column), Some(value), "{column}");
    }
}
