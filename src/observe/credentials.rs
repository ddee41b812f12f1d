//! Resolving a DbInstance's login (and TLS CA) from its Secrets, for the
//! one host the login is about to be sent to.
//!
//! Pure: the caller looks Secrets up (the controller in its reflector cache,
//! the façade through the API) and passes a lookup function in. Every rule
//! about which Secret may be read as what, and where its login may go, lives
//! here, so no path that probes can skip one (issue 9):
//! - a login is read only from a Secret labelled `dbfleet.io/credential:
//!   "true"`;
//! - a CA bundle only from a Secret labelled `dbfleet.io/ca: "true"` or
//!   `dbfleet.io/credential: "true"`;
//! - a credential Secret annotated `dbfleet.io/allowed-hosts` is sent only to
//!   the hosts (and ports, where an entry pins one) it lists
//!   (`allowed_hosts.rs`), and the resolved [`Credentials`] remember the
//!   host and port they were approved for.

use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;

use super::allowed_hosts::{self, AllowedHosts};
use crate::crd::DbInstanceSpec;
use crate::crd::instance::TlsMode;
use crate::crd::keys::{ALLOW_MD5_ANNOTATION, ALLOWED_HOSTS_ANNOTATION, CA_LABEL, CREDENTIAL_LABEL};
use crate::probe::Password;

/// What a probe needs from the instance's Secrets.
pub struct Credentials {
    pub username: String,
    pub password: Password,
    pub ca_pem: Option<Vec<u8>>,
    /// Changes whenever either Secret changes (their resourceVersions).
    pub fingerprint: String,
    /// The Secret opted in to PostgreSQL MD5 below `verify-full`
    /// (`dbfleet.io/allow-md5: "true"`).
    pub md5_allowed: bool,
    /// The host and port the login was approved for: the only ones it is
    /// sent to.
    host: String,
    port: u16,
}

impl Credentials {
    /// The host these credentials were resolved for (`spec.host`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port these credentials were resolved for (`spec.port`).
    pub fn port(&self) -> u16 {
        self.port
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("spec.credentialsSecretRef is not set: dbfleet needs a login to probe the server")]
    NotSpecified,
    #[error("Secret {0:?} does not exist in this namespace")]
    SecretNotFound(String),
    #[error(
        "Secret {0:?} (spec.credentialsSecretRef) is not labelled dbfleet.io/credential: \"true\"; \
         dbfleet reads logins only from Secrets that carry that label"
    )]
    SecretNotLabelled(String),
    #[error("Secret {secret:?} has no key {key:?} (or its value is not UTF-8)")]
    KeyMissing { secret: String, key: String },
    #[error("CA Secret {0:?} (spec.tls.caSecretRef) does not exist in this namespace")]
    CaSecretNotFound(String),
    #[error(
        "CA Secret {0:?} (spec.tls.caSecretRef) is labelled neither dbfleet.io/ca: \"true\" nor \
         dbfleet.io/credential: \"true\"; dbfleet reads CA bundles only from Secrets that carry one of them"
    )]
    CaSecretNotLabelled(String),
    #[error("CA Secret {secret:?} has no key {key:?}")]
    CaKeyMissing { secret: String, key: String },
    #[error("{address:?} (host:port) may not receive the login of credential Secret {secret:?}: {why}")]
    HostNotAllowed {
        secret: String,
        address: String,
        why: String,
    },
}

impl CredentialsError {
    /// Reason of the `CredentialsResolved` condition.
    pub fn reason(&self) -> &'static str {
        match self {
            CredentialsError::NotSpecified => "CredentialsNotSpecified",
            CredentialsError::SecretNotFound(_) => "SecretNotFound",
            CredentialsError::SecretNotLabelled(_) | CredentialsError::CaSecretNotLabelled(_) => "SecretNotLabelled",
            CredentialsError::KeyMissing { .. } => "SecretKeyMissing",
            CredentialsError::CaSecretNotFound(_) => "CaSecretNotFound",
            CredentialsError::CaKeyMissing { .. } => "CaSecretKeyMissing",
            CredentialsError::HostNotAllowed { .. } => "HostNotAllowed",
        }
    }

    /// Whether the error is about a Secret dbfleet does not watch (missing,
    /// or present without the label): nothing wakes the instance when such
    /// a Secret changes, so the controller looks again after a while.
    pub fn is_about_an_unwatched_secret(&self) -> bool {
        matches!(
            self,
            CredentialsError::SecretNotFound(_)
                | CredentialsError::SecretNotLabelled(_)
                | CredentialsError::CaSecretNotFound(_)
                | CredentialsError::CaSecretNotLabelled(_)
        )
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password)
            .field("ca_pem", &self.ca_pem.as_ref().map(|pem| pem.len()))
            .field("md5_allowed", &self.md5_allowed)
            .field("host", &self.host)
            .field("port", &self.port)
            .finish()
    }
}

/// Label selector of the Secrets a login may be read from.
pub fn credential_selector() -> String {
    format!("{CREDENTIAL_LABEL}=true")
}

/// Label selector of the Secrets labelled as CA bundles (credential Secrets
/// may be CA bundles too: see [`credential_selector`]).
pub fn ca_selector() -> String {
    format!("{CA_LABEL}=true")
}

fn labelled(meta: &ObjectMeta, label: &str) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(label))
        .is_some_and(|v| v == "true")
}

/// Whether a Secret opted in as a credential.
pub fn is_credential(meta: &ObjectMeta) -> bool {
    labelled(meta, CREDENTIAL_LABEL)
}

/// Whether a Secret may be read as a CA bundle.
pub fn is_ca(meta: &ObjectMeta) -> bool {
    labelled(meta, CA_LABEL) || is_credential(meta)
}

/// Whether a Secret opted in to being read in any role; the data of any
/// other Secret is never fetched.
pub fn opted_in(meta: &ObjectMeta) -> bool {
    is_ca(meta)
}

/// Whether the credential Secret with metadata `meta` (named `secret`) may
/// be sent to `host` on `port`: yes without a `dbfleet.io/allowed-hosts`
/// annotation, otherwise only to a host (and port, where the entry pins
/// one) it lists. An annotation that cannot be read allows no host.
pub fn check_host(secret: &str, meta: &ObjectMeta, host: &str, port: u16) -> Result<(), CredentialsError> {
    let Some(annotation) = meta.annotations.as_ref().and_then(|a| a.get(ALLOWED_HOSTS_ANNOTATION)) else {
        return Ok(());
    };
    let refused = |why: String| CredentialsError::HostNotAllowed {
        secret: secret.to_string(),
        address: allowed_hosts::address(host, port),
        why,
    };
    match AllowedHosts::parse(annotation) {
        Ok(allowed) if allowed.allows(host, port) => Ok(()),
        Ok(allowed) => Err(refused(format!(
            "its {ALLOWED_HOSTS_ANNOTATION} annotation allows only {allowed}"
        ))),
        Err(error) => Err(refused(format!(
            "its {ALLOWED_HOSTS_ANNOTATION} annotation cannot be read ({error}), so it allows no host"
        ))),
    }
}

/// The names of the Secrets `spec` refers to, for watches and lookups.
pub fn referenced_secrets(spec: &DbInstanceSpec) -> Vec<&str> {
    let mut names = Vec::new();
    if let Some(credentials) = &spec.credentials_secret_ref {
        names.push(credentials.name.as_str());
    }
    if let Some(ca) = spec
        .tls
        .ca_secret_ref
        .as_ref()
        .filter(|_| spec.tls.mode == TlsMode::VerifyFull)
    {
        names.push(ca.name.as_str());
    }
    names
}

/// The login (and CA) for sending to `spec.host` on `spec.port`, or why
/// there is none.
/// `lookup` may return Secrets without their data (metadata only): such a
/// Secret is judged by its labels, and if it carries them, by its keys.
pub fn resolve<S: std::borrow::Borrow<Secret>>(
    spec: &DbInstanceSpec,
    lookup: impl Fn(&str) -> Option<S>,
) -> Result<Credentials, CredentialsError> {
    let reference = spec
        .credentials_secret_ref
        .as_ref()
        .ok_or(CredentialsError::NotSpecified)?;
    let secret = lookup(&reference.name).ok_or_else(|| CredentialsError::SecretNotFound(reference.name.clone()))?;
    let secret = secret.borrow();
    if !is_credential(&secret.metadata) {
        return Err(CredentialsError::SecretNotLabelled(reference.name.clone()));
    }
    // A port outside u16 never passes the CRD's schema; 0 matches no pinned
    // port and cannot be dialled.
    let port = u16::try_from(spec.port).unwrap_or(0);
    check_host(&reference.name, &secret.metadata, &spec.host, port)?;
    let key_missing = |key: &str| CredentialsError::KeyMissing {
        secret: reference.name.clone(),
        key: key.to_string(),
    };
    let username = string_value(secret, &reference.username_key).ok_or_else(|| key_missing(&reference.username_key))?;
    let password = string_value(secret, &reference.password_key).ok_or_else(|| key_missing(&reference.password_key))?;
    let mut fingerprint = version(secret);

    let mut ca_pem = None;
    if let (TlsMode::VerifyFull, Some(ca)) = (spec.tls.mode, &spec.tls.ca_secret_ref) {
        let ca_secret = lookup(&ca.name).ok_or_else(|| CredentialsError::CaSecretNotFound(ca.name.clone()))?;
        let ca_secret = ca_secret.borrow();
        if !is_ca(&ca_secret.metadata) {
            return Err(CredentialsError::CaSecretNotLabelled(ca.name.clone()));
        }
        let pem = bytes_value(ca_secret, &ca.key).ok_or_else(|| CredentialsError::CaKeyMissing {
            secret: ca.name.clone(),
            key: ca.key.clone(),
        })?;
        ca_pem = Some(pem);
        fingerprint = format!("{fingerprint}/{}", version(ca_secret));
    }
    Ok(Credentials {
        username,
        password: Password::new(password),
        ca_pem,
        fingerprint,
        md5_allowed: secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ALLOW_MD5_ANNOTATION))
            .is_some_and(|v| v == "true"),
        host: spec.host.clone(),
        port,
    })
}

fn version(secret: &Secret) -> String {
    secret.metadata.resource_version.clone().unwrap_or_default()
}

/// A key from `data`, or from `stringData` for a Secret that was built in
/// memory and never stored.
fn bytes_value(secret: &Secret, key: &str) -> Option<Vec<u8>> {
    if let Some(value) = secret.data.as_ref().and_then(|data| data.get(key)) {
        return Some(value.0.clone());
    }
    secret
        .string_data
        .as_ref()
        .and_then(|data| data.get(key))
        .map(|s| s.clone().into_bytes())
}

fn string_value(secret: &Secret, key: &str) -> Option<String> {
    bytes_value(secret, key).and_then(|bytes| String::from_utf8(bytes).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn secret(name: &str, rv: &str, data: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        }
    }

    fn with_label(mut secret: Secret, label: &str) -> Secret {
        secret
            .metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(label.into(), "true".into());
        secret
    }

    fn login(name: &str, rv: &str, data: &[(&str, &str)]) -> Secret {
        with_label(secret(name, rv, data), CREDENTIAL_LABEL)
    }

    fn pinned(allowed_hosts: &str) -> Secret {
        let mut secret = login("login", "1", &[("username", "u"), ("password", "hunter2")]);
        secret.metadata.annotations = Some(BTreeMap::from([(
            ALLOWED_HOSTS_ANNOTATION.to_string(),
            allowed_hosts.to_string(),
        )]));
        secret
    }

    fn spec(extra: serde_json::Value) -> DbInstanceSpec {
        let mut base = serde_json::json!({"dbType": "postgresql", "host": "db", "port": 5432});
        base.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    fn resolve_in(spec: &DbInstanceSpec, secrets: &[Secret]) -> Result<Credentials, CredentialsError> {
        resolve(spec, |name| {
            secrets.iter().find(|s| s.metadata.name.as_deref() == Some(name))
        })
    }

    #[test]
    fn resolves_username_password_and_ca() {
        let spec = spec(serde_json::json!({
            "credentialsSecretRef": {"name": "login", "usernameKey": "user"},
            "tls": {"mode": "verify-full", "caSecretRef": {"name": "ca"}},
        }));
        let secrets = [
            login("login", "7", &[("user", "monitor"), ("password", "hunter2")]),
            with_label(secret("ca", "9", &[("ca.crt", "PEM")]), CA_LABEL),
        ];
        let found = resolve_in(&spec, &secrets).unwrap();
        assert_eq!(found.username, "monitor");
        assert_eq!(found.password.expose(), "hunter2");
        assert_eq!(found.ca_pem.as_deref(), Some(&b"PEM"[..]));
        assert_eq!(found.fingerprint, "7/9");
        assert_eq!(found.host(), "db");
        assert!(!format!("{found:?}").contains("hunter2"));
        assert_eq!(referenced_secrets(&spec), ["login", "ca"]);
    }

    #[test]
    fn md5_is_allowed_only_when_the_secret_says_exactly_true() {
        let spec = spec(serde_json::json!({"credentialsSecretRef": {"name": "login"}}));
        for (value, allowed) in [
            (None, false),
            (Some("true"), true),
            (Some("True"), false),
            (Some("yes"), false),
        ] {
            let mut secret = login("login", "1", &[("username", "u"), ("password", "hunter2")]);
            if let Some(value) = value {
                secret.metadata.annotations = Some(BTreeMap::from([(ALLOW_MD5_ANNOTATION.into(), value.into())]));
            }
            assert_eq!(resolve_in(&spec, &[secret]).unwrap().md5_allowed, allowed, "{value:?}");
        }
    }

    #[test]
    fn every_failure_has_its_reason() {
        let none: Option<&Secret> = None;
        let no_ref = spec(serde_json::json!({}));
        assert_eq!(
            resolve(&no_ref, |_| none).unwrap_err().reason(),
            "CredentialsNotSpecified"
        );
        let with_ref = spec(serde_json::json!({"credentialsSecretRef": {"name": "login"}}));
        assert_eq!(
            resolve(&with_ref, |_| none).unwrap_err(),
            CredentialsError::SecretNotFound("login".into())
        );
        let partial = login("login", "1", &[("username", "u")]);
        let error = resolve(&with_ref, |_| Some(&partial)).unwrap_err();
        assert_eq!(error.reason(), "SecretKeyMissing");
        assert!(error.to_string().contains("\"password\""), "{error}");
    }

    #[test]
    fn only_a_labelled_secret_is_a_login() {
        let spec = spec(serde_json::json!({"credentialsSecretRef": {"name": "app", "passwordKey": "token"}}));
        let plain = secret("app", "1", &[("username", "u"), ("token", "s3cret")]);
        let error = resolve_in(&spec, &[plain.clone()]).unwrap_err();
        assert_eq!(error, CredentialsError::SecretNotLabelled("app".into()));
        assert_eq!(error.reason(), "SecretNotLabelled");
        let message = error.to_string();
        assert!(
            message.contains("\"app\"") && message.contains(CREDENTIAL_LABEL),
            "{message}"
        );
        assert!(!message.contains("s3cret"));
        // A CA label does not make a Secret a login, nor does another value.
        let ca_only = with_label(plain.clone(), CA_LABEL);
        assert_eq!(resolve_in(&spec, &[ca_only]).unwrap_err().reason(), "SecretNotLabelled");
        let mut wrong_value = plain.clone();
        wrong_value.metadata.labels = Some(BTreeMap::from([(CREDENTIAL_LABEL.into(), "yes".into())]));
        assert_eq!(
            resolve_in(&spec, &[wrong_value]).unwrap_err().reason(),
            "SecretNotLabelled"
        );
        // Metadata alone (what the controller fetches for an unwatched
        // Secret) is enough to tell.
        let metadata_only = Secret {
            metadata: plain.metadata.clone(),
            ..Default::default()
        };
        assert_eq!(
            resolve_in(&spec, &[metadata_only]).unwrap_err().reason(),
            "SecretNotLabelled"
        );
        assert!(resolve_in(&spec, &[with_label(plain, CREDENTIAL_LABEL)]).is_ok());
    }

    #[test]
    fn a_ca_bundle_needs_the_ca_or_the_credential_label() {
        let spec = spec(serde_json::json!({
            "credentialsSecretRef": {"name": "login"},
            "tls": {"mode": "verify-full", "caSecretRef": {"name": "ca"}},
        }));
        let login = login("login", "1", &[("username", "u"), ("password", "p")]);
        let ca = secret("ca", "2", &[("ca.crt", "PEM")]);
        let error = resolve_in(&spec, &[login.clone(), ca.clone()]).unwrap_err();
        assert_eq!(error, CredentialsError::CaSecretNotLabelled("ca".into()));
        assert_eq!(error.reason(), "SecretNotLabelled");
        assert!(error.to_string().contains(CA_LABEL), "{error}");
        for label in [CA_LABEL, CREDENTIAL_LABEL] {
            let found = resolve_in(&spec, &[login.clone(), with_label(ca.clone(), label)]).unwrap();
            assert_eq!(found.ca_pem.as_deref(), Some(&b"PEM"[..]));
        }
    }

    #[test]
    fn allowed_hosts_pin_the_login() {
        let at = |host: &str| spec(serde_json::json!({"host": host, "credentialsSecretRef": {"name": "login"}}));
        let secret = pinned("*.db.example.com, 10.0.0.0/8");
        assert!(resolve_in(&at("pg1.db.example.com"), &[secret.clone()]).is_ok());
        assert!(resolve_in(&at("10.2.3.4"), &[secret.clone()]).is_ok());
        let error = resolve_in(&at("127.0.0.1"), &[secret.clone()]).unwrap_err();
        assert_eq!(error.reason(), "HostNotAllowed");
        let message = error.to_string();
        assert!(
            message.contains("\"127.0.0.1:5432\"") && message.contains("\"login\""),
            "{message}"
        );
        assert!(
            message.contains(ALLOWED_HOSTS_ANNOTATION) && message.contains("*.db.example.com"),
            "{message}"
        );
        assert!(!message.contains("hunter2"));

        // Unreadable: nothing is allowed, and the message says why.
        let broken = pinned("pg1.db.example.com, 10.0.0.0/33");
        let error = resolve_in(&at("pg1.db.example.com"), &[broken]).unwrap_err();
        assert_eq!(error.reason(), "HostNotAllowed");
        assert!(error.to_string().contains("10.0.0.0/33"), "{error}");
        let empty = pinned("");
        assert_eq!(resolve_in(&at("db"), &[empty]).unwrap_err().reason(), "HostNotAllowed");
    }

    #[test]
    fn a_pinned_port_is_checked_with_the_host() {
        let at = |host: &str, port: i32| {
            spec(serde_json::json!({"host": host, "port": port, "credentialsSecretRef": {"name": "login"}}))
        };
        let secret = pinned("db.example.com:5432, [::1]:6432, 10.0.0.0/8");
        let found = resolve_in(&at("db.example.com", 5432), &[secret.clone()]).unwrap();
        assert_eq!((found.host(), found.port()), ("db.example.com", 5432));
        assert!(resolve_in(&at("::1", 6432), &[secret.clone()]).is_ok());
        assert!(resolve_in(&at("10.9.9.9", 1), &[secret.clone()]).is_ok());
        for (host, port, address) in [
            ("db.example.com", 5433, "\"db.example.com:5433\""),
            ("::1", 5432, "\"[::1]:5432\""),
        ] {
            let error = resolve_in(&at(host, port), &[secret.clone()]).unwrap_err();
            assert_eq!(error.reason(), "HostNotAllowed");
            let message = error.to_string();
            assert!(message.contains(address), "{message}");
            assert!(message.contains("db.example.com:5432"), "{message}");
            assert!(!message.contains("hunter2"));
        }
    }

    #[test]
    fn the_host_is_checked_before_the_keys_are_read() {
        let spec = spec(serde_json::json!({"host": "evil.example.org", "credentialsSecretRef": {"name": "login"}}));
        let mut no_keys = pinned("db.example.com");
        no_keys.data = None;
        assert_eq!(resolve_in(&spec, &[no_keys]).unwrap_err().reason(), "HostNotAllowed");
    }

    #[test]
    fn only_opted_in_secrets_are_read_in_full() {
        let plain = secret("s", "1", &[]);
        assert!(!opted_in(&plain.metadata));
        assert!(opted_in(&with_label(plain.clone(), CA_LABEL).metadata));
        assert!(opted_in(&with_label(plain, CREDENTIAL_LABEL).metadata));
        assert_eq!(credential_selector(), "dbfleet.io/credential=true");
        assert_eq!(ca_selector(), "dbfleet.io/ca=true");
    }
}
