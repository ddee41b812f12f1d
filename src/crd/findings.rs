//! Hygiene findings as the resources hold them: the counts in the
//! DbInstance status, the list in the DbInventory (`spec.findings`). The
//! codes, their severities and what to do about each are in
//! `docs/probes.md` ("Hygiene findings"); `observe::findings` computes
//! them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::{Deserialize, Serialize};

/// Most findings one DbInventory lists (the most severe first); the rest
/// are counted in `omitted`.
pub const MAX_FINDINGS: usize = 2000;

/// Findings by severity. In the DbInstance status: the last successful
/// account sync's findings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FindingCounts {
    /// Findings of severity `high`.
    pub high: u32,
    /// Findings of severity `medium`.
    pub medium: u32,
    /// Findings of severity `low`.
    pub low: u32,
    /// Checks that could not run with dbfleet's login (the DbInventory's
    /// `findings.notChecked` says which and why). Default: 0.
    #[serde(default)]
    pub not_checked: u32,
    /// The codes found, each with its count, sorted by code.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub by_code: Vec<CodeCount>,
}

/// How many findings of one code.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CodeCount {
    /// The finding code (docs/probes.md).
    #[schemars(length(max = 64))]
    pub code: String,
    /// Findings of that code.
    pub count: u32,
}

impl FindingCounts {
    pub fn total(&self) -> u32 {
        self.high.saturating_add(self.medium).saturating_add(self.low)
    }
}

/// The hygiene findings of the last account sync.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryFindings {
    /// When the account sync that produced this content ran (not refreshed
    /// while the content stays the same).
    pub checked_at: Time,
    /// Every finding counted by severity, those left out below included.
    pub counts: FindingCounts,
    /// The findings, most severe first, then by code and account.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_FINDINGS))]
    pub items: Vec<InventoryFinding>,
    /// Checks dbfleet's login could not make, with the reason: no
    /// finding of that code is no evidence there is none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub not_checked: Vec<FindingNotChecked>,
    /// Whether findings were left out to stay within the object's budget.
    /// Default: false.
    #[serde(default)]
    pub truncated: bool,
    /// How many findings were left out. Default: 0.
    #[serde(default)]
    pub omitted: u32,
    /// Hash of the content as written (without `checkedAt`).
    #[schemars(length(max = 64))]
    pub content_hash: String,
}

/// One finding.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryFinding {
    /// Stable code, e.g. `empty_password` (docs/probes.md lists them).
    #[schemars(length(max = 64))]
    pub code: String,
    /// `high`, `medium` or `low`.
    #[schemars(length(max = 16))]
    pub severity: String,
    /// The account it concerns (name); absent for a server setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub account: Option<String>,
    /// The host part of a MySQL `user@host` account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub host: Option<String>,
    /// What was found, for a person.
    #[schemars(length(max = 1024))]
    pub message: String,
}

/// A check that could not run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FindingNotChecked {
    /// The finding code the check would have produced.
    #[schemars(length(max = 64))]
    pub code: String,
    /// Why it could not run (the grant it needs).
    #[schemars(length(max = 1024))]
    pub reason: String,
}
