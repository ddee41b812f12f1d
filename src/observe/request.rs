//! Asking the controller that owns an instance for a probe now, and waiting
//! for its answer: the façade's actions and sync sessions write no status
//! themselves.
//!
//! A request is a fresh value in a request annotation
//! (`dbfleet.io/test-connection-requested-at` and its siblings, which
//! `kubectl annotate` can set too). The owning controller runs the probe and
//! records the value in `status.handledRequests` in the same write as the
//! result, so whoever sees the value there reads that run's result.

use std::time::{Duration, Instant, SystemTime};

use kube::Api;
use kube::api::{Patch, PatchParams};
use sha2::{Digest, Sha256};

use super::{Ops, status};
use crate::crd::instance::HandledRequests;
use crate::crd::keys::{SYNC_ACCOUNTS_REQUESTED_AT, SYNC_CAPACITY_REQUESTED_AT, TEST_CONNECTION_REQUESTED_AT};
use crate::crd::sync_session::SyncOperation;
use crate::crd::{DbInstance, DbInstanceStatus};

/// Longest annotation value kept verbatim in `status.handledRequests`;
/// longer ones are kept as a digest, so a user's value cannot grow the
/// status.
const MAX_KEPT_VALUE: usize = 64;

/// How a request annotation's value is recorded as handled.
pub fn handled_value(value: &str) -> String {
    if value.len() <= MAX_KEPT_VALUE {
        return value.to_string();
    }
    let digest = Sha256::digest(value.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A value no earlier request used.
pub fn new_token() -> String {
    let millis = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let mut random = [0u8; 4];
    let _ = getrandom::fill(&mut random);
    format!("{millis}-{:08x}", u32::from_be_bytes(random))
}

/// The annotations that request `ops`, each set to `token`.
fn annotations(ops: Ops, token: &str) -> serde_json::Map<String, serde_json::Value> {
    [
        (ops.connection, TEST_CONNECTION_REQUESTED_AT),
        (ops.capacity, SYNC_CAPACITY_REQUESTED_AT),
        (ops.accounts, SYNC_ACCOUNTS_REQUESTED_AT),
    ]
    .into_iter()
    .filter(|(wanted, _)| *wanted)
    .map(|(_, key)| (key.to_string(), serde_json::Value::from(token)))
    .collect()
}

/// Asks for a run of `ops` on instance `name`; returns the token to wait for.
pub async fn request(api: &Api<DbInstance>, name: &str, ops: Ops) -> kube::Result<String> {
    let token = new_token();
    let patch = serde_json::json!({"metadata": {"annotations": annotations(ops, &token)}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(token)
}

/// Whether `handled` answers `token` for every probe in `ops`.
pub fn answered(handled: &HandledRequests, ops: Ops, token: &str) -> bool {
    let token = handled_value(token);
    let one = |wanted: bool, value: &Option<String>| !wanted || value.as_deref() == Some(token.as_str());
    one(ops.connection, &handled.connection)
        && one(ops.capacity, &handled.capacity)
        && one(ops.accounts, &handled.accounts)
}

/// What the status that answered a request says of one probe: the one
/// reading of an answer, shared by the façade's actions and the sync
/// sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome<'s> {
    Succeeded {
        message: &'s str,
    },
    /// Nothing ran: the login could not be resolved, or may not be sent to
    /// the host (`reason` is the `CredentialsResolved` reason).
    NotRun {
        reason: &'s str,
        message: &'s str,
    },
    /// It could not connect or log in.
    ConnectionFailed {
        reason: &'s str,
        message: &'s str,
    },
    /// It connected, and the collection failed.
    CollectionFailed {
        reason: &'s str,
        message: &'s str,
    },
    /// The status records no such probe.
    Unrecorded,
}

/// The outcome of `operation` as `status` records it.
pub fn outcome(status: Option<&DbInstanceStatus>, operation: SyncOperation) -> Outcome<'_> {
    let condition = |type_: &str| status.and_then(|s| status::find(&s.conditions, type_));
    if let Some(c) = condition(status::CREDENTIALS_RESOLVED).filter(|c| c.status != "True") {
        return Outcome::NotRun {
            reason: &c.reason,
            message: &c.message,
        };
    }
    let type_ = match operation {
        SyncOperation::Connection => status::CONNECTED,
        SyncOperation::Capacity => status::CAPACITY_SYNCED,
        SyncOperation::Accounts => status::ACCOUNTS_SYNCED,
    };
    let Some(c) = condition(type_) else {
        return Outcome::Unrecorded;
    };
    let (reason, message) = (c.reason.as_str(), c.message.as_str());
    if c.status == "True" {
        return Outcome::Succeeded { message };
    }
    let connected = condition(status::CONNECTED).is_some_and(|c| c.status == "True");
    if operation != SyncOperation::Connection && connected {
        Outcome::CollectionFailed { reason, message }
    } else {
        Outcome::ConnectionFailed { reason, message }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("no controller answered within {0:?}; is dbfleet's controller running for this namespace?")]
    NoAnswer(Duration),
    #[error("the instance was deleted while waiting")]
    Gone,
}

/// How long a caller waits for an answer: the probes' own bounds plus a
/// margin for the watch and the queue.
pub fn answer_deadline(timeouts: &crate::probe::Timeouts) -> Duration {
    timeouts.connect + timeouts.operation + Duration::from_secs(15)
}

/// Polls `latest` (a cache lookup: cheap) until the instance's status
/// answers `token`, and returns that instance.
pub async fn await_answer(
    latest: impl Fn() -> Option<std::sync::Arc<DbInstance>>,
    ops: Ops,
    token: &str,
    deadline: Duration,
) -> Result<std::sync::Arc<DbInstance>, WaitError> {
    const POLL: Duration = Duration::from_millis(100);
    let started = Instant::now();
    loop {
        match latest() {
            None => return Err(WaitError::Gone),
            Some(instance) => {
                let handled = instance.status.as_ref().map(|s| &s.handled_requests);
                if handled.is_some_and(|h| answered(h, ops, token)) {
                    return Ok(instance);
                }
            }
        }
        if started.elapsed() >= deadline {
            return Err(WaitError::NoAnswer(deadline));
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_kept_and_long_ones_digested() {
        assert_eq!(handled_value("1700000000"), "1700000000");
        let long = "x".repeat(10_000);
        let kept = handled_value(&long);
        assert!(kept.starts_with("sha256:") && kept.len() < 64, "{kept}");
        assert_eq!(kept, handled_value(&long));
    }

    #[test]
    fn tokens_differ() {
        assert_ne!(new_token(), new_token());
    }

    #[test]
    fn an_answer_must_cover_every_requested_probe() {
        let handled = HandledRequests {
            connection: Some("t1".into()),
            capacity: Some("t0".into()),
            accounts: None,
        };
        assert!(answered(&handled, Ops::CONNECTION, "t1"));
        assert!(!answered(&handled, Ops::CAPACITY, "t1"));
        assert!(!answered(
            &handled,
            Ops {
                connection: true,
                capacity: true,
                accounts: false
            },
            "t1"
        ));
        let keys: Vec<String> = annotations(Ops::ALL, "t").keys().cloned().collect();
        assert_eq!(keys.len(), 3);
    }

    fn with_conditions(conditions: &[(&str, &str, &str)]) -> DbInstanceStatus {
        serde_json::from_value(
            serde_json::json!({"conditions": conditions.iter().map(|(t, s, r)| serde_json::json!({
            "type": t, "status": s, "reason": r, "message": format!("{t} {r}"),
            "lastTransitionTime": "2026-01-01T00:00:00Z"})).collect::<Vec<_>>()}),
        )
        .unwrap()
    }

    #[test]
    fn an_answer_reads_the_same_for_every_caller() {
        use SyncOperation::{Accounts, Capacity, Connection};
        let no_login = with_conditions(&[("CredentialsResolved", "False", "SecretNotFound")]);
        assert_eq!(
            outcome(Some(&no_login), Capacity),
            Outcome::NotRun {
                reason: "SecretNotFound",
                message: "CredentialsResolved SecretNotFound"
            }
        );
        let down = with_conditions(&[
            ("CredentialsResolved", "True", "Resolved"),
            ("Connected", "False", "ConnectionRefused"),
            ("CapacitySynced", "False", "ConnectionRefused"),
        ]);
        assert!(matches!(
            outcome(Some(&down), Connection),
            Outcome::ConnectionFailed { .. }
        ));
        assert!(matches!(
            outcome(Some(&down), Capacity),
            Outcome::ConnectionFailed {
                reason: "ConnectionRefused",
                ..
            }
        ));
        let denied = with_conditions(&[
            ("CredentialsResolved", "True", "Resolved"),
            ("Connected", "True", "Connected"),
            ("AccountsSynced", "False", "PermissionDenied"),
        ]);
        assert!(matches!(
            outcome(Some(&denied), Accounts),
            Outcome::CollectionFailed {
                reason: "PermissionDenied",
                ..
            }
        ));
        assert!(matches!(outcome(Some(&denied), Connection), Outcome::Succeeded { .. }));
        assert_eq!(outcome(Some(&denied), Capacity), Outcome::Unrecorded);
        assert_eq!(outcome(None, Connection), Outcome::Unrecorded);
    }
}
