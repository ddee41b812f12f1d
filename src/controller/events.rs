//! Events are published beside the reconcile, a few at a time: a reconcile
//! slot is not held for a write whose only reader is a person running
//! `kubectl describe`, and a new fleet's `Connected` Events do not slow its
//! first connection tests down.
//!
//! Written here rather than with kube's `Recorder`, whose `events.k8s.io/v1`
//! objects and series these are: the Recorder keeps every Event it
//! published, whole, for six minutes and scans them all under one lock on
//! each publish. After a 10,000-instance fleet's first tests that is 20,000
//! Event objects in memory and 20,000 scans of them. This keeps a short key
//! and the Event's name instead, and still folds a repeat within the window
//! into the first Event's series.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as EventObject;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::Semaphore;
use tracing::warn;

/// Events being written at once.
const IN_FLIGHT: usize = 8;

/// How long a published Event takes repeats into its series (kube's
/// Recorder's window).
const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);

#[derive(Clone)]
pub struct Events {
    client: Client,
    reporter: Arc<Reporter>,
    series: Arc<Mutex<Series>>,
    in_flight: Arc<Semaphore>,
}

impl Events {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Events {
            client,
            reporter: Arc::new(reporter),
            series: Arc::default(),
            in_flight: Arc::new(Semaphore::new(IN_FLIGHT)),
        }
    }

    /// Publishes `events` about `object` in order, in a task of its own;
    /// a failure is logged (Events are best effort).
    pub fn publish(&self, object: ObjectReference, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let Ok(_slot) = this.in_flight.acquire().await else {
                return;
            };
            for event in events {
                if let Err(error) = this.write(&event, &object).await {
                    let name = object.name.as_deref().unwrap_or_default();
                    warn!(object = %name, reason = %event.reason, %error, "could not record an event");
                }
            }
        });
    }

    async fn write(&self, event: &Event, object: &ObjectReference) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = SeriesKey::of(event, object);
        let namespace = object.namespace.as_deref().unwrap_or("default");
        let api: Api<EventObject> = Api::namespaced(self.client.clone(), namespace);
        let repeat = self.series.lock().expect("event series lock").repeat(&key, now);
        if let Some(repeat) = repeat {
            let series = json!({"series": {"count": repeat.count, "lastObservedTime": MicroTime(now)}});
            match api
                .patch(&repeat.name, &PatchParams::default(), &Patch::Merge(&series))
                .await
            {
                Ok(_) => return Ok(()),
                // Gone (expired or deleted): a new Event starts a new series.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let created = api
            .create(
                &PostParams::default(),
                &event_object(&self.reporter, event, object, now),
            )
            .await?;
        let name = created.metadata.name.unwrap_or_default();
        self.series.lock().expect("event series lock").remember(key, name, now);
        Ok(())
    }
}

/// The `events.k8s.io/v1` Event recording `event` about `object` at `now`,
/// as kube's Recorder writes it: named after the object and the time.
fn event_object(reporter: &Reporter, event: &Event, object: &ObjectReference, now: Timestamp) -> EventObject {
    EventObject {
        action: Some(event.action.clone()),
        reason: Some(event.reason.clone()),
        note: event.note.clone(),
        type_: Some(
            match event.type_ {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            }
            .into(),
        ),
        event_time: Some(MicroTime(now)),
        regarding: Some(object.clone()),
        related: event.secondary.clone(),
        reporting_controller: Some(reporter.controller.clone()),
        reporting_instance: Some(reporter.instance.clone().unwrap_or_else(|| reporter.controller.clone())),
        metadata: ObjectMeta {
            namespace: object.namespace.clone(),
            name: Some(format!(
                "{}.{:x}",
                object.name.as_deref().unwrap_or(&reporter.controller),
                now.as_nanosecond()
            )),
            ..ObjectMeta::default()
        },
        ..EventObject::default()
    }
}

/// What makes two Events the same occurrence: the object (its uid, else
/// its kind, namespace and name), the type, action and reason, and the
/// related object. The note is not part of it, as in kube's Recorder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SeriesKey(String);

impl SeriesKey {
    fn of(event: &Event, object: &ObjectReference) -> SeriesKey {
        let reference = |o: &ObjectReference| match &o.uid {
            Some(uid) => uid.clone(),
            None => format!(
                "{}/{}/{}",
                o.kind.as_deref().unwrap_or_default(),
                o.namespace.as_deref().unwrap_or_default(),
                o.name.as_deref().unwrap_or_default()
            ),
        };
        let type_ = match event.type_ {
            EventType::Normal => 'N',
            EventType::Warning => 'W',
        };
        let related = event.secondary.as_ref().map(reference).unwrap_or_default();
        SeriesKey(format!(
            "{}\0{type_}\0{}\0{}\0{related}",
            reference(object),
            event.action,
            event.reason
        ))
    }
}

/// A published Event that a repeat would extend.
#[derive(Debug)]
struct Published {
    name: String,
    /// Occurrences so far (the first is 1).
    count: i32,
    last: Timestamp,
}

/// The Event a repeat patches, and its count with the repeat.
#[derive(Debug, PartialEq)]
struct Repeat {
    name: String,
    count: i32,
}

/// The Events published within the window, by key; pure.
#[derive(Debug, Default)]
struct Series {
    published: HashMap<SeriesKey, Published>,
    swept: Option<Timestamp>,
}

impl Series {
    /// The Event that `key` repeats at `now`, counted; `None` when it is
    /// new or its window has passed.
    fn repeat(&mut self, key: &SeriesKey, now: Timestamp) -> Option<Repeat> {
        self.sweep(now);
        let published = self.published.get_mut(key).filter(|p| p.last + SERIES_WINDOW > now)?;
        published.count = published.count.saturating_add(1);
        published.last = now;
        Some(Repeat {
            name: published.name.clone(),
            count: published.count,
        })
    }

    fn remember(&mut self, key: SeriesKey, name: String, now: Timestamp) {
        self.published.insert(
            key,
            Published {
                name,
                count: 1,
                last: now,
            },
        );
    }

    /// Forgets Events past their window, at most once a minute: a fleet's
    /// first sweep publishes thousands, and each publish must not walk them
    /// all.
    fn sweep(&mut self, now: Timestamp) {
        if self.swept.is_some_and(|at| at + SignedDuration::from_mins(1) > now) {
            return;
        }
        self.swept = Some(now);
        self.published.retain(|_, p| p.last + SERIES_WINDOW > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(type_: EventType, reason: &str, note: &str) -> Event {
        Event {
            type_,
            reason: reason.into(),
            note: Some(note.into()),
            action: "Reconcile".into(),
            secondary: None,
        }
    }

    fn object(name: &str, uid: Option<&str>) -> ObjectReference {
        ObjectReference {
            api_version: Some("dbfleet.io/v1alpha1".into()),
            kind: Some("DbInstance".into()),
            name: Some(name.into()),
            namespace: Some("team".into()),
            uid: uid.map(str::to_owned),
            ..ObjectReference::default()
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn a_repeat_within_the_window_extends_the_first_events_series() {
        let mut series = Series::default();
        let key = SeriesKey::of(
            &event(EventType::Warning, "ConnectionRefused", "a"),
            &object("pg", Some("u1")),
        );
        assert_eq!(series.repeat(&key, at(0)), None);
        series.remember(key.clone(), "pg.1".into(), at(0));
        // Another note is the same occurrence.
        let again = SeriesKey::of(
            &event(EventType::Warning, "ConnectionRefused", "b"),
            &object("pg", Some("u1")),
        );
        assert_eq!(again, key);
        let repeat = |s: &mut Series, t| s.repeat(&key, at(t)).map(|r| (r.name, r.count));
        assert_eq!(repeat(&mut series, 60), Some(("pg.1".into(), 2)));
        assert_eq!(repeat(&mut series, 400), Some(("pg.1".into(), 3)));
        // Six minutes after the last occurrence the series has ended.
        assert_eq!(repeat(&mut series, 400 + 360), None);
    }

    #[test]
    fn other_objects_types_and_reasons_are_other_series() {
        let key = |type_, reason, name, uid| SeriesKey::of(&event(type_, reason, ""), &object(name, uid));
        let first = key(EventType::Normal, "Connected", "pg", Some("u1"));
        assert_ne!(first, key(EventType::Warning, "Connected", "pg", Some("u1")));
        assert_ne!(first, key(EventType::Normal, "RoleChanged", "pg", Some("u1")));
        assert_ne!(first, key(EventType::Normal, "Connected", "pg", Some("u2")));
        // Without a uid the kind, namespace and name tell objects apart.
        assert_ne!(
            key(EventType::Normal, "Connected", "pg", None),
            key(EventType::Normal, "Connected", "maria", None)
        );
    }

    #[test]
    fn the_sweep_forgets_events_past_their_window_at_most_once_a_minute() {
        let mut series = Series::default();
        for i in 0..1000 {
            let key = SeriesKey::of(
                &event(EventType::Normal, "Connected", ""),
                &object(&format!("db{i}"), None),
            );
            series.remember(key, format!("db{i}.1"), at(0));
        }
        let late = SeriesKey::of(&event(EventType::Normal, "Connected", ""), &object("late", None));
        series.remember(late.clone(), "late.1".into(), at(300));
        assert_eq!(series.repeat(&late, at(330)).map(|r| r.count), Some(2));
        assert_eq!(series.published.len(), 1001);
        // 7 minutes on: the first thousand are past the window.
        series.repeat(&late, at(420));
        assert_eq!(series.published.len(), 1);
    }

    #[test]
    fn the_event_object_names_the_object_the_reporter_and_the_time() {
        let reporter = Reporter {
            controller: "dbfleet".into(),
            instance: Some("dbfleet-0".into()),
        };
        let written = event_object(
            &reporter,
            &event(EventType::Warning, "ConnectionRefused", "refused"),
            &object("pg", Some("u1")),
            at(0),
        );
        assert_eq!(
            written.metadata.name.as_deref(),
            Some(&*format!("pg.{:x}", at(0).as_nanosecond()))
        );
        assert_eq!(written.metadata.namespace.as_deref(), Some("team"));
        assert_eq!(
            (
                written.type_.as_deref(),
                written.reason.as_deref(),
                written.note.as_deref()
            ),
            (Some("Warning"), Some("ConnectionRefused"), Some("refused"))
        );
        assert_eq!(written.reporting_controller.as_deref(), Some("dbfleet"));
        assert_eq!(written.reporting_instance.as_deref(), Some("dbfleet-0"));
        assert_eq!(written.regarding.and_then(|r| r.uid).as_deref(), Some("u1"));
    }
}
