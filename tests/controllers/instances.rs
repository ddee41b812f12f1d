//! DbInstances for the local PostgreSQL and MariaDB: ready with real values,
//! failures as status (never as controller errors), and recovery.

use std::time::Duration;

use dbfleet::crd::instance::{ConnectionState, Phase};
use dbfleet::crd::{DbInstance, DbTag};
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::fixtures::{self, create, instance, unique};
use crate::support::{self, controller as ctl};

#[tokio::test]
async fn postgres_and_mariadb_become_ready_with_real_values() {
    let logs = fixtures::captured_logs();
    let (client, ns) = support::admin_in_fresh_namespace("ready").await;
    let (pg, my) = (fixtures::postgres(), fixtures::mysql());
    let user = unique("dbfleet_it");
    fixtures::postgres_exec(&format!("CREATE ROLE {user} LOGIN PASSWORD 'it-pw'")).await;
    fixtures::mysql_exec(&format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'it-pw'")).await;
    fixtures::create_login_secret(&client, &ns, "pg-login", &pg.user, &pg.password).await;
    fixtures::create_login_secret(&client, &ns, "my-login", &my.user, &my.password).await;
    let _controllers = ctl::start(&client, &ns, |_| {});
    let api: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    create(&api, &instance("pg", "postgresql", &pg, "pg-login", json!({}))).await;
    create(&api, &instance("maria", "mysql", &my, "my-login", json!({}))).await;

    let ready = |i: &DbInstance| {
        let s = i.status.as_ref();
        s.and_then(|s| s.phase) == Some(Phase::Ready) && s.is_some_and(|s| s.capacity.is_some() && s.accounts.is_some())
    };
    let pg_instance = ctl::instance_where(&api, "pg", "Ready with capacity and accounts", ready).await;
    let my_instance = ctl::instance_where(&api, "maria", "Ready with capacity and accounts", ready).await;

    for (instance, version_query) in [
        (&pg_instance, "SHOW server_version"),
        (&my_instance, "SELECT VERSION()"),
    ] {
        assert!(
            ctl::has_condition(instance, "Ready", "True", "Ready"),
            "{:?}",
            instance.status
        );
        assert!(ctl::has_condition(instance, "Connected", "True", "Connected"));
        assert!(ctl::has_condition(instance, "CredentialsResolved", "True", "Resolved"));
        assert!(ctl::has_condition(instance, "TagsResolved", "True", "Resolved"));
        assert!(dbfleet::ids::id_of(&instance.metadata).is_some(), "an id was assigned");
        let status = instance.status.as_ref().unwrap();
        assert_eq!(status.observed_generation, instance.metadata.generation);
        let connection = status.connection.as_ref().unwrap();
        assert_eq!(connection.status, ConnectionState::Connected);
        let version = connection.server_version.as_deref().unwrap();
        assert!(!version.is_empty(), "{version_query}");
        let accounts = status.accounts.as_ref().unwrap();
        assert!(accounts.superuser_count >= 1, "the admin login is a superuser");
        // The accounts themselves are in the DbInventory beside it.
        assert_eq!(
            status.inventory.as_deref(),
            Some(instance.metadata.name.as_deref().unwrap())
        );
        let details = fixtures::inventory(&client, &ns, instance.metadata.name.as_deref().unwrap()).await;
        let items = &details.spec.accounts.as_ref().unwrap().items;
        assert!(
            items.iter().any(|a| a.name == user),
            "{user} missing from the inventory's {} accounts",
            items.len()
        );
        let summary = serde_json::to_vec(status).unwrap().len();
        assert!(summary < 8 * 1024, "the status is a summary: {summary} bytes");
    }
    assert!(server_version(&pg_instance).starts_with("15."));
    assert!(server_version(&my_instance).contains("MariaDB"));

    // Capacity agrees with what the engines themselves report.
    let pg_capacity = pg_instance.status.as_ref().unwrap().capacity.as_ref().unwrap();
    let (count, total) = postgres_totals().await;
    assert_eq!(pg_capacity.database_count as i64, count);
    assert_within(pg_capacity.total_size_bytes, total, 0.1);
    let my_capacity = my_instance.status.as_ref().unwrap().capacity.as_ref().unwrap();
    let my_details = fixtures::inventory(&client, &ns, "maria").await.spec.capacity.unwrap();
    assert_eq!(my_capacity.database_count, my_details.database_count);
    assert_eq!(my_capacity.database_count as usize, my_details.databases.len());
    assert!(
        my_details
            .databases
            .iter()
            .all(|d| !["mysql", "information_schema", "performance_schema", "sys"].contains(&d.name.as_str()))
    );

    // No password anywhere: status, events, the controllers' logs.
    let statuses = serde_json::to_string(&[&pg_instance.status, &my_instance.status]).unwrap();
    let events: Api<Event> = Api::namespaced(client, &ns);
    let events = serde_json::to_string(&events.list(&Default::default()).await.unwrap().items).unwrap();
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    for secret in [pg.password.as_str(), my.password.as_str(), "it-pw"] {
        assert!(!statuses.contains(secret), "a password is in a status");
        assert!(!events.contains(secret), "a password is in an event");
        if let Some(at) = logs.find(secret) {
            let line = logs[..at].rfind('\n').map_or(0, |n| n + 1);
            panic!("a password is in the logs: {}", &logs[line..(at + 40).min(logs.len())]);
        }
    }
    assert!(logs.contains("dbfleet"), "the log capture works");

    fixtures::postgres_exec(&format!("DROP ROLE {user}")).await;
    fixtures::mysql_exec(&format!("DROP USER '{user}'@'%'")).await;
}

fn server_version(instance: &DbInstance) -> &str {
    let connection = instance.status.as_ref().and_then(|s| s.connection.as_ref());
    connection
        .and_then(|c| c.server_version.as_deref())
        .expect("a tested connection has a version")
}

async fn postgres_totals() -> (i64, u64) {
    let db = fixtures::postgres();
    let config = format!(
        "host={} port={} user={} password={} dbname=postgres",
        db.host, db.port, db.user, db.password
    );
    let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT count(*), sum(pg_database_size(datname))::bigint FROM pg_database WHERE NOT datistemplate",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get::<_, i64>(1) as u64)
}

fn assert_within(actual: u64, expected: u64, tolerance: f64) {
    let diff = (actual as f64 - expected as f64).abs();
    assert!(
        diff <= expected as f64 * tolerance,
        "{actual} is not within {tolerance} of {expected}"
    );
}

#[tokio::test]
async fn a_refused_port_fails_and_recovers_when_the_spec_is_fixed() {
    let (client, ns) = support::admin_in_fresh_namespace("refused").await;
    let pg = fixtures::postgres();
    fixtures::create_login_secret(&client, &ns, "login", &pg.user, &pg.password).await;
    let _controllers = ctl::start(&client, &ns, |_| {});
    let api: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    create(
        &api,
        &instance("db", "postgresql", &pg, "login", json!({"port": closed_port})),
    )
    .await;

    let failed = ctl::instance_where(&api, "db", "ConnectionRefused", |i| {
        ctl::has_condition(i, "Connected", "False", "ConnectionRefused")
    })
    .await;
    let status = failed.status.as_ref().unwrap();
    assert_eq!(status.phase, Some(Phase::Failed));
    assert_eq!(status.connection.as_ref().unwrap().status, ConnectionState::Failed);
    assert!(ctl::has_condition(&failed, "Ready", "False", "ConnectionRefused"));
    assert!(
        status
            .connection
            .as_ref()
            .unwrap()
            .message
            .as_deref()
            .unwrap()
            .contains(&closed_port.to_string())
    );

    let fix = json!({"spec": {"port": pg.port}});
    api.patch("db", &PatchParams::default(), &Patch::Merge(&fix))
        .await
        .unwrap();
    ctl::instance_where(&api, "db", "Ready after the fix", |i| {
        i.status.as_ref().and_then(|s| s.phase) == Some(Phase::Ready)
    })
    .await;
}

#[tokio::test]
async fn a_wrong_password_is_authentication_failed() {
    let (client, ns) = support::admin_in_fresh_namespace("wrong-password").await;
    let my = fixtures::mysql();
    fixtures::create_login_secret(&client, &ns, "login", &my.user, "not-the-password").await;
    let _controllers = ctl::start(&client, &ns, |_| {});
    let api: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    create(&api, &instance("db", "mysql", &my, "login", json!({}))).await;
    let failed = ctl::instance_where(&api, "db", "AuthenticationFailed", |i| {
        ctl::has_condition(i, "Connected", "False", "AuthenticationFailed")
    })
    .await;
    assert_eq!(failed.status.as_ref().unwrap().phase, Some(Phase::Failed));

    // The state change is recorded as an Event.
    let events: Api<Event> = Api::namespaced(client, &ns);
    ctl::eventually(Duration::from_secs(10), "an AuthenticationFailed event", || async {
        let list = events.list(&Default::default()).await.unwrap().items;
        let found = list.iter().any(|e| e.reason.as_deref() == Some("AuthenticationFailed"));
        (
            found.then_some(()),
            format!("{:?}", list.iter().map(|e| e.reason.clone()).collect::<Vec<_>>()),
        )
    })
    .await;
}

#[tokio::test]
async fn a_missing_secret_resolves_promptly_once_created() {
    let (client, ns) = support::admin_in_fresh_namespace("missing-secret").await;
    let pg = fixtures::postgres();
    let _controllers = ctl::start(&client, &ns, |_| {});
    let api: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    create(&api, &instance("db", "postgresql", &pg, "late-login", json!({}))).await;
    let waiting = ctl::instance_where(&api, "db", "SecretNotFound", |i| {
        ctl::has_condition(i, "CredentialsResolved", "False", "SecretNotFound")
    })
    .await;
    assert_eq!(waiting.status.as_ref().unwrap().phase, Some(Phase::Failed));

    fixtures::create_login_secret(&client, &ns, "late-login", &pg.user, &pg.password).await;
    let started = std::time::Instant::now();
    ctl::instance_where(&api, "db", "Ready once the Secret exists", |i| {
        ctl::has_condition(i, "Ready", "True", "Ready")
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_unknown_tag_resolves_once_the_tag_is_created() {
    let (client, ns) = support::admin_in_fresh_namespace("unknown-tag").await;
    let pg = fixtures::postgres();
    fixtures::create_login_secret(&client, &ns, "login", &pg.user, &pg.password).await;
    let _controllers = ctl::start(&client, &ns, |_| {});
    let api: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    create(
        &api,
        &instance("db", "postgresql", &pg, "login", json!({"tags": ["later"]})),
    )
    .await;
    ctl::instance_where(&api, "db", "TagNotFound", |i| {
        ctl::has_condition(i, "TagsResolved", "False", "TagNotFound")
    })
    .await;

    let tags: Api<DbTag> = Api::namespaced(client.clone(), &ns);
    let tag = serde_json::from_value(json!({"apiVersion": "dbfleet.io/v1alpha1", "kind": "DbTag", "metadata": {"name": "later"}, "spec": {"displayName": "Later", "category": "test"}})).unwrap();
    tags.create(&PostParams::default(), &tag).await.unwrap();
    ctl::instance_where(&api, "db", "TagsResolved", |i| {
        ctl::has_condition(i, "TagsResolved", "True", "Resolved") && ctl::has_condition(i, "Ready", "True", "Ready")
    })
    .await;
}

#[tokio::test]
async fn the_sync_accounts_annotation_picks_up_a_new_account_at_once() {
    let (client, ns) = support::admin_in_fresh_namespace("sync-now").await;
    let my = fixtures::mysql();
    fixtures::create_login_secret(&client, &ns, "login", &my.user, &my.password).await;
    let _controllers = ctl::start(&client, &ns, |_| {});
    let api: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    create(
        &api,
        &instance("db", "mysql", &my, "login", json!({"intervals": {"accounts": "6h"}})),
    )
    .await;
    ctl::instance_where(&api, "db", "accounts synced", |i| {
        i.status.as_ref().is_some_and(|s| s.accounts.is_some())
    })
    .await;

    let user = unique("late");
    fixtures::mysql_exec(&format!("CREATE USER '{user}'@'localhost' IDENTIFIED BY 'x-pw'")).await;
    let request =
        json!({"metadata": {"annotations": {"dbfleet.io/sync-accounts-requested-at": "2026-11-22T12:00:00Z"}}});
    api.patch("db", &PatchParams::default(), &Patch::Merge(&request))
        .await
        .unwrap();
    let synced = ctl::instance_where(&api, "db", "the request answered", |i| {
        i.status
            .as_ref()
            .is_some_and(|s| s.handled_requests.accounts.as_deref() == Some("2026-11-22T12:00:00Z"))
    })
    .await;
    let accounts = synced.status.as_ref().unwrap().accounts.as_ref().unwrap();
    assert!(accounts.changes.added >= 1, "{:?}", accounts.changes);
    let details = fixtures::inventory(&client, &ns, "db").await;
    let items = &details.spec.accounts.as_ref().unwrap().items;
    assert!(items.iter().any(|item| item.name == user), "{user} is in the inventory");
    fixtures::mysql_exec(&format!("DROP USER '{user}'@'localhost'")).await;
}

/// The collections' own conditions, on both engines: synced with a login
/// that may read what they need, and failed with the reason when it may
/// not (a MariaDB login without SELECT on `mysql.*` connects and counts
/// its databases, but cannot list the accounts).
#[tokio::test]
async fn collections_say_whether_they_synced_and_why_not() {
    let (client, ns) = support::admin_in_fresh_namespace("collections").await;
    let (pg, my) = (fixtures::postgres(), fixtures::mysql());
    let bare = unique("dbfleet_bare");
    fixtures::mysql_exec(&format!("CREATE USER '{bare}'@'%' IDENTIFIED BY 'bare-pw'")).await;
    fixtures::create_login_secret(&client, &ns, "pg-login", &pg.user, &pg.password).await;
    fixtures::create_login_secret(&client, &ns, "my-login", &my.user, &my.password).await;
    fixtures::create_login_secret(&client, &ns, "bare-login", &bare, "bare-pw").await;
    let _controllers = ctl::start(&client, &ns, |_| {});
    let api: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    create(&api, &instance("pg", "postgresql", &pg, "pg-login", json!({}))).await;
    create(&api, &instance("maria", "mysql", &my, "my-login", json!({}))).await;
    create(&api, &instance("bare", "mysql", &my, "bare-login", json!({}))).await;

    for name in ["pg", "maria"] {
        let synced = ctl::instance_where(&api, name, "CapacitySynced and AccountsSynced", |i| {
            ctl::has_condition(i, "CapacitySynced", "True", "Synced")
                && ctl::has_condition(i, "AccountsSynced", "True", "Synced")
        })
        .await;
        assert!(ctl::has_condition(&synced, "Ready", "True", "Ready"), "{name}");
    }
    let failed = ctl::instance_where(&api, "bare", "AccountsSynced=False PermissionDenied", |i| {
        ctl::has_condition(i, "AccountsSynced", "False", "PermissionDenied")
    })
    .await;
    assert!(ctl::has_condition(&failed, "Connected", "True", "Connected"));
    assert!(ctl::has_condition(&failed, "CapacitySynced", "True", "Synced"));
    let conditions = &failed.status.as_ref().unwrap().conditions;
    let accounts = conditions.iter().find(|c| c.type_ == "AccountsSynced").unwrap();
    assert!(accounts.message.contains("mysql"), "{}", accounts.message);
    // The failed collection is announced where its owner looks.
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    ctl::eventually(Duration::from_secs(30), "an AccountsSyncFailed Event", || async {
        let list = events.list(&Default::default()).await.map_err(|e| e.to_string());
        match list {
            Ok(list)
                if list.items.iter().any(|e| {
                    e.reason.as_deref() == Some("AccountsSyncFailed")
                        && e.involved_object.name.as_deref() == Some("bare")
                }) =>
            {
                (Some(()), String::new())
            }
            Ok(list) => (None, format!("{} events, none for bare", list.items.len())),
            Err(e) => (None, e),
        }
    })
    .await;
    for name in ["pg", "maria", "bare"] {
        api.delete(name, &Default::default()).await.unwrap();
    }
    fixtures::mysql_exec(&format!("DROP USER '{bare}'@'%'")).await;
}
