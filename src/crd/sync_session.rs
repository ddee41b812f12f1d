//! `DbSyncSession`: one background run of a probe over many instances
//! (SPEC §1.3), e.g. the REST contract's "full account sync".

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "dbfleet.io",
    version = "v1alpha1",
    kind = "DbSyncSession",
    plural = "dbsyncsessions",
    shortname = "dbsync",
    category = "dbfleet",
    namespaced,
    status = "DbSyncSessionStatus",
    derive = "PartialEq",
    doc = "A background run of one probe over the selected DbInstances.",
    printcolumn(name = "Operation", type_ = "string", json_path = ".spec.operation"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Total", type_ = "integer", json_path = ".status.total"),
    printcolumn(name = "Succeeded", type_ = "integer", json_path = ".status.succeeded"),
    printcolumn(name = "Failed", type_ = "integer", json_path = ".status.failed"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(name = "Started", type_ = "date", json_path = ".status.startedAt", priority = 1),
    printcolumn(name = "Finished", type_ = "date", json_path = ".status.finishedAt", priority = 1)
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self == oldSelf").message("a sync session's spec cannot change; create a new session"))]
/// What to run over which instances; it cannot change once created.
pub struct DbSyncSessionSpec {
    /// The probe to run: `accounts` (account sync), `capacity` (database
    /// sizes) or `connection` (connection test).
    pub operation: SyncOperation,
    /// Which instances to run over; all active instances in the namespace
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_selector: Option<LabelSelector>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SyncOperation {
    Accounts,
    Capacity,
    Connection,
}

/// Progress and outcome; written only by dbfleet, through the status
/// subresource. Finished sessions are deleted after `--session-ttl`
/// (default 7 days).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DbSyncSessionStatus {
    /// `Pending`, `Running`, `Succeeded` (every instance), `PartiallyFailed`
    /// or `Failed` (no instance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<SyncPhase>,
    /// How many instances the session runs over. Default: 0.
    #[serde(default)]
    pub total: u32,
    /// How many of them succeeded so far. Default: 0.
    #[serde(default)]
    pub succeeded: u32,
    /// How many of them failed so far. Default: 0.
    #[serde(default)]
    pub failed: u32,
    /// When the session started running (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the last instance finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// One outcome per instance, sorted by instance name once finished.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<SyncResult>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum SyncPhase {
    Pending,
    Running,
    Succeeded,
    PartiallyFailed,
    Failed,
}

/// The outcome for one instance.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncResult {
    /// The DbInstance's name.
    pub instance: String,
    /// The DbInstance's integer id, when it has one yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Whether the probe succeeded on this instance.
    pub success: bool,
    /// What happened, e.g. why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How long the probe took, in milliseconds.
    pub duration_ms: u64,
}
