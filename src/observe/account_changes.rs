//! What changed between two account syncs, as the entries of the account
//! history and the counts in `status.accounts.changes` (issue 21). Pure.
//!
//! Privileges are compared as normalised sets — upper case, trimmed, each
//! once, `USAGE` (which means none) left out, `GRANT OPTION` as one more
//! member — so a server that lists the same grants in another order or
//! case never makes a change (provider-sql's exact-string comparison never
//! settles: its issue #240).
//!
//! A new account is logged as `account_added`, then what it holds
//! (`superuser_gained`, `privileges_gained` per database), so access given
//! with the account is in the log too. A removed account is one
//! `account_removed`. The first sync of an instance has nothing to compare
//! with: it is the baseline and records nothing (the caller's choice).

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::status::time;
use crate::crd::history::{AccountChange, ChangeKind};
use crate::crd::instance::AccountChanges;
use crate::crd::inventory::InventoryAccount;

/// Entries and counts of one comparison.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Comparison {
    /// In account (name, host) order; within an account in the order of
    /// [`ChangeKind`] (what the account is, then what it may do), then
    /// database.
    pub entries: Vec<AccountChange>,
    pub counts: AccountChanges,
}

type Key = (String, Option<String>);
/// Privileges per database; `None` is the whole server (MySQL `ON *.*`).
type Privileges = BTreeMap<Option<String>, BTreeSet<String>>;

/// How `after` differs from `before`; the order of either list does not
/// matter.
pub fn compare(before: &[InventoryAccount], after: &[InventoryAccount], at: SystemTime) -> Comparison {
    let index = |items: &'_ [InventoryAccount]| -> BTreeMap<Key, Normalised> {
        let mut map: BTreeMap<Key, Normalised> = BTreeMap::new();
        for account in items {
            let key = (account.name.clone(), account.host.clone());
            // The same key twice (a server that lies) merges into one.
            let merged = match map.remove(&key) {
                Some(existing) => existing.merge(Normalised::of(account)),
                None => Normalised::of(account),
            };
            map.insert(key, merged);
        }
        map
    };
    let (before, after) = (index(before), index(after));
    let at = time(at);
    let mut comparison = Comparison::default();
    let mut log = |key: &Key, kind: ChangeKind, database: Option<&Option<String>>, privileges: Vec<String>| {
        comparison.entries.push(AccountChange {
            at: at.clone(),
            account: key.0.clone(),
            host: key.1.clone(),
            kind,
            database: database.cloned().flatten(),
            privileges,
        });
    };
    let mut counts = AccountChanges::default();
    let keys: BTreeSet<&Key> = before.keys().chain(after.keys()).collect();
    for key in keys {
        match (before.get(key), after.get(key)) {
            (None, Some(new)) => {
                counts.added += 1;
                log(key, ChangeKind::AccountAdded, None, vec![]);
                if new.superuser {
                    log(key, ChangeKind::SuperuserGained, None, vec![]);
                }
                for (database, privileges) in &new.privileges {
                    log(
                        key,
                        ChangeKind::PrivilegesGained,
                        Some(database),
                        privileges.iter().cloned().collect(),
                    );
                }
            }
            (Some(_), None) => {
                counts.removed += 1;
                log(key, ChangeKind::AccountRemoved, None, vec![]);
            }
            (Some(old), Some(new)) => {
                if old != new {
                    counts.modified += 1;
                }
                for (changed, gained, lost) in [
                    (
                        old.superuser != new.superuser,
                        new.superuser,
                        ChangeKind::SuperuserGained,
                    ),
                    (old.locked != new.locked, new.locked, ChangeKind::Locked),
                    (old.can_login != new.can_login, new.can_login, ChangeKind::LoginEnabled),
                ] {
                    if changed {
                        log(key, if gained { lost } else { opposite(lost) }, None, vec![]);
                    }
                }
                let databases: BTreeSet<&Option<String>> = old.privileges.keys().chain(new.privileges.keys()).collect();
                let empty = BTreeSet::new();
                for database in databases {
                    let was = old.privileges.get(database).unwrap_or(&empty);
                    let is = new.privileges.get(database).unwrap_or(&empty);
                    let gained: Vec<String> = is.difference(was).cloned().collect();
                    let lost: Vec<String> = was.difference(is).cloned().collect();
                    if !gained.is_empty() {
                        log(key, ChangeKind::PrivilegesGained, Some(database), gained);
                    }
                    if !lost.is_empty() {
                        log(key, ChangeKind::PrivilegesLost, Some(database), lost);
                    }
                }
            }
            (None, None) => {}
        }
    }
    comparison.counts = counts;
    comparison
        .entries
        .sort_by(|a, b| (&a.account, &a.host, a.kind, &a.database).cmp(&(&b.account, &b.host, b.kind, &b.database)));
    comparison
}

fn opposite(kind: ChangeKind) -> ChangeKind {
    match kind {
        ChangeKind::SuperuserGained => ChangeKind::SuperuserLost,
        ChangeKind::Locked => ChangeKind::Unlocked,
        ChangeKind::LoginEnabled => ChangeKind::LoginDisabled,
        other => other,
    }
}

/// An account as compared: its flags and its privileges as sets, and the
/// rest (roles, attributes, plugin, expiry) normalised for the
/// `modified` count.
#[derive(Clone, Debug, PartialEq)]
struct Normalised {
    superuser: bool,
    can_login: bool,
    locked: bool,
    privileges: Privileges,
    rest: (
        bool,
        BTreeSet<String>,
        BTreeSet<String>,
        Option<String>,
        Option<Time>,
        BTreeSet<String>,
    ),
}

impl Normalised {
    fn of(account: &InventoryAccount) -> Self {
        let mut privileges = Privileges::new();
        let global = privilege_set(&account.global_privileges, account.global_grant_option);
        if !global.is_empty() {
            privileges.insert(None, global);
        }
        let mut reached = BTreeSet::new();
        for database in &account.databases {
            reached.insert(format!(
                "{}:{}:{}",
                database.name, database.owner, database.object_grants
            ));
            let set = privilege_set(&database.privileges, database.grant_option);
            if !set.is_empty() {
                privileges.entry(Some(database.name.clone())).or_default().extend(set);
            }
        }
        Normalised {
            superuser: account.superuser,
            can_login: account.can_login,
            locked: account.locked,
            privileges,
            rest: (
                account.expired,
                account.roles.iter().map(|r| r.trim().to_string()).collect(),
                account.attributes.iter().map(|a| normalise(a)).collect(),
                account.auth_plugin.clone(),
                account.valid_until.clone(),
                reached,
            ),
        }
    }

    fn merge(mut self, other: Normalised) -> Self {
        self.superuser |= other.superuser;
        self.can_login |= other.can_login;
        self.locked |= other.locked;
        for (database, set) in other.privileges {
            self.privileges.entry(database).or_default().extend(set);
        }
        self
    }
}

/// A privilege list as a set: upper case, trimmed, inner spaces single,
/// each once, `USAGE` left out; `GRANT OPTION` added when it is held.
fn privilege_set(privileges: &[String], grant_option: bool) -> BTreeSet<String> {
    let mut set: BTreeSet<String> = privileges
        .iter()
        .map(|p| normalise(p))
        .filter(|p| !p.is_empty() && p != "USAGE")
        .collect();
    if grant_option && !set.is_empty() {
        set.insert("GRANT OPTION".to_string());
    }
    set
}

fn normalise(privilege: &str) -> String {
    privilege
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::inventory::AccountDatabase;
    use std::time::Duration;

    fn account(name: &str, host: Option<&str>) -> InventoryAccount {
        InventoryAccount {
            name: name.into(),
            host: host.map(Into::into),
            superuser: false,
            can_login: true,
            locked: false,
            expired: false,
            roles: vec![],
            roles_truncated: false,
            global_privileges: vec![],
            global_grant_option: false,
            attributes: vec![],
            valid_until: None,
            auth_plugin: None,
            databases: vec![],
            databases_truncated: false,
        }
    }

    fn on(name: &str, privileges: &[&str]) -> AccountDatabase {
        AccountDatabase {
            name: name.into(),
            privileges: privileges.iter().map(|p| p.to_string()).collect(),
            grant_option: false,
            owner: false,
            object_grants: false,
        }
    }

    const AT: SystemTime = SystemTime::UNIX_EPOCH;

    /// (account, kind, database, privileges) of each entry.
    fn summary(c: &Comparison) -> Vec<(String, &'static str, Option<String>, Vec<String>)> {
        c.entries
            .iter()
            .map(|e| {
                let who = match &e.host {
                    Some(h) => format!("{}@{h}", e.account),
                    None => e.account.clone(),
                };
                (who, e.kind.as_str(), e.database.clone(), e.privileges.clone())
            })
            .collect()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_resync_with_the_same_grants_in_another_order_and_case_changes_nothing() {
        let mut a = account("app", Some("%"));
        a.global_privileges = strings(&["RELOAD", "PROCESS"]);
        a.databases = vec![on("shop", &["SELECT", "INSERT"]), on("crm", &["UPDATE"])];
        let mut b = a.clone();
        b.global_privileges = strings(&["process", "Reload", "PROCESS", "USAGE"]);
        b.databases = vec![on("crm", &[" update "]), on("shop", &["insert", "SELECT", "SELECT"])];
        let c = compare(&[a.clone()], &[b], AT + Duration::from_secs(5));
        assert_eq!(c, Comparison::default());
        assert_eq!(compare(&[a.clone()], &[a], AT), Comparison::default());
    }

    #[test]
    fn grants_and_revokes_are_logged_per_database_as_sets() {
        let mut before = account("app", None);
        before.databases = vec![on("shop", &["CONNECT", "CREATE"]), on("old", &["CONNECT"])];
        let mut after = account("app", None);
        after.databases = vec![on("shop", &["CONNECT", "TEMPORARY"]), on("new", &["CONNECT"])];
        after.databases[0].grant_option = true;
        let c = compare(&[before], &[after], AT);
        assert_eq!(
            summary(&c),
            [
                (
                    "app".into(),
                    "privileges_gained",
                    Some("new".into()),
                    strings(&["CONNECT"])
                ),
                (
                    "app".into(),
                    "privileges_gained",
                    Some("shop".into()),
                    strings(&["GRANT OPTION", "TEMPORARY"])
                ),
                (
                    "app".into(),
                    "privileges_lost",
                    Some("old".into()),
                    strings(&["CONNECT"])
                ),
                (
                    "app".into(),
                    "privileges_lost",
                    Some("shop".into()),
                    strings(&["CREATE"])
                ),
            ]
        );
        assert_eq!(
            c.counts,
            AccountChanges {
                added: 0,
                removed: 0,
                modified: 1
            }
        );
    }

    #[test]
    fn flags_are_logged_in_both_directions() {
        let before = account("ops", Some("%"));
        let mut after = before.clone();
        after.superuser = true;
        after.locked = true;
        after.can_login = false;
        after.global_privileges = strings(&["SUPER"]);
        let c = compare(std::slice::from_ref(&before), std::slice::from_ref(&after), AT);
        assert_eq!(
            summary(&c),
            [
                ("ops@%".into(), "superuser_gained", None, vec![]),
                ("ops@%".into(), "locked", None, vec![]),
                ("ops@%".into(), "login_disabled", None, vec![]),
                ("ops@%".into(), "privileges_gained", None, strings(&["SUPER"])),
            ]
        );
        let back = compare(&[after], &[before], AT);
        let kinds: Vec<_> = back.entries.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["superuser_lost", "unlocked", "login_enabled", "privileges_lost"]
        );
    }

    #[test]
    fn new_accounts_bring_what_they_hold_and_removed_ones_just_go() {
        let old = account("old", Some("%"));
        let mut new = account("new", Some("10.0.0.1"));
        new.superuser = true;
        new.databases = vec![on("shop", &["SELECT"])];
        let c = compare(&[old], &[new], AT);
        assert_eq!(
            summary(&c),
            [
                ("new@10.0.0.1".into(), "account_added", None, vec![]),
                ("new@10.0.0.1".into(), "superuser_gained", None, vec![]),
                (
                    "new@10.0.0.1".into(),
                    "privileges_gained",
                    Some("shop".into()),
                    strings(&["SELECT"])
                ),
                ("old@%".into(), "account_removed", None, vec![]),
            ]
        );
        assert_eq!(
            c.counts,
            AccountChanges {
                added: 1,
                removed: 1,
                modified: 0
            }
        );
        assert!(c.entries.iter().all(|e| e.at == time(AT)));
    }

    #[test]
    fn the_same_name_on_another_host_is_another_account() {
        let c = compare(&[account("app", Some("%"))], &[account("app", Some("localhost"))], AT);
        assert_eq!(
            summary(&c),
            [
                ("app@%".into(), "account_removed", None, vec![]),
                ("app@localhost".into(), "account_added", None, vec![]),
            ]
        );
    }

    #[test]
    fn other_differences_count_as_modified_without_an_entry() {
        let before = account("r", None);
        let mut after = before.clone();
        after.roles = strings(&["reporting"]);
        let c = compare(&[before], &[after], AT);
        assert!(c.entries.is_empty());
        assert_eq!(c.counts.modified, 1);
    }
}
