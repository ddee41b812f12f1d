//! The `DbInventory` sections that follow from a probe: pure functions from
//! a capacity collection or an account sync (and what was written last) to
//! the section to write, the parts it spreads over, and which of them
//! changed at all.
//!
//! A section is rewritten only when its content hash changes. Database
//! sizes are *sticky*: a size within the threshold of the size last written
//! is written as that size again, so a growing table does not rewrite the
//! object every hour.
//!
//! A section that outgrows its byte budget is cut into parts, each a run
//! of the sorted items within the budget. The cuts are *content-defined*:
//! a part ends after an item whose name hashes to a cut mark (or when the
//! next item would not fit), so an account added or dropped changes the
//! part it falls in, not every part after it; each part is written only
//! when its own hash changes.

use sha2::{Digest, Sha256};

use crate::crd::bounds::{MAX_ACCOUNT_DATABASES, MAX_ACCOUNT_ROLES, MAX_DATABASE_PRIVILEGES, MAX_GLOBAL_PRIVILEGES};
use crate::crd::inventory::{
    AccountDatabase, InventoryAccount, InventoryAccounts, InventoryCapacity, InventoryDatabase, InventoryPart,
    MAX_INVENTORY_PARTS,
};
use crate::probe::{Account, AccountRecord, Accounts, Capacity, DatabaseGrant};

use super::status::time;

/// Bounds on what one inventory object holds, and when a size counts as
/// changed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InventoryLimits {
    /// A size moved when it differs from the one written by more than this
    /// fraction of it…
    pub size_ratio: f64,
    /// …and by more than this many bytes.
    pub size_bytes: u64,
    /// Serialized bytes the database list may take in one object.
    pub capacity_budget: usize,
    /// Serialized bytes the account list may take in one object.
    pub accounts_budget: usize,
    /// Objects one section may spread over; what does not fit in this many
    /// is left out (`truncated`). 1: no parts, the list is cut at the
    /// budget.
    pub max_parts: usize,
}

impl Default for InventoryLimits {
    fn default() -> Self {
        InventoryLimits {
            size_ratio: 0.01,
            size_bytes: 1024 * 1024,
            // Together ~512 KiB per object: a third of the API server's
            // 1.5 MiB object limit, and a small fraction of a watch event
            // budget. Bigger servers spread over parts of the same size.
            capacity_budget: 128 * 1024,
            accounts_budget: 384 * 1024,
            max_parts: MAX_INVENTORY_PARTS,
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

/// The two sections of an inventory, as part names and labels say them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectionKind {
    Databases,
    Accounts,
}

impl SectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SectionKind::Databases => "databases",
            SectionKind::Accounts => "accounts",
        }
    }
}

/// Longest Kubernetes object name (a DNS-1123 subdomain).
const MAX_NAME_LEN: usize = 253;

/// The name of part `index` (from 1) of `instance`'s `kind` section:
/// `<instance>-accounts-<index>`, beside the instance's own DbInventory.
/// A name too long for that keeps a prefix and a hash of the whole name.
pub fn part_name(instance: &str, kind: SectionKind, index: usize) -> String {
    let suffix = format!("-{}-{index}", kind.as_str());
    if instance.len() + suffix.len() <= MAX_NAME_LEN {
        return format!("{instance}{suffix}");
    }
    let hash = format!("-{:08x}", name_key(instance) as u32);
    let room = MAX_NAME_LEN - suffix.len() - hash.len();
    // Object names are ASCII; a label of the name may not end in `-`/`.`.
    let prefix = instance[..room].trim_end_matches(['-', '.']);
    format!("{prefix}{hash}{suffix}")
}

/// The instance whose part `name` would be, when it is shaped like one
/// (`<instance>-accounts-<n>`): an instance of that name may find another
/// instance's part where its own DbInventory goes.
pub fn part_owner_candidate(name: &str) -> Option<&str> {
    let (rest, index) = name.rsplit_once('-')?;
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    [SectionKind::Accounts, SectionKind::Databases]
        .iter()
        .find_map(|kind| rest.strip_suffix(kind.as_str())?.strip_suffix('-'))
        .filter(|owner| !owner.is_empty())
}

/// What the controller remembers of the capacity section it last wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WrittenCapacity {
    pub content_hash: String,
    /// Sizes as written, by database name's hash, sorted by that hash.
    sizes: Vec<(u64, u64)>,
    /// The parts the section was spread over.
    pub parts: Vec<InventoryPart>,
}

impl WrittenCapacity {
    fn size_of(&self, name: &str) -> Option<u64> {
        let key = name_key(name);
        self.sizes
            .binary_search_by_key(&key, |(k, _)| *k)
            .ok()
            .map(|i| self.sizes[i].1)
    }

    fn of<'a>(
        content_hash: &str,
        parts: &[InventoryPart],
        databases: impl Iterator<Item = &'a InventoryDatabase>,
    ) -> Self {
        let mut sizes: Vec<(u64, u64)> = databases.map(|db| (name_key(&db.name), db.size_bytes)).collect();
        sizes.sort_unstable();
        WrittenCapacity {
            content_hash: content_hash.to_string(),
            sizes,
            parts: parts.to_vec(),
        }
    }

    /// What a decision wrote (or found already written).
    pub fn written(decision: &Decision<InventoryCapacity>) -> Self {
        let databases = decision
            .section
            .databases
            .iter()
            .chain(decision.parts.iter().flat_map(|p| &p.databases));
        Self::of(&decision.section.content_hash, &decision.section.parts, databases)
    }
}

/// From a section as stored, its parts joined in (`join_capacity`).
impl From<&InventoryCapacity> for WrittenCapacity {
    fn from(section: &InventoryCapacity) -> Self {
        Self::of(&section.content_hash, &section.parts, section.databases.iter())
    }
}

/// What the controller remembers of the accounts section it last wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WrittenAccounts {
    pub content_hash: String,
    pub parts: Vec<InventoryPart>,
}

impl From<&InventoryAccounts> for WrittenAccounts {
    fn from(section: &InventoryAccounts) -> Self {
        WrittenAccounts {
            content_hash: section.content_hash.clone(),
            parts: section.parts.clone(),
        }
    }
}

/// A section to write, or the news that nothing changed; for a section
/// spread over parts, which parts to write and which to delete.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision<T> {
    /// The section of the instance's own DbInventory: the items, or, when
    /// they outgrew it, the totals and the list of parts.
    pub section: T,
    /// Whether `section` differs from what was written.
    pub changed: bool,
    /// The parts in order (part `i + 1` is `parts[i]`); empty when the
    /// section holds its items.
    pub parts: Vec<T>,
    /// Indices into `parts` whose content was not written yet.
    pub write: Vec<usize>,
    /// Parts written before that the section no longer lists.
    pub delete: Vec<String>,
}

/// Which of `listed` are new or changed since `written`, and which of
/// `written` are no longer listed.
fn part_changes(listed: &[InventoryPart], written: &[InventoryPart]) -> (Vec<usize>, Vec<String>) {
    let write = listed
        .iter()
        .enumerate()
        .filter(|(_, part)| !written.contains(part))
        .map(|(i, _)| i)
        .collect();
    let delete = written
        .iter()
        .filter(|old| !listed.iter().any(|new| new.name == old.name))
        .map(|old| old.name.clone())
        .collect();
    (write, delete)
}

/// FNV-1a of a name: stable, cheap, and 8 bytes in memory per database.
fn name_key(name: &str) -> u64 {
    name.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

/// FNV-1a finished with a 64-bit mix, so that its low bits (the cut
/// marks) spread well even over names that differ in one character.
fn cut_key(name: &str, host: Option<&str>) -> u64 {
    let mut h = name_key(name);
    if let Some(host) = host {
        h = name_key(&format!("{h:x}@{host}"));
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51afd7ed558ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ceb9fe1a85ec53);
    h ^ (h >> 33)
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

/// Cuts `items` into runs of at most `budget` estimated bytes: one run when
/// they fit, else parts that end where an item's `key` is a cut mark
/// (about every `budget / 2` bytes) or where the next item would not fit.
/// Parts of under `budget / 16` bytes take no cut mark, so a part is never
/// a handful of accounts. At most `max_parts` runs; returns the runs and
/// how many items were left out.
fn split<T>(
    items: Vec<T>,
    budget: usize,
    max_parts: usize,
    size: impl Fn(&T) -> usize,
    key: impl Fn(&T) -> u64,
) -> (Vec<Vec<T>>, u32) {
    let total: usize = items.iter().map(&size).sum();
    if max_parts <= 1 || total <= budget {
        let (kept, omitted) = within_budget(items, budget, size);
        return (vec![kept], omitted);
    }
    let target = (budget / 2).max(1);
    let smallest = budget / 16;
    let all = items.len();
    let mut runs: Vec<Vec<T>> = Vec::new();
    let mut run = Vec::new();
    let mut used = 0;
    for item in items {
        let bytes = size(&item);
        if used + bytes > budget && !run.is_empty() {
            runs.push(std::mem::take(&mut run));
            used = 0;
            if runs.len() == max_parts {
                break;
            }
        }
        // An item ends its run with probability `bytes / target`, so runs
        // average `target` bytes whatever the items' sizes.
        let every = (target / bytes.max(1)).max(1) as u64;
        let cut = used + bytes >= smallest && key(&item) % every == 0;
        used += bytes;
        run.push(item);
        if cut {
            runs.push(std::mem::take(&mut run));
            used = 0;
            if runs.len() == max_parts {
                break;
            }
        }
    }
    if !run.is_empty() && runs.len() < max_parts {
        runs.push(run);
    }
    let kept: usize = runs.iter().map(Vec::len).sum();
    (runs, count(all - kept))
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

fn database_key(db: &InventoryDatabase) -> u64 {
    cut_key(&db.name, None)
}

fn account_key(account: &InventoryAccount) -> u64 {
    cut_key(&account.name, account.host.as_deref())
}

/// The capacity section of `instance`'s inventory for `capacity`, given
/// what was written before.
pub fn capacity_section(
    instance: &str,
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
    let (mut runs, omitted) = split(
        databases,
        limits.capacity_budget,
        limits.max_parts,
        database_bytes,
        database_key,
    );
    let section = |databases, parts, content_hash| InventoryCapacity {
        collected_at: time(capacity.collected_at),
        database_count,
        total_size_bytes,
        databases,
        parts,
        truncated: omitted > 0,
        omitted,
        content_hash,
    };
    let (head, parts) = if runs.len() == 1 {
        let databases = runs.pop().unwrap_or_default();
        let hash = content_hash(&(&databases, database_count, total_size_bytes));
        (section(databases, vec![], hash), vec![])
    } else {
        let parts: Vec<InventoryCapacity> = runs
            .into_iter()
            .map(|databases| InventoryCapacity {
                collected_at: time(capacity.collected_at),
                database_count: count(databases.len()),
                total_size_bytes: databases.iter().map(|db| db.size_bytes).sum(),
                content_hash: content_hash(&databases),
                databases,
                parts: vec![],
                truncated: false,
                omitted: 0,
            })
            .collect();
        let listed = listing(instance, SectionKind::Databases, &parts, |p| {
            (p.database_count, &p.content_hash)
        });
        let hash = content_hash(&(&listed, database_count, total_size_bytes));
        (section(vec![], listed, hash), parts)
    };
    let (write, delete) = part_changes(&head.parts, written.map_or(&[][..], |w| &w.parts));
    Decision {
        changed: written.is_none_or(|w| w.content_hash != head.content_hash),
        section: head,
        parts,
        write,
        delete,
    }
}

/// The list of `parts` the head section keeps.
fn listing<T>(
    instance: &str,
    kind: SectionKind,
    parts: &[T],
    facts: impl Fn(&T) -> (u32, &String),
) -> Vec<InventoryPart> {
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let (count, hash) = facts(part);
            InventoryPart {
                name: part_name(instance, kind, i + 1),
                count,
                content_hash: hash.clone(),
            }
        })
        .collect()
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

/// The accounts section of `instance`'s inventory for `accounts`, given
/// what was written before.
pub fn accounts_section(
    instance: &str,
    accounts: &Accounts,
    written: Option<&WrittenAccounts>,
    limits: &InventoryLimits,
) -> Decision<InventoryAccounts> {
    let items: Vec<InventoryAccount> = accounts.accounts.iter().map(InventoryAccount::from).collect();
    let count = count(items.len());
    let superuser_count = self::count(accounts.superuser_count());
    let (mut runs, omitted) = split(
        items,
        limits.accounts_budget,
        limits.max_parts,
        account_bytes,
        account_key,
    );
    let section = |items, parts, content_hash| InventoryAccounts {
        synced_at: time(accounts.synced_at),
        count,
        superuser_count,
        items,
        parts,
        truncated: omitted > 0,
        omitted,
        content_hash,
    };
    let (head, parts) = if runs.len() == 1 {
        let items = runs.pop().unwrap_or_default();
        let hash = content_hash(&(&items, count, superuser_count));
        (section(items, vec![], hash), vec![])
    } else {
        let parts: Vec<InventoryAccounts> = runs
            .into_iter()
            .map(|items| InventoryAccounts {
                synced_at: time(accounts.synced_at),
                count: self::count(items.len()),
                superuser_count: self::count(items.iter().filter(|a| a.superuser).count()),
                content_hash: content_hash(&items),
                items,
                parts: vec![],
                truncated: false,
                omitted: 0,
            })
            .collect();
        let listed = listing(instance, SectionKind::Accounts, &parts, |p| (p.count, &p.content_hash));
        let hash = content_hash(&(&listed, count, superuser_count));
        (section(vec![], listed, hash), parts)
    };
    let (write, delete) = part_changes(&head.parts, written.map_or(&[][..], |w| &w.parts));
    Decision {
        changed: written.is_none_or(|w| w.content_hash != head.content_hash),
        section: head,
        parts,
        write,
        delete,
    }
}

/// A section whose items are spread over parts, with the parts as read
/// (`None`: missing): the items joined in order. A part that is missing
/// or holds another write's content (its hash is not the listed one: a
/// writer is between its parts and its list) is left out, and counted in
/// `truncated` and `omitted`, so a reader never mixes two writes.
pub trait Parted: Sized {
    fn parts(&self) -> &[InventoryPart];
    fn hash(&self) -> &str;
    fn take_items(&mut self, part: Self);
    fn leave_out(&mut self, count: u32);

    fn join(mut self, parts: Vec<Option<Self>>) -> Self {
        let listed = self.parts().to_vec();
        for (listed, part) in listed
            .iter()
            .zip(parts.into_iter().chain(std::iter::repeat_with(|| None)))
        {
            match part {
                Some(part) if part.hash() == listed.content_hash => self.take_items(part),
                _ => self.leave_out(listed.count),
            }
        }
        self
    }
}

impl Parted for InventoryAccounts {
    fn parts(&self) -> &[InventoryPart] {
        &self.parts
    }
    fn hash(&self) -> &str {
        &self.content_hash
    }
    fn take_items(&mut self, part: Self) {
        self.items.extend(part.items);
    }
    fn leave_out(&mut self, count: u32) {
        self.truncated = true;
        self.omitted = self.omitted.saturating_add(count);
    }
}

impl Parted for InventoryCapacity {
    fn parts(&self) -> &[InventoryPart] {
        &self.parts
    }
    fn hash(&self) -> &str {
        &self.content_hash
    }
    fn take_items(&mut self, part: Self) {
        self.databases.extend(part.databases);
    }
    fn leave_out(&mut self, count: u32) {
        self.truncated = true;
        self.omitted = self.omitted.saturating_add(count);
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
            hygiene: Default::default(),
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
        let first = capacity_section("db", &capacity(&[("app", 500 * MIB), ("logs", 2 * MIB)]), None, &limits);
        assert!(first.changed);
        let written = WrittenCapacity::written(&first);

        let grown = capacity_section(
            "db",
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
            "db",
            &capacity(&[("app", 600 * MIB), ("logs", 2 * MIB)]),
            Some(&written),
            &limits,
        );
        assert!(moved.changed);
        assert_eq!(moved.section.databases[0].size_bytes, 600 * MIB);
        assert_eq!(moved.section.total_size_bytes, 602 * MIB);

        let added = capacity_section(
            "db",
            &capacity(&[("app", 500 * MIB), ("logs", 2 * MIB), ("new", 1)]),
            Some(&written),
            &limits,
        );
        assert!(added.changed);
        assert_eq!(added.section.database_count, 3);
    }

    #[test]
    fn without_parts_a_large_server_is_capped_with_a_count_of_what_was_left_out() {
        let limits = InventoryLimits {
            capacity_budget: 10 * 80,
            max_parts: 1,
            ..InventoryLimits::default()
        };
        let names: Vec<String> = (0..100).map(|i| format!("database_{i:03}")).collect();
        let sizes: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), MIB)).collect();
        let decision = capacity_section("db", &capacity(&sizes), None, &limits);
        let section = decision.section;
        assert!(section.truncated);
        assert_eq!(section.database_count, 100);
        assert_eq!(section.databases.len() + section.omitted as usize, 100);
        assert_eq!(section.total_size_bytes, 100 * MIB, "totals count what was left out");
        let bytes = serde_json::to_vec(&section.databases).unwrap().len();
        assert!(bytes <= limits.capacity_budget, "{bytes} bytes");
    }

    /// 20,000 accounts (two grants each) and 2,000 databases.
    fn big_server() -> (Capacity, Accounts) {
        let names: Vec<String> = (0..2000).map(|i| format!("tenant_database_{i:05}")).collect();
        let sizes: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 123_456_789)).collect();
        let list = (0..20_000)
            .map(|i| {
                account(
                    &format!("app_user_{i:05}"),
                    &["tenant_database_00001", "tenant_database_00002"],
                )
            })
            .collect();
        (capacity(&sizes), accounts(list))
    }

    fn serialized(value: &impl serde::Serialize) -> usize {
        serde_json::to_vec(value).unwrap().len()
    }

    #[test]
    fn a_huge_server_is_kept_whole_in_parts_each_within_the_budget() {
        let limits = InventoryLimits::default();
        let (capacity, list) = big_server();
        let databases = capacity_section("big", &capacity, None, &limits);
        let accounts = accounts_section("big", &list, None, &limits);

        assert!(!databases.section.truncated && !accounts.section.truncated);
        assert_eq!((accounts.section.count, accounts.section.omitted), (20_000, 0));
        assert!(accounts.section.items.is_empty(), "the parts hold the items");
        assert_eq!(accounts.section.parts.len(), accounts.parts.len());
        assert_eq!(accounts.write, (0..accounts.parts.len()).collect::<Vec<_>>());
        let held: u32 = accounts.section.parts.iter().map(|p| p.count).sum();
        assert_eq!(held, 20_000);
        assert_eq!(accounts.section.parts[0].name, "big-accounts-1");
        for part in &accounts.parts {
            let bytes = serialized(&part.items);
            assert!(bytes <= limits.accounts_budget, "{bytes} bytes");
            assert!(bytes >= limits.accounts_budget / 16, "{bytes} bytes: too small a part");
        }
        let held: u32 = databases.parts.iter().map(|p| p.database_count).sum();
        assert_eq!((held, databases.section.database_count), (2000, 2000));
        assert_eq!(databases.section.parts[1].name, "big-databases-2");
        for part in &databases.parts {
            assert!(serialized(&part.databases) <= limits.capacity_budget);
        }
        let head = serialized(&(&databases.section, &accounts.section));
        assert!(
            head < 16 * 1024,
            "the instance's own object lists the parts: {head} bytes"
        );

        // Joined in order, the parts are the accounts, sorted as probed.
        let joined = accounts
            .section
            .clone()
            .join(accounts.parts.iter().cloned().map(Some).collect());
        let names: Vec<&str> = joined.items.iter().map(|a| a.name.as_str()).collect();
        let expected: Vec<&str> = list.accounts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, expected);
        assert!(!joined.truncated);
    }

    #[test]
    fn one_account_more_rewrites_the_part_it_falls_in_and_the_list() {
        let limits = InventoryLimits::default();
        let (_, mut list) = big_server();
        let first = accounts_section("big", &list, None, &limits);
        let written = WrittenAccounts::from(&first.section);
        let same = accounts_section("big", &list, Some(&written), &limits);
        assert!(!same.changed && same.write.is_empty() && same.delete.is_empty());

        list.accounts
            .insert(9_000, account("app_user_08999a", &["tenant_database_00001"]));
        let next = accounts_section("big", &list, Some(&written), &limits);
        assert!(next.changed, "the list names the changed part's new hash");
        assert_eq!(next.write.len(), 1, "{:?} of {}", next.write, next.parts.len());
        assert!(next.delete.is_empty());
        assert_eq!(next.section.count, 20_001);
    }

    #[test]
    fn a_section_that_fits_again_goes_back_into_one_object_and_its_parts_go() {
        let limits = InventoryLimits::default();
        let (_, mut list) = big_server();
        let big = accounts_section("big", &list, None, &limits);
        let written = WrittenAccounts::from(&big.section);
        list.accounts.truncate(100);
        let small = accounts_section("big", &list, Some(&written), &limits);
        assert!(small.changed && small.parts.is_empty() && small.write.is_empty());
        assert_eq!(small.section.items.len(), 100);
        let names: Vec<String> = big.section.parts.iter().map(|p| p.name.clone()).collect();
        assert_eq!(small.delete, names);

        // Shrinking by parts deletes the ones beyond.
        let mut fewer = big_server().1;
        fewer.accounts.truncate(12_000);
        let fewer = accounts_section("big", &fewer, Some(&written), &limits);
        assert!(!fewer.delete.is_empty() && fewer.parts.len() < big.parts.len());
        assert!(
            fewer
                .delete
                .iter()
                .all(|name| !fewer.section.parts.iter().any(|p| &p.name == name))
        );
    }

    #[test]
    fn a_server_that_fits_writes_exactly_what_it_wrote_before_parts() {
        let limits = InventoryLimits::default();
        let list = accounts(vec![account("app", &["shop"]), account("postgres", &[])]);
        let decision = accounts_section("db", &list, None, &limits);
        assert!(decision.parts.is_empty() && decision.section.parts.is_empty());
        let items = &decision.section.items;
        // The hash of an object written before parts existed: no rewrite
        // after an upgrade.
        assert_eq!(decision.section.content_hash, content_hash(&(items, 2u32, 1u32)));
        let json = serde_json::to_value(&decision.section).unwrap();
        assert!(json.get("parts").is_none(), "{json}");
    }

    #[test]
    fn a_reader_never_mixes_two_writes() {
        let limits = InventoryLimits {
            accounts_budget: 4 * 1024,
            ..InventoryLimits::default()
        };
        let list: Vec<Account> = (0..200).map(|i| account(&format!("user_{i:03}"), &["a"])).collect();
        let decision = accounts_section("db", &accounts(list), None, &limits);
        assert!(decision.parts.len() >= 3, "{} parts", decision.parts.len());
        let mut parts: Vec<Option<InventoryAccounts>> = decision.parts.iter().cloned().map(Some).collect();
        let stale = parts[1].as_mut().unwrap();
        stale.content_hash = "from another write".into();
        let left_out = decision.section.parts[1].count;
        parts[2] = None;
        let left_out = left_out + decision.section.parts[2].count;
        let joined = decision.section.clone().join(parts);
        assert!(joined.truncated);
        assert_eq!(joined.omitted, left_out);
        assert_eq!(joined.items.len() as u32, 200 - left_out);
        assert_eq!(joined.count, 200, "the totals stay the server's");
    }

    #[test]
    fn beyond_the_most_parts_the_rest_is_left_out_and_counted() {
        let limits = InventoryLimits {
            accounts_budget: 2 * 1024,
            max_parts: 3,
            ..InventoryLimits::default()
        };
        let list: Vec<Account> = (0..500).map(|i| account(&format!("user_{i:03}"), &[])).collect();
        let decision = accounts_section("db", &accounts(list), None, &limits);
        assert_eq!(decision.parts.len(), 3);
        let held: u32 = decision.parts.iter().map(|p| p.count).sum();
        assert!(decision.section.truncated);
        assert_eq!(held + decision.section.omitted, 500);
    }

    #[test]
    fn databases_keep_their_written_sizes_across_parts() {
        let limits = InventoryLimits {
            capacity_budget: 2 * 1024,
            ..InventoryLimits::default()
        };
        let names: Vec<String> = (0..100).map(|i| format!("database_{i:03}")).collect();
        let sizes: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 500 * MIB)).collect();
        let first = capacity_section("db", &capacity(&sizes), None, &limits);
        assert!(first.parts.len() > 1);
        let written = WrittenCapacity::written(&first);
        let grown: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 501 * MIB)).collect();
        let again = capacity_section("db", &capacity(&grown), Some(&written), &limits);
        assert!(!again.changed && again.write.is_empty(), "{:?}", again.write);
        // Read back joined, the written state is the same.
        let joined = first
            .section
            .clone()
            .join(first.parts.iter().cloned().map(Some).collect());
        assert_eq!(WrittenCapacity::from(&joined), written);
    }

    #[test]
    fn part_names_are_valid_object_names_and_recognisable() {
        assert_eq!(part_name("pg", SectionKind::Accounts, 3), "pg-accounts-3");
        let long = format!("{}.b", "a".repeat(245));
        let name = part_name(&long, SectionKind::Databases, 12);
        assert!(name.len() <= 253, "{}", name.len());
        assert!(name.ends_with("-databases-12"), "{name}");
        assert_ne!(
            name,
            part_name(&format!("{}.c", "a".repeat(245)), SectionKind::Databases, 12)
        );
        let dashed = format!("{}-{}", "a".repeat(220), "b".repeat(40));
        let name = part_name(&dashed, SectionKind::Accounts, 1);
        assert!(!name.contains("--") && name.len() <= 253, "{name}");

        assert_eq!(part_owner_candidate("pg-accounts-3"), Some("pg"));
        assert_eq!(part_owner_candidate("pg.x-databases-12"), Some("pg.x"));
        for not_a_part in [
            "pg",
            "pg-accounts-",
            "pg-accounts-x",
            "-accounts-1",
            "pgaccounts-1",
            "accounts-1",
        ] {
            assert_eq!(part_owner_candidate(not_a_part), None, "{not_a_part}");
        }
    }

    #[test]
    fn accounts_change_only_when_their_content_does() {
        let limits = InventoryLimits::default();
        let list = || vec![account("app", &["shop"]), account("postgres", &[])];
        let first = accounts_section("db", &accounts(list()), None, &limits);
        assert!(first.changed);
        assert_eq!(first.section.superuser_count, 1);
        let written = WrittenAccounts::from(&first.section);
        let again = accounts_section("db", &accounts(list()), Some(&written), &limits);
        assert!(!again.changed, "a later sync of the same accounts is no change");
        let mut changed = list();
        changed[0].databases.push(DatabaseGrant::named("audit"));
        let next = accounts_section("db", &accounts(changed), Some(&written), &limits);
        assert!(next.changed);
        assert_eq!(next.section.items[0].databases.len(), 2);
    }

    #[test]
    fn an_account_lists_a_bounded_number_of_databases_and_says_so() {
        let names: Vec<String> = (0..MAX_ACCOUNT_DATABASES + 5).map(|i| format!("db_{i:05}")).collect();
        let many: Vec<&str> = names.iter().map(String::as_str).collect();
        let limits = InventoryLimits::default();
        let section = accounts_section(
            "db",
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
