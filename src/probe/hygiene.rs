//! What an account sync reads for the hygiene findings
//! (`observe::findings`) besides the accounts themselves.
//!
//! Everything here is computed by the server and comes back as names and
//! booleans: a password or its hash never leaves the server. Where the
//! login may not read what a question needs (PostgreSQL's `pg_authid` is
//! for superusers only), the answer is [`Checked::NotChecked`] with the
//! reason, never silence.

use super::accounts::AccountKey;

/// Server settings and per-account facts the findings need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hygiene {
    /// PostgreSQL `password_encryption` (`md5` or `scram-sha-256`).
    pub password_encryption: Option<String>,
    /// MySQL/MariaDB authentication plugins stronger than
    /// `mysql_native_password` that are active on the server (from
    /// `information_schema.PLUGINS`), sorted.
    pub strong_plugins: Vec<String>,
    /// MySQL/MariaDB: accounts whose `authentication_string` is empty
    /// (compared in SQL).
    pub empty_password: Checked,
    /// PostgreSQL: roles whose stored password is an MD5 hash (its prefix
    /// compared in SQL; needs `SELECT` on `pg_authid`).
    pub md5_password: Checked,
    /// MySQL/MariaDB: accounts whose password never expires (their own
    /// `password_lifetime` is 0, or it is the server default and
    /// `default_password_lifetime` is 0), sorted.
    pub password_never_expires: Vec<AccountKey>,
}

/// The answer to a question about accounts that the login may or may not
/// be allowed to ask.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Checked {
    /// Not a question for this engine.
    #[default]
    NotApplicable,
    /// Asked: these accounts, sorted (none is an answer too).
    Accounts(Vec<AccountKey>),
    /// Not asked, and why (a missing grant).
    NotChecked(String),
}

impl Checked {
    /// Whether `key` is among the accounts found.
    pub fn contains(&self, key: &AccountKey) -> bool {
        match self {
            Checked::Accounts(keys) => keys.binary_search(key).is_ok(),
            _ => false,
        }
    }
}

/// MySQL/MariaDB plugins that keep a password better than
/// `mysql_native_password` (unsalted SHA-1): MySQL's
/// `caching_sha2_password` and `sha256_password`, MariaDB's `ed25519` and
/// `parsec`.
pub const STRONG_PLUGINS: [&str; 4] = ["caching_sha2_password", "ed25519", "parsec", "sha256_password"];

/// Plugins that authenticate with a stored password; an empty
/// `authentication_string` under any other (`unix_socket`, `auth_socket`,
/// `pam`, `gssapi`) is no password at all, not an empty one.
pub const PASSWORD_PLUGINS: [&str; 7] = [
    "caching_sha2_password",
    "ed25519",
    "mysql_native_password",
    "mysql_old_password",
    "parsec",
    "sha256_password",
    "",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_answer_contains_accounts() {
        let key = |n: &str| AccountKey {
            name: n.into(),
            host: Some("%".into()),
        };
        let found = Checked::Accounts(vec![key("a"), key("c")]);
        assert!(found.contains(&key("c")));
        assert!(!found.contains(&key("b")));
        assert!(!Checked::NotChecked("no grant".into()).contains(&key("a")));
        assert!(!Checked::NotApplicable.contains(&key("a")));
    }
}
