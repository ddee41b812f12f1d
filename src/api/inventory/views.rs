//! How an instance's inventory looks in the REST answers: pure mappings
//! from the DbInventory's sections.

use serde::Serialize;
use utoipa::ToSchema;

use crate::api::envelope::format_time;
use crate::api::pagination::{PageRequest, Paged};
use crate::crd::inventory::{AccountDatabase, InventoryAccount, InventoryDatabase};

/// One database of an instance.
#[derive(Serialize, Clone, Debug, PartialEq, ToSchema)]
pub struct DatabaseItem {
    pub name: String,
    pub size_bytes: u64,
    /// Absent when the monitoring login may not enter the database.
    pub table_count: Option<u32>,
}

impl From<&InventoryDatabase> for DatabaseItem {
    fn from(d: &InventoryDatabase) -> Self {
        DatabaseItem {
            name: d.name.clone(),
            size_bytes: d.size_bytes,
            table_count: d.table_count,
        }
    }
}

/// One database an account reaches, with the privileges granted to the
/// account itself.
#[derive(Serialize, Clone, Debug, PartialEq, ToSchema)]
pub struct AccountDatabaseView {
    /// A database name, or a MySQL pattern such as `app\_%`.
    pub name: String,
    /// Privileges on the database as a whole, sorted (PostgreSQL `CONNECT`,
    /// `CREATE`, `TEMPORARY`; MySQL schema-level privileges).
    pub privileges: Vec<String>,
    pub grant_option: bool,
    /// The account owns the database (PostgreSQL).
    pub owner: bool,
    /// The account also holds privileges on objects inside (MySQL), not
    /// listed.
    pub object_grants: bool,
}

impl From<&AccountDatabase> for AccountDatabaseView {
    fn from(d: &AccountDatabase) -> Self {
        AccountDatabaseView {
            name: d.name.clone(),
            privileges: d.privileges.clone(),
            grant_option: d.grant_option,
            owner: d.owner,
            object_grants: d.object_grants,
        }
    }
}

/// One account (PostgreSQL role, MySQL `user@host`) and what it may do.
#[derive(Serialize, Clone, Debug, PartialEq, ToSchema)]
pub struct AccountView {
    pub name: String,
    /// The host part of a MySQL account (`%` is any host); null on
    /// PostgreSQL.
    pub host: Option<String>,
    pub superuser: bool,
    pub can_login: bool,
    pub locked: bool,
    /// The password has expired (PostgreSQL `VALID UNTIL` past, MySQL
    /// `PASSWORD EXPIRE`).
    pub expired: bool,
    /// MySQL authentication plugin, where known.
    pub auth_plugin: Option<String>,
    /// Roles the account is a member of (PostgreSQL memberships, MariaDB
    /// and MySQL 8 roles).
    pub roles: Vec<String>,
    /// The account is a member of more roles than `roles` lists.
    pub roles_truncated: bool,
    /// MySQL privileges `ON *.*`; empty on PostgreSQL.
    pub global_privileges: Vec<String>,
    pub global_grant_option: bool,
    /// PostgreSQL role attributes beyond superuser and login
    /// (`BYPASSRLS`, `CREATEDB`, `CREATEROLE`, `REPLICATION`).
    pub attributes: Vec<String>,
    /// PostgreSQL `VALID UNTIL` (RFC 3339), when set.
    pub valid_until: Option<String>,
    pub databases: Vec<AccountDatabaseView>,
    /// The account reaches more databases than `databases` lists.
    pub databases_truncated: bool,
}

impl From<&InventoryAccount> for AccountView {
    fn from(a: &InventoryAccount) -> Self {
        AccountView {
            name: a.name.clone(),
            host: a.host.clone(),
            superuser: a.superuser,
            can_login: a.can_login,
            locked: a.locked,
            expired: a.expired,
            auth_plugin: a.auth_plugin.clone(),
            roles: a.roles.clone(),
            roles_truncated: a.roles_truncated,
            global_privileges: a.global_privileges.clone(),
            global_grant_option: a.global_grant_option,
            attributes: a.attributes.clone(),
            valid_until: a.valid_until.as_ref().map(|t| format_time(t.0)),
            databases: a.databases.iter().map(AccountDatabaseView::from).collect(),
            databases_truncated: a.databases_truncated,
        }
    }
}

/// A page of one section of an instance's inventory, and what is known
/// about the section as a whole.
#[derive(Serialize, Debug, ToSchema)]
pub struct InventoryPage<T> {
    pub items: Vec<T>,
    pub total: usize,
    pub page: usize,
    pub pages: usize,
    pub limit: usize,
    /// Whether the controller has collected this section yet. `false`: the
    /// list is empty because nothing is known yet (no successful sync),
    /// not because the server has none.
    pub collected: bool,
    /// When the content was collected (RFC 3339); null when not yet.
    pub collected_at: Option<String>,
    /// Whether the server has more than the inventory kept (it is capped
    /// in size); `omitted` says how many were left out.
    pub truncated: bool,
    pub omitted: u32,
}

/// What is known about one section of the inventory.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SectionInfo {
    pub collected_at: Option<String>,
    pub truncated: bool,
    pub omitted: u32,
}

impl<T> InventoryPage<T> {
    /// `page` of `items` (filtered and sorted), of a section described by
    /// `section` (`None`: not collected yet).
    pub fn of(items: Vec<T>, page: PageRequest, section: Option<SectionInfo>) -> Self {
        let Paged {
            items,
            total,
            page,
            pages,
            limit,
        } = page.apply(items);
        let collected = section.is_some();
        let section = section.unwrap_or_default();
        InventoryPage {
            items,
            total,
            page,
            pages,
            limit,
            collected,
            collected_at: section.collected_at,
            truncated: section.truncated,
            omitted: section.omitted,
        }
    }
}
