//! The instance page's recent Kubernetes Events (those whose
//! `involvedObject` is the DbInstance), for a person RBAC lets `list
//! events` in the façade's namespace, asked with the façade's own cached
//! SubjectAccessReview. One list call with a field selector; the façade's
//! chart role grants it that `list` and nothing more on Events.

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;

use super::error::PageError;
use super::format::When;
use crate::api::auth::{Caller, Guarded, Permission};
use crate::api::state::Shared;
use crate::crd::DbInstance;

/// Events the page shows, newest first.
pub const SHOWN: usize = 20;
/// Events one list returns at most. The API server lists them in name
/// order, which the recorder makes oldest first, so the page sorts them
/// itself; an instance has few (the API server keeps Events an hour, and
/// the recorder folds repeats into one with a count).
const LISTED: u32 = 500;

pub struct EventRow {
    pub when: Option<When>,
    pub warning: bool,
    pub reason: String,
    pub message: String,
    /// How many times it happened (a series folds repeats).
    pub count: i32,
}

pub enum RecentEvents {
    /// The person may not list Events.
    NotAllowed,
    /// The façade could not list them, and why.
    Unavailable(String),
    Listed(Vec<EventRow>),
}

/// When the event last happened.
fn last_seen(event: &Event) -> Option<Timestamp> {
    let series = event.series.as_ref().and_then(|s| s.last_observed_time.as_ref());
    series
        .map(|t| t.0)
        .or_else(|| event.last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| event.event_time.as_ref().map(|t| t.0))
        .or_else(|| event.first_timestamp.as_ref().map(|t| t.0))
        .or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The newest `keep` of `events`, newest first: pure.
pub fn newest(mut events: Vec<Event>, keep: usize) -> Vec<EventRow> {
    events.sort_by_key(|e| std::cmp::Reverse(last_seen(e)));
    events
        .into_iter()
        .take(keep)
        .map(|e| EventRow {
            when: last_seen(&e).map(When::at),
            warning: e.type_.as_deref() == Some("Warning"),
            reason: e.reason.clone().unwrap_or_default(),
            message: e.message.clone().unwrap_or_default(),
            count: e.series.as_ref().and_then(|s| s.count).or(e.count).unwrap_or(1).max(1),
        })
        .collect()
}

/// The one list the page makes: the Events about the object `uid`, at
/// most [`LISTED`] of them.
pub fn about(uid: &str) -> ListParams {
    ListParams::default()
        .fields(&format!("involvedObject.uid={uid}"))
        .limit(LISTED)
}

/// `instance`'s recent Events, as `caller` may see them.
pub async fn recent(state: &Shared, caller: &Caller, instance: &DbInstance) -> Result<RecentEvents, PageError> {
    if !state.auth.allowed(caller, Permission::View, Guarded::Events).await? {
        return Ok(RecentEvents::NotAllowed);
    }
    let Some(uid) = instance.metadata.uid.as_deref() else {
        return Ok(RecentEvents::Listed(vec![]));
    };
    Ok(match state.api::<Event>().list(&about(uid)).await {
        Ok(list) => RecentEvents::Listed(newest(list.items, SHOWN)),
        Err(kube::Error::Api(refused)) if refused.code == 403 => RecentEvents::Unavailable(
            "dbfleet's façade may not list Events here: its chart role grants that (docs/console.md).".into(),
        ),
        Err(error) => RecentEvents::Unavailable(format!("Events could not be read: {error}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(reason: &str, at: &str, extra: serde_json::Value) -> Event {
        let mut value = json!({"metadata": {"name": reason}, "involvedObject": {"kind": "DbInstance", "name": "db"},
            "reason": reason, "message": format!("{reason} happened"), "eventTime": at});
        if let (Some(value), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
            value.extend(extra.clone());
        }
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_newest_come_first_with_their_counts() {
        let events = vec![
            event("Connected", "2026-03-01T10:00:00.000000Z", json!({})),
            event(
                "ConnectionFailed",
                "2026-03-01T09:00:00.000000Z",
                json!({"type": "Warning", "series": {"count": 4, "lastObservedTime": "2026-03-01T11:00:00.000000Z"}}),
            ),
            event("AccountAdded", "2026-03-01T08:00:00.000000Z", json!({})),
        ];
        let rows = newest(events, 2);
        let reasons: Vec<&str> = rows.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(
            reasons,
            ["ConnectionFailed", "Connected"],
            "a series counts from its last time"
        );
        assert!(rows[0].warning && !rows[1].warning);
        assert_eq!((rows[0].count, rows[1].count), (4, 1));
        assert_eq!(rows[0].when.as_ref().unwrap().iso, "2026-03-01T11:00:00Z");
    }
}
