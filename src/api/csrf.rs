//! CSRF tokens (SPEC §3.3): an HMAC of the caller's identity and an expiry,
//! signed with a key every façade replica reads from the same Secret, so a
//! token from one replica is accepted by all of them.

use std::collections::BTreeMap;

use hmac::{Hmac, KeyInit, Mac};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use sha2::Sha256;

use super::auth::Caller;
use super::envelope::{ApiError, Code};

pub const CSRF_HEADER: &str = "x-csrftoken";
pub const KEY_SECRET: &str = "dbfleet-csrf-key";
const KEY_FIELD: &str = "key";
const KEY_BYTES: usize = 32;
/// A working day: a browser session fetches a fresh one on reload.
pub const TOKEN_TTL_SECONDS: i64 = 8 * 3600;

pub struct CsrfKey(Vec<u8>);

impl CsrfKey {
    /// Reads the key from its Secret, creating the Secret with a random key
    /// when it does not exist (the first replica wins a concurrent race).
    pub async fn load_or_create(client: Client, namespace: &str) -> Result<CsrfKey, kube::Error> {
        let secrets: Api<Secret> = Api::namespaced(client, namespace);
        loop {
            if let Some(secret) = secrets.get_opt(KEY_SECRET).await? {
                if let Some(key) = secret
                    .data
                    .and_then(|d| d.get(KEY_FIELD).cloned())
                    .filter(|k| k.0.len() >= 16)
                {
                    return Ok(CsrfKey(key.0));
                }
                tracing::warn!(
                    secret = KEY_SECRET,
                    "CSRF key Secret has no usable key; using a process-local key"
                );
                return Ok(CsrfKey(random_key()));
            }
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(KEY_SECRET.into()),
                    ..Default::default()
                },
                data: Some(BTreeMap::from([(KEY_FIELD.to_string(), ByteString(random_key()))])),
                ..Default::default()
            };
            match secrets.create(&PostParams::default(), &secret).await {
                Ok(_) => continue,
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) => return Err(e),
            }
        }
    }

    #[cfg(test)]
    fn fixed(key: &[u8]) -> Self {
        CsrfKey(key.to_vec())
    }

    /// A token for `caller`, valid until `now + TOKEN_TTL_SECONDS`.
    pub fn issue(&self, caller: &Caller, now: i64) -> (String, i64) {
        let expires = now + TOKEN_TTL_SECONDS;
        (
            format!("{expires}.{}", hex(&self.mac(caller, expires).finalize().into_bytes())),
            expires,
        )
    }

    /// 400 `CSRF_FAILED` unless `token` was issued to `caller` and has not
    /// expired.
    pub fn check(&self, caller: &Caller, token: Option<&str>, now: i64) -> Result<(), ApiError> {
        let token = token.ok_or_else(|| ApiError::new(Code::CsrfFailed, "the X-CSRFToken header is required"))?;
        let valid = token
            .split_once('.')
            .and_then(|(expires, signature)| Some((expires.parse::<i64>().ok()?, unhex(signature)?)))
            .filter(|(expires, _)| *expires > now)
            .is_some_and(|(expires, signature)| self.mac(caller, expires).verify_slice(&signature).is_ok());
        if valid {
            Ok(())
        } else {
            Err(ApiError::new(Code::CsrfFailed, "the CSRF token is invalid or expired"))
        }
    }

    /// A key for another `purpose` (the console's sealed sign-in cookie),
    /// derived from this one with HMAC-SHA256 (HKDF's expand step for one
    /// block): every replica derives the same one, and neither key tells
    /// anything about the other.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(purpose.as_bytes());
        mac.update(&[1]);
        mac.finalize().into_bytes().into()
    }

    fn mac(&self, caller: &Caller, expires: i64) -> Hmac<Sha256> {
        // Any key length is valid for HMAC, so this cannot fail.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        for part in [
            caller.username.as_bytes(),
            b"\0",
            caller.uid.as_bytes(),
            b"\0",
            expires.to_string().as_bytes(),
        ] {
            mac.update(part);
        }
        mac
    }
}

fn random_key() -> Vec<u8> {
    let mut key = vec![0u8; KEY_BYTES];
    // The OS random source failing is not something to limp on from.
    getrandom::fill(&mut key).expect("the operating system's random source is available");
    key
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(name: &str) -> Caller {
        Caller {
            username: name.into(),
            uid: "u1".into(),
            groups: vec![],
            extra: Default::default(),
        }
    }

    #[test]
    fn a_token_works_for_its_caller_until_it_expires() {
        let key = CsrfKey::fixed(b"0123456789abcdef0123456789abcdef");
        let (token, expires) = key.issue(&caller("alice"), 1000);
        assert!(key.check(&caller("alice"), Some(&token), 1000).is_ok());
        assert!(key.check(&caller("alice"), Some(&token), expires).is_err());
        assert!(key.check(&caller("bob"), Some(&token), 1000).is_err());
    }

    #[test]
    fn forged_and_missing_tokens_fail() {
        let key = CsrfKey::fixed(b"0123456789abcdef0123456789abcdef");
        let other = CsrfKey::fixed(b"another key, another signature!!");
        let (token, _) = other.issue(&caller("alice"), 1000);
        for bad in [None, Some(""), Some("x"), Some("9999999999.zz"), Some(token.as_str())] {
            let e = key.check(&caller("alice"), bad, 1000).unwrap_err();
            assert_eq!(e.code, Code::CsrfFailed);
        }
        // Pushing the expiry forward breaks the signature.
        let (token, _) = key.issue(&caller("alice"), 1000);
        let signature = token.split_once('.').unwrap().1;
        assert!(
            key.check(&caller("alice"), Some(&format!("99999999999.{signature}")), 1000)
                .is_err()
        );
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_by_key() {
        let key = CsrfKey::fixed(b"0123456789abcdef0123456789abcdef");
        let other = CsrfKey::fixed(b"another key, another signature!!");
        assert_eq!(key.derive("console"), key.derive("console"));
        assert_ne!(key.derive("console"), key.derive("something else"));
        assert_ne!(key.derive("console"), other.derive("console"));
        assert_ne!(key.derive("console").as_slice(), &key.0[..]);
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(unhex(&hex(&[0, 15, 255])).unwrap(), vec![0, 15, 255]);
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
