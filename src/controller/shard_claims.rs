//! How a replica comes to hold its shards. Every replica competes for every
//! shard Lease (so a standby takes over a dead replica's shards), but not all
//! at once, or replicas that start together split the shards unevenly: one
//! identity hash can collide with another's and leave a replica with two
//! shards and another with none for as long as both live.
//!
//! 1. **First claim:** one shard nobody holds, in this replica's preferred
//!    order, one at a time: compete for it, and if another replica got it
//!    first, move on to the next free one. A fleet of replicas that starts
//!    together then holds one shard each within seconds.
//! 2. **The rest:** every other shard after a wait that grows with its rank
//!    and with the shards this replica already holds, so a replica holding
//!    fewer reaches a free shard first.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::leader::{self, LeaderConfig};
use super::{Context, instance, leases};

/// A shard Lease as this replica last read it.
#[derive(Clone, Debug, PartialEq)]
pub enum LeaseState {
    /// Held by this replica.
    Mine,
    /// Held, renewed within its duration, by another replica.
    Theirs,
    /// Absent, released, or not renewed in time.
    Free,
}

/// What the Lease says at `now`, seen by `identity`.
pub fn state_of(lease: Option<&Lease>, identity: &str, now: SystemTime) -> LeaseState {
    let Some(spec) = lease.and_then(|l| l.spec.as_ref()) else {
        return LeaseState::Free;
    };
    let Some(holder) = spec.holder_identity.as_deref().filter(|h| !h.is_empty()) else {
        return LeaseState::Free;
    };
    let renewed = spec.renew_time.as_ref().map(|t| SystemTime::from(t.0));
    let duration = Duration::from_secs(u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0));
    let live = renewed.is_some_and(|at| at + duration > now);
    match (holder == identity, live) {
        (_, false) => LeaseState::Free,
        (true, true) => LeaseState::Mine,
        (false, true) => LeaseState::Theirs,
    }
}

/// The shard to claim next: the first in `order` that is free (or already
/// this replica's) and not tried yet.
pub fn first_claim(order: &[u32], states: &[LeaseState], tried: &BTreeSet<u32>) -> Option<u32> {
    order.iter().copied().find(|shard| {
        !tried.contains(shard) && matches!(states.get(*shard as usize), Some(LeaseState::Free | LeaseState::Mine))
    })
}

/// How long to wait, once a shard's turn by rank has come, before competing
/// for it while holding `held` shards of `shards`: nothing while holding
/// none, else long enough for every replica holding fewer to get there
/// first.
pub fn handicap(held: usize, shards: u32, lease: Duration) -> Duration {
    lease * u32::try_from(held).unwrap_or(u32::MAX).saturating_mul(shards)
}

/// How long a first claim waits to see whether it got the shard: one try of
/// the lease manager (a free Lease is taken on its first try) and a margin.
fn claim_wait(lease: Duration) -> Duration {
    (lease / 3).max(Duration::from_secs(1)) + Duration::from_secs(1)
}

fn lease_name(leader: &LeaderConfig, shard: u32) -> String {
    format!("{}-shard-{shard}", leader.lease_name)
}

/// Competes for the shard Leases as the module doc says, until `stop`;
/// a held shard is reconciled at once and let go of when its Lease is lost.
pub async fn hold_shards(
    ctx: std::sync::Arc<Context>,
    client: Client,
    leader: LeaderConfig,
    shards: u32,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let order = leases::preferred_order(&leader.identity, shards);
    let lease = Duration::from_secs(leader.lease_seconds);
    let leases_api: Api<Lease> = Api::namespaced(client.clone(), &leader.lease_namespace);
    let mut competing = JoinSet::new();
    let compete = |competing: &mut JoinSet<anyhow::Result<()>>, shard: u32, delay: Option<usize>| {
        let config = LeaderConfig {
            lease_name: lease_name(&leader, shard),
            ..leader.clone()
        };
        let (ctx, client, stop) = (ctx.clone(), client.clone(), stop.clone());
        competing.spawn(async move {
            if let Some(rank) = delay
                && !wait_turn(&ctx, rank, shards, lease, &stop).await
            {
                return Ok(());
            }
            leader::run_while_leading(client, config, stop, move |term| {
                let ctx = ctx.clone();
                async move {
                    ctx.leases.own(shard, true);
                    info!(shard, owned = ?ctx.leases.owned(), "took over a shard");
                    instance::wake_shard(&ctx, shard);
                    term.cancelled().await;
                    ctx.leases.own(shard, false);
                }
            })
            .await
        });
    };

    let mut tried = BTreeSet::new();
    loop {
        let states = match read_states(&leases_api, &leader, shards).await {
            Ok(states) => states,
            Err(error) => {
                // Without a view of the Leases every shard goes by rank.
                warn!(%error, "reading the shard Leases failed; competing for every shard by rank");
                break;
            }
        };
        let Some(shard) = first_claim(&order, &states, &tried) else {
            break;
        };
        tried.insert(shard);
        compete(&mut competing, shard, None);
        if got(&ctx, shard, claim_wait(lease), &stop).await {
            break;
        }
    }
    for (rank, shard) in order.iter().copied().enumerate() {
        if !tried.contains(&shard) {
            compete(&mut competing, shard, Some(rank));
        }
    }
    while let Some(joined) = competing.join_next().await {
        joined??;
    }
    Ok(())
}

async fn read_states(api: &Api<Lease>, leader: &LeaderConfig, shards: u32) -> kube::Result<Vec<LeaseState>> {
    let mut states = Vec::with_capacity(shards as usize);
    for shard in 0..shards {
        let lease = api.get_opt(&lease_name(leader, shard)).await?;
        states.push(state_of(lease.as_ref(), &leader.identity, SystemTime::now()));
    }
    Ok(states)
}

/// Whether this replica holds `shard` within `wait`.
async fn got(ctx: &Context, shard: u32, wait: Duration, stop: &CancellationToken) -> bool {
    let until = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < until && !stop.is_cancelled() {
        if ctx.leases.owned().contains(&shard) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ctx.leases.owned().contains(&shard)
}

/// Waits for a shard's turn: `rank` Lease durations, then the [`handicap`]
/// of the shards held then, again while more were gained meanwhile. False
/// when stopped first.
async fn wait_turn(ctx: &Context, rank: usize, shards: u32, lease: Duration, stop: &CancellationToken) -> bool {
    let mut wait = lease * u32::try_from(rank).unwrap_or(u32::MAX);
    loop {
        let held = ctx.leases.owned().len();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return false,
        }
        if ctx.leases.owned().len() <= held && wait >= handicap(held, shards, lease) {
            return true;
        }
        wait = handicap(ctx.leases.owned().len(), shards, lease);
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn lease(holder: Option<&str>, renewed: u64) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_string),
                renew_time: Some(MicroTime(Timestamp::from_second(renewed as i64).unwrap())),
                lease_duration_seconds: Some(15),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        }
    }

    #[test]
    fn a_lease_is_free_when_absent_released_or_not_renewed() {
        assert_eq!(state_of(None, "a", at(NOW)), LeaseState::Free);
        assert_eq!(state_of(Some(&lease(None, NOW)), "a", at(NOW)), LeaseState::Free);
        assert_eq!(state_of(Some(&lease(Some(""), NOW)), "a", at(NOW)), LeaseState::Free);
        assert_eq!(
            state_of(Some(&lease(Some("b"), NOW - 10)), "a", at(NOW)),
            LeaseState::Theirs
        );
        assert_eq!(
            state_of(Some(&lease(Some("b"), NOW - 15)), "a", at(NOW)),
            LeaseState::Free
        );
        assert_eq!(
            state_of(Some(&lease(Some("a"), NOW - 1)), "a", at(NOW)),
            LeaseState::Mine
        );
    }

    #[test]
    fn the_first_claim_is_the_first_free_shard_in_order_not_tried_yet() {
        use LeaseState::*;
        let order = [2, 3, 0, 1];
        let states = [Free, Theirs, Theirs, Free];
        assert_eq!(first_claim(&order, &states, &BTreeSet::new()), Some(3));
        // Another replica took 3 first: the next free one.
        assert_eq!(first_claim(&order, &states, &BTreeSet::from([3])), Some(0));
        assert_eq!(
            first_claim(&order, &[Theirs, Theirs, Theirs, Theirs], &BTreeSet::new()),
            None
        );
        // After a restart within the Lease: its own shard again.
        assert_eq!(
            first_claim(&order, &[Theirs, Mine, Free, Free], &BTreeSet::new()),
            Some(2)
        );
        assert_eq!(
            first_claim(&order, &[Theirs, Mine, Theirs, Theirs], &BTreeSet::new()),
            Some(1)
        );
    }

    #[test]
    fn replicas_holding_fewer_shards_come_first() {
        let lease = Duration::from_secs(15);
        assert_eq!(handicap(0, 4, lease), Duration::ZERO);
        // One shard held of four: a minute, longer than the last rank's
        // wait of a replica holding none (3 × 15 s).
        assert_eq!(handicap(1, 4, lease), Duration::from_secs(60));
        assert!(handicap(1, 4, lease) > lease * 3);
        assert_eq!(handicap(2, 4, lease), Duration::from_secs(120));
    }
}
