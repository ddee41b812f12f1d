//! What a connection test answers (`ConnectionTestData`), from a probe the
//! façade ran itself or from the status a controller recorded. Kept apart
//! from the handlers in `actions.rs` because the shared state remembers
//! these answers (`last_tests.rs`).

use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

use super::envelope::format_time;
use crate::crd::DbInstanceStatus;
use crate::crd::sync_session::SyncOperation;
use crate::observe::CredentialsError;
use crate::observe::request::{self, Outcome};
use crate::probe::{self, ProbeError};

#[derive(Serialize, ToSchema, Debug, Clone, PartialEq)]
pub struct ConnectionTestData {
    pub success: bool,
    pub message: String,
    pub latency_ms: Option<u64>,
    pub version: Option<String>,
    /// `Timeout`, `ConnectionRefused`, `AuthenticationFailed`, … when it failed.
    pub error_kind: Option<String>,
    /// When the test this result comes from was answered (RFC 3339, UTC).
    pub tested_at: String,
    /// `true` when no new login was made: the instance was tested less than
    /// `--test-connection-interval` (default 10 s) ago through this façade
    /// replica, and this is that test's result. Always `false` for an
    /// ad-hoc test.
    pub cached: bool,
}

impl ConnectionTestData {
    pub(super) fn answered(
        success: bool,
        message: String,
        latency_ms: Option<u64>,
        version: Option<String>,
        error_kind: Option<String>,
    ) -> Self {
        ConnectionTestData {
            success,
            message,
            latency_ms,
            version,
            error_kind,
            tested_at: format_time(k8s_openapi::jiff::Timestamp::now()),
            cached: false,
        }
    }

    pub(super) fn from_probe(result: Result<probe::ConnectionInfo, ProbeError>) -> Self {
        match result {
            Ok(info) => ConnectionTestData::answered(
                true,
                format!("connected in {} ms", millis(info.latency)),
                Some(millis(info.latency)),
                Some(info.server_version),
                None,
            ),
            Err(e) => ConnectionTestData::answered(false, e.message, None, None, Some(e.kind.as_str().to_string())),
        }
    }

    pub(super) fn not_probed(reason: CredentialsError) -> Self {
        ConnectionTestData::answered(false, reason.to_string(), None, None, Some(reason.reason().to_string()))
    }

    /// The answer an instance's status gives after its test ran.
    pub(super) fn from_status(status: Option<&DbInstanceStatus>) -> Self {
        let failed = |reason: &str, message: &str| {
            ConnectionTestData::answered(false, message.to_string(), None, None, Some(reason.to_string()))
        };
        match request::outcome(status, SyncOperation::Connection) {
            Outcome::Succeeded { .. } => {
                let connection = status.and_then(|s| s.connection.as_ref());
                let latency_ms = connection.and_then(|c| c.latency_ms);
                ConnectionTestData::answered(
                    true,
                    match latency_ms {
                        Some(ms) => format!("connected in {ms} ms"),
                        None => "connected".into(),
                    },
                    latency_ms,
                    connection.and_then(|c| c.server_version.clone()),
                    None,
                )
            }
            Outcome::NotRun { reason, message }
            | Outcome::ConnectionFailed { reason, message }
            | Outcome::CollectionFailed { reason, message } => failed(reason, message),
            Outcome::Unrecorded => ConnectionTestData::not_probed(CredentialsError::NotSpecified),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
