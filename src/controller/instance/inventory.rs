//! The DbInventory beside an instance: which sections a probe run changed,
//! written by the controller that owns the instance.

use kube::{Api, ResourceExt};

use super::Memory;
use crate::controller::{Context, Error};
use crate::crd::instance::AccountChanges;
use crate::crd::inventory::{InventoryAccounts, InventoryCapacity};
use crate::crd::{DbInstance, DbInstanceStatus, DbInventory};
use crate::probe;
use crate::sync::{self, ProbeRun, inventory};

/// The inventory sections that follow from a run, for the status totals.
#[derive(Default)]
pub(super) struct Sections {
    pub capacity: Option<InventoryCapacity>,
    pub accounts: Option<InventoryAccounts>,
    pub account_changes: Option<AccountChanges>,
}

/// Writes the DbInventory sections that `run` changed, and returns the
/// sections (sizes as written) for the status.
pub(super) async fn record_inventory(
    ctx: &Context,
    instance: &DbInstance,
    status: &DbInstanceStatus,
    run: &ProbeRun,
    memory: &mut Memory,
) -> Result<Sections, Error> {
    let capacity = run.capacity.as_ref().and_then(|r| r.as_ref().ok());
    let accounts = run.accounts.as_ref().and_then(|r| r.as_ref().ok());
    if capacity.is_none() && accounts.is_none() {
        return Ok(Sections::default());
    }
    let namespace = instance.namespace().ok_or(Error::NotNamespaced)?;
    let api: Api<DbInventory> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut stored: Option<DbInventory> = None;
    if !memory.inventory_seen {
        // An instance whose status names no DbInventory has none to read
        // (a new one, in a cold sweep): the section write creates it.
        if status.inventory.is_some() {
            stored = api.get_opt(&instance.name_any()).await?;
        }
        if let Some(spec) = stored.as_ref().map(|s| &s.spec) {
            memory.capacity = spec.capacity.as_ref().map(inventory::WrittenCapacity::from);
            memory.accounts_hash = spec.accounts.as_ref().map(|a| a.content_hash.clone());
            memory.inventory_written = true;
        }
        memory.inventory_seen = true;
    }
    let limits = &ctx.config.probes.inventory;
    let mut sections = Sections::default();
    if let Some(capacity) = capacity {
        let decision = inventory::capacity_section(capacity, memory.capacity.as_ref(), limits);
        if decision.changed {
            sync::write_inventory(&api, instance, sync::Section::Capacity(&decision.section)).await?;
            ctx.metrics.inventory_written("capacity");
            memory.capacity = Some(inventory::WrittenCapacity::from(&decision.section));
            memory.inventory_written = true;
        }
        sections.capacity = Some(decision.section);
    }
    if let Some(accounts) = accounts {
        let decision = inventory::accounts_section(accounts, memory.accounts_hash.as_deref(), limits);
        if decision.changed {
            // The previous accounts, to say what changed: read only when
            // something did.
            if stored.is_none() && memory.accounts_hash.is_some() {
                stored = api.get_opt(&instance.name_any()).await?;
            }
            let before = stored.as_ref().and_then(|s| s.spec.accounts.as_ref());
            sections.account_changes = Some(match before {
                Some(before) => AccountChanges::from(&probe::diff_accounts(&before.items, &decision.section.items)),
                // The first sync after an upgrade from a status that held
                // the accounts: nothing to compare with but the count.
                None if status.accounts.is_some() => AccountChanges::default(),
                None => AccountChanges {
                    added: decision.section.count,
                    ..AccountChanges::default()
                },
            });
            sync::write_inventory(&api, instance, sync::Section::Accounts(&decision.section)).await?;
            ctx.metrics.inventory_written("accounts");
            memory.accounts_hash = Some(decision.section.content_hash.clone());
            memory.inventory_written = true;
        }
        sections.accounts = Some(decision.section);
    }
    Ok(sections)
}
