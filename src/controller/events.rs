//! Events are published beside the reconcile, a few at a time: a reconcile
//! slot is not held for a write whose only reader is a person running
//! `kubectl describe`, and a new fleet's `Connected` Events do not slow its
//! first connection tests down.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, Recorder};
use tokio::sync::Semaphore;
use tracing::warn;

/// Events being written at once.
const IN_FLIGHT: usize = 8;

#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
    in_flight: Arc<Semaphore>,
}

impl Events {
    pub fn new(recorder: Recorder) -> Self {
        Events {
            recorder,
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
                if let Err(error) = this.recorder.publish(&event, &object).await {
                    let name = object.name.as_deref().unwrap_or_default();
                    warn!(object = %name, reason = %event.reason, %error, "could not record an event");
                }
            }
        });
    }
}
