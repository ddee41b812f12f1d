//! `DbHistory`: what changed on one DbInstance's server over time — daily
//! capacity samples (total and the largest databases) and the log of
//! account changes — kept beside the instance under the same name (issue
//! 21, docs/architecture.md "History").
//!
//! It is a resource of its own, not a section of the DbInventory: the
//! inventory of a 2,000-account server is already near its byte budget,
//! and history grows on another rhythm (a sample a day, an entry per
//! change). Written by the controller with server-side apply only when a
//! sample or an entry is added, one field manager per section, and bounded
//! by count and by a byte budget (`observe::history`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::bounds::MAX_GLOBAL_PRIVILEGES;

/// Most capacity samples the schema allows: a year of daily samples, well
/// above the default 90 days; the byte budget bounds them first.
pub const MAX_CAPACITY_SAMPLES: usize = 400;
/// Most databases one sample lists (the N largest, `--capacity-history-databases`).
pub const MAX_SAMPLE_DATABASES: usize = 50;
/// Most account changes the schema allows; the default keeps 500.
pub const MAX_ACCOUNT_CHANGES: usize = 2000;

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "dbfleet.io",
    version = "v1alpha1",
    kind = "DbHistory",
    plural = "dbhistories",
    shortname = "dbhist",
    category = "dbfleet",
    namespaced,
    derive = "PartialEq",
    doc = "What changed over time on the server of the DbInstance of the same name: daily capacity samples and the log of account changes. Written by the controller when a sample or a change is added; deleted with its instance.",
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.dbType"),
    printcolumn(name = "Samples", type_ = "integer", json_path = ".spec.capacity.sampleCount"),
    printcolumn(name = "Account Changes", type_ = "integer", json_path = ".spec.accounts.entryCount"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
/// The history of one server, by section; each section is replaced whole
/// when a sample or an entry is added.
pub struct DbHistorySpec {
    /// Wire protocol of the server (`mysql` or `postgresql`), copied from the
    /// instance.
    #[schemars(length(max = 16))]
    pub db_type: String,

    /// Capacity samples, oldest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacityHistory>,

    /// Account changes, oldest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<AccountHistory>,
}

/// A bounded series of capacity samples.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapacityHistory {
    /// How many samples `samples` holds (for the printer column).
    pub sample_count: u32,
    /// One sample per sample interval (`--capacity-sample-interval`, a day
    /// by default), oldest first; those older than the retention
    /// (`--capacity-history-retention`, 90 days) are dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_CAPACITY_SAMPLES))]
    pub samples: Vec<CapacitySample>,
}

/// The server's size at one moment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapacitySample {
    /// When the collection that gave these sizes ran.
    pub at: Time,
    /// Sum of every user database's size, in bytes, as collected (not
    /// rounded by the inventory's size threshold).
    pub total_size_bytes: u64,
    /// How many user databases the server held.
    pub database_count: u32,
    /// The largest databases at that moment (`--capacity-history-databases`,
    /// 10 by default), largest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_SAMPLE_DATABASES))]
    pub databases: Vec<SampledDatabase>,
}

/// One database's size in a sample.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SampledDatabase {
    /// The database's (MySQL: schema's) name.
    #[schemars(length(max = 256))]
    pub name: String,
    /// Its size in bytes.
    pub size_bytes: u64,
}

/// A bounded log of account changes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountHistory {
    /// How many entries `entries` holds (for the printer column).
    pub entry_count: u32,
    /// Entries dropped, oldest first, to keep the log within its bound
    /// (`--account-history-entries`, 500 by default) and the object within
    /// its byte budget, since the log began. Default: 0.
    #[serde(default)]
    pub dropped: u64,
    /// Each change between two account syncs, oldest first; the changes of
    /// one sync share its time, in account order. The first sync is the
    /// baseline and records nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ACCOUNT_CHANGES))]
    pub entries: Vec<AccountChange>,
}

/// What one account change was.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    AccountAdded,
    AccountRemoved,
    SuperuserGained,
    SuperuserLost,
    Locked,
    Unlocked,
    LoginEnabled,
    LoginDisabled,
    PrivilegesGained,
    PrivilegesLost,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 10] = [
        ChangeKind::AccountAdded,
        ChangeKind::AccountRemoved,
        ChangeKind::SuperuserGained,
        ChangeKind::SuperuserLost,
        ChangeKind::Locked,
        ChangeKind::Unlocked,
        ChangeKind::LoginEnabled,
        ChangeKind::LoginDisabled,
        ChangeKind::PrivilegesGained,
        ChangeKind::PrivilegesLost,
    ];

    /// The name in the CRD and the REST API (`account_added`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::AccountAdded => "account_added",
            ChangeKind::AccountRemoved => "account_removed",
            ChangeKind::PrivilegesGained => "privileges_gained",
            ChangeKind::PrivilegesLost => "privileges_lost",
            ChangeKind::SuperuserGained => "superuser_gained",
            ChangeKind::SuperuserLost => "superuser_lost",
            ChangeKind::Locked => "locked",
            ChangeKind::Unlocked => "unlocked",
            ChangeKind::LoginEnabled => "login_enabled",
            ChangeKind::LoginDisabled => "login_disabled",
        }
    }

    pub fn parse(s: &str) -> Option<ChangeKind> {
        ChangeKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One change of one account, found by comparing two account syncs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountChange {
    /// When the sync that found the change ran (the change happened between
    /// the sync before and this one).
    pub at: Time,
    /// The account's (role's or user's) name.
    #[schemars(length(max = 256))]
    pub account: String,
    /// The host part of a MySQL `user@host` account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub host: Option<String>,
    /// What changed: `account_added`, `account_removed`,
    /// `privileges_gained`, `privileges_lost`, `superuser_gained`,
    /// `superuser_lost`, `locked`, `unlocked`, `login_enabled`,
    /// `login_disabled`.
    pub kind: ChangeKind,
    /// For privileges gained or lost: the database (or MySQL pattern) they
    /// are on; absent for privileges on the whole server (MySQL `ON *.*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub database: Option<String>,
    /// For privileges gained or lost: which, normalised (upper case,
    /// sorted, each once; `GRANT OPTION` when the right to grant them on
    /// changed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_GLOBAL_PRIVILEGES))]
    pub privileges: Vec<String>,
}
