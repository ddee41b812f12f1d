//! Resolving a DbInstance's login (and TLS CA) from its Secrets.
//!
//! Pure: the caller looks Secrets up (the controller in its reflector cache,
//! the façade through the API) and passes a lookup function in.

use k8s_openapi::api::core::v1::Secret;

use crate::crd::DbInstanceSpec;
use crate::crd::instance::TlsMode;
use crate::probe::Password;

/// What a probe needs from the instance's Secrets.
pub struct Credentials {
    pub username: String,
    pub password: Password,
    pub ca_pem: Option<Vec<u8>>,
    /// Changes whenever either Secret changes (their resourceVersions).
    pub fingerprint: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("spec.credentialsSecretRef is not set: dbfleet needs a login to probe the server")]
    NotSpecified,
    #[error("Secret {0:?} does not exist in this namespace")]
    SecretNotFound(String),
    #[error("Secret {secret:?} has no key {key:?} (or its value is not UTF-8)")]
    KeyMissing { secret: String, key: String },
    #[error("CA Secret {0:?} (spec.tls.caSecretRef) does not exist in this namespace")]
    CaSecretNotFound(String),
    #[error("CA Secret {secret:?} has no key {key:?}")]
    CaKeyMissing { secret: String, key: String },
}

impl CredentialsError {
    /// Reason of the `CredentialsResolved` condition.
    pub fn reason(&self) -> &'static str {
        match self {
            CredentialsError::NotSpecified => "CredentialsNotSpecified",
            CredentialsError::SecretNotFound(_) => "SecretNotFound",
            CredentialsError::KeyMissing { .. } => "SecretKeyMissing",
            CredentialsError::CaSecretNotFound(_) => "CaSecretNotFound",
            CredentialsError::CaKeyMissing { .. } => "CaSecretKeyMissing",
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password)
            .field("ca_pem", &self.ca_pem.as_ref().map(|pem| pem.len()))
            .finish()
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

    fn spec(extra: serde_json::Value) -> DbInstanceSpec {
        let mut base = serde_json::json!({"dbType": "postgresql", "host": "db", "port": 5432});
        base.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn resolves_username_password_and_ca() {
        let spec = spec(serde_json::json!({
            "credentialsSecretRef": {"name": "login", "usernameKey": "user"},
            "tls": {"mode": "verify-full", "caSecretRef": {"name": "ca"}},
        }));
        let secrets = [
            secret("login", "7", &[("user", "monitor"), ("password", "hunter2")]),
            secret("ca", "9", &[("ca.crt", "PEM")]),
        ];
        let found = resolve(&spec, |name| {
            secrets.iter().find(|s| s.metadata.name.as_deref() == Some(name))
        })
        .unwrap();
        assert_eq!(found.username, "monitor");
        assert_eq!(found.password.expose(), "hunter2");
        assert_eq!(found.ca_pem.as_deref(), Some(&b"PEM"[..]));
        assert_eq!(found.fingerprint, "7/9");
        assert!(!format!("{found:?}").contains("hunter2"));
        assert_eq!(referenced_secrets(&spec), ["login", "ca"]);
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
        let partial = secret("login", "1", &[("username", "u")]);
        let error = resolve(&with_ref, |_| Some(&partial)).unwrap_err();
        assert_eq!(error.reason(), "SecretKeyMissing");
        assert!(error.to_string().contains("\"password\""), "{error}");
    }
}
