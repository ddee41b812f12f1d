//! The fleet's account changes, newest first, for `GET
//! /api/v1/accounts/changes` (issue 21): kept from a plain watcher on
//! DbHistory — each event's object gives up its account entries and is
//! dropped (its capacity samples are never kept) — and bounded: at most
//! [`FLEET_CHANGES_KEPT`] entries for the whole fleet, the oldest dropped
//! first. `complete_since` says from when the index holds every entry, so
//! a client knows an answer reaching further back is partial (each
//! instance's own log, `GET /instances/{id}/accounts/history`, is read
//! from its DbHistory and has no such horizon).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::watcher::Event;

use crate::crd::DbHistory;
use crate::crd::history::AccountChange;

/// Entries kept for the fleet: ~200 bytes each with their strings, so
/// ~10 MiB at most — 100 changes for each of 500 instances, or the last
/// day of a fleet of 10,000 instances changing 5 accounts a day.
pub const FLEET_CHANGES_KEPT: usize = 50_000;

/// (seconds since the epoch, instance name, place in its log).
type Key = (i64, Arc<str>, u32);

pub struct ChangesIndex {
    entries: BTreeMap<Key, AccountChange>,
    by_instance: HashMap<Arc<str>, Vec<Key>>,
    cap: usize,
    /// The newest time of an entry dropped for the cap: before (and at)
    /// it the index may lack entries.
    horizon: Option<i64>,
    /// Instances seen since a relist began; `None` outside a relist.
    relisting: Option<HashSet<Arc<str>>>,
    synced: bool,
}

impl Default for ChangesIndex {
    fn default() -> Self {
        ChangesIndex::with_cap(FLEET_CHANGES_KEPT)
    }
}

impl ChangesIndex {
    pub fn with_cap(cap: usize) -> Self {
        ChangesIndex {
            entries: BTreeMap::new(),
            by_instance: HashMap::new(),
            cap,
            horizon: None,
            relisting: None,
            synced: false,
        }
    }

    pub fn apply(&mut self, event: &Event<DbHistory>) {
        match event {
            Event::Apply(history) => {
                self.upsert(history);
            }
            Event::Delete(history) => self.remove(&history.name_any()),
            Event::Init => self.relisting = Some(HashSet::new()),
            Event::InitApply(history) => {
                let name = self.upsert(history);
                if let Some(seen) = self.relisting.as_mut() {
                    seen.insert(name);
                }
            }
            Event::InitDone => {
                if let Some(seen) = self.relisting.take() {
                    let gone: Vec<Arc<str>> = self
                        .by_instance
                        .keys()
                        .filter(|n| !seen.contains(*n))
                        .cloned()
                        .collect();
                    for name in gone {
                        self.remove(&name);
                    }
                }
                self.synced = true;
            }
        }
    }

    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// From when every entry is held: `None` when none was ever dropped.
    pub fn complete_since(&self) -> Option<i64> {
        self.horizon.map(|h| h + 1)
    }

    /// Every entry held, newest first, with its instance's name.
    pub fn newest_first(&self) -> impl Iterator<Item = (&str, &AccountChange)> {
        self.entries
            .iter()
            .rev()
            .map(|((_, name, _), change)| (&**name, change))
    }

    /// Replaces the instance's entries with the history's; returns its name.
    fn upsert(&mut self, history: &DbHistory) -> Arc<str> {
        let name: Arc<str> = Arc::from(history.name_any());
        self.remove(&name);
        let log = history
            .spec
            .accounts
            .as_ref()
            .map(|a| a.entries.as_slice())
            .unwrap_or_default();
        let mut keys = Vec::with_capacity(log.len());
        for (i, change) in log.iter().enumerate() {
            let at = change.at.0.as_second();
            if self.horizon.is_some_and(|h| at <= h) {
                continue;
            }
            let key = (at, name.clone(), u32::try_from(i).unwrap_or(u32::MAX));
            self.entries.insert(key.clone(), change.clone());
            keys.push(key);
        }
        if !keys.is_empty() {
            self.by_instance.insert(name.clone(), keys);
        }
        self.evict();
        name
    }

    fn remove(&mut self, name: &str) {
        if let Some(keys) = self.by_instance.remove(name) {
            for key in keys {
                self.entries.remove(&key);
            }
        }
    }

    /// Drops the oldest entries beyond the cap, and moves the horizon.
    fn evict(&mut self) {
        while self.entries.len() > self.cap {
            let Some((key, _)) = self.entries.pop_first() else {
                break;
            };
            self.horizon = Some(self.horizon.map_or(key.0, |h| h.max(key.0)));
            if let Some(keys) = self.by_instance.get_mut(&key.1) {
                keys.retain(|k| *k != key);
                if keys.is_empty() {
                    self.by_instance.remove(&key.1);
                }
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::DbHistorySpec;
    use crate::crd::history::{AccountHistory, ChangeKind};
    use crate::observe::status::time;
    use std::time::{Duration, SystemTime};

    fn history(name: &str, times: &[u64]) -> DbHistory {
        let entries: Vec<AccountChange> = times
            .iter()
            .map(|&t| AccountChange {
                at: time(SystemTime::UNIX_EPOCH + Duration::from_secs(t)),
                account: format!("{name}-{t}"),
                host: None,
                kind: ChangeKind::AccountAdded,
                database: None,
                privileges: vec![],
            })
            .collect();
        DbHistory::new(
            name,
            DbHistorySpec {
                db_type: "postgresql".into(),
                capacity: None,
                accounts: Some(AccountHistory {
                    entry_count: entries.len() as u32,
                    dropped: 0,
                    entries,
                }),
            },
        )
    }

    fn accounts(index: &ChangesIndex) -> Vec<String> {
        index.newest_first().map(|(_, c)| c.account.clone()).collect()
    }

    #[test]
    fn entries_across_instances_come_newest_first_and_updates_replace() {
        let mut index = ChangesIndex::default();
        index.apply(&Event::Apply(history("a", &[10, 30])));
        index.apply(&Event::Apply(history("b", &[20])));
        assert_eq!(accounts(&index), ["a-30", "b-20", "a-10"]);
        index.apply(&Event::Apply(history("a", &[30, 40])));
        assert_eq!(accounts(&index), ["a-40", "a-30", "b-20"]);
        index.apply(&Event::Delete(history("a", &[])));
        assert_eq!(accounts(&index), ["b-20"]);
    }

    #[test]
    fn the_oldest_go_beyond_the_cap_and_the_horizon_says_so() {
        let mut index = ChangesIndex::with_cap(3);
        assert_eq!(index.complete_since(), None);
        index.apply(&Event::Apply(history("a", &[10, 20, 30])));
        index.apply(&Event::Apply(history("b", &[25, 35])));
        assert_eq!(accounts(&index), ["b-35", "a-30", "b-25"]);
        assert_eq!(index.complete_since(), Some(21));
        // An update of `a` does not bring back what fell behind the horizon.
        index.apply(&Event::Apply(history("a", &[10, 20, 30])));
        assert_eq!(index.len(), 3);
        assert_eq!(accounts(&index), ["b-35", "a-30", "b-25"]);
    }

    #[test]
    fn a_relist_drops_the_instances_it_no_longer_has() {
        let mut index = ChangesIndex::default();
        index.apply(&Event::Apply(history("a", &[10])));
        index.apply(&Event::Apply(history("b", &[20])));
        index.apply(&Event::Init);
        index.apply(&Event::InitApply(history("b", &[20, 30])));
        assert_eq!(
            accounts(&index),
            ["b-30", "b-20", "a-10"],
            "answers go on during the relist"
        );
        index.apply(&Event::InitDone);
        assert_eq!(accounts(&index), ["b-30", "b-20"]);
        assert!(index.is_synced());
    }
}
