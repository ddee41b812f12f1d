//! The `DbInventory` sections that follow from a probe: pure functions from
//! a capacity collection or an account sync (and what was written last) to
//! the section to write, and whether it changed at all.
//!
//! A section is rewritten only when its content hash changes. Database
//! sizes are *sticky*: a size within the threshold of the size last written
//! is written as that size again, so a growing table does not rewrite the
//! object every hour.

use sha2::{Digest, Sha256};

use crate::crd::bounds::{MAX_ACCOUNT_DATABASES, MAX_ACCOUNT_ROLES, MAX_DATABASE_PRIVILEGES, MAX_GLOBAL_PRIVILEGES};
use crate::crd::instance::AccountChanges;
use crate::crd::inventory::{
    AccountDatabase, InventoryAccount, InventoryAccounts, InventoryCapacity, InventoryDatabase,
};
use crate::probe::{Account, AccountDiff, AccountRecord, Accounts, Capacity, DatabaseGrant};

use super::status::time;

/// Bounds on what one inventory holds, and when a size counts as changed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InventoryLimits {
    /// A size moved when it differs from the one written by more than this
    /// fraction of it…
    pub size_ratio: f64,
    /// …and by more than this many bytes.
    pub size_bytes: u64,
    /// Serialized bytes the database list may take.
    pub capacity_budget: usize,
    /// Serialized bytes the account list may take.
    pub accounts_budget: usize,
}

impl Default for InventoryLimits {
    fn default() -> Self {
        InventoryLimits {
            size_ratio: 0.01,
            size_bytes: 1024 * 1024,
            // Together ~512 KiB: a quarter of the API server's 1.5 MiB
            // object limit, and a small fraction of a watch event budget.
            capacity_budget: 128 * 1024,
            accounts_budget: 384 * 1024,
        }
    }
}

impl InventoryLimits {
    /// Whether `now` moved far enough from `written` to be written.
    pub fn size_moved(&self, written: u64, now: u64) -> bool {
        let delta = written.abs_diff(now);
        delta as f64 > written as f64 * self.size_ratio && delta > self.size_bytes
    }
}

/// What the controller remembers of the capacity section it last wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WrittenCapacity {
    pub content_hash: String,
    /// Sizes as written, by database name's hash, sorted by that hash.
    sizes: Vec<(u64, u64)>,
}

impl WrittenCapacity {
    fn size_of(&self, name: &str) -> Option<u64> {
        let key = name_key(name);
        self.sizes
            .binary_search_by_key(&key, |(k, _)| *k)
            .ok()
            .map(|i| self.sizes[i].1)
    }
}

impl From<&InventoryCapacity> for WrittenCapacity {
    fn from(section: &InventoryCapacity) -> Self {
        let mut sizes: Vec<(u64, u64)> = section
            .databases
            .iter()
            .map(|db| (name_key(&db.name), db.size_bytes))
            .collect();
        sizes.sort_unstable();
        WrittenCapacity {
            content_hash: section.content_hash.clone(),
            sizes,
        }
    }
}

/// A section to write, or the news that nothing changed.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision<T> {
    pub section: T,
    pub changed: bool,
}

/// FNV-1a of a name: stable, cheap, and 8 bytes in memory per database.
fn name_key(name: &str) -> u64 {
    name.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

fn content_hash(value: &impl serde::Serialize) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Keeps the leading items whose estimated sizes fit in `budget`; returns
/// them and how many were left out.
fn within_budget<T>(items: Vec<T>, budget: usize, size: impl Fn(&T) -> usize) -> (Vec<T>, u32) {
    let mut used = 0;
    let total = items.len();
    let kept: Vec<T> = items
        .into_iter()
        .take_while(|item| {
            used += size(item);
            used <= budget
        })
        .collect();
    let omitted = count(total - kept.len());
    (kept, omitted)
}

/// JSON bytes of one database entry, roughly: keys, quotes and numbers.
fn database_bytes(db: &InventoryDatabase) -> usize {
    db.name.len() + 64
}

fn account_bytes(account: &InventoryAccount) -> usize {
    let databases: usize = account
        .databases
        .iter()
        .map(|d| d.name.len() + 16 + d.privileges.iter().map(|p| p.len() + 3).sum::<usize>())
        .sum();
    account.name.len() + account.host.as_ref().map_or(0, |h| h.len() + 10) + 96 + databases
}

/// The capacity section for `capacity`, given what was written before.
pub fn capacity_section(
    capacity: &Capacity,
    written: Option<&WrittenCapacity>,
    limits: &InventoryLimits,
) -> Decision<InventoryCapacity> {
    let databases: Vec<InventoryDatabase> = capacity
        .databases
        .iter()
        .map(|db| {
            let size_bytes = match written.and_then(|w| w.size_of(&db.name)) {
                Some(before) if !limits.size_moved(before, db.size_bytes) => before,
                _ => db.size_bytes,
            };
            InventoryDatabase {
                name: db.name.clone(),
                size_bytes,
                table_count: db.table_count,
            }
        })
        .collect();
    let total_size_bytes = databases.iter().map(|db| db.size_bytes).sum();
    let database_count = count(databases.len());
    let (databases, omitted) = within_budget(databases, limits.capacity_budget, database_bytes);
    let content_hash = content_hash(&(&databases, database_count, total_size_bytes));
    let changed = written.is_none_or(|w| w.content_hash != content_hash);
    Decision {
        section: InventoryCapacity {
            collected_at: time(capacity.collected_at),
            database_count,
            total_size_bytes,
            databases,
            truncated: omitted > 0,
            omitted,
            content_hash,
        },
        changed,
    }
}

/// An account's entry, its database list capped at
/// [`MAX_ACCOUNT_DATABASES`] (the probes sort it, so the same names are
/// kept each time).
impl From<&Account> for InventoryAccount {
    fn from(account: &Account) -> Self {
        InventoryAccount {
            name: account.name.clone(),
            host: account.host.clone(),
            superuser: account.superuser,
            can_login: account.can_login,
            locked: account.locked,
            expired: account.expired,
            roles: capped(&account.roles, MAX_ACCOUNT_ROLES),
            roles_truncated: account.roles.len() > MAX_ACCOUNT_ROLES,
            global_privileges: capped(&account.global_privileges, MAX_GLOBAL_PRIVILEGES),
            global_grant_option: account.global_grant_option,
            attributes: account.attributes.clone(),
            valid_until: account.valid_until.map(time),
            auth_plugin: account.auth_plugin.clone(),
            databases: account
                .databases
                .iter()
                .take(MAX_ACCOUNT_DATABASES)
                .map(AccountDatabase::from)
                .collect(),
            databases_truncated: account.databases.len() > MAX_ACCOUNT_DATABASES,
        }
    }
}

impl From<&DatabaseGrant> for AccountDatabase {
    fn from(grant: &DatabaseGrant) -> Self {
        AccountDatabase {
            name: grant.name.clone(),
            privileges: capped(&grant.privileges, MAX_DATABASE_PRIVILEGES),
            grant_option: grant.grant_option,
            owner: grant.owner,
            object_grants: grant.object_grants,
        }
    }
}

/// The first `max` of `items`: each list's schema allows no more.
fn capped(items: &[String], max: usize) -> Vec<String> {
    items.iter().take(max).cloned().collect()
}

impl AccountRecord for InventoryAccount {
    fn account_name(&self) -> &str {
        &self.name
    }
    fn account_host(&self) -> Option<&str> {
        self.host.as_deref()
    }
}

impl From<&AccountDiff> for AccountChanges {
    fn from(diff: &AccountDiff) -> Self {
        AccountChanges {
            added: count(diff.added.len()),
            removed: count(diff.removed.len()),
            modified: count(diff.modified.len()),
        }
    }
}

/// The accounts section for `accounts`; `written_hash` is the content hash
/// of the section written before, if any.
pub fn accounts_section(
    accounts: &Accounts,
    written_hash: Option<&str>,
    limits: &InventoryLimits,
) -> Decision<InventoryAccounts> {
    let items: Vec<InventoryAccount> = accounts.accounts.iter().map(InventoryAccount::from).collect();
    let count = count(items.len());
    let superuser_count = self::count(accounts.superuser_count());
    let (items, omitted) = within_budget(items, limits.accounts_budget, account_bytes);
    let content_hash = content_hash(&(&items, count, superuser_count));
    let changed = written_hash != Some(content_hash.as_str());
    Decision {
        section: InventoryAccounts {
            synced_at: time(accounts.synced_at),
            count,
            superuser_count,
            items,
            truncated: omitted > 0,
            omitted,
            content_hash,
        },
        changed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::DatabaseSize;
    use std::time::{Duration, SystemTime};

    const MIB: u64 = 1024 * 1024;

    fn capacity(sizes: &[(&str, u64)]) -> Capacity {
        Capacity {
            server_version: "15.18".into(),
            databases: sizes
                .iter()
                .map(|(name, size)| DatabaseSize {
                    name: name.to_string(),
                    size_bytes: *size,
                    table_count: Some(3),
                })
                .collect(),
            system_databases: vec![],
            duration: Duration::from_millis(40),
            collected_at: SystemTime::now(),
        }
    }

    fn account(name: &str, databases: &[&str]) -> Account {
        Account {
            name: name.into(),
            host: None,
            superuser: name == "postgres",
            can_login: true,
            databases: databases.iter().map(|d| DatabaseGrant::named(*d)).collect(),
            ..Default::default()
        }
    }

    fn accounts(list: Vec<Account>) -> Accounts {
        Accounts {
            server_version: "15.18".into(),
            accounts: list,
            duration: Duration::from_millis(40),
            synced_at: SystemTime::now(),
        }
    }

    #[test]
    fn a_size_moves_only_beyond_both_thresholds() {
        let limits = InventoryLimits::default();
        // 1 % of 10 GiB is ~100 MiB.
        assert!(!limits.size_moved(10 * 1024 * MIB, 10 * 1024 * MIB + 50 * MIB));
        assert!(limits.size_moved(10 * 1024 * MIB, 10 * 1024 * MIB + 200 * MIB));
        // Small databases need more than 1 MiB.
        assert!(!limits.size_moved(8 * MIB, 8 * MIB + MIB / 2));
        assert!(limits.size_moved(8 * MIB, 10 * MIB));
        assert!(limits.size_moved(10 * MIB, 8 * MIB));
    }

    #[test]
    fn a_growing_database_does_not_rewrite_the_section_until_it_moved() {
        let limits = InventoryLimits::default();
        let first = capacity_section(&capacity(&[("app", 500 * MIB), ("logs", 2 * MIB)]), None, &limits);
        assert!(first.changed);
        let written = WrittenCapacity::from(&first.section);

        let grown = capacity_section(
            &capacity(&[("app", 502 * MIB), ("logs", 2 * MIB + 10)]),
            Some(&written),
            &limits,
        );
        assert!(!grown.changed, "small growth is not a change");
        assert_eq!(
            grown.section.databases[0].size_bytes,
            500 * MIB,
            "the written size stays"
        );

        let moved = capacity_section(
            &capacity(&[("app", 600 * MIB), ("logs", 2 * MIB)]),
            Some(&written),
            &limits,
        );
        assert!(moved.changed);
        assert_eq!(moved.section.databases[0].size_bytes, 600 * MIB);
        assert_eq!(moved.section.total_size_bytes, 602 * MIB);

        let added = capacity_section(
            &capacity(&[("app", 500 * MIB), ("logs", 2 * MIB), ("new", 1)]),
            Some(&written),
            &limits,
        );
        assert!(added.changed);
        assert_eq!(added.section.database_count, 3);
    }

    #[test]
    fn a_large_server_is_capped_with_a_count_of_what_was_left_out() {
        let limits = InventoryLimits {
            capacity_budget: 10 * 80,
            ..InventoryLimits::default()
        };
        let names: Vec<String> = (0..100).map(|i| format!("database_{i:03}")).collect();
        let sizes: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), MIB)).collect();
        let decision = capacity_section(&capacity(&sizes), None, &limits);
        let section = decision.section;
        assert!(section.truncated);
        assert_eq!(section.database_count, 100);
        assert_eq!(section.databases.len() + section.omitted as usize, 100);
        assert_eq!(section.total_size_bytes, 100 * MIB, "totals count what was left out");
        let bytes = serde_json::to_vec(&section.databases).unwrap().len();
        assert!(bytes <= limits.capacity_budget, "{bytes} bytes");
    }

    #[test]
    fn the_default_caps_keep_a_huge_server_far_below_the_object_limit() {
        let limits = InventoryLimits::default();
        let names: Vec<String> = (0..5000).map(|i| format!("tenant_database_{i:05}")).collect();
        let sizes: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 123_456_789)).collect();
        let capacity = capacity_section(&capacity(&sizes), None, &limits).section;
        let list: Vec<Account> = (0..20_000)
            .map(|i| {
                account(
                    &format!("app_user_{i:05}"),
                    &["tenant_database_00001", "tenant_database_00002"],
                )
            })
            .collect();
        let accounts = accounts_section(&accounts(list), None, &limits).section;
        assert!(capacity.truncated && accounts.truncated);
        let bytes = serde_json::to_vec(&(&capacity, &accounts)).unwrap().len();
        assert!(bytes < 560 * 1024, "{bytes} bytes");
    }

    #[test]
    fn accounts_change_only_when_their_content_does() {
        let limits = InventoryLimits::default();
        let list = || vec![account("app", &["shop"]), account("postgres", &[])];
        let first = accounts_section(&accounts(list()), None, &limits);
        assert!(first.changed);
        assert_eq!(first.section.superuser_count, 1);
        let again = accounts_section(&accounts(list()), Some(&first.section.content_hash), &limits);
        assert!(!again.changed, "a later sync of the same accounts is no change");
        let mut changed = list();
        changed[0].databases.push(DatabaseGrant::named("audit"));
        let next = accounts_section(&accounts(changed), Some(&first.section.content_hash), &limits);
        assert!(next.changed);
        assert_eq!(next.section.items[0].databases.len(), 2);
    }

    #[test]
    fn an_account_lists_a_bounded_number_of_databases_and_says_so() {
        let names: Vec<String> = (0..MAX_ACCOUNT_DATABASES + 5).map(|i| format!("db_{i:05}")).collect();
        let many: Vec<&str> = names.iter().map(String::as_str).collect();
        let limits = InventoryLimits::default();
        let section = accounts_section(
            &accounts(vec![account("app", &many), account("ro", &["a"])]),
            None,
            &limits,
        );
        let app = &section.section.items[0];
        assert_eq!(app.databases.len(), MAX_ACCOUNT_DATABASES);
        assert!(app.databases_truncated);
        assert_eq!(app.databases[0].name, "db_00000");
        let ro = &section.section.items[1];
        assert!(!ro.databases_truncated);
        let json = serde_json::to_value(ro).unwrap();
        assert!(json.get("databasesTruncated").is_none(), "false is left out: {json}");
    }

    #[test]
    fn roles_and_privileges_stay_within_their_schema_bounds() {
        let mut lying = account("app", &["shop"]);
        lying.roles = (0..MAX_ACCOUNT_ROLES + 1).map(|i| format!("role_{i:04}")).collect();
        lying.global_privileges = (0..MAX_GLOBAL_PRIVILEGES + 1).map(|i| format!("P{i}")).collect();
        lying.databases[0].privileges = (0..MAX_DATABASE_PRIVILEGES + 1).map(|i| format!("P{i}")).collect();
        let item = InventoryAccount::from(&lying);
        assert_eq!(item.roles.len(), MAX_ACCOUNT_ROLES);
        assert!(item.roles_truncated);
        assert_eq!(item.global_privileges.len(), MAX_GLOBAL_PRIVILEGES);
        assert_eq!(item.databases[0].privileges.len(), MAX_DATABASE_PRIVILEGES);
        assert!(!InventoryAccount::from(&account("ro", &[])).roles_truncated);
    }
}
