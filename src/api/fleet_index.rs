//! The fleet-wide inventory index: which accounts and databases each
//! instance's server has, kept from the DbInventory watch events
//! (`store`), so "where does account Y exist" walks compact postings
//! instead of reading every DbInventory per request.
//!
//! Whole DbInventory objects are never kept (no reflector store): each
//! event's object is turned into postings and dropped. Every string is
//! interned once for the whole fleet (an account name shared by 10,000
//! instances is stored once), and a posting is a handful of 32-bit
//! symbols and flag bits (docs/architecture.md, "Fleet-wide inventory
//! search").
//!
//! A big server's sections are spread over parts (further DbInventories,
//! `spec.partOf`): each part gets postings of its own, and an instance's
//! accounts (or databases) are its own object's followed by those of the
//! parts its list names, in order, when the part's hash is the listed one.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::watcher::Event;

use super::inventory::rules::{FlagFilter, contains_ignoring_case};
use super::inventory::views::{AccountDatabaseView, AccountView};
use crate::api::envelope::format_time;
use crate::crd::DbInventory;
use crate::crd::findings::InventoryFindings;
use crate::crd::inventory::InventoryAccount;
use crate::observe::findings::Code;

/// An interned string.
pub type Sym = u32;

/// No string (an absent host, an empty list).
const NONE: Sym = Sym::MAX;

/// Joins a list into one interned string: no PostgreSQL or MySQL
/// identifier or privilege name holds a NUL.
const LIST_SEPARATOR: char = '\0';

/// Strings stored once, counted by how many postings use them, and freed
/// (their slot reused) when the last one goes.
///
/// The strings lie end to end in one buffer, found by a hash table of bare
/// symbols: a distinct string costs its bytes and about 20 bytes of
/// bookkeeping, not an allocation of its own and a pointer in a map and in
/// a list (which was ~100 bytes per name: most of the index at 10,000 ×
/// 100 with mostly distinct names). Freed strings stay in the buffer until
/// they outweigh the live ones; then the buffer is written again.
#[derive(Debug, Default)]
pub struct Interner {
    table: HashTable<Sym>,
    hasher: RandomState,
    strings: Packed,
    /// By symbol: uses; 0 is a free slot.
    counts: Vec<u32>,
    free: Vec<Sym>,
    /// Lowercased copies, for substring searches.
    folded: Packed,
}

/// Strings end to end, each followed by a NUL, with where each symbol's
/// current copy is.
#[derive(Debug, Default)]
struct Packed {
    bytes: Vec<u8>,
    /// Where each copy starts, ascending.
    starts: Vec<u32>,
    /// The symbol each copy was made for.
    owners: Vec<Sym>,
    /// By symbol: which copy is its current one (`u32::MAX`: none).
    current: Vec<u32>,
    /// Bytes of copies whose string was freed.
    stale: usize,
}

/// Below this, freed bytes are never worth writing the buffer again.
const MIN_COMPACTION_BYTES: usize = 1 << 20;

impl Packed {
    fn push(&mut self, sym: Sym, text: &[u8]) {
        let copy = u32::try_from(self.starts.len()).expect("fewer than 4 billion copies");
        self.starts
            .push(u32::try_from(self.bytes.len()).expect("interned strings fit in 4 GiB"));
        self.owners.push(sym);
        self.bytes.extend_from_slice(text);
        self.bytes.push(0);
        if self.current.len() <= sym as usize {
            self.current.resize(sym as usize + 1, u32::MAX);
        }
        self.current[sym as usize] = copy;
    }

    /// The current copy of `sym`, without its NUL.
    fn get(&self, sym: Sym) -> Option<&[u8]> {
        let copy = *self.current.get(sym as usize)? as usize;
        let start = *self.starts.get(copy)? as usize;
        let end = self
            .starts
            .get(copy + 1)
            .map_or(self.bytes.len(), |&next| next as usize);
        Some(&self.bytes[start..end - 1])
    }

    fn forget(&mut self, sym: Sym) {
        if let Some(text) = self.get(sym) {
            self.stale += text.len() + 1;
            self.current[sym as usize] = u32::MAX;
        }
    }

    fn wants_compaction(&self) -> bool {
        self.stale > MIN_COMPACTION_BYTES && self.stale * 2 > self.bytes.len()
    }

    /// The same copies without the freed ones.
    fn compacted(&self) -> Packed {
        let mut packed = Packed::default();
        for sym in 0..self.current.len() as Sym {
            if let Some(text) = self.get(sym) {
                packed.push(sym, text);
            }
        }
        packed
    }

    /// Marks the bitmap's entry of every symbol whose copy contains
    /// `needle`: one `memmem` pass over the buffer.
    fn mark_containing(&self, needle: &[u8], bitmap: &mut [bool]) {
        if needle.is_empty() || needle.contains(&0) {
            return;
        }
        for at in memchr::memmem::find_iter(&self.bytes, needle) {
            let copy = self.starts.partition_point(|&start| start as usize <= at) - 1;
            let owner = self.owners[copy];
            if self.current.get(owner as usize) == Some(&(copy as u32))
                && let Some(marked) = bitmap.get_mut(owner as usize)
            {
                *marked = true;
            }
        }
    }
}

impl Interner {
    fn hash(&self, text: &[u8]) -> u64 {
        self.hasher.hash_one(text)
    }

    /// The symbol of `text`, counting one more use.
    pub fn intern(&mut self, text: &str) -> Sym {
        if let Some(sym) = self.lookup(text) {
            self.counts[sym as usize] += 1;
            return sym;
        }
        let sym = match self.free.pop() {
            Some(sym) => {
                self.counts[sym as usize] = 1;
                sym
            }
            None => {
                let sym = Sym::try_from(self.counts.len()).expect("fewer than 4 billion distinct strings");
                assert!(sym != NONE, "fewer than 4 billion distinct strings");
                self.counts.push(1);
                sym
            }
        };
        self.strings.push(sym, text.as_bytes());
        self.folded.push(sym, text.to_lowercase().as_bytes());
        let hash = self.hash(text.as_bytes());
        let (hasher, strings) = (&self.hasher, &self.strings);
        self.table.insert_unique(hash, sym, |&other| {
            hasher.hash_one(strings.get(other).unwrap_or_default())
        });
        sym
    }

    /// `intern`, with `None` as [`NONE`].
    fn intern_opt(&mut self, text: Option<&str>) -> Sym {
        text.map_or(NONE, |t| self.intern(t))
    }

    /// A sorted list as one symbol; an empty one is [`NONE`].
    fn intern_list(&mut self, items: &[String]) -> Sym {
        if items.is_empty() {
            return NONE;
        }
        self.intern(&items.join(&LIST_SEPARATOR.to_string()))
    }

    /// One use fewer of `sym`; the last frees it.
    pub fn release(&mut self, sym: Sym) {
        if sym == NONE {
            return;
        }
        let count = &mut self.counts[sym as usize];
        *count -= 1;
        if *count > 0 {
            return;
        }
        if let Some(text) = self.strings.get(sym) {
            let hash = self.hash(text);
            if let Ok(entry) = self.table.find_entry(hash, |&other| other == sym) {
                entry.remove();
            }
        }
        self.strings.forget(sym);
        self.folded.forget(sym);
        self.free.push(sym);
        if self.strings.wants_compaction() {
            self.strings = self.strings.compacted();
        }
        if self.folded.wants_compaction() {
            self.folded = self.folded.compacted();
        }
    }

    /// The symbol of `text`, if any posting uses it.
    pub fn lookup(&self, text: &str) -> Option<Sym> {
        let bytes = text.as_bytes();
        self.table
            .find(self.hash(bytes), |&sym| self.strings.get(sym) == Some(bytes))
            .copied()
    }

    pub fn text(&self, sym: Sym) -> Option<&str> {
        std::str::from_utf8(self.strings.get(sym)?).ok()
    }

    fn list(&self, sym: Sym) -> Vec<String> {
        self.text(sym)
            .map(|t| t.split(LIST_SEPARATOR).map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// Distinct strings in use.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Which symbols' strings contain `needle` (lowercase), case aside
    /// (as `rules::contains_ignoring_case`), as a bitmap by symbol.
    fn containing(&self, needle: &str) -> Vec<bool> {
        let mut bitmap = vec![false; self.counts.len()];
        self.folded.mark_containing(needle.as_bytes(), &mut bitmap);
        bitmap
    }
}

// Flag bits of an account posting.
const SUPERUSER: u8 = 1;
const CAN_LOGIN: u8 = 1 << 1;
const LOCKED: u8 = 1 << 2;
const EXPIRED: u8 = 1 << 3;
const GLOBAL_GRANT_OPTION: u8 = 1 << 4;
const DATABASES_TRUNCATED: u8 = 1 << 5;
const ROLES_TRUNCATED: u8 = 1 << 6;

// Flag bits of a grant posting.
const GRANT_OPTION: u8 = 1;
const OWNER: u8 = 1 << 1;
const OBJECT_GRANTS: u8 = 1 << 2;

/// What a search does not scan of one account (its name and flags are
/// kept apart, [`Entry`]): 28 bytes.
#[derive(Debug, Clone, Copy)]
struct AccountPosting {
    host: Sym,
    auth_plugin: Sym,
    roles: Sym,
    global_privileges: Sym,
    attributes: Sym,
    /// Its grants: `grants[first_grant..first_grant + grant_count]` of the
    /// instance's entry.
    first_grant: u32,
    grant_count: u16,
}

/// One database an account reaches: 12 bytes.
#[derive(Debug, Clone, Copy)]
struct GrantPosting {
    database: Sym,
    privileges: Sym,
    flags: u8,
}

/// One database of one instance: 24 bytes.
#[derive(Debug, Clone, Copy)]
struct DatabasePosting {
    name: Sym,
    /// The account whose grant on it says `owner` (PostgreSQL).
    owner: Sym,
    table_count: Option<u32>,
    size_bytes: u64,
}

/// One instance's postings, replaced whole on each event. An account's
/// name and flags are columns of their own, so a search scans 5 bytes per
/// account rather than the whole posting.
#[derive(Debug, Default)]
struct Entry {
    names: Box<[Sym]>,
    flags: Box<[u8]>,
    accounts: Box<[AccountPosting]>,
    grants: Box<[GrantPosting]>,
    databases: Box<[DatabasePosting]>,
    /// `VALID UNTIL` (seconds) by account position: rare, so kept aside
    /// rather than widening every posting.
    valid_until: Box<[(u32, i64)]>,
    accounts_section: Section,
    databases_section: Section,
    /// The hygiene findings listed (`spec.findings`), in their order.
    findings: Box<[FindingPosting]>,
    findings_section: Section,
    /// The codes whose checks could not run, as bits by `Code::ALL`
    /// position.
    findings_not_checked: u16,
}

/// One hygiene finding: 12 bytes.
#[derive(Debug, Clone, Copy)]
struct FindingPosting {
    /// Its position in `Code::ALL`.
    code: u8,
    /// Whether it concerns an account (else a server setting).
    has_account: bool,
    account: Sym,
    host: Sym,
}

/// A finding as the fleet index keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundFinding {
    pub code: Code,
    pub account: Option<String>,
    pub host: Option<String>,
}

/// One instance's findings in the fleet index (none when it has no entry).
pub struct InstanceFindings<'a> {
    fleet: &'a FleetIndex,
    entry: Option<&'a Entry>,
}

impl InstanceFindings<'_> {
    /// What is known of the instance's findings.
    pub fn section(&self) -> Section {
        self.entry.map_or(Section::Missing, |e| e.findings_section)
    }

    /// The codes whose checks could not run there, each with its place
    /// in [`Code::ALL`].
    pub fn not_checked(&self) -> impl Iterator<Item = (usize, Code)> + '_ {
        let bits = self.entry.map_or(0, |e| e.findings_not_checked);
        Code::ALL
            .into_iter()
            .enumerate()
            .filter(move |(at, _)| bits & (1 << at) != 0)
    }

    /// Each finding's position and code: enough to count it, without
    /// building its texts.
    pub fn codes(&self) -> impl Iterator<Item = (usize, Code)> + '_ {
        let postings: &[FindingPosting] = self.entry.map_or(&[], |e| &e.findings);
        postings
            .iter()
            .enumerate()
            .map(|(at, f)| (at, Code::ALL[usize::from(f.code)]))
    }

    /// The finding at `position`, with its texts.
    pub fn get(&self, position: usize) -> Option<FoundFinding> {
        let f = self.entry?.findings.get(position)?;
        Some(FoundFinding {
            code: Code::ALL[usize::from(f.code)],
            account: if f.has_account {
                Some(self.fleet.account_names.text(f.account).unwrap_or_default().to_string())
            } else {
                None
            },
            host: self.fleet.texts.text(f.host).map(str::to_owned),
        })
    }
}

/// What is known of one section of an instance's inventory, so a search
/// can say where its answer may be incomplete.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// Not collected yet (or no inventory at all).
    #[default]
    Missing,
    /// Capped: some entries were left out.
    Truncated,
    Complete,
}

impl Section {
    fn of(collected: bool, truncated: bool) -> Section {
        match (collected, truncated) {
            (false, _) => Section::Missing,
            (true, true) => Section::Truncated,
            (true, false) => Section::Complete,
        }
    }
}

/// What a fleet-wide account search matches.
#[derive(Debug)]
pub struct AccountMatcher {
    names: NameMatch,
    flags: FlagFilter,
}

/// Which names a search matches, as symbols.
#[derive(Debug)]
enum NameMatch {
    Any,
    Exactly(Sym),
    /// By symbol (a substring search resolved once per request).
    OneOf(Vec<bool>),
}

impl NameMatch {
    fn matches(&self, sym: Sym) -> bool {
        match self {
            NameMatch::Any => true,
            NameMatch::Exactly(wanted) => *wanted == sym,
            NameMatch::OneOf(bitmap) => bitmap.get(sym as usize).copied().unwrap_or(false),
        }
    }

    /// `name` (exact) and `search` (substring, lowercase) resolved against
    /// `strings`; `None` when no string in use can match.
    fn resolve(strings: &Interner, name: Option<&str>, search: Option<&str>) -> Option<NameMatch> {
        match (name, search) {
            (Some(name), search) => {
                let sym = strings.lookup(name)?;
                search
                    .is_none_or(|s| contains_ignoring_case(name, s))
                    .then_some(NameMatch::Exactly(sym))
            }
            (None, Some(search)) => Some(NameMatch::OneOf(strings.containing(search))),
            (None, None) => Some(NameMatch::Any),
        }
    }
}

/// What a fleet-wide database search matches.
#[derive(Debug)]
pub struct DatabaseMatcher(NameMatch);

/// One database found by a fleet-wide search.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundDatabase {
    pub name: String,
    pub size_bytes: u64,
    pub table_count: Option<u32>,
    pub owner: Option<String>,
}

/// The postings of every instance's inventory, by instance (= DbInventory)
/// name.
#[derive(Debug, Default)]
pub struct FleetIndex {
    account_names: Interner,
    database_names: Interner,
    /// Hosts, plugins, and lists (roles, privileges, attributes).
    texts: Interner,
    entries: HashMap<Box<str>, Entry>,
    /// The parts of big servers' sections, by object name, with the content
    /// hash of the section each holds.
    parts: HashMap<Box<str>, (Box<str>, Entry)>,
    /// The parts each split instance's sections list, by instance name:
    /// only instances with parts have one.
    part_lists: HashMap<Box<str>, PartLists>,
    /// Names (instances', and parts' apart) seen since a relist began
    /// (`Event::Init`).
    relisted: Option<(HashSet<String>, HashSet<String>)>,
    synced: bool,
}

/// The parts an instance's own DbInventory lists: (name, content hash).
#[derive(Debug, Default)]
struct PartLists {
    accounts: Box<[(Box<str>, Box<str>)]>,
    databases: Box<[(Box<str>, Box<str>)]>,
}

fn listed(parts: &[crate::crd::inventory::InventoryPart]) -> Box<[(Box<str>, Box<str>)]> {
    parts
        .iter()
        .map(|p| (p.name.as_str().into(), p.content_hash.as_str().into()))
        .collect()
}

impl FleetIndex {
    /// Applies one watch event.
    pub fn apply(&mut self, event: &Event<DbInventory>) {
        match event {
            Event::Apply(inventory) => self.upsert(inventory),
            Event::Delete(inventory) if inventory.spec.part_of.is_some() => self.remove_part(&inventory.name_any()),
            Event::Delete(inventory) => self.remove(&inventory.name_any()),
            // A relist: entries are replaced as they come, so searches
            // keep answering; those it no longer has go at the end.
            Event::Init => self.relisted = Some(Default::default()),
            Event::InitApply(inventory) => {
                self.upsert(inventory);
                if let Some((instances, parts)) = self.relisted.as_mut() {
                    let seen = if inventory.spec.part_of.is_some() {
                        parts
                    } else {
                        instances
                    };
                    seen.insert(inventory.name_any());
                }
            }
            Event::InitDone => {
                let (instances, parts) = self.relisted.take().unwrap_or_default();
                let unseen = |names: &mut dyn Iterator<Item = &Box<str>>, seen: &HashSet<String>| -> Vec<String> {
                    names
                        .filter(|name| !seen.contains(&***name))
                        .map(|name| name.to_string())
                        .collect()
                };
                for name in unseen(&mut self.entries.keys(), &instances) {
                    self.remove(&name);
                }
                for name in unseen(&mut self.parts.keys(), &parts) {
                    self.remove_part(&name);
                }
                self.synced = true;
            }
        }
    }

    /// Whether the first full list has been applied.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Adds or replaces the postings of `inventory`'s instance, or of the
    /// part it is.
    pub fn upsert(&mut self, inventory: &DbInventory) {
        let entry = self.entry_of(inventory);
        let name = inventory.name_any().into_boxed_str();
        let spec = &inventory.spec;
        // Interned before the old entry is released, so strings both use
        // are never freed and made again.
        if spec.part_of.is_some() {
            let hash = spec
                .accounts
                .as_ref()
                .map(|a| &a.content_hash)
                .or(spec.capacity.as_ref().map(|c| &c.content_hash))
                .map_or("", |h| h.as_str());
            if let Some((_, old)) = self.parts.insert(name, (hash.into(), entry)) {
                self.release(old);
            }
            return;
        }
        let lists = PartLists {
            accounts: spec
                .accounts
                .as_ref()
                .map_or_else(Default::default, |a| listed(&a.parts)),
            databases: spec
                .capacity
                .as_ref()
                .map_or_else(Default::default, |c| listed(&c.parts)),
        };
        if lists.accounts.is_empty() && lists.databases.is_empty() {
            self.part_lists.remove(&name);
        } else {
            self.part_lists.insert(name.clone(), lists);
        }
        if let Some(old) = self.entries.insert(name, entry) {
            self.release(old);
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.part_lists.remove(name);
        if let Some(old) = self.entries.remove(name) {
            self.release(old);
        }
    }

    fn remove_part(&mut self, name: &str) {
        if let Some((_, old)) = self.parts.remove(name) {
            self.release(old);
        }
    }

    /// The entries that hold `instance`'s accounts (`accounts`) or
    /// databases, in order: its own, then each listed part whose hash is
    /// the listed one; and whether a listed part was missing or stale.
    fn entries_of(&self, instance: &str, accounts: bool) -> (Vec<&Entry>, bool) {
        let Some(own) = self.entries.get(instance) else {
            return (vec![], false);
        };
        let mut found = vec![own];
        let mut incomplete = false;
        if let Some(lists) = self.part_lists.get(instance) {
            let listed = if accounts { &lists.accounts } else { &lists.databases };
            for (name, hash) in listed.iter() {
                match self.parts.get(name) {
                    Some((held, entry)) if held == hash => found.push(entry),
                    _ => incomplete = true,
                }
            }
        }
        (found, incomplete)
    }

    /// What is known of `instance`'s accounts and databases; a section
    /// with a part missing (or from another write) counts as truncated.
    pub fn sections(&self, instance: &str) -> (Section, Section) {
        let Some(own) = self.entries.get(instance) else {
            return (Section::Missing, Section::Missing);
        };
        let known = |section: Section, accounts: bool| match section {
            Section::Complete if self.entries_of(instance, accounts).1 => Section::Truncated,
            other => other,
        };
        (known(own.accounts_section, true), known(own.databases_section, false))
    }

    /// Instances with an inventory in the index.
    pub fn instance_count(&self) -> usize {
        self.entries.len()
    }

    /// Accounts indexed, over every instance.
    pub fn account_count(&self) -> usize {
        let parts = self.parts.values().map(|(_, e)| e.accounts.len());
        self.entries.values().map(|e| e.accounts.len()).chain(parts).sum()
    }

    /// Distinct account names, database names and other strings held.
    pub fn distinct_strings(&self) -> (usize, usize, usize) {
        (self.account_names.len(), self.database_names.len(), self.texts.len())
    }

    fn entry_of(&mut self, inventory: &DbInventory) -> Entry {
        let spec = &inventory.spec;
        let items: &[InventoryAccount] = spec.accounts.as_ref().map_or(&[], |a| &a.items);
        let mut names = Vec::with_capacity(items.len());
        let mut flags = Vec::with_capacity(items.len());
        let mut accounts = Vec::with_capacity(items.len());
        let mut grants = Vec::new();
        let mut valid_until = Vec::new();
        for (position, account) in items.iter().enumerate() {
            let first_grant = grants.len() as u32;
            for database in account.databases.iter().take(usize::from(u16::MAX)) {
                grants.push(GrantPosting {
                    database: self.database_names.intern(&database.name),
                    privileges: self.texts.intern_list(&database.privileges),
                    flags: bits(&[
                        (database.grant_option, GRANT_OPTION),
                        (database.owner, OWNER),
                        (database.object_grants, OBJECT_GRANTS),
                    ]),
                });
            }
            if let Some(until) = &account.valid_until {
                valid_until.push((position as u32, until.0.as_second()));
            }
            names.push(self.account_names.intern(&account.name));
            flags.push(bits(&[
                (account.superuser, SUPERUSER),
                (account.can_login, CAN_LOGIN),
                (account.locked, LOCKED),
                (account.expired, EXPIRED),
                (account.global_grant_option, GLOBAL_GRANT_OPTION),
                (account.databases_truncated, DATABASES_TRUNCATED),
                (account.roles_truncated, ROLES_TRUNCATED),
            ]));
            accounts.push(AccountPosting {
                host: self.texts.intern_opt(account.host.as_deref()),
                auth_plugin: self.texts.intern_opt(account.auth_plugin.as_deref()),
                roles: self.texts.intern_list(&account.roles),
                global_privileges: self.texts.intern_list(&account.global_privileges),
                attributes: self.texts.intern_list(&account.attributes),
                first_grant,
                grant_count: (grants.len() as u32 - first_grant) as u16,
            });
        }
        let databases = spec
            .capacity
            .iter()
            .flat_map(|c| &c.databases)
            .map(|database| {
                let owner = items
                    .iter()
                    .find(|a| a.databases.iter().any(|d| d.owner && d.name == database.name))
                    .map(|a| a.name.as_str());
                DatabasePosting {
                    name: self.database_names.intern(&database.name),
                    owner: self.account_names.intern_opt(owner),
                    table_count: database.table_count,
                    size_bytes: database.size_bytes,
                }
            })
            .collect();
        Entry {
            names: names.into_boxed_slice(),
            flags: flags.into_boxed_slice(),
            accounts: accounts.into_boxed_slice(),
            grants: grants.into_boxed_slice(),
            databases,
            valid_until: valid_until.into_boxed_slice(),
            accounts_section: Section::of(
                spec.accounts.is_some(),
                spec.accounts.as_ref().is_some_and(|a| a.truncated),
            ),
            databases_section: Section::of(
                spec.capacity.is_some(),
                spec.capacity.as_ref().is_some_and(|c| c.truncated),
            ),
            findings: self.finding_postings(spec.findings.as_ref()),
            findings_section: Section::of(
                spec.findings.is_some(),
                spec.findings.as_ref().is_some_and(|f| f.truncated),
            ),
            findings_not_checked: spec.findings.as_ref().map_or(0, |f| {
                f.not_checked
                    .iter()
                    .filter_map(|n| code_position(&n.code))
                    .fold(0, |bits, at| bits | (1 << at))
            }),
        }
    }

    /// The findings' postings; a code this version does not know is left
    /// out.
    fn finding_postings(&mut self, findings: Option<&InventoryFindings>) -> Box<[FindingPosting]> {
        let Some(findings) = findings else {
            return Box::default();
        };
        findings
            .items
            .iter()
            .filter_map(|f| {
                Some(FindingPosting {
                    code: code_position(&f.code)?,
                    has_account: f.account.is_some(),
                    account: self.account_names.intern_opt(f.account.as_deref()),
                    host: self.texts.intern_opt(f.host.as_deref()),
                })
            })
            .collect()
    }

    fn release(&mut self, entry: Entry) {
        for &name in entry.names.iter() {
            self.account_names.release(name);
        }
        for account in entry.accounts.iter() {
            for sym in [
                account.host,
                account.auth_plugin,
                account.roles,
                account.global_privileges,
                account.attributes,
            ] {
                self.texts.release(sym);
            }
        }
        for grant in entry.grants.iter() {
            self.database_names.release(grant.database);
            self.texts.release(grant.privileges);
        }
        for database in entry.databases.iter() {
            self.database_names.release(database.name);
            self.account_names.release(database.owner);
        }
        for finding in entry.findings.iter() {
            self.account_names.release(finding.account);
            self.texts.release(finding.host);
        }
    }

    /// `instance`'s findings, looked up once: a fleet-wide walk reads
    /// every instance's section, codes and the page's texts from it.
    pub fn findings_of(&self, instance: &str) -> InstanceFindings<'_> {
        InstanceFindings {
            fleet: self,
            entry: self.entries.get(instance),
        }
    }

    /// An account search: `name` exactly and/or `search` (lowercase) as a
    /// substring, and the flags; `None` when no account can match.
    pub fn account_matcher(
        &self,
        name: Option<&str>,
        search: Option<&str>,
        flags: FlagFilter,
    ) -> Option<AccountMatcher> {
        Some(AccountMatcher {
            names: NameMatch::resolve(&self.account_names, name, search)?,
            flags,
        })
    }

    /// A database search, as [`account_matcher`](Self::account_matcher).
    pub fn database_matcher(&self, name: Option<&str>, search: Option<&str>) -> Option<DatabaseMatcher> {
        NameMatch::resolve(&self.database_names, name, search).map(DatabaseMatcher)
    }

    /// The positions of the accounts of `instance` that `matcher` matches,
    /// in the inventory's order (name, then host).
    pub fn matching_accounts<'a>(
        &'a self,
        instance: &str,
        matcher: &'a AccountMatcher,
    ) -> impl Iterator<Item = usize> + 'a {
        self.entries_of(instance, true)
            .0
            .into_iter()
            .flat_map(|e| e.names.iter().zip(&e.flags[..]))
            .enumerate()
            .filter_map(move |(position, (&name, &bits))| {
                let flag = |bit: u8| bits & bit != 0;
                (matcher.names.matches(name) && matcher.flags.matches(flag(SUPERUSER), flag(CAN_LOGIN), flag(LOCKED)))
                    .then_some(position)
            })
    }

    /// The entry holding item `position` of `instance`'s accounts (or
    /// databases), and the item's place in it.
    fn locate(&self, instance: &str, accounts: bool, mut position: usize) -> Option<(&Entry, usize)> {
        for entry in self.entries_of(instance, accounts).0 {
            let len = if accounts {
                entry.names.len()
            } else {
                entry.databases.len()
            };
            if position < len {
                return Some((entry, position));
            }
            position -= len;
        }
        None
    }

    /// The owner of database `name` among `instance`'s accounts, found by
    /// their grants: for a database whose owner is in another object (a
    /// section spread over parts).
    fn owner_among_accounts(&self, instance: &str, name: Sym) -> Option<&str> {
        self.entries_of(instance, true).0.into_iter().find_map(|entry| {
            entry.accounts.iter().enumerate().find_map(|(position, a)| {
                let start = a.first_grant as usize;
                let grants = &entry.grants[start..start + usize::from(a.grant_count)];
                grants
                    .iter()
                    .any(|g| g.database == name && g.flags & OWNER != 0)
                    .then(|| self.account_names.text(entry.names[position]))
                    .flatten()
            })
        })
    }

    /// The positions of the databases of `instance` that `matcher` matches,
    /// by name.
    pub fn matching_databases<'a>(
        &'a self,
        instance: &str,
        matcher: &'a DatabaseMatcher,
    ) -> impl Iterator<Item = usize> + 'a {
        self.entries_of(instance, false)
            .0
            .into_iter()
            .flat_map(|e| e.databases.iter())
            .enumerate()
            .filter_map(move |(position, d)| matcher.0.matches(d.name).then_some(position))
    }

    /// The account at `position` of `instance`, as the REST answers show
    /// one.
    pub fn account(&self, instance: &str, position: usize) -> Option<AccountView> {
        let (entry, position) = self.locate(instance, true, position)?;
        let a = entry.accounts.get(position)?;
        let bits = entry.flags[position];
        let flag = |bit: u8| bits & bit != 0;
        let start = a.first_grant as usize;
        let grants = &entry.grants[start..start + usize::from(a.grant_count)];
        let valid_until = entry
            .valid_until
            .iter()
            .find(|(p, _)| *p as usize == position)
            .and_then(|(_, seconds)| Timestamp::from_second(*seconds).ok());
        Some(AccountView {
            name: self.account_names.text(entry.names[position])?.to_string(),
            host: self.texts.text(a.host).map(str::to_owned),
            superuser: flag(SUPERUSER),
            can_login: flag(CAN_LOGIN),
            locked: flag(LOCKED),
            expired: flag(EXPIRED),
            auth_plugin: self.texts.text(a.auth_plugin).map(str::to_owned),
            roles: self.texts.list(a.roles),
            roles_truncated: flag(ROLES_TRUNCATED),
            global_privileges: self.texts.list(a.global_privileges),
            global_grant_option: flag(GLOBAL_GRANT_OPTION),
            attributes: self.texts.list(a.attributes),
            valid_until: valid_until.map(format_time),
            databases: grants
                .iter()
                .map(|g| AccountDatabaseView {
                    name: self.database_names.text(g.database).unwrap_or_default().to_string(),
                    privileges: self.texts.list(g.privileges),
                    grant_option: g.flags & GRANT_OPTION != 0,
                    owner: g.flags & OWNER != 0,
                    object_grants: g.flags & OBJECT_GRANTS != 0,
                })
                .collect(),
            databases_truncated: flag(DATABASES_TRUNCATED),
        })
    }

    /// The database at `position` of `instance`.
    pub fn database(&self, instance: &str, position: usize) -> Option<FoundDatabase> {
        let (entry, position) = self.locate(instance, false, position)?;
        let d = entry.databases.get(position)?;
        let split = self.part_lists.contains_key(instance);
        let owner = match self.account_names.text(d.owner) {
            None if split => self.owner_among_accounts(instance, d.name),
            owner => owner,
        };
        Some(FoundDatabase {
            name: self.database_names.text(d.name)?.to_string(),
            size_bytes: d.size_bytes,
            table_count: d.table_count,
            owner: owner.map(str::to_owned),
        })
    }
}

/// Where `code` is in `Code::ALL`.
fn code_position(code: &str) -> Option<u8> {
    let code = Code::parse(code)?;
    Code::ALL
        .iter()
        .position(|c| *c == code)
        .and_then(|at| u8::try_from(at).ok())
}

fn bits(flags: &[(bool, u8)]) -> u8 {
    flags.iter().filter(|(set, _)| *set).fold(0, |all, (_, bit)| all | bit)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::{Value, json};

    pub fn inventory(name: &str, accounts: Value, databases: Value) -> DbInventory {
        let mut spec = json!({"dbType": "postgresql"});
        if !accounts.is_null() {
            spec["accounts"] = json!({"syncedAt": "2026-01-01T00:00:00Z", "count": accounts.as_array().unwrap().len(),
                "superuserCount": 0, "items": accounts, "contentHash": "h"});
        }
        if !databases.is_null() {
            spec["capacity"] = json!({"collectedAt": "2026-01-01T00:00:00Z", "databaseCount": databases.as_array().unwrap().len(),
                "totalSizeBytes": 0, "databases": databases, "contentHash": "h"});
        }
        DbInventory::new(name, serde_json::from_value(spec).unwrap())
    }

    fn account(name: &str, extra: Value) -> Value {
        let mut a = json!({"name": name, "superuser": false, "canLogin": true, "locked": false});
        for (k, v) in extra.as_object().unwrap() {
            a[k] = v.clone();
        }
        a
    }

    fn found(index: &FleetIndex, instance: &str, name: Option<&str>, search: Option<&str>) -> Vec<String> {
        let Some(matcher) = index.account_matcher(name, search, FlagFilter::default()) else {
            return vec![];
        };
        index
            .matching_accounts(instance, &matcher)
            .map(|p| index.account(instance, p).unwrap().name)
            .collect()
    }

    #[test]
    fn interned_strings_are_shared_counted_and_freed_with_their_last_use() {
        let mut strings = Interner::default();
        let a = strings.intern("app");
        let b = strings.intern("app");
        let c = strings.intern("reader");
        assert_eq!((a, strings.len()), (b, 2));
        strings.release(a);
        assert_eq!(strings.text(a), Some("app"));
        strings.release(b);
        assert_eq!((strings.lookup("app"), strings.text(a), strings.len()), (None, None, 1));
        // The freed slot is reused; the other symbol is untouched.
        assert_eq!(strings.intern("writer"), a);
        assert_eq!(strings.text(c), Some("reader"));
        strings.release(NONE);
        assert_eq!(strings.intern_list(&[]), NONE);
        let list = strings.intern_list(&["CONNECT".into(), "CREATE".into()]);
        assert_eq!(strings.list(list), ["CONNECT", "CREATE"]);
    }

    fn containing<'a>(strings: &'a Interner, needle: &str) -> Vec<&'a str> {
        let bitmap = strings.containing(needle);
        let mut found: Vec<&str> = (0..bitmap.len())
            .filter(|&sym| bitmap[sym])
            .map(|sym| strings.text(sym as Sym).unwrap())
            .collect();
        found.sort();
        found
    }

    #[test]
    fn substrings_are_found_in_live_strings_only_whatever_the_case() {
        let mut strings = Interner::default();
        let gone = strings.intern("app_gone");
        strings.intern("App_Reader");
        strings.intern("ÜBER_app");
        strings.release(gone);
        assert_eq!(containing(&strings, "app"), ["App_Reader", "ÜBER_app"]);
        assert_eq!(containing(&strings, "über"), ["ÜBER_app"]);
        // The freed slot, reused by another string, answers for that one.
        assert_eq!(strings.intern("zapped"), gone);
        assert_eq!(containing(&strings, "app"), ["App_Reader", "zapped", "ÜBER_app"]);
        assert!(containing(&strings, "gone").is_empty());
        // Never across two strings, and never for a NUL.
        assert!(containing(&strings, "reader\0").is_empty());
        assert!(containing(&strings, "reader\u{0}über").is_empty());
    }

    #[test]
    fn folded_copies_are_made_again_once_garbage_outweighs_them() {
        let mut strings = Interner::default();
        let long = |i: usize| format!("{i:04}-{}", "x".repeat(1000));
        let syms: Vec<Sym> = (0..3000).map(|i| strings.intern(&long(i))).collect();
        let before = strings.folded.bytes.len();
        for &sym in &syms[..2500] {
            strings.release(sym);
        }
        assert!(
            strings.folded.bytes.len() < before / 2,
            "{}",
            strings.folded.bytes.len()
        );
        assert_eq!(containing(&strings, "2999-").len(), 1);
        assert!(containing(&strings, "0001-").is_empty());
        assert_eq!(strings.containing("-x").iter().filter(|m| **m).count(), 500);
    }

    #[test]
    fn postings_are_as_small_as_the_memory_budget_says() {
        // docs/architecture.md and docs/benchmarks.md count on these.
        assert_eq!(
            (
                size_of::<AccountPosting>(),
                size_of::<GrantPosting>(),
                size_of::<DatabasePosting>()
            ),
            (28, 12, 24)
        );
    }

    #[test]
    fn an_account_comes_back_as_it_went_in() {
        let mut index = FleetIndex::default();
        let full = account(
            "app",
            json!({"host": "%", "superuser": true, "expired": true, "roles": ["readers", "writers"],
                "globalPrivileges": ["PROCESS", "RELOAD"], "globalGrantOption": true, "authPlugin": "mysql_native_password",
                "validUntil": "2030-01-01T00:00:00Z", "databasesTruncated": true, "rolesTruncated": true,
                "databases": [{"name": "orders", "privileges": ["SELECT"], "grantOption": true, "objectGrants": true},
                              {"name": "app\\_%", "privileges": ["ALL PRIVILEGES"]}]}),
        );
        let pg = account(
            "owner",
            json!({"attributes": ["CREATEDB"], "databases": [{"name": "orders", "owner": true,
            "privileges": ["CONNECT", "CREATE", "TEMPORARY"]}]}),
        );
        let object = inventory("db", json!([full.clone(), pg.clone()]), Value::Null);
        index.upsert(&object);
        let expected =
            |value: &Value| AccountView::from(&serde_json::from_value::<InventoryAccount>(value.clone()).unwrap());
        assert_eq!(index.account("db", 0).unwrap(), expected(&full));
        assert_eq!(index.account("db", 1).unwrap(), expected(&pg));
        assert_eq!(index.account("db", 2), None);
        assert_eq!(index.account("other", 0), None);
    }

    #[test]
    fn replacing_and_removing_an_inventory_replaces_and_removes_its_postings() {
        let mut index = FleetIndex::default();
        index.upsert(&inventory(
            "a",
            json!([account("app", json!({})), account("old", json!({}))]),
            Value::Null,
        ));
        index.upsert(&inventory("b", json!([account("app", json!({}))]), Value::Null));
        assert_eq!(found(&index, "a", Some("app"), None), ["app"]);
        assert_eq!(index.distinct_strings().0, 2);

        index.upsert(&inventory("a", json!([account("new", json!({}))]), Value::Null));
        assert!(found(&index, "a", Some("app"), None).is_empty());
        assert_eq!(found(&index, "b", Some("app"), None), ["app"]);
        // "old" had no other use: gone from the strings too.
        assert_eq!(index.account_names.lookup("old"), None);
        assert_eq!(index.distinct_strings().0, 2);

        index.remove("b");
        index.remove("never-seen");
        assert!(
            index
                .account_matcher(Some("app"), None, FlagFilter::default())
                .is_none()
        );
        assert_eq!((index.instance_count(), index.account_count()), (1, 1));
        index.remove("a");
        assert_eq!(index.distinct_strings(), (0, 0, 0));
    }

    /// An instance `big` whose accounts are spread over two parts and its
    /// databases over one; the parts as their own objects.
    fn split_inventory() -> (DbInventory, Vec<DbInventory>) {
        let mut head = inventory("big", json!([]), json!([]));
        let part_list = |names: &[&str]| -> Vec<crate::crd::inventory::InventoryPart> {
            names
                .iter()
                .map(|n| {
                    serde_json::from_value(json!({"name": n, "count": 1, "contentHash": format!("h-{n}")})).unwrap()
                })
                .collect()
        };
        head.spec.accounts.as_mut().unwrap().parts = part_list(&["big-accounts-1", "big-accounts-2"]);
        head.spec.accounts.as_mut().unwrap().count = 3;
        head.spec.capacity.as_mut().unwrap().parts = part_list(&["big-databases-1"]);
        let part = |name: &str, accounts: Value, databases: Value| {
            let mut part = inventory(name, accounts, databases);
            let hash = format!("h-{name}");
            if let Some(a) = part.spec.accounts.as_mut() {
                a.content_hash = hash.clone();
            }
            if let Some(c) = part.spec.capacity.as_mut() {
                c.content_hash = hash;
            }
            part.spec.part_of =
                Some(serde_json::from_value(json!({"instance": "big", "section": "accounts", "index": 1})).unwrap());
            part
        };
        let owner = account("alice", json!({"databases": [{"name": "shop", "owner": true}]}));
        let parts = vec![
            part("big-accounts-1", json!([owner, account("app", json!({}))]), Value::Null),
            part("big-accounts-2", json!([account("zed", json!({}))]), Value::Null),
            part(
                "big-databases-1",
                Value::Null,
                json!([{"name": "shop", "sizeBytes": 1}]),
            ),
        ];
        (head, parts)
    }

    #[test]
    fn a_split_inventory_answers_with_every_part_in_order() {
        let (head, parts) = split_inventory();
        let mut index = FleetIndex::default();
        // Parts are written (and arrive) before the list naming them.
        for part in &parts {
            index.apply(&Event::Apply(part.clone()));
        }
        assert_eq!(index.instance_count(), 0, "a part is not an instance");
        index.apply(&Event::Apply(head.clone()));
        assert_eq!(index.instance_count(), 1);
        assert_eq!(found(&index, "big", None, None), ["alice", "app", "zed"]);
        assert_eq!(found(&index, "big", Some("zed"), None), ["zed"]);
        assert_eq!(index.sections("big"), (Section::Complete, Section::Complete));
        let matcher = index.database_matcher(Some("shop"), None).unwrap();
        let position = index.matching_databases("big", &matcher).next().unwrap();
        let shop = index.database("big", position).unwrap();
        assert_eq!(shop.owner.as_deref(), Some("alice"), "the owner is in another part");
        assert_eq!(index.account_count(), 3);

        // A part from another write, or missing, is left out and said.
        let mut stale = parts[1].clone();
        stale.spec.accounts.as_mut().unwrap().content_hash = "newer".into();
        index.apply(&Event::Apply(stale));
        assert_eq!(found(&index, "big", None, None), ["alice", "app"]);
        assert_eq!(index.sections("big").0, Section::Truncated);
        index.apply(&Event::Delete(parts[0].clone()));
        assert!(found(&index, "big", None, None).is_empty());

        // A relist without the parts drops them.
        index.apply(&Event::Init);
        index.apply(&Event::InitApply(head));
        index.apply(&Event::InitDone);
        assert_eq!(index.account_count(), 0);
        index.remove("big");
        assert_eq!(index.distinct_strings(), (0, 0, 0));
    }

    #[test]
    fn a_relist_keeps_answering_and_drops_what_it_no_longer_has() {
        let mut index = FleetIndex::default();
        index.apply(&Event::Init);
        index.apply(&Event::InitApply(inventory(
            "a",
            json!([account("app", json!({}))]),
            Value::Null,
        )));
        assert!(!index.is_synced());
        index.apply(&Event::InitDone);
        index.apply(&Event::Apply(inventory(
            "gone",
            json!([account("app", json!({}))]),
            Value::Null,
        )));
        assert_eq!(index.instance_count(), 2);

        index.apply(&Event::Init);
        index.apply(&Event::InitApply(inventory(
            "a",
            json!([account("app", json!({}))]),
            Value::Null,
        )));
        assert_eq!(found(&index, "gone", Some("app"), None), ["app"]);
        index.apply(&Event::InitDone);
        assert!(index.is_synced());
        assert!(found(&index, "gone", Some("app"), None).is_empty());
        index.apply(&Event::Delete(inventory("a", Value::Null, Value::Null)));
        assert_eq!((index.instance_count(), index.distinct_strings()), (0, (0, 0, 0)));
    }

    #[test]
    fn names_match_exactly_or_by_substring_and_flags_filter() {
        let mut index = FleetIndex::default();
        index.upsert(&inventory(
            "db",
            json!([
                account("App_Reader", json!({})),
                account("app", json!({"superuser": true})),
                account("apprentice", json!({"locked": true, "canLogin": false}))
            ]),
            Value::Null,
        ));
        assert_eq!(found(&index, "db", Some("app"), None), ["app"]);
        assert!(found(&index, "db", Some("APP"), None).is_empty());
        assert_eq!(
            found(&index, "db", None, Some("app")),
            ["App_Reader", "app", "apprentice"]
        );
        assert_eq!(found(&index, "db", None, Some("_r")), ["App_Reader"]);
        assert!(found(&index, "db", Some("app"), Some("reader")).is_empty());
        assert_eq!(found(&index, "db", None, None).len(), 3);
        let flagged = |flags: FlagFilter| {
            let matcher = index.account_matcher(None, None, flags).unwrap();
            index.matching_accounts("db", &matcher).collect::<Vec<_>>()
        };
        assert_eq!(
            flagged(FlagFilter {
                superuser: Some(true),
                ..Default::default()
            }),
            [1]
        );
        assert_eq!(
            flagged(FlagFilter {
                locked: Some(false),
                can_login: Some(true),
                ..Default::default()
            }),
            [0, 1]
        );
    }

    #[test]
    fn databases_carry_their_owner() {
        let mut index = FleetIndex::default();
        index.upsert(&inventory(
            "pg",
            json!([
                account(
                    "reader",
                    json!({"databases": [{"name": "orders", "privileges": ["CONNECT"]}]})
                ),
                account("boss", json!({"databases": [{"name": "orders", "owner": true}]}))
            ]),
            json!([{"name": "orders", "sizeBytes": 10, "tableCount": 2}, {"name": "postgres", "sizeBytes": 5}]),
        ));
        let matcher = index.database_matcher(None, Some("ord")).unwrap();
        let found: Vec<FoundDatabase> = index
            .matching_databases("pg", &matcher)
            .map(|p| index.database("pg", p).unwrap())
            .collect();
        assert_eq!(
            found,
            [FoundDatabase {
                name: "orders".into(),
                size_bytes: 10,
                table_count: Some(2),
                owner: Some("boss".into())
            }]
        );
        assert_eq!(index.sections("pg"), (Section::Complete, Section::Complete));
        assert_eq!(index.sections("other"), (Section::Missing, Section::Missing));
        let mut capped = inventory("capped", json!([]), Value::Null);
        capped.spec.accounts.as_mut().unwrap().truncated = true;
        index.upsert(&capped);
        assert_eq!(index.sections("capped"), (Section::Truncated, Section::Missing));
        let postgres = index.database_matcher(Some("postgres"), None).unwrap();
        let p = index.matching_databases("pg", &postgres).next().unwrap();
        assert_eq!(index.database("pg", p).unwrap().owner, None);
    }
}
