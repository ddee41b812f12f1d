//! Talking to the inventoried database servers: one interface over
//! PostgreSQL (tokio-postgres) and MySQL/MariaDB (mysql_async), so the
//! controllers and the façade never write SQL. No Kubernetes in here: the
//! caller resolves Secrets and passes credentials and the CA bundle in.
//!
//! [`probe`] logs in once and runs, on that one session:
//! - the connection test: log in, read the server version, time it;
//! - if asked, the capacity: size and table count of every database
//!   (PostgreSQL needs one more login per other database to count tables);
//! - if asked, the accounts: every account with its flags and the databases
//!   it has privileges on; [`diff_accounts`] compares two results.
//!
//! Logins dominate a probe's cost on both sides (TLS and SCRAM), so the
//! probes an instance is due for share one. [`test_connection`],
//! [`collect_capacity`] and [`collect_accounts`] run one of them alone.
//!
//! Before a password leaves, a guard per engine reads the server's
//! authentication request: a password goes out in a recoverable form only
//! to a server verified under `tls.mode: verify-full` (`guard`).
//!
//! Every probe is bounded by [`Timeouts`], and fails with a [`ProbeError`]
//! whose [`ErrorKind`] becomes a condition reason and whose [`Stage`] tells
//! "cannot connect" from "connected but the collection failed". `sync`
//! turns results into Kubernetes objects. The grants a monitoring account
//! needs are in `docs/probes.md`.

mod accounts;
mod auth_policy;
mod error;
mod hygiene;
mod mysql;
mod mysql_relay;
mod net;
mod pg_guard;
mod postgres;
pub mod replication;
mod tls;

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

pub use accounts::{Account, AccountDiff, AccountKey, AccountRecord, DatabaseGrant, diff_accounts};
pub use error::{ErrorKind, ProbeError, Stage};
pub use hygiene::{Checked, Hygiene, PASSWORD_PLUGINS, STRONG_PLUGINS};
pub use replication::{Lag, Replication};
pub use tls::TlsSettings;

use crate::crd::instance::DbType;

/// A password that never shows up in `Debug` output, logs or errors.
/// Deliberately not `Display`; use [`Password::expose`] where the driver
/// needs it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(password: impl Into<String>) -> Self {
        Password(password.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl From<String> for Password {
    fn from(password: String) -> Self {
        Password(password)
    }
}

/// Bounds on every probe (SPEC §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Name resolution, TCP, TLS and login together.
    pub connect: Duration,
    /// Everything after the login: one capacity collection or account sync
    /// as a whole. PostgreSQL also gets it as `statement_timeout`.
    pub operation: Duration,
}

impl Timeouts {
    pub const DEFAULT_CONNECT: Duration = Duration::from_secs(5);
    pub const DEFAULT_OPERATION: Duration = Duration::from_secs(30);
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Self::DEFAULT_CONNECT,
            operation: Self::DEFAULT_OPERATION,
        }
    }
}

/// One server to probe and how to log in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub db_type: DbType,
    pub host: String,
    pub port: u16,
    /// Database to connect to; PostgreSQL defaults to `postgres`, MySQL to
    /// none.
    pub database: Option<String>,
    pub user: String,
    pub password: Password,
    pub tls: TlsSettings,
    pub timeouts: Timeouts,
    /// The credential opted in to answering PostgreSQL MD5 challenges from
    /// a server whose identity was not verified (`dbfleet.io/allow-md5`).
    pub md5_allowed: bool,
}

impl Target {
    /// A target with TLS mode `prefer` and the default timeouts.
    pub fn new(
        db_type: DbType,
        host: impl Into<String>,
        port: u16,
        user: impl Into<String>,
        password: Password,
    ) -> Self {
        Target {
            db_type,
            host: host.into(),
            port,
            database: None,
            user: user.into(),
            password,
            tls: TlsSettings::default(),
            timeouts: Timeouts::default(),
            md5_allowed: false,
        }
    }

    pub fn with_database(mut self, database: impl Into<String>) -> Self {
        self.database = Some(database.into());
        self
    }

    pub fn with_tls(mut self, tls: TlsSettings) -> Self {
        self.tls = tls;
        self
    }

    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Lets an unverified PostgreSQL server have an MD5 answer (weak: it
    /// can be cracked offline; see docs/security.md).
    pub fn with_md5_allowed(mut self, allowed: bool) -> Self {
        self.md5_allowed = allowed;
        self
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A successful connection test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// As the server reports it, e.g. `15.18 (Debian 15.18-0+deb12u1)` or
    /// `10.11.19-MariaDB-0+deb12u1`.
    pub server_version: String,
    /// From starting name resolution to the version query's answer: TCP,
    /// TLS, login and one round trip.
    pub latency: Duration,
    /// Whether the session is encrypted (for `prefer`, whether the server
    /// offered TLS).
    pub tls: bool,
    /// What the server says about replication, read on the same login; an
    /// error here (a missing grant) does not fail the connection test.
    pub replication: Result<Replication, ProbeError>,
    /// What the login itself may do, read on the same session
    /// (`observe::login_check` judges it); an error when it could not be
    /// read, which does not fail the test.
    pub login: Result<Account, ProbeError>,
}

/// Size and table count of one database (a MySQL schema).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseSize {
    pub name: String,
    /// PostgreSQL: `pg_database_size`. MySQL: data plus index length of its
    /// tables as `information_schema.TABLES` reports them.
    pub size_bytes: u64,
    /// Tables (not views, not partitions). `None` when the database cannot
    /// be entered (PostgreSQL: `datallowconn` off or no CONNECT privilege).
    pub table_count: Option<u32>,
}

/// One capacity collection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capacity {
    pub server_version: String,
    /// User databases, sorted by name. PostgreSQL: every non-template
    /// database; MySQL: every schema but the system ones.
    pub databases: Vec<DatabaseSize>,
    /// MySQL's `mysql`, `information_schema`, `performance_schema` and
    /// `sys`, kept apart from the totals; empty for PostgreSQL.
    pub system_databases: Vec<DatabaseSize>,
    /// Connecting included.
    pub duration: Duration,
    pub collected_at: SystemTime,
}

impl Capacity {
    /// Sum over [`Capacity::databases`] (system schemas excluded).
    pub fn total_size_bytes(&self) -> u64 {
        self.databases.iter().map(|db| db.size_bytes).sum()
    }
}

/// One account sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accounts {
    pub server_version: String,
    /// Sorted by name, then host.
    pub accounts: Vec<Account>,
    /// Connecting included.
    pub duration: Duration,
    pub synced_at: SystemTime,
    /// What the hygiene findings need besides the accounts, read on the
    /// same session.
    pub hygiene: Hygiene,
}

impl Accounts {
    pub fn superuser_count(&self) -> usize {
        self.accounts.iter().filter(|a| a.superuser).count()
    }
}

/// What to collect besides the connection test, which every probe runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Collect<'a> {
    pub capacity: bool,
    pub accounts: bool,
    /// Counts from an earlier capacity run to reuse (PostgreSQL).
    pub known_tables: Option<&'a KnownTables>,
}

/// Table counts from an earlier capacity run. PostgreSQL needs a login per
/// database to count its tables, while every size comes with the one
/// session; a database whose size has not moved by a byte keeps its count.
/// (A new table adds a relation file and catalog rows; the caller bounds
/// how long counts are reused, for the rare one that changes neither.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KnownTables(Vec<(u64, u64, u32)>);

impl KnownTables {
    /// The counts in `databases`, by name hash (FNV-1a) with the size they
    /// were counted at: 20 bytes a database, whatever its name.
    pub fn of(databases: &[DatabaseSize]) -> Self {
        let mut known: Vec<(u64, u64, u32)> = databases
            .iter()
            .filter_map(|d| Some((name_hash(&d.name), d.size_bytes, d.table_count?)))
            .collect();
        known.sort_unstable();
        KnownTables(known)
    }

    /// The count of `name` if it was counted at exactly `size_bytes`.
    pub fn get(&self, name: &str, size_bytes: u64) -> Option<u32> {
        let key = name_hash(name);
        let at = self.0.partition_point(|(k, _, _)| *k < key);
        self.0[at..]
            .iter()
            .take_while(|(k, _, _)| *k == key)
            .find(|(_, size, _)| *size == size_bytes)
            .map(|(_, _, count)| *count)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

/// The results of one [`probe`]. When the login or the version query
/// fails, every collection asked for carries that error: none could run.
#[derive(Clone, Debug)]
pub struct Probed {
    pub connection: Result<ConnectionInfo, ProbeError>,
    pub capacity: Option<Result<Capacity, ProbeError>>,
    pub accounts: Option<Result<Accounts, ProbeError>>,
    /// Logins attempted, the main one included.
    pub logins: u32,
}

impl Probed {
    fn failed(error: ProbeError, collect: Collect, logins: u32) -> Self {
        Probed {
            capacity: collect.capacity.then(|| Err(error.clone())),
            accounts: collect.accounts.then(|| Err(error.clone())),
            connection: Err(error),
            logins,
        }
    }
}

/// What an engine's probe knows once logged in, and stamps every result
/// of the run with: the version, how long the login took, when it began.
struct LoggedIn {
    server_version: String,
    connected: Duration,
    at: SystemTime,
    /// The login's own privileges (see [`ConnectionInfo::login`]).
    login: Result<Account, ProbeError>,
}

impl LoggedIn {
    fn connection(&self, tls: bool, replication: Result<Replication, ProbeError>) -> ConnectionInfo {
        ConnectionInfo {
            server_version: self.server_version.clone(),
            latency: self.connected,
            tls,
            replication,
            login: self.login.clone(),
        }
    }

    /// A capacity collection that began at `began` (the login counts too).
    fn capacity(&self, began: Instant, databases: Vec<DatabaseSize>, system_databases: Vec<DatabaseSize>) -> Capacity {
        Capacity {
            server_version: self.server_version.clone(),
            databases,
            system_databases,
            duration: self.connected + began.elapsed(),
            collected_at: self.at,
        }
    }

    /// An account sync that began at `began` (the login counts too).
    fn accounts(&self, began: Instant, (accounts, hygiene): (Vec<Account>, Hygiene)) -> Accounts {
        Accounts {
            server_version: self.server_version.clone(),
            accounts,
            hygiene,
            duration: self.connected + began.elapsed(),
            synced_at: self.at,
        }
    }
}

/// Logs in once, tests the connection and runs the collections asked for
/// on the same session, each within the operation timeout; a collection
/// that fails does not stop the other.
pub async fn probe(target: &Target, collect: Collect<'_>) -> Probed {
    match target.db_type {
        DbType::Postgresql => postgres::probe(target, collect).await,
        DbType::Mysql => mysql::probe(target, collect).await,
    }
}

/// Connect, log in, read the version, and close.
pub async fn test_connection(target: &Target) -> Result<ConnectionInfo, ProbeError> {
    probe(target, Collect::default()).await.connection
}

/// Every database's size and table count.
pub async fn collect_capacity(target: &Target) -> Result<Capacity, ProbeError> {
    let collect = Collect {
        capacity: true,
        ..Collect::default()
    };
    probe(target, collect).await.capacity.expect("asked for")
}

/// Every account with its flags and the databases it has privileges on.
pub async fn collect_accounts(target: &Target) -> Result<Accounts, ProbeError> {
    let collect = Collect {
        accounts: true,
        ..Collect::default()
    };
    probe(target, collect).await.accounts.expect("asked for")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_redacted_in_debug_output() {
        let target = Target::new(DbType::Mysql, "db1", 3306, "monitor", Password::new("s3cr3t-hunter2"));
        let debug = format!("{target:?} {:?} {:#?}", target.password, target);
        assert!(!debug.contains("s3cr3t-hunter2"), "{debug}");
        assert!(debug.contains("Password(<redacted>)"), "{debug}");
        assert_eq!(target.password.expose(), "s3cr3t-hunter2");
    }

    #[test]
    fn a_table_count_is_known_only_at_the_size_it_was_counted_at() {
        let db = |name: &str, size_bytes, table_count| DatabaseSize {
            name: name.into(),
            size_bytes,
            table_count,
        };
        let known = KnownTables::of(&[
            db("orders", 8_192, Some(3)),
            db("closed", 4_096, None),
            db("app", 1, Some(0)),
        ]);
        assert_eq!(known.len(), 2, "a database that could not be entered has no count");
        assert_eq!(known.get("orders", 8_192), Some(3));
        assert_eq!(known.get("orders", 8_193), None);
        assert_eq!(known.get("app", 1), Some(0));
        assert_eq!(known.get("closed", 4_096), None);
        assert_eq!(known.get("other", 8_192), None);
    }

    #[test]
    fn ipv6_addresses_are_bracketed() {
        let target = Target::new(DbType::Postgresql, "::1", 5432, "u", Password::new("p"));
        assert_eq!(target.address(), "[::1]:5432");
    }
}
