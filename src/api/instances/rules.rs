//! The body of an instance create or update, and the rules it must meet
//! (SPEC §3.5, with the CRD's limits from `crd::schema`): pure, so every
//! rule is tested without a cluster.

use std::collections::{HashMap, HashSet};

use kube::ResourceExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::api::caches::Caches;
use crate::api::envelope::{ApiResult, FieldError};
use crate::crd::DbInstanceSpec;
use crate::crd::instance::{CredentialsSecretRef, DbType};
use crate::crd::schema::{
    MAX_DATABASE_NAME_LEN, MAX_DESCRIPTION_LEN, MAX_HOST_LEN, MAX_PORT, MAX_SUBDOMAIN_LEN, MIN_PORT,
    is_dns1123_subdomain, is_hostname_or_ip,
};

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DbTypeInput {
    Mysql,
    Postgresql,
}

impl DbTypeInput {
    pub fn as_str(self) -> &'static str {
        DbType::from(self).as_str()
    }
}

impl From<DbTypeInput> for DbType {
    fn from(t: DbTypeInput) -> Self {
        match t {
            DbTypeInput::Mysql => DbType::Mysql,
            DbTypeInput::Postgresql => DbType::Postgresql,
        }
    }
}

/// Body of create and update.
#[derive(Deserialize, Clone, Debug, ToSchema)]
pub struct InstanceInput {
    /// The DbInstance's name: a DNS-1123 subdomain. Cannot change on update.
    pub name: String,
    pub db_type: DbTypeInput,
    pub host: String,
    pub port: i64,
    #[serde(default)]
    pub database_name: Option<String>,
    #[serde(default)]
    pub credential_id: Option<i64>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub is_active: Option<bool>,
    #[serde(default)]
    pub tag_names: Option<Vec<String>>,
}

/// What an input refers to, resolved from the caches.
pub struct Known {
    pub tags: HashSet<String>,
    /// Credential id → Secret name.
    pub credentials: HashMap<i64, String>,
}

impl Known {
    /// What the caches know, for an input naming `credential_id`: 409
    /// `CONFLICT` when several credential Secrets carry that id.
    pub fn for_credential(caches: &Caches, credential_id: Option<i64>) -> ApiResult<Self> {
        if let Some(id) = credential_id {
            caches.credential_by_id(id)?;
        }
        Ok(Known::from_caches(caches))
    }

    fn from_caches(caches: &Caches) -> Self {
        Known {
            tags: caches.live(&caches.tags).iter().map(|t| t.name_any()).collect(),
            credentials: caches.credentials().into_iter().map(|(name, id)| (id, name)).collect(),
        }
    }
}

/// Checks an input and applies it to `base` (the current spec on update,
/// so fields the contract does not cover — TLS, intervals, secret keys —
/// are kept).
pub fn validate_instance(
    input: &InstanceInput,
    known: &Known,
    base: Option<&DbInstanceSpec>,
) -> Result<DbInstanceSpec, Vec<FieldError>> {
    let mut errors = Vec::new();
    if let Err(message) = check_subdomain(&input.name) {
        errors.push(FieldError::new("name", message));
    }
    let host = input.host.trim();
    if !is_hostname_or_ip(host) {
        errors.push(FieldError::new(
            "host",
            format!("host must be a hostname or IP address of 1 to {MAX_HOST_LEN} characters"),
        ));
    }
    if let Some(error) = check_port(input.port) {
        errors.push(error);
    }
    let database_name = non_empty(input.database_name.as_deref());
    if database_name.is_some_and(|d| d.chars().count() > MAX_DATABASE_NAME_LEN) {
        errors.push(FieldError::new(
            "database_name",
            format!("database_name must be at most {MAX_DATABASE_NAME_LEN} characters"),
        ));
    }
    let description = non_empty(input.description.as_deref());
    if description.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_LEN) {
        errors.push(FieldError::new(
            "description",
            format!("description must be at most {MAX_DESCRIPTION_LEN} characters"),
        ));
    }
    let secret = match input.credential_id {
        None => None,
        Some(id) => match known.credentials.get(&id) {
            Some(name) => Some(name.clone()),
            None => {
                errors.push(FieldError::new("credential_id", format!("no credential with id {id}")));
                None
            }
        },
    };
    let mut tags: Vec<String> = Vec::new();
    for name in input
        .tag_names
        .iter()
        .flatten()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
    {
        if !known.tags.contains(name) {
            errors.push(FieldError::new("tag_names", format!("no tag named {name:?}")));
        } else if !tags.iter().any(|t| t == name) {
            tags.push(name.to_string());
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut spec = match base {
        Some(base) => base.clone(),
        None => serde_json::from_value(json!({"dbType": "mysql", "host": "x", "port": 1}))
            .expect("a minimal spec deserializes with its defaults"),
    };
    spec.db_type = input.db_type.into();
    spec.host = host.to_string();
    spec.port = input.port as i32;
    spec.database_name = database_name.map(str::to_owned);
    spec.description = description.map(str::to_owned);
    spec.is_active = input.is_active.unwrap_or(true);
    spec.tags = tags;
    spec.credentials_secret_ref = secret.map(|name| match &spec.credentials_secret_ref {
        Some(existing) if existing.name == name => existing.clone(),
        _ => CredentialsSecretRef {
            name,
            username_key: "username".into(),
            password_key: "password".into(),
        },
    });
    Ok(spec)
}

/// 400 on `port` unless it is a TCP port (also for connection tests).
pub fn check_port(port: i64) -> Option<FieldError> {
    (!(i64::from(MIN_PORT)..=i64::from(MAX_PORT)).contains(&port))
        .then(|| FieldError::new("port", format!("port must be between {MIN_PORT} and {MAX_PORT}")))
}

fn non_empty(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|t| !t.is_empty())
}

/// A Kubernetes object name (DNS-1123 subdomain).
pub fn check_subdomain(name: &str) -> Result<(), String> {
    if is_dns1123_subdomain(name) {
        Ok(())
    } else {
        Err(format!(
            "name {name:?} must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most {MAX_SUBDOMAIN_LEN} characters"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn known() -> Known {
        Known {
            tags: HashSet::from(["prod".to_string()]),
            credentials: HashMap::from([(7, "pg-login".to_string())]),
        }
    }

    fn input(body: Value) -> InstanceInput {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn valid_input_becomes_a_spec() {
        let spec = validate_instance(
            &input(
                json!({"name": "orders", "db_type": "postgresql", "host": "10.0.0.1", "port": 5432,
                "credential_id": 7, "tag_names": ["prod", "prod"], "description": "  "}),
            ),
            &known(),
            None,
        )
        .unwrap();
        assert_eq!(spec.credentials_secret_ref.unwrap().name, "pg-login");
        assert_eq!(spec.tags, vec!["prod"]);
        assert_eq!(spec.description, None);
        assert!(spec.is_active);
    }

    #[test]
    fn every_bad_field_is_named() {
        let errors = validate_instance(
            &input(json!({"name": "Bad_Name", "db_type": "mysql", "host": "", "port": 0,
                "credential_id": 8, "tag_names": ["nope"]})),
            &known(),
            None,
        )
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "host", "port", "credential_id", "tag_names"]);
    }

    #[test]
    fn updates_keep_fields_outside_the_contract() {
        let mut base: DbInstanceSpec = serde_json::from_value(json!({"dbType": "mysql", "host": "a", "port": 1,
            "tls": {"mode": "require"},
            "credentialsSecretRef": {"name": "pg-login", "usernameKey": "user"}}))
        .unwrap();
        base.intervals.connection = "5m".into();
        let spec = validate_instance(
            &input(json!({"name": "x", "db_type": "mysql", "host": "b", "port": 2, "credential_id": 7})),
            &known(),
            Some(&base),
        )
        .unwrap();
        assert_eq!(spec.intervals.connection, "5m");
        assert_eq!(spec.credentials_secret_ref.unwrap().username_key, "user");
        assert_eq!(spec.host, "b");
    }

    #[test]
    fn subdomain_names() {
        assert!(check_subdomain("db-1.eu").is_ok());
        for bad in ["", "-a", "a-", "A", "a..b", "a_b"] {
            assert!(check_subdomain(bad).is_err(), "{bad}");
        }
    }
}
