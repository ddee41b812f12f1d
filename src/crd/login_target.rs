//! Where an instance's stored login goes (issue 18, SPEC §6): the spec
//! fields that decide which server receives it, and the rule for changing
//! them.
//!
//! Creating a DbInstance that names a credential Secret is how a namespace
//! grants the use of that credential. So moving an instance that uses one
//! — another host, port, TLS setting, credential or database — is a
//! decision of the same weight and needs the same right, `create` on
//! dbinstances: `update` alone would let its holder send the login to a
//! server of their choosing. The façade applies [`stored_login_moves`] to
//! every write to an existing instance; the chart's
//! ValidatingAdmissionPolicy (`charts/dbfleet/templates/admission-policy.yaml`)
//! applies the same rule to `kubectl` and every other API client, naming
//! the fields by [`ConnectionField::spec_name`].

use std::fmt;

use super::DbInstanceSpec;

/// A spec field that decides where the login goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionField {
    Host,
    Port,
    /// The TLS mode or the CA bundle: what the server must prove.
    Tls,
    Credential,
    DatabaseName,
}

impl ConnectionField {
    pub const ALL: [ConnectionField; 5] = [
        ConnectionField::Host,
        ConnectionField::Port,
        ConnectionField::Tls,
        ConnectionField::Credential,
        ConnectionField::DatabaseName,
    ];

    /// The field as the DbInstance spec names it (and the admission
    /// policy's message does).
    pub fn spec_name(self) -> &'static str {
        match self {
            ConnectionField::Host => "host",
            ConnectionField::Port => "port",
            ConnectionField::Tls => "tls",
            ConnectionField::Credential => "credentialsSecretRef",
            ConnectionField::DatabaseName => "databaseName",
        }
    }

    /// The field as the REST body names it.
    pub fn rest_name(self) -> &'static str {
        match self {
            ConnectionField::Host => "host",
            ConnectionField::Port => "port",
            ConnectionField::Tls => "tls",
            ConnectionField::Credential => "credential_id",
            ConnectionField::DatabaseName => "database_name",
        }
    }

    fn differs(self, old: &DbInstanceSpec, new: &DbInstanceSpec) -> bool {
        match self {
            ConnectionField::Host => old.host != new.host,
            ConnectionField::Port => old.port != new.port,
            ConnectionField::Tls => old.tls.mode != new.tls.mode || old.tls.ca_secret_ref != new.tls.ca_secret_ref,
            ConnectionField::Credential => old.credentials_secret_ref != new.credentials_secret_ref,
            ConnectionField::DatabaseName => old.database_name != new.database_name,
        }
    }
}

impl fmt::Display for ConnectionField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.spec_name())
    }
}

/// The connection fields that differ between `old` and `new`, in
/// [`ConnectionField::ALL`]'s order.
pub fn changed_connection_fields(old: &DbInstanceSpec, new: &DbInstanceSpec) -> Vec<ConnectionField> {
    ConnectionField::ALL
        .into_iter()
        .filter(|field| field.differs(old, new))
        .collect()
}

/// The connection fields an update from `old` to `new` changes on an
/// instance that uses a stored credential (before or after the change):
/// each needs `create` on dbinstances. Empty when the update needs no more
/// than `update`: it moves nothing, or no stored login is involved.
pub fn stored_login_moves(old: &DbInstanceSpec, new: &DbInstanceSpec) -> Vec<ConnectionField> {
    let uses_a_stored_login = old.credentials_secret_ref.is_some() || new.credentials_secret_ref.is_some();
    if !uses_a_stored_login {
        return Vec::new();
    }
    changed_connection_fields(old, new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn spec(fields: Value) -> DbInstanceSpec {
        let mut base = json!({"dbType": "postgresql", "host": "db.example.com", "port": 5432,
            "credentialsSecretRef": {"name": "login"}, "tls": {"mode": "require"}});
        for (k, v) in fields.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    fn moves(old: Value, new: Value) -> Vec<&'static str> {
        stored_login_moves(&spec(old), &spec(new))
            .into_iter()
            .map(ConnectionField::spec_name)
            .collect()
    }

    #[test]
    fn each_connection_field_is_a_move() {
        for (change, field) in [
            (json!({"host": "evil.example.org"}), "host"),
            (json!({"port": 5433}), "port"),
            (json!({"tls": {"mode": "disable"}}), "tls"),
            (
                json!({"tls": {"mode": "require", "caSecretRef": {"name": "ca"}}}),
                "tls",
            ),
            (
                json!({"credentialsSecretRef": {"name": "other"}}),
                "credentialsSecretRef",
            ),
            (
                json!({"credentialsSecretRef": {"name": "login", "passwordKey": "admin-password"}}),
                "credentialsSecretRef",
            ),
            (json!({"databaseName": "payroll"}), "databaseName"),
        ] {
            assert_eq!(moves(json!({}), change.clone()), [field], "{change}");
        }
    }

    #[test]
    fn several_moves_are_named_in_order() {
        assert_eq!(
            moves(
                json!({}),
                json!({"databaseName": "x", "port": 1, "host": "h", "credentialsSecretRef": {"name": "b"}})
            ),
            ["host", "port", "credentialsSecretRef", "databaseName"]
        );
    }

    #[test]
    fn other_fields_are_no_move() {
        let harmless = json!({"description": "primary", "tags": ["prod"], "isActive": false,
            "intervals": {"connection": "5m"}, "dbType": "mysql"});
        assert!(moves(json!({}), harmless).is_empty());
        assert!(moves(json!({}), json!({})).is_empty());
    }

    #[test]
    fn adding_or_removing_the_credential_is_a_move() {
        let without = json!({"credentialsSecretRef": null});
        assert_eq!(moves(without.clone(), json!({})), ["credentialsSecretRef"]);
        assert_eq!(moves(json!({}), without.clone()), ["credentialsSecretRef"]);
        // Removing it while moving the host: the old spec named one.
        assert_eq!(
            moves(json!({}), json!({"credentialsSecretRef": null, "host": "h"})),
            ["host", "credentialsSecretRef"]
        );
    }

    #[test]
    fn without_a_stored_credential_nothing_needs_create() {
        let without = json!({"credentialsSecretRef": null});
        let moved = json!({"credentialsSecretRef": null, "host": "elsewhere", "port": 1, "tls": {"mode": "disable"}});
        assert!(moves(without, moved.clone()).is_empty());
        // The fields still changed; only no stored login goes with them.
        let changed = changed_connection_fields(&spec(json!({"credentialsSecretRef": null})), &spec(moved));
        assert_eq!(
            changed,
            [ConnectionField::Host, ConnectionField::Port, ConnectionField::Tls]
        );
    }

    #[test]
    fn a_tls_default_written_out_is_no_move() {
        let implicit: DbInstanceSpec = serde_json::from_value(
            json!({"dbType": "mysql", "host": "h", "port": 1, "credentialsSecretRef": {"name": "l"}}),
        )
        .unwrap();
        let explicit: DbInstanceSpec = serde_json::from_value(
            json!({"dbType": "mysql", "host": "h", "port": 1, "credentialsSecretRef": {"name": "l"}, "tls": {"mode": "prefer"}}),
        )
        .unwrap();
        assert!(stored_login_moves(&implicit, &explicit).is_empty());
    }

    #[test]
    fn rest_and_spec_names() {
        let names: Vec<_> = ConnectionField::ALL
            .iter()
            .map(|f| (f.spec_name(), f.rest_name()))
            .collect();
        assert_eq!(
            names,
            [
                ("host", "host"),
                ("port", "port"),
                ("tls", "tls"),
                ("credentialsSecretRef", "credential_id"),
                ("databaseName", "database_name"),
            ]
        );
    }
}
