//! One process-wide bound on probes running at once, shared by the instance
//! controller (which runs every scheduled and requested probe, sync
//! sessions' included) and the façade's ad-hoc connection tests, so neither
//! a burst of scheduled probes, a full sync over 10,000 instances nor a
//! stream of REST requests can open more connections than the process (and
//! the databases) can take.
//!
//! A probe runs only with a [`ProbePermit`], which only a [`ProbeBudget`]
//! hands out: `run_probes` takes one by value, so no path can probe around
//! the budget. The controller waits for a permit as long as it takes; a
//! REST request waits at most a bounded time and then answers that the
//! probes are busy.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Probes at once per process, unless `--max-concurrent-probes` says
/// otherwise. Sized for 2 cores and 10,000 instances: testing each
/// instance every 60 s is ~170 probes a second, and at ~100 ms a probe
/// that keeps ~17 slots busy; the rest leaves room for unreachable hosts
/// that hold a slot for the whole connect timeout, a sync session and the
/// façade's actions, while keeping TLS handshakes within two cores and the
/// connections any one database server sees well below its limit.
pub const DEFAULT_MAX_CONCURRENT_PROBES: usize = 32;

/// The budget; clones share it.
#[derive(Clone, Debug)]
pub struct ProbeBudget {
    slots: Arc<Semaphore>,
    size: usize,
}

/// The right to run one set of probes; the slot is free again when this is
/// dropped.
#[derive(Debug)]
pub struct ProbePermit {
    _slot: OwnedSemaphorePermit,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("all {size} probe slots stayed busy for {waited:?}; try again shortly")]
pub struct ProbesBusy {
    pub size: usize,
    pub waited: Duration,
}

impl ProbeBudget {
    /// A budget of `size` probes at once (at least one).
    pub fn new(size: usize) -> Self {
        let size = size.max(1);
        ProbeBudget {
            slots: Arc::new(Semaphore::new(size)),
            size,
        }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Slots free right now.
    pub fn available(&self) -> usize {
        self.slots.available_permits()
    }

    /// Waits for a slot as long as it takes (first come, first served).
    pub async fn acquire(&self) -> ProbePermit {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the probe budget's semaphore is never closed");
        ProbePermit { _slot: slot }
    }

    /// Waits for a slot at most `wait`.
    pub async fn acquire_within(&self, wait: Duration) -> Result<ProbePermit, ProbesBusy> {
        tokio::time::timeout(wait, self.acquire())
            .await
            .map_err(|_| ProbesBusy {
                size: self.size,
                waited: wait,
            })
    }
}

impl Default for ProbeBudget {
    fn default() -> Self {
        ProbeBudget::new(DEFAULT_MAX_CONCURRENT_PROBES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn permits_are_shared_by_clones_and_freed_on_drop() {
        let budget = ProbeBudget::new(2);
        let clone = budget.clone();
        let first = budget.acquire().await;
        let _second = clone.acquire().await;
        assert_eq!(budget.available(), 0);
        let busy = budget.acquire_within(Duration::from_millis(20)).await.unwrap_err();
        assert_eq!(busy.size, 2);
        drop(first);
        assert_eq!(clone.available(), 1);
        assert!(budget.acquire_within(Duration::from_millis(20)).await.is_ok());
    }

    #[tokio::test]
    async fn a_waiter_gets_the_slot_freed_while_it_waits() {
        let budget = ProbeBudget::new(1);
        let held = budget.acquire().await;
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.acquire_within(Duration::from_secs(5)).await.is_ok() })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        assert!(waiter.await.unwrap());
    }

    #[test]
    fn a_budget_has_at_least_one_slot() {
        assert_eq!(ProbeBudget::new(0).size(), 1);
    }
}
