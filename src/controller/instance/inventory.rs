//! The DbInventory beside an instance: which sections a probe run changed,
//! written by the controller that owns the instance.
//!
//! A section too big for one object is spread over parts
//! (`observe::inventory`); they are written before the section that lists
//! them, and the parts it no longer lists are deleted after it, so a
//! reader that follows the list finds every part it names (or, in the
//! moment between, a part with another hash, which it leaves out).

use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use tracing::warn;

use super::Memory;
use crate::controller::{Context, Error};
use crate::crd::findings::InventoryFindings;
use crate::crd::history::AccountChange;
use crate::crd::instance::AccountChanges;
use crate::crd::inventory::{InventoryAccount, InventoryAccounts, InventoryCapacity, InventoryPart};
use crate::crd::{DbInstance, DbInstanceStatus, DbInventory};
use crate::observe::account_changes::{self, Comparison};
use crate::observe::inventory::{Decision, InventoryLimits, SectionKind, WrittenAccounts, WrittenCapacity};
use crate::observe::{self, ProbeRun, Section, StoredInventory, inventory};

/// The inventory sections that follow from a run, for the status totals.
#[derive(Default)]
pub(super) struct Sections {
    pub capacity: Option<InventoryCapacity>,
    pub accounts: Option<InventoryAccounts>,
    pub account_changes: Option<AccountChanges>,
    /// What changed between the accounts written before and these, for
    /// the account history; empty on the first sync (the baseline).
    pub account_entries: Vec<AccountChange>,
    /// The hygiene findings of an account sync that ran now.
    pub findings: Option<InventoryFindings>,
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
    let name = instance.name_any();
    let api: Api<DbInventory> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut stored: Option<DbInventory> = None;
    if !memory.inventory_seen {
        // An instance whose status names no DbInventory has none to read
        // (a new one, in a cold sweep): the section write creates it.
        // Unless its name is shaped like a part of an existing instance's:
        // then that part may hold the name, and is not this one's to write.
        let may_be_taken = inventory::part_owner_candidate(&name)
            .is_some_and(|owner| ctx.instances.get(&ObjectRef::new(owner).within(&namespace)).is_some());
        if status.inventory.is_some() || may_be_taken {
            match observe::read_inventory_head(&api, &name).await? {
                StoredInventory::OthersPart => {
                    warn!(instance = %name, "another instance's DbInventory part holds this instance's name; \
                        its inventory is written once that instance's details no longer need the part");
                    return Ok(Sections::default());
                }
                found => stored = found.own(),
            }
        }
        if let Some(spec) = stored.as_ref().map(|s| &s.spec) {
            memory.capacity = match &spec.capacity {
                // The sizes as written, for their stickiness, are in the
                // parts: a few reads, once per process.
                Some(c) => Some(WrittenCapacity::from(
                    &observe::join_parts(&api, &name, c.clone(), |s| s.capacity).await?,
                )),
                None => None,
            };
            memory.accounts = spec.accounts.as_ref().map(WrittenAccounts::from);
            memory.findings_hash = spec.findings.as_ref().map(|f| f.content_hash.clone());
            memory.inventory_written = true;
        }
        memory.inventory_seen = true;
    }
    let limits = &ctx.config.probes.inventory;
    // Part names are ordinary object names: where an instance holds one,
    // the section is cut to one object, as before parts existed.
    let part_taken = |listed: &[InventoryPart]| {
        listed
            .iter()
            .find(|p| ctx.instances.get(&ObjectRef::new(&p.name).within(&namespace)).is_some())
            .map(|p| p.name.clone())
    };
    let one_object = InventoryLimits {
        max_parts: 1,
        ..*limits
    };
    let mut sections = Sections::default();
    if let Some(capacity) = capacity {
        let mut decision = inventory::capacity_section(&name, capacity, memory.capacity.as_ref(), limits);
        if let Some(taken) = part_taken(&decision.section.parts) {
            warn!(instance = %name, part = %taken, "a DbInstance has the name of a part; databases are cut to one object");
            decision = inventory::capacity_section(&name, capacity, memory.capacity.as_ref(), &one_object);
        }
        write_parts(&api, instance, &decision, Section::Capacity).await?;
        if decision.changed {
            observe::write_inventory(&api, instance, Section::Capacity(&decision.section)).await?;
            ctx.metrics.inventory_written("capacity");
            memory.inventory_written = true;
        }
        memory.capacity = Some(WrittenCapacity::written(&decision));
        delete_parts(&api, instance, SectionKind::Databases, &decision).await?;
        sections.capacity = Some(decision.section);
    }
    if let Some(accounts) = accounts {
        let mut decision = inventory::accounts_section(&name, accounts, memory.accounts.as_ref(), limits);
        if let Some(taken) = part_taken(&decision.section.parts) {
            warn!(instance = %name, part = %taken, "a DbInstance has the name of a part; accounts are cut to one object");
            decision = inventory::accounts_section(&name, accounts, memory.accounts.as_ref(), &one_object);
        }
        if decision.changed {
            let comparison = account_changes(
                &api,
                &name,
                status,
                memory.accounts.as_ref(),
                &mut stored,
                &decision,
                run.at,
            )
            .await?;
            sections.account_changes = Some(comparison.counts);
            sections.account_entries = comparison.entries;
        }
        // The hygiene findings follow from the same sync: written with the
        // accounts when they changed, alone only when just they did.
        let evaluation = observe::findings::of_accounts(instance.spec.db_type, accounts);
        let findings = observe::findings::section(&evaluation, accounts.synced_at);
        let findings_changed = memory.findings_hash.as_deref() != Some(findings.content_hash.as_str());
        write_parts(&api, instance, &decision, Section::Accounts).await?;
        if decision.changed {
            observe::write_accounts_and_findings(&api, instance, &decision.section, &findings).await?;
            ctx.metrics.inventory_written("accounts");
            memory.inventory_written = true;
        } else if findings_changed {
            observe::write_findings(&api, instance, &findings).await?;
        }
        if findings_changed {
            ctx.metrics.inventory_written("findings");
            memory.findings_hash = Some(findings.content_hash.clone());
        }
        memory.accounts = Some(WrittenAccounts::from(&decision.section));
        delete_parts(&api, instance, SectionKind::Accounts, &decision).await?;
        sections.accounts = Some(decision.section);
        sections.findings = Some(findings);
    }
    Ok(sections)
}

/// Writes the parts whose content changed, before the list that names them.
async fn write_parts<'d, T>(
    api: &Api<DbInventory>,
    instance: &DbInstance,
    decision: &'d Decision<T>,
    section: impl Fn(&'d T) -> Section<'d>,
) -> Result<(), Error>
where
    T: inventory::Parted,
{
    let listed = decision.section.parts();
    for &i in &decision.write {
        observe::write_inventory_part(api, instance, &listed[i].name, i + 1, section(&decision.parts[i])).await?;
    }
    Ok(())
}

/// Deletes the parts the written list no longer names.
async fn delete_parts<T: inventory::Parted>(
    api: &Api<DbInventory>,
    instance: &DbInstance,
    kind: SectionKind,
    decision: &Decision<T>,
) -> Result<(), Error> {
    if decision.delete.is_empty() {
        return Ok(());
    }
    let uid = instance.metadata.uid.as_deref().unwrap_or_default();
    observe::delete_inventory_parts(api, uid, kind, decision.section.parts()).await?;
    Ok(())
}

/// What changed since the accounts written before, as counts and as
/// history entries (normalised: `observe::account_changes`). Only what differs is
/// read and compared: the section itself when it held the accounts, or
/// the parts no longer listed as they were (a part whose hash stayed holds
/// the same accounts in both).
async fn account_changes(
    api: &Api<DbInventory>,
    name: &str,
    status: &DbInstanceStatus,
    written: Option<&WrittenAccounts>,
    stored: &mut Option<DbInventory>,
    decision: &Decision<InventoryAccounts>,
    at: std::time::SystemTime,
) -> Result<Comparison, Error> {
    let now: Vec<InventoryAccount> = if decision.parts.is_empty() {
        decision.section.items.clone()
    } else {
        decision
            .write
            .iter()
            .flat_map(|&i| decision.parts[i].items.iter().cloned())
            .collect()
    };
    let Some(written) = written else {
        // The first sync (the history's baseline: no entries), or the
        // first after an upgrade from a status that held the accounts:
        // nothing to compare with but the count.
        let counts = if status.accounts.is_some() {
            AccountChanges::default()
        } else {
            AccountChanges {
                added: decision.section.count,
                ..AccountChanges::default()
            }
        };
        return Ok(Comparison {
            counts,
            entries: vec![],
        });
    };
    let before: Vec<InventoryAccount> = if written.parts.is_empty() {
        if stored.is_none() {
            *stored = observe::read_inventory_head(api, name).await?.own();
        }
        stored
            .as_ref()
            .and_then(|s| s.spec.accounts.as_ref())
            .map(|a| a.items.clone())
            .unwrap_or_default()
    } else {
        let gone = InventoryAccounts {
            items: vec![],
            parts: written
                .parts
                .iter()
                .filter(|p| !decision.section.parts.contains(p))
                .cloned()
                .collect(),
            ..decision.section.clone()
        };
        observe::join_parts(api, name, gone, |s| s.accounts).await?.items
    };
    Ok(account_changes::compare(&before, &now, at))
}
