//! Probe results as the `DbInstanceStatus` fields a controller writes.

use std::time::{Duration, SystemTime};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::accounts::{Account, AccountDiff, diff_accounts};
use super::error::ProbeError;
use super::{Accounts, Capacity, ConnectionInfo, DatabaseSize};
use crate::crd::instance::{
    AccountChanges, AccountItem, AccountsStatus, CapacityStatus, ConnectionState, ConnectionStatus, DatabaseCapacity,
};

/// How many accounts `status.accounts.items` keeps (SPEC §1.1).
pub const DEFAULT_ACCOUNT_ITEMS_CAP: usize = 500;

fn time(at: SystemTime) -> Time {
    Time(Timestamp::try_from(at).unwrap_or(Timestamp::UNIX_EPOCH))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// `status.connection` after a connection test that ran at `checked_at`.
pub fn connection_status(result: &Result<ConnectionInfo, ProbeError>, checked_at: SystemTime) -> ConnectionStatus {
    match result {
        Ok(info) => ConnectionStatus {
            status: ConnectionState::Connected,
            last_checked_at: Some(time(checked_at)),
            latency_ms: Some(millis(info.latency)),
            server_version: Some(info.server_version.clone()),
            version: None,
            message: None,
        },
        Err(err) => ConnectionStatus {
            status: ConnectionState::Failed,
            last_checked_at: Some(time(checked_at)),
            latency_ms: None,
            server_version: None,
            version: None,
            message: Some(err.message.clone()),
        },
    }
}

impl From<&DatabaseSize> for DatabaseCapacity {
    fn from(db: &DatabaseSize) -> Self {
        DatabaseCapacity {
            name: db.name.clone(),
            size_bytes: db.size_bytes,
            table_count: db.table_count,
        }
    }
}

impl From<&Capacity> for CapacityStatus {
    /// User databases only; MySQL system schemas stay out of the totals.
    fn from(capacity: &Capacity) -> Self {
        CapacityStatus {
            total_size_bytes: capacity.total_size_bytes(),
            total_size: None,
            database_count: count(capacity.databases.len()),
            databases: capacity.databases.iter().map(DatabaseCapacity::from).collect(),
            collected_at: time(capacity.collected_at),
            duration_ms: millis(capacity.duration),
        }
    }
}

impl From<&Account> for AccountItem {
    fn from(account: &Account) -> Self {
        AccountItem {
            name: account.name.clone(),
            host: account.host.clone(),
            superuser: account.superuser,
            can_login: account.can_login,
            locked: account.locked,
            expired: account.expired,
            databases: account.databases.clone(),
        }
    }
}

impl From<&AccountDiff> for AccountChanges {
    fn from(diff: &AccountDiff) -> Self {
        AccountChanges {
            added: count(diff.added.len()),
            removed: count(diff.removed.len()),
            modified: count(diff.modified.len()),
        }
    }
}

impl Accounts {
    /// `status.accounts`, keeping the first `cap` accounts (sorted by name,
    /// then host) and saying whether any were left out.
    pub fn to_status(&self, changes: AccountChanges, cap: usize) -> AccountsStatus {
        AccountsStatus {
            count: count(self.accounts.len()),
            synced_at: time(self.synced_at),
            duration_ms: millis(self.duration),
            superuser_count: count(self.superuser_count()),
            items: self.accounts.iter().take(cap).map(AccountItem::from).collect(),
            truncated: self.accounts.len() > cap,
            changes,
        }
    }
}

/// Changes since the sync recorded in `previous`, compared on the fields the
/// status keeps. `None` when `previous.items` was truncated, since accounts
/// beyond the cap cannot be compared; a controller that keeps the previous
/// [`Accounts`] in memory can use [`diff_accounts`] on the full lists.
pub fn account_changes(previous: &AccountsStatus, current: &Accounts) -> Option<AccountChanges> {
    if previous.truncated {
        return None;
    }
    let current: Vec<AccountItem> = current.accounts.iter().map(AccountItem::from).collect();
    Some(AccountChanges::from(&diff_accounts(&previous.items, &current)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{ErrorKind, Stage};

    fn account(name: &str, superuser: bool) -> Account {
        Account {
            name: name.into(),
            host: Some("%".into()),
            superuser,
            can_login: true,
            locked: false,
            expired: false,
            databases: vec!["shop".into()],
        }
    }

    fn accounts(list: Vec<Account>) -> Accounts {
        Accounts {
            server_version: "10.11.19-MariaDB".into(),
            accounts: list,
            duration: Duration::from_millis(42),
            synced_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    #[test]
    fn a_successful_test_is_connected_with_latency_and_version() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let ok = Ok(ConnectionInfo {
            server_version: "15.18".into(),
            latency: Duration::from_micros(3_400),
            tls: true,
        });
        let status = connection_status(&ok, at);
        assert_eq!(status.status, ConnectionState::Connected);
        assert_eq!(status.latency_ms, Some(3));
        assert_eq!(status.server_version.as_deref(), Some("15.18"));
        assert_eq!(status.last_checked_at.unwrap().0.as_second(), 1_700_000_000);
        assert_eq!(status.message, None);
    }

    #[test]
    fn a_failed_test_carries_the_message() {
        let err = Err(ProbeError::new(ErrorKind::Timeout, Stage::Connect, "no answer"));
        let status = connection_status(&err, SystemTime::now());
        assert_eq!(status.status, ConnectionState::Failed);
        assert_eq!(status.message.as_deref(), Some("no answer"));
        assert_eq!(status.latency_ms, None);
    }

    #[test]
    fn capacity_totals_leave_system_schemas_out() {
        let db = |name: &str, size, tables| DatabaseSize {
            name: name.into(),
            size_bytes: size,
            table_count: tables,
        };
        let capacity = Capacity {
            server_version: "10.11".into(),
            databases: vec![db("a", 100, Some(2)), db("b", 50, None)],
            system_databases: vec![db("mysql", 1000, Some(31))],
            duration: Duration::from_millis(7),
            collected_at: SystemTime::UNIX_EPOCH,
        };
        let status = CapacityStatus::from(&capacity);
        assert_eq!(status.total_size_bytes, 150);
        assert_eq!(status.database_count, 2);
        assert_eq!(
            status.databases[1],
            DatabaseCapacity {
                name: "b".into(),
                size_bytes: 50,
                table_count: None
            }
        );
        assert_eq!(status.duration_ms, 7);
    }

    #[test]
    fn account_items_are_capped_and_flagged() {
        let synced = accounts(vec![account("a", true), account("b", false), account("c", true)]);
        let status = synced.to_status(
            AccountChanges {
                added: 3,
                removed: 0,
                modified: 0,
            },
            2,
        );
        assert_eq!(status.count, 3);
        assert_eq!(status.superuser_count, 2);
        assert_eq!(status.items.len(), 2);
        assert!(status.truncated);
        assert_eq!(status.changes.added, 3);
        assert_eq!(status.duration_ms, 42);

        let status = synced.to_status(AccountChanges::default(), DEFAULT_ACCOUNT_ITEMS_CAP);
        assert!(!status.truncated);
        assert_eq!(status.items[0].databases, vec!["shop".to_string()]);
    }

    #[test]
    fn changes_are_computed_against_the_previous_status() {
        let previous = accounts(vec![account("a", false), account("b", false)])
            .to_status(AccountChanges::default(), DEFAULT_ACCOUNT_ITEMS_CAP);
        let current = accounts(vec![account("a", true), account("c", false)]);
        assert_eq!(
            account_changes(&previous, &current),
            Some(AccountChanges {
                added: 1,
                removed: 1,
                modified: 1
            })
        );

        let truncated =
            accounts(vec![account("a", false), account("b", false)]).to_status(AccountChanges::default(), 1);
        assert_eq!(account_changes(&truncated, &current), None);
    }
}
