//! Who is calling and what they may do (SPEC §3.3): bearer tokens checked
//! with a TokenReview, permissions with a SubjectAccessReview against the
//! caller's RBAC, both cached briefly so a busy client costs the API server
//! one review per token and verb every few seconds, not one per request.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::PostParams;
use kube::{Api, Client};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::envelope::{ApiError, Code};
use crate::crd::keys::GROUP;

/// Long enough to absorb bursts, short enough that a revoked token or a
/// removed RoleBinding stops working within seconds.
const CACHE_TTL: Duration = Duration::from_secs(10);
/// Bounds memory whatever callers send.
const CACHE_CAPACITY: usize = 4096;

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
    Create,
    Update,
    Delete,
}

impl Permission {
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
            Permission::Create => "create",
            Permission::Update => "update",
            Permission::Delete => "delete",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Permission::View => "view",
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
}

impl Guarded {
    /// The resource's plural, as RBAC names it.
    pub fn plural(self) -> &'static str {
        match self {
            Guarded::Instances => "dbinstances",
            Guarded::Tags => "dbtags",
        }
    }
}

pub struct Authenticator {
    mode: AuthMode,
    client: Client,
    namespace: String,
    /// By token digest: we never keep a token itself.
    tokens: TtlCache<[u8; 32], Option<Caller>>,
    decisions: TtlCache<(Caller, Permission, Guarded), bool>,
}

impl Authenticator {
    pub fn new(mode: AuthMode, client: Client, namespace: String) -> Self {
        Authenticator {
            mode,
            client,
            namespace,
            tokens: TtlCache::new(CACHE_TTL, CACHE_CAPACITY),
            decisions: TtlCache::new(CACHE_TTL, CACHE_CAPACITY),
        }
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// The caller behind an `Authorization` header value.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, ApiError> {
        if self.mode == AuthMode::Disabled {
            return Ok(Caller::local());
        }
        let token = authorization
            .and_then(bearer_token)
            .ok_or_else(|| ApiError::new(Code::Unauthenticated, "an Authorization: Bearer token is required"))?;
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let caller = match self.tokens.get(&key, Instant::now()) {
            Some(cached) => cached,
            None => {
                let reviewed = self.review_token(token).await?;
                self.tokens.insert(key, reviewed.clone(), Instant::now());
                reviewed
            }
        };
        caller.ok_or_else(|| ApiError::new(Code::Unauthenticated, "the token is invalid or expired"))
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
                    group: Some(GROUP.into()),
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
    fn permissions_map_to_rbac_verbs() {
        let verbs: Vec<_> = Permission::ALL.iter().map(|p| p.verb()).collect();
        assert_eq!(verbs, ["list", "create", "update", "delete"]);
    }
}
