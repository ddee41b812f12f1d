//! `DbInventory`: the details of one DbInstance's server — every database
//! and every account — kept beside the instance under the same name, so the
//! DbInstance status stays a small summary (docs/architecture.md, "Status
//! and details").
//!
//! Written only by the controller, and only when its content changes: each
//! section carries a hash of its content, and database sizes count as
//! changed only beyond a threshold. The capacity and accounts sections are
//! written by server-side apply under field managers of their own, so one
//! probe never rewrites the other's section.
//!
//! A section too big for one object (~128 KiB of databases, ~384 KiB of
//! accounts) is spread over *parts*: further DbInventories named
//! `<instance>-databases-<n>` and `<instance>-accounts-<n>`, each holding a
//! run of the items in order, listed with their content hashes in the
//! section's `parts` (docs/architecture.md, "Status and details"). A part
//! carries `partOf` and the labels in [`crate::crd::keys`]; readers join
//! the parts in order and trust only parts whose hash the list names.
//! `truncated` and `omitted` say what was left out beyond the parts' cap.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::bounds::{MAX_ACCOUNT_DATABASES, MAX_ACCOUNT_ROLES, MAX_DATABASE_PRIVILEGES, MAX_GLOBAL_PRIVILEGES};

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "dbfleet.io",
    version = "v1alpha1",
    kind = "DbInventory",
    plural = "dbinventories",
    shortname = "dbinv",
    category = "dbfleet",
    namespaced,
    derive = "PartialEq",
    doc = "What dbfleet found on the server of the DbInstance of the same name: every database with its size and table count, and every account with its flags and the databases it reaches. Written by the controller when the content changes; deleted with its instance.",
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.dbType"),
    printcolumn(name = "Databases", type_ = "integer", json_path = ".spec.capacity.databaseCount"),
    printcolumn(name = "Accounts", type_ = "integer", json_path = ".spec.accounts.count"),
    printcolumn(
        name = "Capacity Collected",
        type_ = "date",
        json_path = ".spec.capacity.collectedAt"
    ),
    printcolumn(name = "Accounts Synced", type_ = "date", json_path = ".spec.accounts.syncedAt"),
    printcolumn(
        name = "DB Truncated",
        type_ = "boolean",
        priority = 1,
        json_path = ".spec.capacity.truncated",
        description = "Some databases were left out to keep the object small"
    ),
    printcolumn(
        name = "Acct Truncated",
        type_ = "boolean",
        priority = 1,
        json_path = ".spec.accounts.truncated",
        description = "Some accounts were left out to keep the object small"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
/// What the controller found on the server, by section; each section is
/// replaced whole when its content changes.
pub struct DbInventorySpec {
    /// Wire protocol of the server (`mysql` or `postgresql`), copied from the
    /// instance.
    #[schemars(length(max = 16))]
    pub db_type: String,

    /// The last successful capacity collection: every user database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<InventoryCapacity>,

    /// The last successful account sync: every account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<InventoryAccounts>,

    /// The hygiene findings of the last account sync (docs/probes.md,
    /// "Hygiene findings"). Absent on a part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub findings: Option<super::findings::InventoryFindings>,

    /// Set on a part: the instance and section whose items it holds a run
    /// of. Absent on an instance's own DbInventory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_of: Option<InventoryPartOf>,
}

/// What a part belongs to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryPartOf {
    /// The DbInstance (and its DbInventory) the part belongs to.
    #[schemars(length(max = 253))]
    pub instance: String,
    /// `accounts` or `databases`: the section it continues.
    #[schemars(length(max = 16))]
    pub section: String,
    /// Its place in the section's `parts`, from 1.
    pub index: u32,
}

/// Most parts one section is spread over: 256 × 384 KiB holds some
/// 400,000 accounts; beyond, the rest is left out (`truncated`).
pub const MAX_INVENTORY_PARTS: usize = 256;

/// One part of a section, as the instance's own DbInventory lists it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryPart {
    /// The DbInventory holding this run of items.
    #[schemars(length(max = 253))]
    pub name: String,
    /// Items it holds.
    pub count: u32,
    /// The `contentHash` of the part's section: a part with another hash is
    /// from an earlier or later write, not this one.
    #[schemars(length(max = 64))]
    pub content_hash: String,
}

/// Every user database of the server (PostgreSQL: non-template databases;
/// MySQL: every schema but the system ones).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryCapacity {
    /// When the collection that produced this content ran (not refreshed
    /// while the content stays the same).
    pub collected_at: Time,
    /// Databases on the server, including any left out below.
    pub database_count: u32,
    /// Sum of every database's size in bytes, including any left out.
    pub total_size_bytes: u64,
    /// Sorted by name. Empty when `parts` holds them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5000))]
    pub databases: Vec<InventoryDatabase>,
    /// When the databases outgrew this object (~128 KiB): the parts that
    /// hold them, in order. Empty otherwise, and on a part.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_INVENTORY_PARTS))]
    pub parts: Vec<InventoryPart>,
    /// Whether databases were left out even with every part full
    /// (`MAX_INVENTORY_PARTS` parts). Default: false.
    #[serde(default)]
    pub truncated: bool,
    /// How many databases were left out. Default: 0.
    #[serde(default)]
    pub omitted: u32,
    /// Hash of the content as written (names, table counts, sizes as
    /// written), so the controller can tell a change without timestamps.
    #[schemars(length(max = 64))]
    pub content_hash: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryDatabase {
    /// The database's (MySQL: schema's) name.
    #[schemars(length(max = 256))]
    pub name: String,
    /// Size in bytes (PostgreSQL `pg_database_size`; MySQL data plus index
    /// length). Rewritten only when it moved beyond the controller's
    /// threshold (`--inventory-size-threshold`).
    pub size_bytes: u64,
    /// Tables, not counting views or partitions. Absent when the monitoring
    /// login may not enter the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_count: Option<u32>,
}

/// Every account (PostgreSQL roles except the predefined `pg_*` ones;
/// MySQL `user@host` accounts and MariaDB roles).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryAccounts {
    /// When the sync that produced this content ran (not refreshed while
    /// the content stays the same).
    pub synced_at: Time,
    /// Accounts on the server, including any left out below.
    pub count: u32,
    /// Superuser-class accounts (PostgreSQL `rolsuper`, MySQL `SUPER`).
    pub superuser_count: u32,
    /// Sorted by name, then host. Empty when `parts` holds them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20000))]
    pub items: Vec<InventoryAccount>,
    /// When the accounts outgrew this object (~384 KiB): the parts that
    /// hold them, in order. Empty otherwise, and on a part.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_INVENTORY_PARTS))]
    pub parts: Vec<InventoryPart>,
    /// Whether accounts were left out even with every part full
    /// (`MAX_INVENTORY_PARTS` parts). Default: false.
    #[serde(default)]
    pub truncated: bool,
    /// How many accounts were left out. Default: 0.
    #[serde(default)]
    pub omitted: u32,
    /// Hash of the content as written.
    #[schemars(length(max = 64))]
    pub content_hash: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryAccount {
    /// The account's (role's or user's) name.
    #[schemars(length(max = 256))]
    pub name: String,
    /// The host part of a MySQL `user@host` account (`%` is any host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub host: Option<String>,
    /// Whether the account bypasses privilege checks (PostgreSQL
    /// `SUPERUSER`, MySQL `SUPER`).
    pub superuser: bool,
    /// Whether the account may log in (PostgreSQL `LOGIN`; false for a
    /// MySQL role).
    pub can_login: bool,
    /// Whether the account is locked (MySQL `ACCOUNT LOCK`; always false on
    /// PostgreSQL).
    pub locked: bool,
    /// Whether the password has expired (PostgreSQL `VALID UNTIL` in the
    /// past, MySQL `PASSWORD EXPIRE`). Default: false.
    #[serde(default)]
    pub expired: bool,
    /// Roles the account is a member of, sorted: PostgreSQL
    /// `pg_auth_members`, MariaDB `mysql.roles_mapping`, MySQL 8
    /// `mysql.role_edges` (as `role@host`); at most the first 256
    /// (`rolesTruncated` says when there are more).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ACCOUNT_ROLES))]
    pub roles: Vec<String>,
    /// Whether the account is a member of more roles than `roles` lists.
    /// Default: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub roles_truncated: bool,
    /// MySQL privileges granted `ON *.*` (e.g. `SELECT`, `RELOAD`), sorted;
    /// `USAGE`, which means none, is left out. Empty on PostgreSQL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_GLOBAL_PRIVILEGES))]
    pub global_privileges: Vec<String>,
    /// Whether the global privileges were granted `WITH GRANT OPTION`.
    /// Default: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub global_grant_option: bool,
    /// PostgreSQL role attributes beyond `SUPERUSER` and `LOGIN`, sorted:
    /// `BYPASSRLS`, `CREATEDB`, `CREATEROLE`, `REPLICATION`. Empty on MySQL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub attributes: Vec<String>,
    /// PostgreSQL `VALID UNTIL`, when set to a finite time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<Time>,
    /// The MySQL authentication plugin (e.g. `mysql_native_password`,
    /// `caching_sha2_password`); absent on PostgreSQL and for roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub auth_plugin: Option<String>,
    /// Databases the account owns or holds a privilege on, sorted; at most
    /// the first 1,000 (`databasesTruncated` says when there are more).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_ACCOUNT_DATABASES))]
    pub databases: Vec<AccountDatabase>,
    /// Whether the account reaches more databases than `databases` lists
    /// (it lists at most 1,000). Default: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub databases_truncated: bool,
}

/// One database an account reaches, with the privileges granted to the
/// account itself (privileges of `PUBLIC` and of member roles are not
/// repeated here).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountDatabase {
    /// A database name, or a MySQL pattern such as `app\_%`.
    #[schemars(length(max = 256))]
    pub name: String,
    /// Privileges held on the database as a whole, sorted: PostgreSQL
    /// `CONNECT`, `CREATE`, `TEMPORARY` (from `datacl`, or the owner's
    /// defaults); MySQL schema-level privileges such as `SELECT` or `ALTER`.
    /// Empty when the account only holds grants on objects inside.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_DATABASE_PRIVILEGES))]
    pub privileges: Vec<String>,
    /// Whether the account may grant these privileges to others (PostgreSQL:
    /// at least one of them). Default: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub grant_option: bool,
    /// Whether the account owns the database (PostgreSQL). Default: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub owner: bool,
    /// Whether the account also holds privileges on tables, columns or
    /// routines inside (MySQL), which are not listed. Default: false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub object_grants: bool,
}
