//! Replication topology against real replicas (scripts/replicas.sh): a
//! PostgreSQL streaming replica made with pg_basebackup and a MariaDB GTID
//! replica, probed with the monitoring grants docs/probes.md lists.

use std::time::Duration;

use dbfleet::crd::DbInstance;
use dbfleet::crd::instance::{LagState, ReplicationStatus, Role};
use kube::Api;
use serde_json::json;

use crate::fixtures::{self, create, instance, unique};
use crate::support::databases::{mysql_replica, postgres_replica};
use crate::support::{self, controller as ctl};

fn replication(instance: &DbInstance) -> Option<&ReplicationStatus> {
    instance.status.as_ref()?.replication.as_ref()
}

fn has_role(role: Role) -> impl Fn(&DbInstance) -> bool {
    move |i| replication(i).is_some_and(|r| r.role == Some(role) && r.cluster_id.is_some())
}

/// A streaming replica has a delay in seconds; PostgreSQL's `idle` (nothing
/// replayed since it started) has none, and says so.
#[track_caller]
fn assert_lag(replica: &ReplicationStatus) {
    match replica.lag_state {
        Some(LagState::Streaming) => assert!(replica.lag_seconds.is_some(), "{replica:?}"),
        Some(LagState::Idle) => assert_eq!(replica.lag_seconds, None, "{replica:?}"),
        other => panic!("the replica does not replicate ({other:?}): {replica:?}"),
    }
}

#[tokio::test]
async fn primaries_and_replicas_share_a_cluster_id_and_replicas_report_their_lag() {
    let (client, ns) = support::admin_in_fresh_namespace("topology").await;
    let (pg, my) = (fixtures::postgres(), fixtures::mysql());
    let (pg_replica, my_replica) = (postgres_replica(), mysql_replica());
    // The monitoring logins, made on the primaries: replication brings
    // them to the replicas.
    let user = unique("dbfleet_topo");
    fixtures::postgres_exec(&format!(
        "CREATE ROLE {user} LOGIN PASSWORD 'topo-pw'; GRANT pg_monitor TO {user}"
    ))
    .await;
    fixtures::mysql_exec(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY 'topo-pw'; GRANT SHOW VIEW ON *.* TO '{user}'@'%'; \
         GRANT SELECT ON mysql.* TO '{user}'@'%'; GRANT REPLICA MONITOR ON *.* TO '{user}'@'%'"
    ))
    .await;
    fixtures::create_login_secret(&client, &ns, "monitor", &user, "topo-pw").await;
    let controllers = ctl::start(&client, &ns, |_| {});
    let api: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    // Tested every 2 s: a login made on the primary a moment ago may not
    // have reached the replica at the first test.
    let often = || json!({"intervals": {"connection": "2s"}});
    for (name, db_type, server) in [
        ("pg-primary", "postgresql", &pg),
        ("pg-replica", "postgresql", &pg_replica),
        ("maria-primary", "mysql", &my),
        ("maria-replica", "mysql", &my_replica),
    ] {
        create(&api, &instance(name, db_type, server, "monitor", often())).await;
    }

    let wait = |name: &'static str, role: Role| {
        let api = api.clone();
        async move {
            let found = ctl::eventually(Duration::from_secs(60), &format!("{name} as {role:?}"), || async {
                match api.get_opt(name).await {
                    Ok(Some(i)) if has_role(role)(&i) => (Some(i), String::new()),
                    Ok(Some(i)) => (None, serde_json::to_string(&i.status).unwrap_or_default()),
                    other => (None, format!("{other:?}")),
                }
            })
            .await;
            replication(&found).cloned().unwrap()
        }
    };
    let pg_primary = wait("pg-primary", Role::Primary).await;
    let pg_replica = wait("pg-replica", Role::Replica).await;
    assert_eq!(pg_primary.cluster_id, pg_replica.cluster_id, "one PostgreSQL cluster");
    assert!(pg_primary.cluster_id.as_deref().unwrap().starts_with("postgresql:"));
    assert!(pg_primary.replica_count >= Some(1), "{pg_primary:?}");
    assert!(pg_primary.lag_state.is_none() && pg_primary.lag_seconds.is_none());
    assert_eq!(pg_replica.read_only, Some(true));
    assert_lag(&pg_replica);

    let my_primary = wait("maria-primary", Role::Primary).await;
    let my_replica = wait("maria-replica", Role::Replica).await;
    assert_eq!(my_primary.cluster_id, my_replica.cluster_id, "one MariaDB cluster");
    assert_eq!(my_primary.cluster_id.as_deref(), Some("mariadb:1@127.0.0.1:3306"));
    assert_eq!(my_replica.source.as_deref(), Some("127.0.0.1:3306"));
    assert_eq!((my_primary.server_id, my_replica.server_id), (Some(1), Some(2)));
    assert_eq!(my_replica.read_only, Some(true));
    assert_eq!(my_replica.lag_state, Some(LagState::Streaming), "{my_replica:?}");
    assert_lag(&my_replica);

    // The lag is a metric too, per instance, from every test.
    let metrics = controllers.metrics.encode();
    let series = format!("dbfleet_replication_lag_seconds{{namespace=\"{ns}\",name=\"maria-replica\"}}");
    assert!(metrics.contains(&series), "no {series} in\n{metrics}");
    let primary = format!("dbfleet_replication_lag_seconds{{namespace=\"{ns}\",name=\"maria-primary\"}}");
    assert!(!metrics.contains(&primary), "a primary has no lag");

    // Nothing else about the instances changed: still Ready.
    for name in ["pg-primary", "pg-replica", "maria-primary", "maria-replica"] {
        let i = api.get(name).await.unwrap();
        assert!(
            ctl::has_condition(&i, "Ready", "True", "Ready"),
            "{name}: {:?}",
            i.status
        );
        let size = serde_json::to_vec(i.status.as_ref().unwrap()).unwrap().len();
        assert!(size < 8 * 1024, "{name}: the status is a summary ({size} bytes)");
    }

    drop(controllers);
    fixtures::postgres_exec(&format!("DROP ROLE {user}")).await;
    fixtures::mysql_exec(&format!("DROP USER '{user}'@'%'")).await;
}
