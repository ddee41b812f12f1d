//! Replication topology (issue 20): which role and cluster follow from what
//! a server says about replication, and the status that records them. Pure.
//!
//! - Role: a server in recovery, or with replication to it configured, is a
//!   `replica`; one that sends to a replica now is a `primary`; any other is
//!   `standalone` (a primary whose replicas are all disconnected looks
//!   standalone until one reconnects).
//! - Cluster id: PostgreSQL's system identifier, shared by a primary and
//!   its physical replicas. MySQL has no cluster identity: a replica takes
//!   its source's, a primary or standalone server its own — the
//!   `server_uuid` on MySQL, and on MariaDB (no uuid) the `server_id` with
//!   the address, normalised, since replicas name their source by address.
//!   A replica of a replica names its direct source.

use std::net::IpAddr;

use crate::crd::bounds;
use crate::crd::instance::{
    DbType, LagState, MAX_CLUSTER_ID_LEN, MAX_REPLICA_NAME_LEN, MAX_REPLICATION_ADDRESS_LEN, MAX_SERVER_UUID_LEN,
    ReplicationStatus, Role,
};
use crate::probe::replication::MAX_REPLICAS_LISTED;
use crate::probe::{Lag, ProbeError, Replication};

pub fn role(facts: &Replication) -> Role {
    if facts.replica {
        Role::Replica
    } else if facts.replica_count > 0 {
        Role::Primary
    } else {
        Role::Standalone
    }
}

/// The cluster the server belongs to; `None` when its identity could not
/// be read (a PostgreSQL login without `pg_monitor`).
pub fn cluster_id(facts: &Replication) -> Option<String> {
    match facts.db_type {
        DbType::Postgresql => facts
            .system_identifier
            // A bigint in SQL, an unsigned 64-bit number in pg_controldata.
            .map(|id| format!("postgresql:{}", id as u64)),
        DbType::Mysql => {
            let source = facts.source.as_ref().filter(|_| facts.replica);
            let uuid = match source {
                Some(source) => source.server_uuid.as_deref(),
                None => facts.server_uuid.as_deref(),
            };
            if let Some(uuid) = uuid {
                return Some(format!("mysql:{}", uuid.to_ascii_lowercase()));
            }
            let (server_id, host, port) = match source {
                Some(source) => (source.server_id?, source.host.as_deref()?, source.port?),
                None => (facts.server_id?, facts.host.as_str(), facts.port),
            };
            Some(format!("mariadb:{server_id}@{}", address(host, port)))
        }
    }
}

/// `host:port` with the host normalised, so the names a replica and dbfleet
/// use for one server compare equal: lowercase, no trailing dot, an IP
/// address in its canonical form (IPv4-mapped IPv6 as IPv4), `localhost`
/// as `127.0.0.1`.
pub fn address(host: &str, port: u16) -> String {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("{v4}:{port}"),
            None => format!("[{v6}]:{port}"),
        },
        Ok(IpAddr::V4(v4)) => format!("{v4}:{port}"),
        Err(_) if host == "localhost" => format!("127.0.0.1:{port}"),
        Err(_) => format!("{host}:{port}"),
    }
}

/// A replica's delay state and whole seconds.
pub fn lag(lag: Lag) -> (Option<LagState>, Option<u64>) {
    match lag {
        Lag::NotReplica => (None, None),
        // Whole seconds: a fraction would be noise at report granularity.
        Lag::Behind(behind) => (Some(LagState::Streaming), Some(behind.as_secs())),
        Lag::Idle => (Some(LagState::Idle), None),
        Lag::Stopped => (Some(LagState::Stopped), None),
    }
}

/// `status.replication` after a connection test that read `result`. When
/// it could not be read, the last known values stay beside the reason.
pub fn replication_status(
    previous: Option<&ReplicationStatus>,
    result: &Result<Replication, ProbeError>,
) -> ReplicationStatus {
    let facts = match result {
        Ok(facts) => facts,
        Err(error) => {
            return ReplicationStatus {
                message: Some(bounds::message(&format!(
                    "could not read the replication state: {}",
                    error.message
                ))),
                ..previous.cloned().unwrap_or_default()
            };
        }
    };
    let (lag_state, lag_seconds) = lag(facts.lag);
    let source = facts
        .source
        .as_ref()
        .filter(|_| facts.replica)
        .and_then(|s| Some(address(s.host.as_deref()?, s.port.unwrap_or(0))));
    ReplicationStatus {
        role: Some(role(facts)),
        cluster_id: cluster_id(facts).map(|id| fit(&id, MAX_CLUSTER_ID_LEN)),
        source: source.map(|s| fit(&s, MAX_REPLICATION_ADDRESS_LEN)),
        lag_state,
        lag_seconds,
        read_only: Some(facts.read_only),
        server_id: facts.server_id,
        server_uuid: facts.server_uuid.as_deref().map(|u| fit(u, MAX_SERVER_UUID_LEN)),
        replica_count: (facts.replica_count > 0).then_some(facts.replica_count),
        replicas: facts
            .replicas
            .iter()
            .take(MAX_REPLICAS_LISTED)
            .map(|r| fit(r, MAX_REPLICA_NAME_LEN))
            .collect(),
        message: None,
    }
}

/// `text` cut to the schema's `max` characters, so a server's odd answer
/// can never make the status write fail validation.
fn fit(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// The role change worth an Event: from a known role to another.
pub fn role_change(previous: Option<&ReplicationStatus>, next: Option<&ReplicationStatus>) -> Option<(Role, Role)> {
    let before = previous?.role?;
    let after = next?.role?;
    (before != after).then_some((before, after))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::probe::replication::Source;
    use crate::probe::{ErrorKind, Stage};

    fn postgres(replica: bool, replicas: u32) -> Replication {
        Replication {
            replica,
            read_only: replica,
            system_identifier: Some(7_642_011_472_967_116_994),
            replica_count: replicas,
            ..Replication::standalone(DbType::Postgresql, "db1", 5432)
        }
    }

    fn mariadb_replica(host: &str) -> Replication {
        Replication {
            replica: true,
            read_only: true,
            server_id: Some(2),
            source: Some(Source {
                host: Some(host.into()),
                port: Some(3306),
                server_id: Some(1),
                receiving: true,
                applying: true,
                ..Source::default()
            }),
            lag: Lag::Behind(Duration::from_millis(2_900)),
            ..Replication::standalone(DbType::Mysql, "replica.db", 3308)
        }
    }

    #[test]
    fn the_role_follows_recovery_then_connected_replicas() {
        assert_eq!(role(&postgres(true, 0)), Role::Replica);
        assert_eq!(
            role(&postgres(true, 2)),
            Role::Replica,
            "a cascading replica is a replica"
        );
        assert_eq!(role(&postgres(false, 1)), Role::Primary);
        assert_eq!(role(&postgres(false, 0)), Role::Standalone);
    }

    #[test]
    fn a_postgres_primary_and_its_replica_share_the_system_identifier() {
        assert_eq!(cluster_id(&postgres(false, 1)), cluster_id(&postgres(true, 0)));
        assert_eq!(
            cluster_id(&postgres(false, 1)).as_deref(),
            Some("postgresql:7642011472967116994")
        );
        let negative = Replication {
            system_identifier: Some(-1),
            ..postgres(false, 0)
        };
        assert_eq!(
            cluster_id(&negative).as_deref(),
            Some("postgresql:18446744073709551615"),
            "read as pg_controldata prints it"
        );
        let unreadable = Replication {
            system_identifier: None,
            ..postgres(false, 0)
        };
        assert_eq!(cluster_id(&unreadable), None);
    }

    #[test]
    fn a_mariadb_replica_joins_the_cluster_of_the_address_it_replicates_from() {
        let primary = Replication {
            server_id: Some(1),
            replica_count: 1,
            ..Replication::standalone(DbType::Mysql, "127.0.0.1", 3306)
        };
        assert_eq!(cluster_id(&primary).as_deref(), Some("mariadb:1@127.0.0.1:3306"));
        assert_eq!(cluster_id(&mariadb_replica("127.0.0.1")), cluster_id(&primary));
        assert_eq!(cluster_id(&mariadb_replica("localhost")), cluster_id(&primary));
        assert_eq!(cluster_id(&mariadb_replica("::ffff:127.0.0.1")), cluster_id(&primary));
        assert_ne!(cluster_id(&mariadb_replica("10.0.0.9")), cluster_id(&primary));
    }

    #[test]
    fn a_mysql_replica_takes_its_sources_uuid() {
        let uuid = "3E11FA47-71CA-11E1-9E33-C80AA9429562";
        let mut replica = mariadb_replica("db1");
        replica.server_uuid = Some("aaaaaaaa-0000-0000-0000-000000000002".into());
        replica.source.as_mut().unwrap().server_uuid = Some(uuid.into());
        let primary = Replication {
            server_id: Some(1),
            server_uuid: Some(uuid.to_ascii_lowercase()),
            ..Replication::standalone(DbType::Mysql, "db1.example.", 3306)
        };
        assert_eq!(cluster_id(&replica), cluster_id(&primary));
        assert_eq!(
            cluster_id(&primary).unwrap(),
            format!("mysql:{}", uuid.to_ascii_lowercase())
        );
    }

    #[test]
    fn host_names_are_normalised_before_they_are_compared() {
        assert_eq!(address("DB1.Example.COM.", 3306), "db1.example.com:3306");
        assert_eq!(address("[::1]", 5432), "[::1]:5432");
        assert_eq!(address("0:0:0:0:0:0:0:1", 5432), "[::1]:5432");
        assert_eq!(address("localhost", 5432), "127.0.0.1:5432");
    }

    #[test]
    fn lag_is_kept_in_whole_seconds_and_null_when_there_is_none_to_measure() {
        assert_eq!(
            lag(Lag::Behind(Duration::from_millis(2_900))),
            (Some(LagState::Streaming), Some(2))
        );
        assert_eq!(lag(Lag::Idle), (Some(LagState::Idle), None));
        assert_eq!(lag(Lag::Stopped), (Some(LagState::Stopped), None));
        assert_eq!(lag(Lag::NotReplica), (None, None));
    }

    #[test]
    fn the_status_names_the_role_cluster_source_and_lag() {
        let status = replication_status(None, &Ok(mariadb_replica("127.0.0.1")));
        assert_eq!(status.role, Some(Role::Replica));
        assert_eq!(status.cluster_id.as_deref(), Some("mariadb:1@127.0.0.1:3306"));
        assert_eq!(status.source.as_deref(), Some("127.0.0.1:3306"));
        assert_eq!(
            (status.lag_state, status.lag_seconds),
            (Some(LagState::Streaming), Some(2))
        );
        assert_eq!(status.server_id, Some(2));
        assert_eq!(status.message, None);
    }

    #[test]
    fn what_a_server_names_is_cut_to_the_schemas_bounds() {
        let mut facts = mariadb_replica(&"h".repeat(1_000));
        facts.replicas = vec!["r".repeat(1_000); 40];
        facts.server_uuid = Some("u".repeat(500));
        let status = replication_status(None, &Ok(facts));
        assert_eq!(status.source.unwrap().chars().count(), MAX_REPLICATION_ADDRESS_LEN);
        assert_eq!(status.cluster_id.unwrap().chars().count(), MAX_CLUSTER_ID_LEN);
        assert_eq!(status.server_uuid.unwrap().len(), MAX_SERVER_UUID_LEN);
        assert_eq!(status.replicas.len(), MAX_REPLICAS_LISTED);
        assert!(status.replicas.iter().all(|r| r.len() == MAX_REPLICA_NAME_LEN));
    }

    #[test]
    fn an_unreadable_state_keeps_the_last_one_and_says_why() {
        let known = replication_status(None, &Ok(postgres(false, 1)));
        let error = ProbeError::new(
            ErrorKind::PermissionDenied,
            Stage::Query,
            "permission denied for function pg_control_system",
        );
        let next = replication_status(Some(&known), &Err(error));
        assert_eq!(next.role, Some(Role::Primary));
        assert_eq!(next.cluster_id, known.cluster_id);
        assert!(next.message.unwrap().contains("pg_control_system"));
    }

    #[test]
    fn a_role_change_is_seen_only_between_two_known_roles() {
        let primary = replication_status(None, &Ok(postgres(false, 1)));
        let replica = replication_status(None, &Ok(postgres(true, 0)));
        assert_eq!(
            role_change(Some(&replica), Some(&primary)),
            Some((Role::Replica, Role::Primary))
        );
        assert_eq!(role_change(Some(&primary), Some(&primary)), None);
        assert_eq!(role_change(None, Some(&primary)), None, "a first reading is no change");
        assert_eq!(role_change(Some(&ReplicationStatus::default()), Some(&primary)), None);
    }
}
