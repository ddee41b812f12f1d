//! The rules every probe connection follows before any proof of the
//! password leaves the process (SPEC §6, "Hostile servers"). A server is
//! hostile until `tls.mode: verify-full` proved its identity; until then:
//! - no recoverable secret goes out: no cleartext password, no password
//!   encrypted with a key the server hands over, no switch to a cleartext
//!   plugin;
//! - no proof weaker than the engine's strongest: PostgreSQL gets no MD5
//!   answer unless the credential Secret opts in, SCRAM needs at least
//!   [`MIN_SCRAM_ITERATIONS`], and under `require` SCRAM must bind to the TLS
//!   channel, so a man in the middle cannot relay it;
//! - a login that leaves the expected order (a second request, a message
//!   the exchange has no place for) ends before the driver answers it.
//!
//! The drivers answer whatever a server asks, so each engine puts a guard
//! between the driver and the socket that reads the server's requests
//! first: [`super::pg_guard`] for PostgreSQL and [`super::mysql_relay`] for
//! MySQL/MariaDB. Both refuse with an [`InsecureRequest`] before the driver
//! learns of the request.

use std::fmt;

use super::error::{ErrorKind, ProbeError, Stage};
use super::tls::{TlsSettings, mode_name};
use crate::crd::instance::TlsMode;

/// The fewest SCRAM iterations dbfleet answers below `verify-full`: RFC
/// 7677's minimum and PostgreSQL's default. Fewer make the proof cheap to
/// brute-force offline.
pub(crate) const MIN_SCRAM_ITERATIONS: u32 = 4096;

/// What a server may ask of this login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AuthPolicy {
    /// `verify-full`: the server proved its identity, so it may have the
    /// password itself (cleartext, or encrypted with its key).
    pub verified: bool,
    /// The credential Secret opted in to PostgreSQL MD5
    /// (`dbfleet.io/allow-md5`).
    pub md5_opted_in: bool,
    /// `require`: TLS without identity, so only a proof bound to the TLS
    /// channel (SCRAM-SHA-256-PLUS) cannot be relayed by whoever sits in the
    /// middle.
    pub channel_binding: bool,
}

impl AuthPolicy {
    pub(crate) fn new(tls: &TlsSettings, md5_opted_in: bool) -> Self {
        AuthPolicy {
            verified: tls.mode == TlsMode::VerifyFull,
            md5_opted_in,
            channel_binding: tls.mode == TlsMode::Require,
        }
    }

    /// Cleartext or server-key-encrypted passwords may be sent.
    pub(crate) fn recoverable_password(&self) -> bool {
        self.verified
    }

    pub(crate) fn allows_md5(&self) -> bool {
        self.verified || self.md5_opted_in
    }

    /// Whether a SCRAM exchange with `iterations` may go on.
    pub(crate) fn allows_scram_iterations(&self, iterations: u32) -> bool {
        self.verified || iterations >= MIN_SCRAM_ITERATIONS
    }
}

/// Policies for unit tests: an unverified server under `prefer`, under
/// `require`, and a verified one.
#[cfg(test)]
pub(crate) const STRICT: AuthPolicy = AuthPolicy {
    verified: false,
    md5_opted_in: false,
    channel_binding: false,
};
#[cfg(test)]
pub(crate) const REQUIRE: AuthPolicy = AuthPolicy {
    verified: false,
    md5_opted_in: false,
    channel_binding: true,
};
#[cfg(test)]
pub(crate) const VERIFIED: AuthPolicy = AuthPolicy {
    verified: true,
    md5_opted_in: false,
    channel_binding: false,
};

/// A request the policy does not answer: it would hand the password over in
/// a form the server (or anything in the middle) can recover, or a proof
/// weaker than the engine's strongest, or it has no place in the login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum InsecureRequest {
    /// PostgreSQL `AuthenticationCleartextPassword` (`password`, LDAP, PAM,
    /// RADIUS and BSD authentication use it).
    PostgresCleartext,
    /// PostgreSQL `AuthenticationMD5Password`: `md5(md5(password‖user)‖salt)`
    /// can be cracked offline.
    PostgresMd5,
    /// SCRAM with fewer iterations than [`MIN_SCRAM_ITERATIONS`].
    PostgresWeakScram { iterations: u32 },
    /// Under `require`: SCRAM without `SCRAM-SHA-256-PLUS`, or no SCRAM at
    /// all, so the proof is not bound to the TLS channel.
    PostgresNoChannelBinding { offered: String },
    /// MySQL `mysql_clear_password` or PAM's `dialog`.
    MysqlClearPassword,
    /// MySQL `sha256_password`: cleartext over TLS, otherwise encrypted with
    /// an RSA key the server supplies.
    MysqlSha256Password,
    /// `caching_sha2_password` full authentication (the server has no cached
    /// hash for the account): the same as `sha256_password`.
    MysqlFullAuthentication,
    /// `mysql_old_password` (pre-4.1): a hash that is cracked in seconds.
    MysqlOldPassword,
    /// A switch to a plugin dbfleet does not answer below `verify-full`.
    MysqlOtherPlugin { plugin: String },
    /// A login message with no place in the exchange so far (a second
    /// request, an unrequested key, a truncated or padded answer).
    UnexpectedMessage { what: String },
}

impl InsecureRequest {
    /// A name a server chose, made safe and short for a status message.
    pub(crate) fn server_text(bytes: &[u8]) -> String {
        const MAX_CHARS: usize = 64;
        let text: String = String::from_utf8_lossy(bytes)
            .chars()
            .map(|c| if c.is_ascii_graphic() { c } else { '?' })
            .take(MAX_CHARS)
            .collect();
        if text.is_empty() { "(none)".into() } else { text }
    }

    /// The setting that would let this request be answered.
    fn allowed_by(&self) -> &'static str {
        match self {
            InsecureRequest::PostgresMd5 => {
                "tls.mode verify-full, or the annotation dbfleet.io/allow-md5: \"true\" on the credential Secret (weak: see docs/security.md), would allow it"
            }
            InsecureRequest::PostgresNoChannelBinding { .. } => {
                "tls.mode verify-full would allow it; PostgreSQL offers SCRAM-SHA-256-PLUS over TLS when the account's password is stored as SCRAM"
            }
            InsecureRequest::UnexpectedMessage { .. } => "nothing allows it below tls.mode verify-full",
            _ => "tls.mode verify-full would allow it",
        }
    }
}

impl fmt::Display for InsecureRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InsecureRequest::PostgresCleartext => f.write_str(
                "the password in cleartext (AuthenticationCleartextPassword, as password, LDAP, PAM and RADIUS authentication do)",
            ),
            InsecureRequest::PostgresMd5 => {
                f.write_str("an MD5 password hash (AuthenticationMD5Password, which can be cracked offline)")
            }
            InsecureRequest::PostgresWeakScram { iterations } => write!(
                f,
                "a SCRAM proof with {iterations} iterations (at least {MIN_SCRAM_ITERATIONS} are needed, fewer are cheap to crack offline)"
            ),
            InsecureRequest::PostgresNoChannelBinding { offered } => write!(
                f,
                "authentication without channel binding (it offered {offered}, not SCRAM-SHA-256-PLUS, which tls require needs)"
            ),
            InsecureRequest::MysqlClearPassword => f.write_str("the password in cleartext (mysql_clear_password or dialog)"),
            InsecureRequest::MysqlSha256Password => f.write_str(
                "the password for sha256_password (cleartext over TLS, or encrypted with an RSA key the server supplies)",
            ),
            InsecureRequest::MysqlFullAuthentication => f.write_str(
                "caching_sha2_password full authentication (the password in cleartext over TLS, or encrypted with an RSA key the server supplies)",
            ),
            InsecureRequest::MysqlOldPassword => {
                f.write_str("a mysql_old_password hash (pre-4.1, cracked in seconds)")
            }
            InsecureRequest::MysqlOtherPlugin { plugin } => {
                write!(f, "an answer for the authentication plugin {plugin}")
            }
            InsecureRequest::UnexpectedMessage { what } => {
                write!(f, "an answer to {what}, which has no place in the login at that point")
            }
        }
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
            return Some(refused.0.clone());
        }
        if let Some(refused) = cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<Refused>())
        {
            return Some(refused.0.clone());
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
            "{engine} at {addr} asked for {request}, but with tls {} its identity is not verified, so nothing was sent ({})",
            mode_name(mode),
            request.allowed_by()
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
            let policy = AuthPolicy::new(&TlsSettings::new(mode), false);
            assert_eq!(policy.recoverable_password(), allowed, "{mode:?}");
            assert_eq!(policy.allows_md5(), allowed, "{mode:?}");
            assert_eq!(policy.allows_scram_iterations(4095), allowed, "{mode:?}");
            assert!(policy.allows_scram_iterations(MIN_SCRAM_ITERATIONS), "{mode:?}");
            assert_eq!(policy.channel_binding, mode == TlsMode::Require, "{mode:?}");
        }
        assert!(AuthPolicy::new(&TlsSettings::new(TlsMode::Prefer), true).allows_md5());
    }

    #[test]
    fn names_a_server_chose_are_printable_and_short() {
        assert_eq!(InsecureRequest::server_text(b"dialog"), "dialog");
        assert_eq!(InsecureRequest::server_text(b"a\x1b[31mb\n"), "a?[31mb?");
        assert_eq!(InsecureRequest::server_text(&[b'x'; 500]).len(), 64);
        assert_eq!(InsecureRequest::server_text(b""), "(none)");
    }

    #[test]
    fn md5_refusals_name_the_opt_in() {
        let err = insecure_error(
            "PostgreSQL",
            "127.0.0.1:5432",
            TlsMode::Prefer,
            InsecureRequest::PostgresMd5,
        );
        assert!(err.message.contains("dbfleet.io/allow-md5"), "{}", err.message);
        assert!(err.message.contains("MD5"), "{}", err.message);
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
