//! At most one login per instance per interval through the façade
//! (`--test-connection-interval`): test-connection by `instance_id` and
//! batch tests alike go through [`LastTests::test`], which answers a repeat
//! within the interval with the last result instead of asking the
//! controller to log in again. Any caller with `view` may ask, and repeated
//! logins could trip a server's failed-login lockout.
//!
//! The memory is per façade replica (monotonic time, so no clock skew can
//! stretch or void it): with R replicas an instance sees at most R forced
//! logins per interval.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::envelope::ApiResult;

/// Instances remembered before the stale ones are forgotten.
const PRUNE_ABOVE: usize = 1024;

/// Whether a test finished at `tested` may stand for one asked at `now`.
pub fn still_fresh(tested: Instant, now: Instant, interval: Duration) -> bool {
    now.saturating_duration_since(tested) < interval
}

/// One result, and when its test finished.
#[derive(Clone)]
struct Last<T> {
    finished: Instant,
    result: T,
}

type Slot<T> = Arc<tokio::sync::Mutex<Option<Last<T>>>>;

/// The last test result of each instance (by uid and generation: a changed
/// spec is a new thing to test).
pub struct LastTests<T> {
    interval: Duration,
    slots: Mutex<HashMap<String, Slot<T>>>,
}

/// A result, and whether it is an earlier test's.
#[derive(Clone, Debug, PartialEq)]
pub struct Tested<T> {
    pub result: T,
    pub cached: bool,
}

impl<T: Clone> LastTests<T> {
    pub fn new(interval: Duration) -> Self {
        LastTests {
            interval,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// `run`'s result, or the last one for `key` when that is fresh. Tests
    /// of one key take turns, so a burst of requests is one login. An
    /// error (nothing was answered) is not remembered.
    pub async fn test<F>(&self, key: String, run: F) -> ApiResult<Tested<T>>
    where
        F: Future<Output = ApiResult<T>>,
    {
        let slot = self.slot(key);
        let mut last = slot.lock().await;
        if let Some(last) = last
            .as_ref()
            .filter(|l| still_fresh(l.finished, Instant::now(), self.interval))
        {
            return Ok(Tested {
                result: last.result.clone(),
                cached: true,
            });
        }
        let result = run.await?;
        *last = Some(Last {
            finished: Instant::now(),
            result: result.clone(),
        });
        Ok(Tested { result, cached: false })
    }

    fn slot(&self, key: String) -> Slot<T> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.len() > PRUNE_ABOVE {
            let now = Instant::now();
            // Keep slots in use (someone holds or waits on them) and fresh
            // results; the rest would be tested anew anyway.
            slots.retain(|_, slot| {
                Arc::strong_count(slot) > 1
                    || slot
                        .try_lock()
                        .map(|last| {
                            last.as_ref()
                                .is_some_and(|l| still_fresh(l.finished, now, self.interval))
                        })
                        .unwrap_or(true)
            });
        }
        slots.entry(key).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::envelope::{ApiError, Code};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_result_is_fresh_for_the_interval_only() {
        let t0 = Instant::now();
        let interval = Duration::from_secs(10);
        assert!(still_fresh(t0, t0, interval));
        assert!(still_fresh(t0, t0 + Duration::from_millis(9_999), interval));
        assert!(!still_fresh(t0, t0 + interval, interval));
        // An earlier `now` (never with a monotonic clock) is not stale.
        assert!(still_fresh(t0 + Duration::from_secs(1), t0, interval));
    }

    #[tokio::test]
    async fn a_repeat_within_the_interval_gets_the_last_result_marked_cached() {
        let tests = LastTests::new(Duration::from_secs(3600));
        let logins = AtomicUsize::new(0);
        let login = || async { Ok::<_, ApiError>(logins.fetch_add(1, Ordering::SeqCst) + 1) };
        let first = tests.test("db/1".into(), login()).await.unwrap();
        let again = tests.test("db/1".into(), login()).await.unwrap();
        assert_eq!(
            first,
            Tested {
                result: 1,
                cached: false
            }
        );
        assert_eq!(
            again,
            Tested {
                result: 1,
                cached: true
            }
        );
        // Another instance, or the same one with a new spec, is its own.
        assert!(!tests.test("db/2".into(), login()).await.unwrap().cached);
        assert!(!tests.test("other/1".into(), login()).await.unwrap().cached);
        assert_eq!(logins.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_login_and_errors_are_not_kept() {
        let tests = LastTests::new(Duration::from_secs(3600));
        let logins = AtomicUsize::new(0);
        let login = || async {
            logins.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, ApiError>("ok")
        };
        let answers = futures_util::future::join_all((0..5).map(|_| tests.test("db/1".into(), login()))).await;
        assert_eq!(logins.load(Ordering::SeqCst), 1);
        assert_eq!(answers.iter().filter(|a| a.as_ref().unwrap().cached).count(), 4);

        let failing = tests
            .test("flaky/1".into(), async {
                Err::<&str, _>(ApiError::new(Code::UpstreamUnavailable, "no answer"))
            })
            .await;
        assert!(failing.is_err());
        assert!(!tests.test("flaky/1".into(), login()).await.unwrap().cached);
    }

    #[tokio::test]
    async fn after_the_interval_it_tests_again() {
        let tests = LastTests::new(Duration::from_millis(1));
        tests.test("db/1".into(), async { Ok::<_, ApiError>(1) }).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let again = tests.test("db/1".into(), async { Ok::<_, ApiError>(2) }).await.unwrap();
        assert_eq!(
            again,
            Tested {
                result: 2,
                cached: false
            }
        );
    }
}
