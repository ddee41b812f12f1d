//! Who is calling and what they may do (SPEC §3.3): bearer tokens checked
//! with a TokenReview, permissions with a SubjectAccessReview against the
//! caller's RBAC, both cached briefly so a busy client costs the API server
//! one review per token and verb every few seconds, not one per request.
//!
//! Tokens that fail their review are cached apart from good ones, so junk
//! tokens cannot push a good one out, and each client address may cause
//! only so many failed reviews (`FailedReviewLimit`, a `governor` keyed
//! limiter); beyond that an unknown token is answered 429 without a review.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::PostParams;
use kube::{Api, Client};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::envelope::{ApiError, Code};
use crate::crd::keys::GROUP;
use crate::metrics::Metrics;

/// Long enough to absorb bursts, short enough that a revoked token or a
/// removed RoleBinding stops working within seconds.
const CACHE_TTL: Duration = Duration::from_secs(10);
/// Bounds memory whatever callers send.
const CACHE_CAPACITY: usize = 4096;
/// Client addresses the failed-review limiter tracks before it forgets the
/// ones whose allowance is full again.
const TRACKED_CLIENTS: usize = 10_000;

/// How many TokenReviews of invalid tokens one client address may cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailedReviewLimit {
    pub per_minute: NonZeroU32,
    /// How many may come at once.
    pub burst: NonZeroU32,
}

impl Default for FailedReviewLimit {
    fn default() -> Self {
        FailedReviewLimit {
            per_minute: NonZeroU32::new(60).expect("non-zero"),
            burst: NonZeroU32::new(20).expect("non-zero"),
        }
    }
}

/// The key a client's failed reviews are counted under: its address, with
/// IPv6 cut to its /64 (what one host is usually given, so rotating
/// through it buys nothing) and IPv4-mapped IPv6 as IPv4.
pub fn client_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

/// Whole seconds to wait, at least one: `Retry-After` has no fractions.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// Tokens and RBAC checked by the Kubernetes API.
    Kubernetes,
    /// Everyone is an all-powerful local user; for a laptop only.
    Disabled,
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, ToSchema)]
pub struct Caller {
    pub username: String,
    pub uid: String,
    pub groups: Vec<String>,
    #[serde(skip)]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl Caller {
    fn local() -> Self {
        Caller {
            username: "local-user".into(),
            uid: String::new(),
            groups: vec![],
            extra: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    View,
    /// Reading one object: what the inventories ask on `dbinventories`, so
    /// a role can list instances without seeing their accounts.
    Get,
    Create,
    Update,
    Delete,
}

impl Permission {
    /// The contract's four, as `/auth/me` lists them for instances and
    /// tags (`Get` is asked only on inventories).
    pub const ALL: [Permission; 4] = [
        Permission::View,
        Permission::Create,
        Permission::Update,
        Permission::Delete,
    ];

    /// The RBAC verb the permission stands for.
    pub fn verb(self) -> &'static str {
        match self {
            Permission::View => "list",
            Permission::Get => "get",
            Permission::Create => "create",
            Permission::Update => "update",
            Permission::Delete => "delete",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Permission::View => "view",
            Permission::Get => "get",
            Permission::Create => "create",
            Permission::Update => "update",
            Permission::Delete => "delete",
        }
    }
}

/// The resource whose RBAC an endpoint checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Guarded {
    Instances,
    Tags,
    /// Each instance's databases and accounts (DbInventory).
    Inventories,
    /// Kubernetes Events (core API group): the console shows an
    /// instance's recent ones to whoever may list them.
    Events,
}

impl Guarded {
    /// The resource's plural, as RBAC names it.
    pub fn plural(self) -> &'static str {
        match self {
            Guarded::Instances => "dbinstances",
            Guarded::Tags => "dbtags",
            Guarded::Inventories => "dbinventories",
            Guarded::Events => "events",
        }
    }

    /// The resource's API group, as RBAC names it.
    pub fn group(self) -> &'static str {
        match self {
            Guarded::Events => "",
            Guarded::Instances | Guarded::Tags | Guarded::Inventories => GROUP,
        }
    }
}

pub struct Authenticator {
    mode: AuthMode,
    client: Client,
    namespace: String,
    /// Tokens that passed their review, by digest: we never keep a token
    /// itself.
    tokens: TtlCache<[u8; 32], Caller>,
    /// Tokens that failed theirs, bounded on their own: however many junk
    /// tokens arrive, they only ever push each other out.
    rejected: TtlCache<[u8; 32], ()>,
    /// Failed reviews per client address.
    failed_reviews: DefaultKeyedRateLimiter<IpAddr>,
    /// Addresses out of allowance, and until when: the limiter is charged
    /// only by failures, so whether to review at all is asked here.
    refused_until: TtlCache<IpAddr, Instant>,
    decisions: TtlCache<(Caller, Permission, Guarded), bool>,
    metrics: Arc<Metrics>,
}

impl Authenticator {
    pub fn new(
        mode: AuthMode,
        client: Client,
        namespace: String,
        limit: FailedReviewLimit,
        metrics: Arc<Metrics>,
    ) -> Self {
        Authenticator {
            mode,
            client,
            namespace,
            tokens: TtlCache::new(CACHE_TTL, CACHE_CAPACITY),
            rejected: TtlCache::new(CACHE_TTL, CACHE_CAPACITY),
            failed_reviews: RateLimiter::keyed(Quota::per_minute(limit.per_minute).allow_burst(limit.burst)),
            // A refusal lasts until one failure's worth of allowance is
            // back: at most a minute.
            refused_until: TtlCache::new(Duration::from_secs(60), CACHE_CAPACITY),
            decisions: TtlCache::new(CACHE_TTL, CACHE_CAPACITY),
            metrics,
        }
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// The caller behind an `Authorization` header value, sent from
    /// `client` (the peer address; `None` counts as one shared client).
    pub async fn authenticate(&self, authorization: Option<&str>, client: Option<IpAddr>) -> Result<Caller, ApiError> {
        if self.mode == AuthMode::Disabled {
            return Ok(Caller::local());
        }
        let token = authorization
            .and_then(bearer_token)
            .ok_or_else(|| ApiError::new(Code::Unauthenticated, "an Authorization: Bearer token is required"))?;
        let invalid = || ApiError::new(Code::Unauthenticated, "the token is invalid or expired");
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        if let Some(caller) = self.tokens.get(&key, now) {
            return Ok(caller);
        }
        if self.rejected.get(&key, now).is_some() {
            return Err(invalid());
        }
        let client = client_key(client.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)));
        if let Some(until) = self.refused_until.get(&client, now).filter(|until| *until > now) {
            self.metrics.token_reviewed("rate_limited");
            return Err(too_many_failed_reviews(until - now));
        }
        match self.review_token(token).await? {
            Some(caller) => {
                self.metrics.token_reviewed("authenticated");
                self.tokens.insert(key, caller.clone(), Instant::now());
                Ok(caller)
            }
            None => {
                self.metrics.token_reviewed("rejected");
                self.rejected.insert(key, (), Instant::now());
                self.charge_failure(client);
                Err(invalid())
            }
        }
    }

    /// Counts a failed review against `client`; once its allowance is
    /// spent, its unknown tokens are refused until some is back.
    fn charge_failure(&self, client: IpAddr) {
        if self.failed_reviews.len() >= TRACKED_CLIENTS {
            self.failed_reviews.retain_recent();
        }
        if let Err(not_until) = self.failed_reviews.check_key(&client) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            self.refused_until.insert(client, Instant::now() + wait, Instant::now());
        }
    }

    async fn review_token(&self, token: &str) -> Result<Option<Caller>, ApiError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await?;
        let Some(status) = answer.status.filter(|s| s.authenticated == Some(true)) else {
            return Ok(None);
        };
        let Some(user) = status.user else { return Ok(None) };
        Ok(Some(Caller {
            username: user.username.unwrap_or_default(),
            uid: user.uid.unwrap_or_default(),
            groups: user.groups.unwrap_or_default(),
            extra: user.extra.unwrap_or_default(),
        }))
    }

    /// Whether RBAC lets the caller do `permission` on `resource` in the
    /// façade's namespace.
    pub async fn allowed(&self, caller: &Caller, permission: Permission, resource: Guarded) -> Result<bool, ApiError> {
        if self.mode == AuthMode::Disabled {
            return Ok(true);
        }
        let key = (caller.clone(), permission, resource);
        if let Some(allowed) = self.decisions.get(&key, Instant::now()) {
            return Ok(allowed);
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(caller.username.clone()),
                uid: Some(caller.uid.clone()).filter(|u| !u.is_empty()),
                groups: Some(caller.groups.clone()),
                extra: Some(caller.extra.clone()).filter(|e| !e.is_empty()),
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(self.namespace.clone()),
                    verb: Some(permission.verb().into()),
                    group: Some(resource.group().into()),
                    resource: Some(resource.plural().into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await?;
        let allowed = answer.status.is_some_and(|s| s.allowed);
        self.decisions.insert(key, allowed, Instant::now());
        Ok(allowed)
    }

    /// 403 unless allowed.
    pub async fn require(&self, caller: &Caller, permission: Permission, resource: Guarded) -> Result<(), ApiError> {
        if self.allowed(caller, permission, resource).await? {
            Ok(())
        } else {
            Err(ApiError::new(
                Code::PermissionDenied,
                format!(
                    "{} may not {} {}",
                    caller.username,
                    permission.name(),
                    resource.plural()
                ),
            ))
        }
    }
}

/// 429 `TOO_MANY_REQUESTS`: the client's failed reviews are used up.
fn too_many_failed_reviews(wait: Duration) -> ApiError {
    let seconds = retry_after_seconds(wait);
    ApiError::new(
        Code::TooManyRequests,
        format!(
            "too many invalid tokens from this address; a new token is reviewed again in {seconds} s \
             (tokens accepted in the last 10 s keep working)"
        ),
    )
    .with_data(serde_json::json!({ "retry_after_seconds": seconds }))
}

fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A small map whose entries expire, with a hard size bound: when full,
/// expired entries go first, then everything (a cache miss only costs a
/// review).
pub struct TtlCache<K, V> {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        TtlCache {
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, key: &K, now: Instant) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(_, at)| now.saturating_duration_since(*at) < self.ttl)
            .map(|(v, _)| v.clone())
    }

    pub fn insert(&self, key: K, value: V, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity {
            entries.retain(|_, (_, at)| now.saturating_duration_since(*at) < self.ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, (value, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bearer_tokens_are_read() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }

    #[test]
    fn cache_entries_expire() {
        let cache = TtlCache::new(Duration::from_secs(10), 8);
        let t0 = Instant::now();
        cache.insert("a", 1, t0);
        assert_eq!(cache.get(&"a", t0 + Duration::from_secs(9)), Some(1));
        assert_eq!(cache.get(&"a", t0 + Duration::from_secs(10)), None);
    }

    #[test]
    fn cache_stays_within_its_bound() {
        let cache = TtlCache::new(Duration::from_secs(10), 3);
        let t0 = Instant::now();
        for i in 0..10 {
            cache.insert(i, i, t0);
        }
        assert!(cache.entries.lock().unwrap().len() <= 3);
        assert_eq!(cache.get(&9, t0), Some(9));
    }

    #[test]
    fn clients_are_keyed_by_address_and_ipv6_by_its_64() {
        let v4: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(client_key(v4), v4);
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(client_key(mapped), v4);
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_eq!(client_key(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        assert_ne!(client_key(a), client_key(other));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(3)), 3);
        assert_eq!(retry_after_seconds(Duration::from_millis(3001)), 4);
    }

    #[test]
    fn a_spent_allowance_is_a_429_that_says_when_to_retry() {
        let response =
            axum::response::IntoResponse::into_response(too_many_failed_reviews(Duration::from_millis(2500)));
        assert_eq!(response.status(), axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[axum::http::header::RETRY_AFTER], "3");
    }

    #[test]
    fn permissions_map_to_rbac_verbs() {
        let verbs: Vec<_> = Permission::ALL.iter().map(|p| p.verb()).collect();
        assert_eq!(verbs, ["list", "create", "update", "delete"]);
        assert_eq!(
            (Permission::Get.verb(), Guarded::Inventories.plural()),
            ("get", "dbinventories")
        );
        assert_eq!(
            (Guarded::Events.group(), Guarded::Inventories.group()),
            ("", "dbfleet.io")
        );
    }
}
