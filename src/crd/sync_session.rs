//! `DbSyncSession`: one background run of a probe over many instances
//! (SPEC §1.3), e.g. the REST contract's "full account sync".

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::bounds;

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
    /// One outcome per instance, capped (default 500): every failure is
    /// kept before any success, what did not fit is counted below, and the
    /// list is sorted by instance name once finished.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<SyncResult>,
    /// Failures counted in `failed` but not listed in `results`. Default: 0.
    #[serde(default)]
    pub omitted_failures: u32,
    /// Successes counted in `succeeded` but not listed in `results`.
    /// Default: 0.
    #[serde(default)]
    pub omitted_successes: u32,
}

impl DbSyncSessionStatus {
    /// Counts `result`, and lists it while fewer than `cap` results are
    /// listed. When the list is full a failure takes a listed success's
    /// place, so every failure is listed until `cap` failures are.
    pub fn record(&mut self, result: SyncResult, cap: usize) {
        let result = SyncResult {
            message: result.message.as_deref().map(bounds::message),
            ..result
        };
        if result.success {
            self.succeeded = self.succeeded.saturating_add(1);
        } else {
            self.failed = self.failed.saturating_add(1);
        }
        if self.results.len() < cap {
            self.results.push(result);
        } else if result.success {
            self.omitted_successes = self.omitted_successes.saturating_add(1);
        } else if let Some(listed) = self.results.iter().rposition(|r| r.success) {
            self.results[listed] = result;
            self.omitted_successes = self.omitted_successes.saturating_add(1);
        } else {
            self.omitted_failures = self.omitted_failures.saturating_add(1);
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum SyncPhase {
    Pending,
    Running,
    Succeeded,
    PartiallyFailed,
    Failed,
}

impl SyncPhase {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            SyncPhase::Succeeded | SyncPhase::PartiallyFailed | SyncPhase::Failed
        )
    }
}

impl DbSyncSession {
    /// Pending or running: not started yet counts as running, since the
    /// controller will run it.
    pub fn is_unfinished(&self) -> bool {
        !self
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .is_some_and(SyncPhase::is_finished)
    }

    /// The REST contract's "full account sync": accounts over every active
    /// instance of the namespace.
    pub fn is_full_account_sync(&self) -> bool {
        self.spec.operation == SyncOperation::Accounts && self.spec.instance_selector.is_none()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn result(instance: &str, success: bool) -> SyncResult {
        SyncResult {
            instance: instance.into(),
            id: None,
            success,
            message: Some(if success { "ok".into() } else { "refused".into() }),
            duration_ms: 1,
        }
    }

    fn listed(status: &DbSyncSessionStatus) -> Vec<(&str, bool)> {
        status
            .results
            .iter()
            .map(|r| (r.instance.as_str(), r.success))
            .collect()
    }

    #[test]
    fn results_are_listed_until_the_cap_and_counted_always() {
        let mut status = DbSyncSessionStatus::default();
        for (name, success) in [("a", true), ("b", false), ("c", true)] {
            status.record(result(name, success), 3);
        }
        assert_eq!(listed(&status), [("a", true), ("b", false), ("c", true)]);
        assert_eq!((status.succeeded, status.failed), (2, 1));
        assert_eq!((status.omitted_failures, status.omitted_successes), (0, 0));
    }

    #[test]
    fn failures_displace_successes_once_the_list_is_full() {
        let mut status = DbSyncSessionStatus::default();
        for (name, success) in [("a", true), ("b", true), ("c", false), ("d", true), ("e", false)] {
            status.record(result(name, success), 2);
        }
        // a and b were listed, c took b's place, d did not fit, e took a's.
        assert_eq!(listed(&status), [("e", false), ("c", false)]);
        assert_eq!((status.succeeded, status.failed), (3, 2));
        assert_eq!((status.omitted_failures, status.omitted_successes), (0, 3));
        status.record(result("f", false), 2);
        assert_eq!(listed(&status), [("e", false), ("c", false)]);
        assert_eq!((status.failed, status.omitted_failures), (3, 1));
    }

    #[test]
    fn ten_thousand_results_with_long_messages_keep_the_object_small() {
        let mut status = DbSyncSessionStatus::default();
        let long = "x".repeat(50_000);
        for i in 0..10_000 {
            let mut failed = result(&format!("instance-{i:05}"), i % 3 == 0);
            failed.message = Some(long.clone());
            status.record(failed, bounds::DEFAULT_SESSION_RESULTS_CAP);
        }
        assert_eq!(status.results.len(), bounds::DEFAULT_SESSION_RESULTS_CAP);
        assert!(status.results.iter().all(|r| !r.success));
        assert_eq!(status.succeeded + status.failed, 10_000);
        assert_eq!(
            status.omitted_failures as usize,
            status.failed as usize - bounds::DEFAULT_SESSION_RESULTS_CAP
        );
        let size = serde_json::to_vec(&status).unwrap().len();
        assert!(size < 1024 * 1024, "{size} bytes");
    }

    #[test]
    fn only_pending_and_running_sessions_are_unfinished() {
        let mut session = DbSyncSession::new(
            "s",
            DbSyncSessionSpec {
                operation: SyncOperation::Accounts,
                instance_selector: None,
            },
        );
        assert!(session.is_unfinished() && session.is_full_account_sync());
        for (phase, unfinished) in [
            (SyncPhase::Pending, true),
            (SyncPhase::Running, true),
            (SyncPhase::Succeeded, false),
            (SyncPhase::PartiallyFailed, false),
            (SyncPhase::Failed, false),
        ] {
            session.status = Some(DbSyncSessionStatus {
                phase: Some(phase),
                ..Default::default()
            });
            assert_eq!(session.is_unfinished(), unfinished, "{phase:?}");
        }
        session.spec.instance_selector = Some(Default::default());
        assert!(!session.is_full_account_sync());
    }
}
