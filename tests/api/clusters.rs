//! `GET /api/v1/clusters` over real replicas (scripts/replicas.sh): the
//! controller probes a PostgreSQL primary and its streaming replica, a
//! MariaDB primary and its GTID replica, and the façade groups them.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Facade, User};
use crate::instances::credential;
use crate::support;
use crate::support::databases::{mysql, mysql_replica, postgres, postgres_replica};

/// The cluster holding instance `id`, once it has `members` members.
async fn cluster_of(facade: &Facade, user: &User, id: i64, members: usize) -> Value {
    support::controller::eventually(Duration::from_secs(60), "the cluster", || async {
        let answer = facade.get(user, "/api/v1/clusters").await;
        answer.expect(200, "OK");
        let found = answer.data()["items"].as_array().unwrap().iter().find(|c| {
            let ids = c["members"].as_array().unwrap();
            ids.iter().any(|m| m["id"] == id) && ids.len() == members
        });
        (found.cloned(), answer.body.to_string())
    })
    .await
}

#[tokio::test]
async fn clusters_group_primaries_with_their_replicas() {
    let facade = Facade::start("api-clusters").await;
    let _controllers = support::controller::start(&facade.admin, &facade.namespace, |_| {});
    let editor = facade.editor().await;
    let (pg, my) = (postgres(), mysql());
    // The admin logins exist on the replicas too: they were copied from
    // the primaries.
    let pg_login = credential(&facade, &editor, "pg-login", &pg.user, &pg.password).await;
    let my_login = credential(&facade, &editor, "my-login", &my.user, &my.password).await;
    let mut ids = Vec::new();
    for (name, db_type, server, login) in [
        ("pg-primary", "postgresql", pg.clone(), pg_login),
        ("pg-replica", "postgresql", postgres_replica(), pg_login),
        ("maria-primary", "mysql", my.clone(), my_login),
        ("maria-replica", "mysql", mysql_replica(), my_login),
    ] {
        let body = json!({"db_type": db_type, "host": server.host, "port": server.port, "credential_id": login});
        ids.push(facade.instance(&editor, name, body).await);
    }

    let viewer = facade.user("viewer", &["dbinstances"], &["list"]).await;
    for (primary, replica, prefix) in [(ids[0], ids[1], "postgresql:"), (ids[2], ids[3], "mariadb:")] {
        let cluster = cluster_of(&facade, &viewer, primary, 2).await;
        assert!(
            cluster["cluster_id"].as_str().unwrap().starts_with(prefix),
            "{cluster:#}"
        );
        assert_eq!(cluster["primary_id"], primary, "{cluster:#}");
        assert_eq!(cluster["member_count"], 2);
        let members = cluster["members"].as_array().unwrap();
        assert_eq!(
            (members[0]["id"].as_i64(), members[0]["role"].as_str()),
            (Some(primary), Some("primary"))
        );
        assert_eq!(
            (members[1]["id"].as_i64(), members[1]["role"].as_str()),
            (Some(replica), Some("replica"))
        );
        assert_eq!(members[1]["connection"], "connected");
        // A streaming replica has its delay; PostgreSQL's idle one (nothing
        // replayed since it started) has none, and says so.
        match members[1]["lag_state"].as_str() {
            Some("streaming") => assert!(members[1]["lag_seconds"].is_u64(), "{cluster:#}"),
            Some("idle") => assert!(members[1]["lag_seconds"].is_null(), "{cluster:#}"),
            other => panic!("the replica does not replicate ({other:?}): {cluster:#}"),
        }
        assert!(members[0]["lag_state"].is_null(), "a primary has no lag");
    }

    // The same permission as the instance list.
    let nobody = facade.user("nobody", &[], &[]).await;
    facade
        .get(&nobody, "/api/v1/clusters")
        .await
        .expect(403, "PERMISSION_DENIED");
}
