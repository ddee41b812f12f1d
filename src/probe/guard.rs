//! The rule every probe connection follows before a password leaves the
//! process: a password goes out in a recoverable form (cleartext, or
//! encrypted with a key the server itself hands over) only to a server whose
//! certificate was verified, i.e. under `tls.mode: verify-full`.
//!
//! The drivers answer whatever authentication request a server sends, so
//! each engine puts a guard between the driver and the socket that reads the
//! server's requests first: [`super::pg_guard`] for PostgreSQL and
//! [`super::mysql_relay`] for MySQL/MariaDB. Both refuse with an
//! [`InsecureRequest`] before the driver learns of the request.

use std::fmt;

use super::error::{ErrorKind, ProbeError, Stage};
use super::tls::{TlsSettings, mode_name};
use crate::crd::instance::TlsMode;

/// What a server may ask of a client whose identity check on the server
/// failed or never happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AuthPolicy {
    /// Cleartext or server-key-encrypted passwords may be sent.
    pub recoverable_password: bool,
}

impl AuthPolicy {
    pub(crate) fn for_tls(tls: &TlsSettings) -> Self {
        AuthPolicy {
            recoverable_password: tls.mode == TlsMode::VerifyFull,
        }
    }
}

/// Policies for unit tests: an unverified server, and a verified one.
#[cfg(test)]
pub(crate) const STRICT: AuthPolicy = AuthPolicy {
    recoverable_password: false,
};
#[cfg(test)]
pub(crate) const VERIFIED: AuthPolicy = AuthPolicy {
    recoverable_password: true,
};

/// An authentication request that would hand the password over in a form
/// the server (or anything in the middle) can recover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InsecureRequest {
    /// PostgreSQL `AuthenticationCleartextPassword` (`password`, LDAP, PAM,
    /// RADIUS and BSD authentication use it).
    PostgresCleartext,
    /// MySQL `mysql_clear_password` (PAM and LDAP plugins use it).
    MysqlClearPassword,
    /// MySQL `sha256_password`: cleartext over TLS, otherwise encrypted with
    /// an RSA key the server supplies.
    MysqlSha256Password,
    /// `caching_sha2_password` full authentication (the server has no cached
    /// hash for the account): the same as `sha256_password`.
    MysqlFullAuthentication,
}

impl fmt::Display for InsecureRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InsecureRequest::PostgresCleartext => {
                "the password in cleartext (AuthenticationCleartextPassword, as password, LDAP, PAM and RADIUS authentication do)"
            }
            InsecureRequest::MysqlClearPassword => "the password in cleartext (mysql_clear_password)",
            InsecureRequest::MysqlSha256Password => {
                "the password for sha256_password (cleartext over TLS, or encrypted with an RSA key the server supplies)"
            }
            InsecureRequest::MysqlFullAuthentication => {
                "caching_sha2_password full authentication (the password in cleartext over TLS, or encrypted with an RSA key the server supplies)"
            }
        })
    }
}

/// Marks an I/O error raised by a guard, so the engine can tell it from a
/// broken connection.
#[derive(Debug)]
pub(crate) struct Refused(pub InsecureRequest);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused to send {}", self.0)
    }
}

impl std::error::Error for Refused {}

/// The refusal carried in an error chain, if a guard raised it.
pub(crate) fn refusal_in(err: &(dyn std::error::Error + 'static)) -> Option<InsecureRequest> {
    let mut next = Some(err);
    while let Some(cause) = next {
        if let Some(refused) = cause.downcast_ref::<Refused>() {
            return Some(refused.0);
        }
        if let Some(refused) = cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<Refused>())
        {
            return Some(refused.0);
        }
        next = cause.source();
    }
    None
}

/// The probe error for a refused request: says what was asked, that nothing
/// was sent, and which mode would allow it.
pub(crate) fn insecure_error(
    engine: &str,
    addr: impl fmt::Display,
    mode: TlsMode,
    request: InsecureRequest,
) -> ProbeError {
    ProbeError::with_hint(
        ErrorKind::InsecureAuthentication,
        Stage::Connect,
        format!(
            "{engine} at {addr} asked for {request}, but with tls {} its identity is not verified, so the password was not sent (tls.mode verify-full would allow it)",
            mode_name(mode)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_verify_full_allows_recoverable_passwords() {
        for (mode, allowed) in [
            (TlsMode::Disable, false),
            (TlsMode::Prefer, false),
            (TlsMode::Require, false),
            (TlsMode::VerifyFull, true),
        ] {
            assert_eq!(
                AuthPolicy::for_tls(&TlsSettings::new(mode)).recoverable_password,
                allowed,
                "{mode:?}"
            );
        }
    }

    #[test]
    fn refusals_are_found_inside_io_errors() {
        let io = std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            Refused(InsecureRequest::PostgresCleartext),
        );
        assert_eq!(refusal_in(&io), Some(InsecureRequest::PostgresCleartext));
        assert_eq!(refusal_in(&std::io::Error::other("reset")), None);
    }

    #[test]
    fn the_error_names_the_request_and_the_mode_that_allows_it() {
        let err = insecure_error(
            "PostgreSQL",
            "127.0.0.1:5432",
            TlsMode::Require,
            InsecureRequest::PostgresCleartext,
        );
        assert_eq!(err.kind, ErrorKind::InsecureAuthentication);
        assert!(err.is_connect());
        assert!(err.message.contains("cleartext"), "{}", err.message);
        assert!(err.message.contains("tls require"), "{}", err.message);
        assert!(err.message.contains("verify-full"), "{}", err.message);
    }
}
