//! Which part of the work this replica does right now. Every replica runs
//! the watches and the controllers, so a standby holds warm caches; a
//! reconcile does its work only for what this replica holds a Lease for:
//! - the leader Lease: tags, credential ids, sync sessions;
//! - a shard Lease: the instances whose uid hashes to that shard.
//!
//! A replica that gains a shard reconciles the shard's instances at once;
//! one that loses it stops touching them on their next reconcile.

use std::collections::BTreeSet;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

/// The shard an instance belongs to: stable across processes, releases and
/// restarts, since it depends only on the uid.
pub fn shard_of(uid: &str, shards: u32) -> u32 {
    if shards <= 1 {
        return 0;
    }
    let digest = Sha256::digest(uid.as_bytes());
    let head = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (head % u64::from(shards)) as u32
}

/// The order in which a replica competes for the shards: a rotation of
/// `0..shards` starting at a shard its identity hashes to, so replicas that
/// start together try different shards first (`shard_claims` says how a
/// collision is resolved and when the other shards' turns come).
pub fn preferred_order(identity: &str, shards: u32) -> Vec<u32> {
    let shards = shards.max(1);
    let first = shard_of(identity, shards);
    (0..shards).map(|i| (first + i) % shards).collect()
}

#[derive(Debug)]
pub struct HeldLeases {
    shards: u32,
    leader: AtomicBool,
    owned: RwLock<BTreeSet<u32>>,
}

impl HeldLeases {
    /// One process doing everything (tests, `dbfleet run` without Leases).
    pub fn everything(shards: u32) -> HeldLeases {
        let shards = shards.max(1);
        HeldLeases {
            shards,
            leader: AtomicBool::new(true),
            owned: RwLock::new((0..shards).collect()),
        }
    }

    /// A replica that holds no Lease yet.
    pub fn nothing(shards: u32) -> HeldLeases {
        HeldLeases {
            shards: shards.max(1),
            leader: AtomicBool::new(false),
            owned: RwLock::new(BTreeSet::new()),
        }
    }

    pub fn shards(&self) -> u32 {
        self.shards
    }

    pub fn leads(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.store(leading, Ordering::Release);
    }

    /// Whether this replica owns the instance with `uid`.
    pub fn owns(&self, uid: &str) -> bool {
        let shard = shard_of(uid, self.shards);
        self.owned.read().unwrap_or_else(|e| e.into_inner()).contains(&shard)
    }

    pub fn own(&self, shard: u32, owned: bool) {
        let mut set = self.owned.write().unwrap_or_else(|e| e.into_inner());
        if owned {
            set.insert(shard);
        } else {
            set.remove(&shard);
        }
    }

    /// The shards held now, for logs and metrics.
    pub fn owned(&self) -> Vec<u32> {
        self.owned
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_spread_evenly() {
        let uids: Vec<String> = (0..10_000).map(|i| format!("3f1c0a2e-{i:08}-4b5d")).collect();
        let mut counts = [0usize; 4];
        for uid in &uids {
            let shard = shard_of(uid, 4);
            assert_eq!(shard, shard_of(uid, 4));
            counts[shard as usize] += 1;
        }
        for count in counts {
            assert!((2_300..2_700).contains(&count), "{counts:?}");
        }
        assert_eq!(shard_of("anything", 1), 0);
        assert_eq!(shard_of("anything", 0), 0);
    }

    #[test]
    fn each_replica_prefers_a_rotation_of_the_shards() {
        let order = preferred_order("dbfleet-7f9c-1", 4);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, 1, 2, 3]);
        assert_eq!(order[0], shard_of("dbfleet-7f9c-1", 4));
        assert!(order.windows(2).all(|w| w[1] == (w[0] + 1) % 4));
    }

    #[test]
    fn a_replica_owns_exactly_the_shards_it_holds() {
        let roles = HeldLeases::nothing(2);
        let uid = "7d1c-uid";
        let mine = shard_of(uid, 2);
        assert!(!roles.owns(uid) && !roles.leads());
        roles.own(mine, true);
        assert!(roles.owns(uid));
        roles.own(1 - mine, true);
        roles.own(mine, false);
        assert!(!roles.owns(uid));
        assert_eq!(roles.owned(), vec![1 - mine]);
        let all = HeldLeases::everything(3);
        assert!(all.leads() && all.owns(uid));
    }
}
