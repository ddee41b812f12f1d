//! Accounts as the probes report them, and how two syncs differ.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

/// One login or role. MySQL accounts are `name@host`; PostgreSQL roles
/// have no host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub host: Option<String>,
    /// PostgreSQL `rolsuper`; MySQL `SUPER` at the global level.
    pub superuser: bool,
    /// PostgreSQL `rolcanlogin`; MySQL: not a role.
    pub can_login: bool,
    /// MySQL `ACCOUNT LOCK`; PostgreSQL has no such state (a role that must
    /// not log in is `NOLOGIN`, i.e. `can_login` false).
    pub locked: bool,
    /// PostgreSQL `VALID UNTIL` in the past; MySQL `PASSWORD EXPIRE`.
    pub expired: bool,
    /// Roles the account is a member of, sorted (PostgreSQL role names;
    /// MySQL 8 `role@host`; MariaDB role names).
    pub roles: Vec<String>,
    /// MySQL privileges granted `ON *.*`, sorted, without `USAGE`.
    pub global_privileges: Vec<String>,
    /// Whether the global privileges carry `WITH GRANT OPTION`.
    pub global_grant_option: bool,
    /// PostgreSQL attributes beyond superuser and login, sorted:
    /// `BYPASSRLS`, `CREATEDB`, `CREATEROLE`, `REPLICATION`.
    pub attributes: Vec<String>,
    /// PostgreSQL `VALID UNTIL` when set to a finite time.
    pub valid_until: Option<SystemTime>,
    /// MySQL authentication plugin; `None` on PostgreSQL and for roles.
    pub auth_plugin: Option<String>,
    /// Databases with a privilege granted to the account itself, sorted by
    /// name: PostgreSQL databases it owns or has a database-level grant on;
    /// MySQL database names or patterns from database-, table-, column- and
    /// routine-level grants. Global privileges are not expanded into names.
    pub databases: Vec<DatabaseGrant>,
}

/// What an account holds on one database.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DatabaseGrant {
    /// A database name, or a MySQL pattern such as `app\_%`.
    pub name: String,
    /// Database-level privileges, sorted (PostgreSQL `CONNECT`, `CREATE`,
    /// `TEMPORARY`; MySQL schema-level privileges).
    pub privileges: Vec<String>,
    /// Whether the account may grant them on (PostgreSQL: any of them).
    pub grant_option: bool,
    /// PostgreSQL: the account owns the database.
    pub owner: bool,
    /// MySQL: the account also holds table-, column- or routine-level
    /// privileges inside.
    pub object_grants: bool,
}

impl DatabaseGrant {
    /// A grant that names the database and nothing more.
    pub fn named(name: impl Into<String>) -> Self {
        DatabaseGrant {
            name: name.into(),
            ..Default::default()
        }
    }
}

impl Account {
    pub fn key(&self) -> AccountKey {
        AccountKey {
            name: self.name.clone(),
            host: self.host.clone(),
        }
    }
}

/// Identifies an account across syncs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountKey {
    pub name: String,
    pub host: Option<String>,
}

impl fmt::Display for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Some(host) => write!(f, "'{}'@'{}'", self.name, host),
            None => f.write_str(&self.name),
        }
    }
}

/// Anything account-shaped that can be compared across syncs: a probe's
/// [`Account`], or an account as some other layer keeps it.
pub trait AccountRecord: PartialEq {
    fn account_name(&self) -> &str;
    fn account_host(&self) -> Option<&str>;
}

impl AccountRecord for Account {
    fn account_name(&self) -> &str {
        &self.name
    }
    fn account_host(&self) -> Option<&str> {
        self.host.as_deref()
    }
}

/// Accounts added, removed and modified between two syncs, each sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountDiff {
    pub added: Vec<AccountKey>,
    pub removed: Vec<AccountKey>,
    /// Present in both, with any flag or database list changed.
    pub modified: Vec<AccountKey>,
}

impl AccountDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.modified.is_empty()
    }
}

/// How `current` differs from `previous`. Pure; the order of either list
/// does not matter, but the database lists inside must be sorted the same
/// way (the probes sort them).
pub fn diff_accounts<T: AccountRecord>(previous: &[T], current: &[T]) -> AccountDiff {
    let index = |items: &[T]| -> BTreeMap<(String, Option<String>), usize> {
        items
            .iter()
            .enumerate()
            .map(|(i, a)| ((a.account_name().to_owned(), a.account_host().map(str::to_owned)), i))
            .collect()
    };
    let before = index(previous);
    let after = index(current);
    let key = |(name, host): &(String, Option<String>)| AccountKey {
        name: name.clone(),
        host: host.clone(),
    };

    let mut diff = AccountDiff::default();
    for (k, &i) in &after {
        match before.get(k) {
            None => diff.added.push(key(k)),
            Some(&j) if previous[j] != current[i] => diff.modified.push(key(k)),
            Some(_) => {}
        }
    }
    diff.removed = before.keys().filter(|k| !after.contains_key(*k)).map(key).collect();
    diff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str, host: Option<&str>) -> Account {
        Account {
            name: name.into(),
            host: host.map(Into::into),
            superuser: false,
            can_login: true,
            locked: false,
            ..Default::default()
        }
    }

    fn keys(names: &[(&str, Option<&str>)]) -> Vec<AccountKey> {
        names
            .iter()
            .map(|(n, h)| AccountKey {
                name: (*n).into(),
                host: h.map(Into::into),
            })
            .collect()
    }

    #[test]
    fn identical_syncs_have_no_changes() {
        let a = vec![account("app", Some("%")), account("ops", Some("10.0.0.1"))];
        assert!(diff_accounts(&a, &a.clone()).is_empty());
    }

    #[test]
    fn added_removed_and_modified_are_told_apart() {
        let before = vec![
            account("app", Some("%")),
            account("app", Some("localhost")),
            account("old", Some("%")),
            account("ops", Some("%")),
        ];
        let mut locked_ops = account("ops", Some("%"));
        locked_ops.locked = true;
        let mut app_with_db = account("app", Some("%"));
        app_with_db.databases = vec![DatabaseGrant::named("shop")];
        let after = vec![
            locked_ops,
            account("new", Some("%")),
            app_with_db,
            account("app", Some("localhost")),
        ];

        let diff = diff_accounts(&before, &after);
        assert_eq!(diff.added, keys(&[("new", Some("%"))]));
        assert_eq!(diff.removed, keys(&[("old", Some("%"))]));
        assert_eq!(diff.modified, keys(&[("app", Some("%")), ("ops", Some("%"))]));
    }

    #[test]
    fn same_name_on_another_host_is_another_account() {
        let diff = diff_accounts(&[account("app", Some("%"))], &[account("app", Some("127.0.0.1"))]);
        assert_eq!(diff.added, keys(&[("app", Some("127.0.0.1"))]));
        assert_eq!(diff.removed, keys(&[("app", Some("%"))]));
        assert!(diff.modified.is_empty());
    }

    #[test]
    fn every_flag_counts_as_a_modification() {
        let mut base = account("r", None);
        base.databases = vec![DatabaseGrant::named("app")];
        let changes: [fn(&mut Account); 10] = [
            |a| a.superuser = true,
            |a| a.can_login = false,
            |a| a.locked = true,
            |a| a.expired = true,
            |a| a.databases.push(DatabaseGrant::named("db")),
            |a| a.roles.push("reporting".into()),
            |a| a.global_privileges.push("RELOAD".into()),
            |a| a.attributes.push("CREATEDB".into()),
            |a| a.auth_plugin = Some("ed25519".into()),
            |a| a.databases[0].privileges.push("SELECT".into()),
        ];
        for change in changes {
            let mut changed = base.clone();
            change(&mut changed);
            assert_eq!(
                diff_accounts(std::slice::from_ref(&base), &[changed]).modified,
                keys(&[("r", None)])
            );
        }
    }

    #[test]
    fn first_sync_adds_everything() {
        let diff = diff_accounts(&[], &[account("b", None), account("a", None)]);
        assert_eq!(diff.added, keys(&[("a", None), ("b", None)]));
    }

    #[test]
    fn keys_display_like_the_engines_do() {
        assert_eq!(account("app", Some("%")).key().to_string(), "'app'@'%'");
        assert_eq!(account("reporting", None).key().to_string(), "reporting");
    }
}
