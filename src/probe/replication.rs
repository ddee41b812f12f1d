//! What a server says about replication, read on the connection test's
//! login (`postgres::replication`, `mysql::replication`). Only facts: which
//! role and cluster follow from them is `observe::topology`'s decision.

use std::time::Duration;

use crate::crd::instance::DbType;

/// A primary's replicas named in a probe result at most; the rest are
/// counted in [`Replication::replica_count`].
pub const MAX_REPLICAS_LISTED: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replication {
    pub db_type: DbType,
    /// Where dbfleet reached the server (the instance's host and port): a
    /// MariaDB replica names its source by address only.
    pub host: String,
    pub port: u16,
    /// PostgreSQL: `pg_is_in_recovery()`. MySQL: replication to this
    /// server is configured (`SHOW REPLICA STATUS` has a row).
    pub replica: bool,
    /// MySQL's `read_only`; PostgreSQL: in recovery.
    pub read_only: bool,
    /// PostgreSQL's system identifier (`pg_control_system()`), which a
    /// physical replica shares with its primary; `None` when the login may
    /// not read it (`pg_monitor` may).
    pub system_identifier: Option<i64>,
    /// MySQL and MariaDB `server_id`.
    pub server_id: Option<u32>,
    /// MySQL's `server_uuid` (MariaDB has none).
    pub server_uuid: Option<String>,
    /// A replica's source, as the replica knows it.
    pub source: Option<Source>,
    /// A replica's delay; [`Lag::NotReplica`] on a primary.
    pub lag: Lag,
    /// The replicas this server sends to now, sorted, at most
    /// [`MAX_REPLICAS_LISTED`] (the status's schema allows as many): PostgreSQL `application_name@client_addr`
    /// from `pg_stat_replication`, MySQL the `Binlog Dump` threads' hosts.
    pub replicas: Vec<String>,
    /// How many replicas this server sends to now (all of them).
    pub replica_count: u32,
}

/// Where a replica replicates from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Source {
    pub host: Option<String>,
    pub port: Option<u16>,
    /// MySQL: the source's `server_id` (`Master_Server_Id`).
    pub server_id: Option<u32>,
    /// MySQL: the source's `server_uuid` (`Master_UUID`; not on MariaDB).
    pub server_uuid: Option<String>,
    /// PostgreSQL: the WAL receiver streams. MySQL: the IO thread runs.
    pub receiving: bool,
    /// MySQL: the SQL thread runs (PostgreSQL: always, while in recovery).
    pub applying: bool,
}

impl Replication {
    /// A server that replicates neither way, reached at `host:port`.
    pub fn standalone(db_type: DbType, host: impl Into<String>, port: u16) -> Self {
        Replication {
            db_type,
            host: host.into(),
            port,
            replica: false,
            read_only: false,
            system_identifier: None,
            server_id: None,
            server_uuid: None,
            source: None,
            lag: Lag::NotReplica,
            replicas: Vec::new(),
            replica_count: 0,
        }
    }
}

/// How far a replica is behind its source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lag {
    #[default]
    NotReplica,
    /// PostgreSQL: `now() - pg_last_xact_replay_timestamp()` while WAL
    /// received is not yet replayed, zero once everything received is;
    /// MySQL: `Seconds_Behind_Master`.
    Behind(Duration),
    /// PostgreSQL: no transaction replayed since the replica started
    /// (`pg_last_xact_replay_timestamp()` is null): nothing to measure.
    Idle,
    /// Not receiving or not applying: no meaningful delay (MySQL reports
    /// none).
    Stopped,
}
