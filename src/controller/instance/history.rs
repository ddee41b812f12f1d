//! The DbHistory beside an instance: a capacity sample when one is due,
//! the account changes a sync found, and the Events that announce new
//! accounts and superuser changes.
//!
//! The controller keeps only the newest sample's time in memory: the
//! history itself is read from the API server when something is to be
//! added (once per sample interval, and on an account change), so holding
//! a fleet's history never costs the controller memory.

use std::time::SystemTime;

use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};

use super::Memory;
use crate::controller::{Context, Error};
use crate::crd::history::{AccountChange, ChangeKind};
use crate::crd::instance::CapacityGrowth;
use crate::crd::{DbHistory, DbInstance};
use crate::observe::history::{self, HistorySection};
use crate::observe::{ProbeRun, growth};

/// What the history writes change in the status: a new fit when a sample
/// was added.
#[derive(Default)]
pub(super) struct Recorded {
    pub growth: Option<CapacityGrowth>,
}

/// Adds a capacity sample if one is due and the account changes, if any,
/// to the instance's DbHistory; each section is written only when it grew.
pub(super) async fn record_history(
    ctx: &Context,
    instance: &DbInstance,
    run: &ProbeRun,
    changes: &[AccountChange],
    memory: &mut Memory,
) -> Result<Recorded, Error> {
    let settings = &ctx.config.history;
    let capacity = run.capacity.as_ref().and_then(|r| r.as_ref().ok());
    let sample_maybe_due = capacity.is_some()
        && (!memory.history_seen || history::sample_due(memory.last_sample_at, run.at, settings.sample_interval));
    if !sample_maybe_due && changes.is_empty() {
        return Ok(Recorded::default());
    }
    let namespace = instance.namespace().ok_or(Error::NotNamespaced)?;
    let api: Api<DbHistory> = Api::namespaced(ctx.client.clone(), &namespace);
    let stored = history::read_history(&api, &instance.name_any())
        .await?
        .unwrap_or_default();
    let last_stored = stored
        .capacity
        .as_ref()
        .and_then(|c| c.samples.last())
        .map(|s| SystemTime::from(s.at.0));
    memory.history_seen = true;
    memory.last_sample_at = last_stored;
    let mut recorded = Recorded::default();
    if let Some(capacity) = capacity
        && history::sample_due(last_stored, run.at, settings.sample_interval)
    {
        let sample = history::sample_of(capacity, run.at, settings.top_databases);
        let section = history::add_sample(stored.capacity.as_ref(), sample, settings);
        history::write_history(&api, instance, HistorySection::Capacity(&section)).await?;
        ctx.metrics.inventory_written("history-capacity");
        memory.last_sample_at = Some(run.at);
        recorded.growth = growth::growth(&history::points(&section));
    }
    if !changes.is_empty() {
        let section = history::add_changes(stored.accounts.as_ref(), changes, settings);
        history::write_history(&api, instance, HistorySection::Accounts(&section)).await?;
        ctx.metrics.inventory_written("history-accounts");
        ctx.events.publish(instance.object_ref(&()), change_events(changes));
    }
    Ok(recorded)
}

/// Accounts named in one Event note at most; the rest are counted.
const NAMED_IN_A_NOTE: usize = 10;

/// One Event per kind that needs attention: new accounts (Normal), and
/// superusers gained (Warning) or lost (Normal).
pub(super) fn change_events(changes: &[AccountChange]) -> Vec<Event> {
    [
        (
            ChangeKind::AccountAdded,
            EventType::Normal,
            "AccountAdded",
            "accounts added",
        ),
        (
            ChangeKind::SuperuserGained,
            EventType::Warning,
            "SuperuserGained",
            "accounts became superuser",
        ),
        (
            ChangeKind::SuperuserLost,
            EventType::Normal,
            "SuperuserLost",
            "accounts are no longer superuser",
        ),
    ]
    .into_iter()
    .filter_map(|(kind, type_, reason, what)| {
        let names: Vec<String> = changes
            .iter()
            .filter(|c| c.kind == kind)
            .map(|c| match &c.host {
                Some(host) => format!("'{}'@'{host}'", c.account),
                None => c.account.clone(),
            })
            .collect();
        if names.is_empty() {
            return None;
        }
        let mut note = format!(
            "{} {what}: {}",
            names.len(),
            names[..names.len().min(NAMED_IN_A_NOTE)].join(", ")
        );
        if names.len() > NAMED_IN_A_NOTE {
            note.push_str(&format!(" and {} more", names.len() - NAMED_IN_A_NOTE));
        }
        Some(Event {
            type_,
            reason: reason.into(),
            note: Some(crate::crd::bounds::message(&note)),
            action: "SyncAccounts".into(),
            secondary: None,
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::status::time;

    fn change(account: &str, host: Option<&str>, kind: ChangeKind) -> AccountChange {
        AccountChange {
            at: time(SystemTime::UNIX_EPOCH),
            account: account.into(),
            host: host.map(Into::into),
            kind,
            database: None,
            privileges: vec![],
        }
    }

    #[test]
    fn new_accounts_and_superuser_changes_are_announced_once_per_kind() {
        let mut changes: Vec<_> = (0..12)
            .map(|i| change(&format!("u{i:02}"), Some("%"), ChangeKind::AccountAdded))
            .collect();
        changes.push(change("root2", None, ChangeKind::SuperuserGained));
        changes.push(change("app", None, ChangeKind::Locked));
        let events = change_events(&changes);
        let reasons: Vec<_> = events.iter().map(|e| (e.reason.as_str(), e.type_)).collect();
        assert_eq!(
            reasons,
            [
                ("AccountAdded", EventType::Normal),
                ("SuperuserGained", EventType::Warning)
            ]
        );
        let note = events[0].note.as_deref().unwrap();
        assert!(note.starts_with("12 accounts added: 'u00'@'%', 'u01'@'%'"), "{note}");
        assert!(note.ends_with("'u09'@'%' and 2 more"), "{note}");
        assert_eq!(events[1].note.as_deref(), Some("1 accounts became superuser: root2"));
    }

    #[test]
    fn privilege_and_lock_changes_alone_make_no_event() {
        let changes = [
            change("app", None, ChangeKind::PrivilegesGained),
            change("app", None, ChangeKind::Locked),
            change("old", None, ChangeKind::AccountRemoved),
        ];
        assert!(change_events(&changes).is_empty());
    }
}
