//! How a probe fails: a small, stable set of kinds a DBA can act on.

use std::error::Error as StdError;
use std::fmt;
use std::io;

/// Why a probe failed. [`ErrorKind::as_str`] is stable: it becomes the
/// `reason` of the `Connected`, `CapacitySynced` and `AccountsSynced`
/// conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// No answer within the connect or operation timeout.
    Timeout,
    /// Nothing accepts TCP connections at the address and port.
    ConnectionRefused,
    /// The host name does not resolve.
    DnsFailure,
    /// The server rejected the login (wrong password, unknown, locked or
    /// expired account, no matching `pg_hba.conf` line).
    AuthenticationFailed,
    /// TLS could not be set up as `tls.mode` asks: the server offers none,
    /// the certificate does not verify, or the CA bundle is unusable.
    TlsError,
    /// The server asked for the password in a recoverable form (cleartext,
    /// or encrypted with a key the server itself supplied) although its
    /// identity was not verified; nothing was sent.
    InsecureAuthentication,
    /// Logged in, but the account lacks a privilege the probe needs.
    PermissionDenied,
    /// The server reported an error that is none of the above (too many
    /// connections, database does not exist, server shutting down, ...).
    ServerError,
    /// The peer does not speak the expected protocol, or the connection broke
    /// mid-conversation.
    Protocol,
}

impl ErrorKind {
    /// PascalCase name used as a condition reason, e.g. `AuthenticationFailed`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "Timeout",
            ErrorKind::ConnectionRefused => "ConnectionRefused",
            ErrorKind::DnsFailure => "DnsFailure",
            ErrorKind::AuthenticationFailed => "AuthenticationFailed",
            ErrorKind::TlsError => "TlsError",
            ErrorKind::InsecureAuthentication => "InsecureAuthentication",
            ErrorKind::PermissionDenied => "PermissionDenied",
            ErrorKind::ServerError => "ServerError",
            ErrorKind::Protocol => "Protocol",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a probe failed: before the login completed, or after. The façade
/// answers `DATABASE_CONNECTION_ERROR` for the first and `SYNC_DATA_ERROR`
/// for the second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    Connect,
    Query,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Connect => "Connect",
            Stage::Query => "Query",
        }
    }
}

/// A classified probe failure. The message names the server and says what
/// to check; it never contains the password.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProbeError {
    pub kind: ErrorKind,
    pub stage: Stage,
    pub message: String,
    /// The server's own error code when the server reported the failure:
    /// a PostgreSQL SQLSTATE (`28P01`) or a MySQL error number (`1045`).
    pub server_code: Option<String>,
}

impl ProbeError {
    pub fn new(kind: ErrorKind, stage: Stage, message: impl Into<String>) -> Self {
        ProbeError {
            kind,
            stage,
            message: message.into(),
            server_code: None,
        }
    }

    pub(crate) fn with_server_code(mut self, code: Option<String>) -> Self {
        self.server_code = code;
        self
    }

    /// A failure whose message is `detail` followed by what to check.
    pub(crate) fn with_hint(kind: ErrorKind, stage: Stage, detail: impl fmt::Display) -> Self {
        ProbeError::new(kind, stage, format!("{detail}; {}", hint(kind, stage)))
    }

    /// True when the server could not be reached or refused the login.
    pub fn is_connect(&self) -> bool {
        self.stage == Stage::Connect
    }

    /// The same failure, attributed to another stage.
    pub(crate) fn at(mut self, stage: Stage) -> Self {
        self.stage = stage;
        self
    }
}

/// Every error in a chain, joined with `: `, skipping a cause whose text its
/// parent already contains (drivers often repeat it).
pub(crate) fn describe(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        let part = cause.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = cause.source();
    }
    text
}

/// The kind that transport-level causes in an error chain imply: refused or
/// timed-out sockets, and TLS failures from rustls. `io::Error` hides its
/// payload from `source()`, so that is looked at too.
pub(crate) fn transport_kind(err: &(dyn StdError + 'static)) -> Option<ErrorKind> {
    let mut next = Some(err);
    while let Some(cause) = next {
        if cause.is::<rustls::Error>() {
            return Some(ErrorKind::TlsError);
        }
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            if io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
                return Some(ErrorKind::TlsError);
            }
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return Some(ErrorKind::ConnectionRefused),
                io::ErrorKind::TimedOut => return Some(ErrorKind::Timeout),
                _ => {}
            }
            if let Some(inner) = io.get_ref()
                && let Some(kind) = transport_kind(inner)
            {
                return Some(kind);
            }
        }
        next = cause.source();
    }
    None
}

/// What a DBA should check for each kind of failure.
pub(crate) fn hint(kind: ErrorKind, stage: Stage) -> &'static str {
    match (kind, stage) {
        (ErrorKind::Timeout, Stage::Connect) => {
            "check that the host is reachable, that no firewall drops the traffic and that the server is not overloaded"
        }
        (ErrorKind::Timeout, Stage::Query) => {
            "the server is slow or blocked; raise the operation timeout for large servers or look for long-running locks"
        }
        (ErrorKind::ConnectionRefused, _) => {
            "is the server running and listening on this address and port (listen_addresses / bind-address)?"
        }
        (ErrorKind::DnsFailure, _) => "check the host name in the instance spec and the cluster's DNS",
        (ErrorKind::AuthenticationFailed, _) => {
            "check the user name and password in the credentials Secret, that the account is not locked or expired, and that the server allows this client address (pg_hba.conf, or the host part of a MySQL account)"
        }
        (ErrorKind::TlsError, _) => {
            "check tls.mode against the server's TLS setup, and for verify-full that the CA bundle signed the server certificate and the certificate names this host"
        }
        (ErrorKind::InsecureAuthentication, _) => {
            "dbfleet sends a password that can be recovered only to a server whose certificate it verified: set tls.mode verify-full with tls.caSecretRef, or have the account use SCRAM (PostgreSQL) or mysql_native_password / a cached caching_sha2_password login (MySQL)"
        }
        (ErrorKind::PermissionDenied, _) => "grant the monitoring account the privileges listed in docs/probes.md",
        (ErrorKind::ServerError, _) => "see the server's message above",
        (ErrorKind::Protocol, _) => {
            "check that the port belongs to a server of the instance's dbType and that nothing in between (proxy, load balancer) cuts the connection"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_stable_pascal_case_reasons() {
        let all = [
            (ErrorKind::Timeout, "Timeout"),
            (ErrorKind::ConnectionRefused, "ConnectionRefused"),
            (ErrorKind::DnsFailure, "DnsFailure"),
            (ErrorKind::AuthenticationFailed, "AuthenticationFailed"),
            (ErrorKind::TlsError, "TlsError"),
            (ErrorKind::InsecureAuthentication, "InsecureAuthentication"),
            (ErrorKind::PermissionDenied, "PermissionDenied"),
            (ErrorKind::ServerError, "ServerError"),
            (ErrorKind::Protocol, "Protocol"),
        ];
        for (kind, reason) in all {
            assert_eq!(kind.as_str(), reason);
            assert_eq!(kind.to_string(), reason);
        }
    }

    #[test]
    fn io_payloads_are_classified() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(transport_kind(&refused), Some(ErrorKind::ConnectionRefused));

        let tls = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert_eq!(transport_kind(&tls), Some(ErrorKind::TlsError));

        let other = io::Error::other("boom");
        assert_eq!(transport_kind(&other), None);
    }

    #[test]
    fn describe_joins_causes_without_repeating_them() {
        #[derive(Debug, thiserror::Error)]
        #[error("error connecting to server")]
        struct Outer(#[source] io::Error);
        let err = Outer(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(describe(&err), "error connecting to server: connection refused");

        #[derive(Debug, thiserror::Error)]
        #[error("I/O error: {0}")]
        struct Repeats(#[source] io::Error);
        let err = Repeats(io::Error::other("broken pipe"));
        assert_eq!(describe(&err), "I/O error: broken pipe");
    }
}
