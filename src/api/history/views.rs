//! The JSON of capacity history and account changes, and what a request
//! selects from a change log (pure).

use std::time::SystemTime;

use serde::Serialize;
use utoipa::ToSchema;

use crate::api::envelope::{ApiError, ApiResult, format_time};
use crate::api::input::Query;
use crate::api::pagination::PageRequest;
use crate::crd::DbInstance;
use crate::crd::history::{AccountChange, AccountHistory, CapacityHistory, CapacitySample, ChangeKind};
use crate::observe::{growth, history};

/// One capacity sample.
#[derive(Serialize, Debug, PartialEq, ToSchema)]
pub struct SampleView {
    /// When the collection ran (RFC 3339).
    pub at: String,
    pub total_size_bytes: u64,
    pub database_count: u32,
    /// The largest databases then, largest first.
    pub databases: Vec<SampledDatabaseView>,
}

#[derive(Serialize, Debug, PartialEq, ToSchema)]
pub struct SampledDatabaseView {
    pub name: String,
    pub size_bytes: u64,
}

impl From<&CapacitySample> for SampleView {
    fn from(s: &CapacitySample) -> Self {
        SampleView {
            at: format_time(s.at.0),
            total_size_bytes: s.total_size_bytes,
            database_count: s.database_count,
            databases: s
                .databases
                .iter()
                .map(|d| SampledDatabaseView {
                    name: d.name.clone(),
                    size_bytes: d.size_bytes,
                })
                .collect(),
        }
    }
}

/// The least-squares line through the samples' totals.
#[derive(Serialize, Debug, PartialEq, ToSchema)]
pub struct FitView {
    /// Samples the fit is over.
    pub samples: usize,
    /// Growth in bytes per day; null when there are too few samples (fewer
    /// than 7) or the fit is poor (R² < 0.7): `reason` says which.
    pub bytes_per_day: Option<i64>,
    /// R² of the line (0 to 1); null with too few samples.
    pub r_squared: Option<f64>,
    /// `TooFewSamples` or `PoorFit` when there is no rate.
    pub reason: Option<String>,
    /// The reason for people.
    pub message: Option<String>,
}

/// When the server reaches its limit at the fitted rate.
#[derive(Serialize, Debug, PartialEq, ToSchema)]
pub struct ForecastView {
    /// `spec.capacity.limitBytes` of the instance; null when unset.
    pub limit_bytes: Option<u64>,
    /// The newest sample's total.
    pub current_bytes: Option<u64>,
    /// Days from the newest sample until the limit (0 when reached); null
    /// without a limit or a rate, or when the server is not growing.
    pub days_until_full: Option<f64>,
    /// When, at this rate (RFC 3339).
    pub full_at: Option<String>,
}

/// `GET /instances/{id}/capacity/history`.
#[derive(Serialize, Debug, PartialEq, ToSchema)]
pub struct CapacityHistoryView {
    /// Oldest first.
    pub samples: Vec<SampleView>,
    pub fit: FitView,
    pub forecast: ForecastView,
}

impl CapacityHistoryView {
    /// `instance`'s history against its own limit
    /// (`spec.capacity.limitBytes`).
    pub fn of_instance(instance: &DbInstance, capacity: Option<&CapacityHistory>) -> Self {
        let limit = instance.spec.capacity.as_ref().and_then(|c| c.limit_bytes);
        Self::of(capacity, limit)
    }

    pub fn of(capacity: Option<&CapacityHistory>, limit: Option<u64>) -> Self {
        let empty = CapacityHistory::default();
        let capacity = capacity.unwrap_or(&empty);
        let points = history::points(capacity);
        let fitted = growth::fit(&points);
        let growth = growth::growth(&points).map(|g| growth::with_limit(&g, limit));
        CapacityHistoryView {
            samples: capacity.samples.iter().map(SampleView::from).collect(),
            fit: FitView {
                samples: points.len(),
                bytes_per_day: growth.as_ref().and_then(|g| g.bytes_per_day),
                r_squared: growth.as_ref().and_then(|g| g.r_squared),
                reason: fitted.err().map(|e| e.reason().to_string()),
                message: fitted.err().map(|e| e.message()),
            },
            forecast: ForecastView {
                limit_bytes: limit,
                current_bytes: growth.as_ref().map(|g| g.last_total_bytes),
                days_until_full: growth.as_ref().and_then(|g| g.days_until_full),
                full_at: growth.and_then(|g| g.full_at).map(|t| format_time(t.0)),
            },
        }
    }
}

/// One account change.
#[derive(Serialize, Debug, Clone, PartialEq, ToSchema)]
pub struct ChangeView {
    /// When the sync that found it ran (RFC 3339).
    pub at: String,
    pub account: String,
    /// The host of a MySQL `user@host` account; null on PostgreSQL.
    pub host: Option<String>,
    /// `account_added`, `account_removed`, `privileges_gained`,
    /// `privileges_lost`, `superuser_gained`, `superuser_lost`, `locked`,
    /// `unlocked`, `login_enabled`, `login_disabled`.
    pub kind: &'static str,
    /// For privileges: the database (or MySQL pattern); null for
    /// server-wide (MySQL `ON *.*`) privileges and other kinds.
    pub database: Option<String>,
    /// For privileges: which, normalised (upper case, sorted, each once).
    pub privileges: Vec<String>,
}

impl From<&AccountChange> for ChangeView {
    fn from(c: &AccountChange) -> Self {
        ChangeView {
            at: format_time(c.at.0),
            account: c.account.clone(),
            host: c.host.clone(),
            kind: c.kind.as_str(),
            database: c.database.clone(),
            privileges: c.privileges.clone(),
        }
    }
}

/// What a change-log request selects: `account` (exact name), `host`,
/// `kind` (repeatable), `since` (RFC 3339, inclusive).
#[derive(Debug, Default, PartialEq)]
pub struct ChangeFilter {
    pub account: Option<String>,
    pub host: Option<String>,
    pub kinds: Vec<ChangeKind>,
    /// Seconds since the epoch.
    pub since: Option<i64>,
}

impl ChangeFilter {
    pub fn from_query(query: &Query) -> ApiResult<Self> {
        let mut kinds = Vec::new();
        for value in query.all("kind").into_iter().flat_map(|v| v.split(',')) {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            match ChangeKind::parse(value) {
                Some(kind) => kinds.push(kind),
                None => {
                    let names: Vec<&str> = ChangeKind::ALL.iter().map(|k| k.as_str()).collect();
                    return Err(ApiError::field(
                        "kind",
                        format!("kind must be one of {}, not {value:?}", names.join(", ")),
                    ));
                }
            }
        }
        let since = match query.exact("since") {
            None => None,
            Some(text) => Some(
                text.parse::<k8s_openapi::jiff::Timestamp>()
                    .map_err(|_| {
                        ApiError::field(
                            "since",
                            format!("since must be an RFC 3339 time such as 2026-01-08T10:00:00Z, not {text:?}"),
                        )
                    })?
                    .as_second(),
            ),
        };
        Ok(ChangeFilter {
            account: query.exact("account").map(str::to_owned),
            host: query.exact("host").map(str::to_owned),
            kinds,
            since,
        })
    }

    pub fn matches(&self, change: &AccountChange) -> bool {
        self.account.as_ref().is_none_or(|a| *a == change.account)
            && self.host.as_ref().is_none_or(|h| Some(h) == change.host.as_ref())
            && (self.kinds.is_empty() || self.kinds.contains(&change.kind))
            && self.since.is_none_or(|since| change.at.0.as_second() >= since)
    }
}

/// A page of changes, newest first.
#[derive(Serialize, Debug, ToSchema)]
pub struct ChangesPage<T> {
    pub items: Vec<T>,
    pub total: usize,
    pub page: usize,
    pub pages: usize,
    pub limit: usize,
    /// Per instance: entries dropped from its log (the oldest) to keep it
    /// within its bound. Fleet-wide: null.
    pub dropped: Option<u64>,
    /// Fleet-wide: from when the façade holds every change (RFC 3339);
    /// null when it holds every change still logged. A `since` before it
    /// may miss some; each instance's own history has them all.
    pub complete_since: Option<String>,
}

/// One instance's change log as `GET /instances/{id}/accounts/history`
/// answers it: newest first, what `filter` keeps, one page.
pub fn instance_changes(
    log: Option<&AccountHistory>,
    filter: &ChangeFilter,
    page: PageRequest,
) -> ChangesPage<ChangeView> {
    let entries = log.map(|l| l.entries.as_slice()).unwrap_or_default();
    let selected: Vec<ChangeView> = entries
        .iter()
        .rev()
        .filter(|c| filter.matches(c))
        .map(ChangeView::from)
        .collect();
    let paged = page.apply(selected);
    ChangesPage {
        items: paged.items,
        total: paged.total,
        page: paged.page,
        pages: paged.pages,
        limit: paged.limit,
        dropped: Some(log.map_or(0, |l| l.dropped)),
        complete_since: None,
    }
}

/// A time as RFC 3339, from seconds since the epoch.
pub fn rfc3339(seconds: i64) -> String {
    let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(seconds.max(0) as u64);
    format_time(k8s_openapi::jiff::Timestamp::try_from(at).unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::status::time;
    use std::time::Duration;

    fn change(account: &str, kind: ChangeKind, secs: u64) -> AccountChange {
        AccountChange {
            at: time(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)),
            account: account.into(),
            host: Some("%".into()),
            kind,
            database: None,
            privileges: vec![],
        }
    }

    #[test]
    fn filters_by_account_kind_and_since() {
        let filter = ChangeFilter::from_query(&Query::parse(
            "account=app&kind=locked,unlocked&since=1970-01-01T00:01:40Z",
        ))
        .unwrap();
        assert_eq!(filter.since, Some(100));
        assert!(filter.matches(&change("app", ChangeKind::Locked, 100)));
        assert!(!filter.matches(&change("app", ChangeKind::Locked, 99)));
        assert!(!filter.matches(&change("ops", ChangeKind::Locked, 200)));
        assert!(!filter.matches(&change("app", ChangeKind::AccountAdded, 200)));
        assert!(
            ChangeFilter::from_query(&Query::parse(""))
                .unwrap()
                .matches(&change("x", ChangeKind::Locked, 0))
        );
    }

    #[test]
    fn unknown_kinds_and_bad_times_are_refused_naming_the_field() {
        for (query, field) in [
            ("kind=grant", "kind"),
            ("since=yesterday", "since"),
            ("since=2026-13-01", "since"),
        ] {
            let error = ChangeFilter::from_query(&Query::parse(query)).unwrap_err();
            let body = serde_json::to_string(&error.data).unwrap();
            assert!(body.contains(field), "{query}: {body}");
        }
    }

    #[test]
    fn an_instance_log_is_newest_first_filtered_and_paged() {
        let log = AccountHistory {
            entry_count: 3,
            dropped: 7,
            entries: vec![
                change("a", ChangeKind::AccountAdded, 1),
                change("b", ChangeKind::Locked, 2),
                change("c", ChangeKind::AccountAdded, 3),
            ],
        };
        let all = ChangeFilter::default();
        let page = instance_changes(Some(&log), &all, PageRequest { page: 1, limit: 2 });
        let accounts: Vec<&str> = page.items.iter().map(|c| c.account.as_str()).collect();
        assert_eq!(accounts, ["c", "b"]);
        assert_eq!((page.total, page.pages, page.dropped), (3, 2, Some(7)));
        let added = ChangeFilter::from_query(&Query::parse("kind=account_added")).unwrap();
        let page = instance_changes(Some(&log), &added, PageRequest { page: 1, limit: 20 });
        assert_eq!(page.total, 2);
        let none = instance_changes(None, &all, PageRequest { page: 1, limit: 20 });
        assert_eq!((none.total, none.dropped), (0, Some(0)));
    }

    #[test]
    fn a_history_without_samples_has_no_fit_and_says_why() {
        let view = CapacityHistoryView::of(None, Some(100));
        assert!(view.samples.is_empty());
        assert_eq!(view.fit.bytes_per_day, None);
        assert_eq!(view.fit.reason.as_deref(), Some("TooFewSamples"));
        assert_eq!(view.forecast.limit_bytes, Some(100));
        assert_eq!(view.forecast.days_until_full, None);
    }
}
