//! Observing an instance and recording what was observed: the one path
//! from probe results to a DbInstance status and its DbInventory (named
//! `observe`, not `sync`, so it is not taken for the DbSyncSession). Only the controller
//! that owns an instance writes them; the façade's actions and sync
//! sessions ask it for a run through the request annotations (`request`)
//! and read the answer from the status.

pub mod account_changes;
pub mod allowed_hosts;
pub mod budget;
pub mod credentials;
pub mod findings;
pub mod freshness;
pub mod growth;
pub mod history;
pub mod inventory;
pub mod lifecycle_overrides;
pub mod login_check;
pub mod plan;
pub mod request;
pub mod status;
pub mod topology;

use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::{Api, Resource, ResourceExt};

use crate::crd::inventory::{InventoryAccounts, InventoryCapacity, InventoryPart};
use crate::crd::keys::{INVENTORY_OWNER_LABEL, INVENTORY_SECTION_LABEL};
use crate::crd::{DbInstance, DbInstanceStatus, DbInventory, DbInventorySpec};
use crate::probe::{self, Accounts, Capacity, ConnectionInfo, ProbeError, Target, Timeouts};
pub use budget::{ProbeBudget, ProbePermit, ProbesBusy};
pub use credentials::{Credentials, CredentialsError};
pub use inventory::{InventoryLimits, SectionKind};
pub use plan::{Ops, Requests};

/// The field manager of every status write (SPEC §2.1).
pub const FIELD_MANAGER: &str = "dbfleet-controller";
/// The field managers of the DbInventory's two sections, so a capacity
/// write never touches the accounts and the other way round.
pub const CAPACITY_MANAGER: &str = "dbfleet-capacity";
pub const ACCOUNTS_MANAGER: &str = "dbfleet-accounts";

/// Knobs shared by every path that probes.
#[derive(Clone, Debug)]
pub struct ProbeSettings {
    pub timeouts: Timeouts,
    pub inventory: InventoryLimits,
    /// How often an unchanged status is rewritten to refresh its freshness
    /// timestamps.
    pub report_interval: Duration,
    /// Probes at once in this process; share one budget between everything
    /// a process runs.
    pub budget: ProbeBudget,
}

impl ProbeSettings {
    pub const DEFAULT_REPORT_INTERVAL: Duration = Duration::from_secs(600);
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            timeouts: Timeouts::default(),
            inventory: InventoryLimits::default(),
            report_interval: Self::DEFAULT_REPORT_INTERVAL,
            budget: ProbeBudget::default(),
        }
    }
}

/// The probes that ran in one go, with their results.
#[derive(Clone, Debug)]
pub struct ProbeRun {
    pub at: SystemTime,
    pub connection: Option<Result<ConnectionInfo, ProbeError>>,
    pub capacity: Option<Result<Capacity, ProbeError>>,
    pub accounts: Option<Result<Accounts, ProbeError>>,
    /// Database logins the run took.
    pub logins: u32,
}

impl ProbeRun {
    /// Whether the run's login worked (`None`: nothing ran). A collection
    /// that failed after logging in (a missing grant) still connected.
    pub fn connected(&self) -> Option<bool> {
        if let Some(result) = &self.connection {
            return Some(result.is_ok());
        }
        let collections: Vec<Option<&ProbeError>> = [
            self.capacity.as_ref().map(|r| r.as_ref().err()),
            self.accounts.as_ref().map(|r| r.as_ref().err()),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!collections.is_empty()).then(|| !collections.iter().flatten().any(|e| e.is_connect()))
    }
}

/// Runs the probes in `ops` on one login (`probe::probe`), on the slot
/// `permit` holds in the probe budget, and frees it. When the login fails,
/// every probe carries its error: none could have connected.
/// `known_tables` are counts from an earlier run to reuse (see
/// [`TableCounts`]).
pub async fn run_probes(
    target: &Target,
    ops: Ops,
    known_tables: Option<&probe::KnownTables>,
    permit: ProbePermit,
) -> ProbeRun {
    let _permit = permit;
    let at = SystemTime::now();
    let collect = probe::Collect {
        capacity: ops.capacity,
        accounts: ops.accounts,
        known_tables,
    };
    let probed = probe::probe(target, collect).await;
    ProbeRun {
        at,
        connection: ops.connection.then_some(probed.connection),
        capacity: probed.capacity,
        accounts: probed.accounts,
        logins: probed.logins,
    }
}

/// An instance's table counts between capacity runs, so that PostgreSQL
/// databases whose size did not change are not logged into again. All are
/// counted afresh once per [`TableCounts::RECOUNT_EVERY`], which bounds how
/// stale a count can be when a table comes or goes without any size change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableCounts {
    /// What the counts were taken with (`inputs_fingerprint`): a changed
    /// host or login may be another server with databases of the same name.
    pub inputs: String,
    /// When every database was last counted.
    pub counted_at: SystemTime,
    pub known: probe::KnownTables,
}

impl TableCounts {
    pub const RECOUNT_EVERY: Duration = Duration::from_secs(24 * 3600);

    /// The counts to reuse in a run at `now` on `inputs`: none when they
    /// are too old or were taken with other inputs.
    pub fn reusable<'a>(
        this: Option<&'a TableCounts>,
        now: SystemTime,
        inputs: &str,
    ) -> Option<&'a probe::KnownTables> {
        let this = this.filter(|t| t.inputs == inputs)?;
        let age = now.duration_since(this.counted_at).unwrap_or_default();
        (age < Self::RECOUNT_EVERY).then_some(&this.known)
    }

    /// What to remember after a capacity run at `at` that reused `reused`
    /// (or counted everything, when `None`).
    pub fn after(
        previous: Option<&TableCounts>,
        reused: bool,
        inputs: &str,
        at: SystemTime,
        capacity: &Capacity,
    ) -> TableCounts {
        TableCounts {
            inputs: inputs.to_string(),
            counted_at: match previous {
                Some(p) if reused => p.counted_at,
                _ => at,
            },
            known: probe::KnownTables::of(&capacity.databases),
        }
    }
}

/// The probe target for an instance with resolved credentials. The host and
/// port are the ones the credentials were approved for
/// (`credentials::resolve` took them from the same spec), so a login never
/// goes anywhere else.
pub fn target(instance: &DbInstance, credentials: &Credentials, settings: &ProbeSettings) -> Target {
    let spec = &instance.spec;
    let mut target = Target::new(
        spec.db_type,
        credentials.host().to_string(),
        credentials.port(),
        credentials.username.clone(),
        credentials.password.clone(),
    )
    .with_tls(probe::TlsSettings {
        mode: spec.tls.mode,
        ca_pem: credentials.ca_pem.clone(),
    })
    .with_timeouts(settings.timeouts)
    .with_md5_allowed(credentials.md5_allowed);
    target.database = spec.database_name.clone();
    target
}

/// Fingerprint of everything a probe depends on besides the schedule.
pub fn inputs_fingerprint(instance: &DbInstance, credentials: Option<&Credentials>) -> String {
    let generation = instance.metadata.generation.unwrap_or(0);
    match credentials {
        Some(c) => format!("g{generation}/s{}", c.fingerprint),
        None => format!("g{generation}"),
    }
}

/// Tags the instance names that do not exist.
pub fn missing_tags(instance: &DbInstance, exists: impl Fn(&str) -> bool) -> Vec<String> {
    instance.spec.tags.iter().filter(|t| !exists(t)).cloned().collect()
}

/// resourceVersions are opaque, but on every real API server they are etcd
/// revisions: a cached version at or after the written one means the write
/// has been seen.
pub fn version_reached(cached: Option<&str>, written: &str) -> bool {
    match (cached.and_then(|c| c.parse::<u64>().ok()), written.parse::<u64>().ok()) {
        (Some(c), Some(w)) => c >= w,
        _ => cached == Some(written),
    }
}

/// Writes `status` as the whole status subresource, by server-side apply.
pub async fn write_status(api: &Api<DbInstance>, name: &str, status: &DbInstanceStatus) -> kube::Result<DbInstance> {
    let patch = serde_json::json!({
        "apiVersion": "dbfleet.io/v1alpha1",
        "kind": "DbInstance",
        "status": status,
    });
    api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await
}

/// Reads the Secret `name` the way dbfleet may: its metadata first, and its
/// data only when it opted in with a label, so the values of other Secrets
/// are never fetched. A Secret that did not opt in comes back without data,
/// for `credentials::resolve` to refuse by name (`SecretNotLabelled`).
pub async fn read_secret(api: &Api<Secret>, name: &str) -> kube::Result<Option<Secret>> {
    let Some(meta) = api.get_metadata_opt(name).await? else {
        return Ok(None);
    };
    if credentials::opted_in(&meta.metadata) {
        return api.get_opt(name).await;
    }
    Ok(Some(Secret {
        metadata: meta.metadata,
        ..Default::default()
    }))
}

/// [`read_secret`] for every Secret `spec` refers to (those that exist).
pub async fn read_referenced_secrets(
    api: &Api<Secret>,
    spec: &crate::crd::DbInstanceSpec,
) -> kube::Result<Vec<Secret>> {
    let mut fetched = Vec::new();
    for name in credentials::referenced_secrets(spec) {
        fetched.extend(read_secret(api, name).await?);
    }
    Ok(fetched)
}

/// One section of an instance's DbInventory, or of one of its parts.
#[derive(Clone, Copy)]
pub enum Section<'a> {
    Capacity(&'a InventoryCapacity),
    Accounts(&'a InventoryAccounts),
}

impl Section<'_> {
    fn kind(self) -> SectionKind {
        match self {
            Section::Capacity(_) => SectionKind::Databases,
            Section::Accounts(_) => SectionKind::Accounts,
        }
    }

    /// The section's field manager and its field in the spec.
    fn field(self) -> (&'static str, &'static str, serde_json::Value) {
        match self {
            Section::Capacity(c) => (CAPACITY_MANAGER, "capacity", serde_json::json!(c)),
            Section::Accounts(a) => (ACCOUNTS_MANAGER, "accounts", serde_json::json!(a)),
        }
    }
}

/// Writes one section of `instance`'s DbInventory (creating the object if
/// needed) by server-side apply under the section's own field manager. The
/// owner reference lets a cluster's garbage collector remove it too; the
/// controller deletes it itself when the instance goes.
pub async fn write_inventory(api: &Api<DbInventory>, instance: &DbInstance, section: Section<'_>) -> kube::Result<()> {
    let (manager, field, value) = section.field();
    apply_inventory_fields(api, instance, manager, [(field, value)]).await
}

/// The field manager of the DbInventory's `findings` when they change
/// without the accounts they follow from (new rules after an upgrade).
pub const FINDINGS_MANAGER: &str = "dbfleet-findings";

/// Writes the hygiene findings into `instance`'s DbInventory, under a field
/// manager of their own.
pub async fn write_findings(
    api: &Api<DbInventory>,
    instance: &DbInstance,
    findings: &crate::crd::findings::InventoryFindings,
) -> kube::Result<()> {
    apply_inventory_fields(
        api,
        instance,
        FINDINGS_MANAGER,
        [("findings", serde_json::json!(findings))],
    )
    .await
}

/// Writes the accounts section and the findings that follow from it in one
/// apply under the accounts' field manager: one write of the object, not
/// two, when a sync changes the accounts. Safe beside [`write_findings`]:
/// every apply of either manager carries `findings`, so neither ever
/// removes it.
pub async fn write_accounts_and_findings(
    api: &Api<DbInventory>,
    instance: &DbInstance,
    accounts: &InventoryAccounts,
    findings: &crate::crd::findings::InventoryFindings,
) -> kube::Result<()> {
    let fields = [
        ("accounts", serde_json::json!(accounts)),
        ("findings", serde_json::json!(findings)),
    ];
    apply_inventory_fields(api, instance, ACCOUNTS_MANAGER, fields).await
}

async fn apply_inventory_fields<const N: usize>(
    api: &Api<DbInventory>,
    instance: &DbInstance,
    manager: &str,
    fields: [(&str, serde_json::Value); N],
) -> kube::Result<()> {
    let mut spec = serde_json::json!({"dbType": instance.spec.db_type.as_str()});
    for (field, value) in fields {
        spec[field] = value;
    }
    let patch = serde_json::json!({
        "apiVersion": "dbfleet.io/v1alpha1",
        "kind": "DbInventory",
        "metadata": {"name": instance.name_any(), "ownerReferences": owner_of(instance)},
        "spec": spec,
    });
    api.patch(
        &instance.name_any(),
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

fn owner_of(instance: &DbInstance) -> Vec<OwnerReference> {
    instance.controller_owner_ref(&()).into_iter().collect()
}

/// Writes part `index` (from 1) of a section of `instance`'s DbInventory:
/// an object of its own named `name`, labelled with the instance's uid and
/// the section (so its parts are found by a selector, and only its), and
/// owned by the instance like its own DbInventory.
pub async fn write_inventory_part(
    api: &Api<DbInventory>,
    instance: &DbInstance,
    name: &str,
    index: usize,
    section: Section<'_>,
) -> kube::Result<()> {
    let (manager, field, value) = section.field();
    let kind = section.kind().as_str();
    let mut spec = serde_json::json!({
        "dbType": instance.spec.db_type.as_str(),
        "partOf": {"instance": instance.name_any(), "section": kind, "index": index},
    });
    spec[field] = value;
    let labels = serde_json::json!({
        INVENTORY_OWNER_LABEL: instance.metadata.uid.as_deref().unwrap_or_default(),
        INVENTORY_SECTION_LABEL: kind,
    });
    let patch = serde_json::json!({
        "apiVersion": "dbfleet.io/v1alpha1",
        "kind": "DbInventory",
        "metadata": {"name": name, "labels": labels, "ownerReferences": owner_of(instance)},
        "spec": spec,
    });
    api.patch(name, &PatchParams::apply(manager).force(), &Patch::Apply(&patch))
        .await?;
    Ok(())
}

/// Deletes the parts of `instance_uid`'s `kind` section that are not in
/// `keep`: those written before and no longer listed, and any left over by
/// a write that stopped halfway. Only objects carrying the instance's
/// owner label are looked at, and each is deleted only if it is still the
/// object that was listed (uid precondition).
pub async fn delete_inventory_parts(
    api: &Api<DbInventory>,
    instance_uid: &str,
    kind: SectionKind,
    keep: &[InventoryPart],
) -> kube::Result<()> {
    let selector = format!(
        "{INVENTORY_OWNER_LABEL}={instance_uid},{INVENTORY_SECTION_LABEL}={}",
        kind.as_str()
    );
    let listed = api.list_metadata(&ListParams::default().labels(&selector)).await?;
    for part in listed.items {
        let name = part.metadata.name.clone().unwrap_or_default();
        if keep.iter().any(|k| k.name == name) {
            continue;
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: part.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {}
            // Gone already, or replaced by another object meanwhile.
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What is stored under an instance's name.
pub enum StoredInventory {
    Missing,
    /// The instance's own DbInventory, its sections' parts not read yet.
    Own(DbInventory),
    /// Another instance's part (`<that>-accounts-<n>`) holds the name.
    OthersPart,
}

impl StoredInventory {
    pub fn own(self) -> Option<DbInventory> {
        match self {
            StoredInventory::Own(inventory) => Some(inventory),
            _ => None,
        }
    }
}

/// Reads the DbInventory of instance `name`, without its parts.
pub async fn read_inventory_head(api: &Api<DbInventory>, name: &str) -> kube::Result<StoredInventory> {
    Ok(match api.get_opt(name).await? {
        None => StoredInventory::Missing,
        Some(inventory) if inventory.spec.part_of.is_some() => StoredInventory::OthersPart,
        Some(inventory) => StoredInventory::Own(inventory),
    })
}

/// Reads the parts a section lists (of instance `instance`), in order, and
/// joins them in: a part missing or from another write is left out and
/// counted (`inventory::Parted::join`).
pub async fn join_parts<T: inventory::Parted>(
    api: &Api<DbInventory>,
    instance: &str,
    section: T,
    pick: impl Fn(DbInventorySpec) -> Option<T>,
) -> kube::Result<T> {
    if section.parts().is_empty() {
        return Ok(section);
    }
    let reads = section.parts().iter().map(|part| api.get_opt(&part.name));
    let parts = futures_util::future::try_join_all(reads).await?;
    let parts = parts
        .into_iter()
        .map(|part| {
            let spec = part?.spec;
            let belongs = spec.part_of.as_ref().is_some_and(|p| p.instance == instance);
            if belongs { pick(spec) } else { None }
        })
        .collect();
    Ok(section.join(parts))
}

/// The DbInventory of instance `name` with every section's parts joined
/// in, as the façade answers it; `None` before the controller wrote one.
pub async fn read_inventory(api: &Api<DbInventory>, name: &str) -> kube::Result<Option<DbInventorySpec>> {
    let Some(inventory) = read_inventory_head(api, name).await?.own() else {
        return Ok(None);
    };
    let mut spec = inventory.spec;
    if let Some(capacity) = spec.capacity.take() {
        spec.capacity = Some(join_parts(api, name, capacity, |s| s.capacity).await?);
    }
    if let Some(accounts) = spec.accounts.take() {
        spec.accounts = Some(join_parts(api, name, accounts, |s| s.accounts).await?);
    }
    Ok(Some(spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capacity(count: u32) -> Capacity {
        Capacity {
            server_version: "15".into(),
            databases: vec![probe::DatabaseSize {
                name: "app".into(),
                size_bytes: 8_192,
                table_count: Some(count),
            }],
            system_databases: Vec::new(),
            duration: Duration::ZERO,
            collected_at: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn table_counts_are_reused_for_a_day_after_a_full_count() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let first = TableCounts::after(None, false, "g1", t0, &capacity(3));
        assert_eq!(first.counted_at, t0);
        let hour = Duration::from_secs(3600);
        let reusable = TableCounts::reusable(Some(&first), t0 + hour, "g1").expect("fresh");
        assert_eq!(reusable.get("app", 8_192), Some(3));
        assert!(
            TableCounts::reusable(Some(&first), t0 + hour, "g2").is_none(),
            "another host or login"
        );
        // A run that reused counts keeps the time of the full count ...
        let second = TableCounts::after(Some(&first), true, "g1", t0 + hour, &capacity(4));
        assert_eq!(second.counted_at, t0);
        assert_eq!(second.known.get("app", 8_192), Some(4));
        // ... so a day after it, everything is counted again.
        assert!(TableCounts::reusable(Some(&second), t0 + TableCounts::RECOUNT_EVERY, "g1").is_none());
        let third = TableCounts::after(Some(&second), false, "g1", t0 + 25 * hour, &capacity(4));
        assert_eq!(third.counted_at, t0 + 25 * hour);
        assert!(TableCounts::reusable(None, t0, "g1").is_none());
    }
}
