//! The sign-in cookie: the bearer token a person pasted, sealed with
//! XChaCha20-Poly1305 under a key derived from the façade's CSRF key
//! (`CsrfKey::derive`), so every replica opens it and nobody who reads the
//! cookie learns the token or can change when it lapses. Pure, apart from
//! the random nonce.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// The cookie's name; its path is the console's, so it never goes to
/// `/api/v1` (which reads no cookie anyway).
pub const COOKIE: &str = "dbfleet_session";
/// What the CSRF key is turned into for sealing sessions.
pub const KEY_PURPOSE: &str = "dbfleet console session v1";
/// A token whose lifetime cannot be read (not a JWT) is kept at most this
/// long; TokenReview still checks it on every request (cached 10 s).
pub const UNKNOWN_LIFETIME_SECONDS: i64 = 8 * 3600;
/// The idle clock is moved forward at most this often, so an active page
/// does not rewrite its cookie on every request.
pub const REFRESH_SECONDS: i64 = 60;
/// Browsers keep cookies up to 4096 bytes, name and attributes included.
pub const MAX_COOKIE_VALUE: usize = 3800;

const VERSION: u8 = 1;
const NONCE_BYTES: usize = 24;

/// What the cookie holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub token: String,
    /// Unix seconds: when the token expires (or [`UNKNOWN_LIFETIME_SECONDS`]
    /// after sign-in).
    pub expires: i64,
    /// Unix seconds: the last request seen with it.
    pub seen: i64,
}

impl Session {
    /// A session for `token` signed in at `now`.
    pub fn new(token: String, now: i64) -> Session {
        let expires = jwt_expiry(&token).unwrap_or(now + UNKNOWN_LIFETIME_SECONDS);
        Session {
            token,
            expires,
            seen: now,
        }
    }

    /// Whether it may still be used at `now`, after `idle_seconds` of quiet
    /// at most.
    pub fn is_valid(&self, now: i64, idle_seconds: i64) -> bool {
        now < self.expires && now - self.seen < idle_seconds
    }

    /// Whether to write the cookie again with `seen` moved to now.
    pub fn needs_refresh(&self, now: i64) -> bool {
        now - self.seen >= REFRESH_SECONDS
    }

    fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(16 + self.token.len());
        bytes.extend_from_slice(&self.expires.to_be_bytes());
        bytes.extend_from_slice(&self.seen.to_be_bytes());
        bytes.extend_from_slice(self.token.as_bytes());
        bytes
    }

    fn decode(bytes: &[u8]) -> Option<Session> {
        let expires = i64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let seen = i64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?);
        let token = String::from_utf8(bytes.get(16..)?.to_vec()).ok()?;
        Some(Session { token, expires, seen })
    }
}

/// The `exp` claim of a JWT (ServiceAccount tokens, OIDC id-tokens). The
/// signature is not checked here: TokenReview accepted the token, and this
/// only shortens how long the cookie keeps it.
pub fn jwt_expiry(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let json = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice::<serde_json::Value>(&json).ok()?["exp"].as_i64()
}

/// Seals and opens sessions under one key, bound to one namespace's
/// façade (the associated data), so a cookie from another namespace's
/// console does not open here even if the key were shared.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    context: Vec<u8>,
}

impl Sealer {
    pub fn new(key: [u8; 32], namespace: &str) -> Sealer {
        Sealer {
            cipher: XChaCha20Poly1305::new(&key.into()),
            context: format!("{KEY_PURPOSE}\0{namespace}").into_bytes(),
        }
    }

    /// The cookie value: version, random nonce, ciphertext, base64url.
    pub fn seal(&self, session: &Session) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).expect("the operating system's random source is available");
        let plaintext = session.encode();
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: &self.context,
                },
            )
            .expect("XChaCha20-Poly1305 seals any message this size");
        let mut out = Vec::with_capacity(1 + NONCE_BYTES + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The session in a cookie value; `None` when it was not sealed by
    /// this key for this namespace, or was changed.
    pub fn open(&self, value: &str) -> Option<Session> {
        let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
        let (&version, rest) = bytes.split_first()?;
        if version != VERSION || rest.len() < NONCE_BYTES {
            return None;
        }
        let (nonce, sealed) = rest.split_at(NONCE_BYTES);
        let plaintext = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &self.context,
                },
            )
            .ok()?;
        Session::decode(&plaintext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(namespace: &str) -> Sealer {
        Sealer::new([7; 32], namespace)
    }

    fn jwt(claims: &str) -> String {
        format!("eyJhbGciOiJSUzI1NiJ9.{}.c2ln", URL_SAFE_NO_PAD.encode(claims))
    }

    #[test]
    fn a_sealed_session_opens_with_the_same_key_and_namespace_only() {
        let session = Session::new("secret-token".into(), 1000);
        let cookie = sealer("team").seal(&session);
        assert!(!cookie.contains("secret-token"));
        assert_eq!(sealer("team").open(&cookie), Some(session.clone()));
        assert_eq!(sealer("other").open(&cookie), None);
        assert_eq!(Sealer::new([8; 32], "team").open(&cookie), None);
        // Two seals of one session differ (a fresh nonce each time).
        assert_ne!(sealer("team").seal(&session), cookie);
    }

    #[test]
    fn a_changed_or_truncated_cookie_does_not_open() {
        let cookie = sealer("team").seal(&Session::new("t".into(), 1000));
        let mut bytes = URL_SAFE_NO_PAD.decode(&cookie).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(sealer("team").open(&URL_SAFE_NO_PAD.encode(&bytes)), None);
        assert_eq!(sealer("team").open(&cookie[..cookie.len() / 2]), None);
        assert_eq!(sealer("team").open(""), None);
        assert_eq!(sealer("team").open("not base64 at all!"), None);
    }

    #[test]
    fn a_session_lapses_with_its_token_or_after_the_idle_time() {
        let token = jwt(r#"{"sub":"system:serviceaccount:ns:sa","exp":5000}"#);
        let session = Session::new(token, 1000);
        assert_eq!(session.expires, 5000);
        assert!(session.is_valid(1000 + 1799, 1800));
        assert!(!session.is_valid(1000 + 1800, 1800));
        let active = Session { seen: 4000, ..session };
        assert!(active.is_valid(4999, 1800));
        assert!(!active.is_valid(5000, 1800));
    }

    #[test]
    fn an_opaque_token_gets_the_bounded_lifetime() {
        assert_eq!(jwt_expiry("opaque-token"), None);
        assert_eq!(jwt_expiry(&jwt(r#"{"sub":"x"}"#)), None);
        assert_eq!(
            Session::new("opaque".into(), 100).expires,
            100 + UNKNOWN_LIFETIME_SECONDS
        );
    }

    #[test]
    fn the_idle_clock_moves_once_a_minute() {
        let session = Session::new("t".into(), 1000);
        assert!(!session.needs_refresh(1000 + REFRESH_SECONDS - 1));
        assert!(session.needs_refresh(1000 + REFRESH_SECONDS));
    }
}
