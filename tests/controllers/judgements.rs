//! What the controller judges of each server (issue 20): whether its
//! release is still supported, with a site's end-of-life ConfigMap making
//! the answer deterministic, and what dbfleet's own login may do, with
//! logins made for the test and dropped after it.

use std::collections::BTreeMap;

use dbfleet::crd::DbInstance;
use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kube::Api;
use kube::api::{ListParams, ObjectMeta, PostParams};
use serde_json::json;

use crate::fixtures::{self, create, instance, unique};
use crate::support::{self, controller as ctl};

const LIFECYCLE_CONFIGMAP: &str = "dbfleet-version-lifecycle";

async fn lifecycle_configmap(client: &kube::Client, ns: &str, data: &[(&str, &str)]) {
    let configmap = ConfigMap {
        metadata: ObjectMeta {
            name: Some(LIFECYCLE_CONFIGMAP.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &configmap)
        .await
        .expect("create the lifecycle ConfigMap");
}

/// The condition's (status, reason, message) once the controller set it.
async fn judged(api: &Api<DbInstance>, name: &str, type_: &str) -> (String, String, String) {
    let found = ctl::instance_where(api, name, type_, |i| ctl::condition(i, type_).is_some()).await;
    let c = found
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == type_)
        .unwrap();
    (c.status, c.reason, c.message)
}

/// Both servers with the admin login in a fresh namespace whose lifecycle
/// ConfigMap says `data`.
async fn servers_under(
    prefix: &str,
    data: &[(&str, &str)],
) -> (Api<DbInstance>, ctl::RunningControllers, kube::Client, String) {
    let (client, ns) = support::admin_in_fresh_namespace(prefix).await;
    let (pg, my) = (fixtures::postgres(), fixtures::mysql());
    lifecycle_configmap(&client, &ns, data).await;
    fixtures::create_login_secret(&client, &ns, "pg-login", &pg.user, &pg.password).await;
    fixtures::create_login_secret(&client, &ns, "my-login", &my.user, &my.password).await;
    let controllers = ctl::start(&client, &ns, |_| {});
    let api: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    create(&api, &instance("pg", "postgresql", &pg, "pg-login", json!({}))).await;
    create(&api, &instance("maria", "mysql", &my, "my-login", json!({}))).await;
    (api, controllers, client, ns)
}

#[tokio::test]
async fn a_site_configmap_decides_whether_the_version_is_supported() {
    // The local servers are PostgreSQL 15 and MariaDB 10.11.
    let (ended, _ended_controllers, _, _) = servers_under(
        "eol-ended",
        &[("postgresql-15", "2020-01-01"), ("mariadb-10.11", "2021-06-30")],
    )
    .await;
    let (current, _current_controllers, _, _) = servers_under(
        "eol-current",
        &[("postgresql-15", "2099-12-31"), ("mariadb-10.11", "2099-12-31")],
    )
    .await;
    for (name, line, date) in [
        ("pg", "PostgreSQL 15", "2020-01-01"),
        ("maria", "MariaDB 10.11", "2021-06-30"),
    ] {
        let (status, reason, message) = judged(&ended, name, "VersionSupported").await;
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("False", "EndOfLife"),
            "{name}: {message}"
        );
        assert!(
            message.contains(&format!(
                "{line} reached end of life on {date} (ConfigMap {LIFECYCLE_CONFIGMAP})"
            )),
            "{message}"
        );
        let stored = ended.get(name).await.unwrap();
        let release = stored.status.unwrap().release.expect("status.release");
        assert_eq!(
            (release.line.as_str(), release.end_of_life.as_deref()),
            (line, Some(date))
        );

        let (status, reason, message) = judged(&current, name, "VersionSupported").await;
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("True", "Supported"),
            "{name}: {message}"
        );
        assert!(message.contains("until 2099-12-31"), "{message}");
    }
}

#[tokio::test]
async fn a_bad_configmap_is_announced_and_the_built_in_table_stays() {
    let (api, _controllers, client, ns) =
        servers_under("eol-bad", &[("postgresql-15", "2020-01-01"), ("postgres-16", "soon")]).await;
    let (_, _, message) = judged(&api, "pg", "VersionSupported").await;
    assert!(
        message.contains("dbfleet's table, checked"),
        "the site's dates are not half-applied: {message}"
    );
    let events: Api<Event> = Api::namespaced(client, &ns);
    let refused = ctl::eventually(
        std::time::Duration::from_secs(30),
        "a VersionLifecycleRefused Event",
        || async {
            let list = events
                .list(&ListParams::default())
                .await
                .map(|l| l.items)
                .unwrap_or_default();
            let found = list
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("VersionLifecycleRefused"));
            (found, String::new())
        },
    )
    .await;
    assert_eq!(refused.involved_object.name.as_deref(), Some(LIFECYCLE_CONFIGMAP));
    assert!(
        refused
            .message
            .unwrap_or_default()
            .contains("\"postgres-16\" is not a release line")
    );
}

#[tokio::test]
async fn postgres_logins_are_judged_against_the_documented_grants() {
    let (client, ns) = support::admin_in_fresh_namespace("login-pg").await;
    let pg = fixtures::postgres();
    let bare = unique("dbfleet_bare");
    let monitor = unique("dbfleet_mon");
    fixtures::postgres_exec(&format!(
        "CREATE ROLE {bare} LOGIN PASSWORD 'bare-pw'; CREATE ROLE {monitor} LOGIN PASSWORD 'mon-pw'; \
         GRANT pg_monitor TO {monitor};"
    ))
    .await;
    fixtures::create_login_secret(&client, &ns, "admin", &pg.user, &pg.password).await;
    fixtures::create_login_secret(&client, &ns, "bare", &bare, "bare-pw").await;
    fixtures::create_login_secret(&client, &ns, "monitor", &monitor, "mon-pw").await;
    let _controllers = ctl::start(&client, &ns, |_| {});
    let api: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    for login in ["admin", "bare", "monitor"] {
        create(&api, &instance(login, "postgresql", &pg, login, json!({}))).await;
    }
    let admin = judged(&api, "admin", "LoginPrivileges").await;
    let without = judged(&api, "bare", "LoginPrivileges").await;
    let documented = judged(&api, "monitor", "LoginPrivileges").await;
    fixtures::postgres_exec(&format!("DROP ROLE {bare}; DROP ROLE {monitor};")).await;

    assert_judged(&admin, "True", "Superuser");
    assert!(admin.2.contains("NOSUPERUSER"), "{}", admin.2);
    assert_judged(&without, "False", "Insufficient");
    assert!(
        without.2.contains(&format!("GRANT pg_monitor TO \"{bare}\";")),
        "{}",
        without.2
    );
    assert_judged(&documented, "True", "LeastPrivilege");
}

#[tokio::test]
async fn mariadb_logins_are_judged_against_the_documented_grants() {
    let (client, ns) = support::admin_in_fresh_namespace("login-my").await;
    let my = fixtures::mysql();
    let blind = unique("dbfleet_blind");
    let monitor = unique("dbfleet_mon");
    fixtures::mysql_exec(&format!(
        "CREATE USER '{blind}'@'%' IDENTIFIED BY 'blind-pw'; GRANT SHOW VIEW ON *.* TO '{blind}'@'%'; \
         CREATE USER '{monitor}'@'%' IDENTIFIED BY 'mon-pw'; GRANT SHOW VIEW ON *.* TO '{monitor}'@'%'; \
         GRANT SELECT ON mysql.* TO '{monitor}'@'%';"
    ))
    .await;
    fixtures::create_login_secret(&client, &ns, "admin", &my.user, &my.password).await;
    fixtures::create_login_secret(&client, &ns, "blind", &blind, "blind-pw").await;
    fixtures::create_login_secret(&client, &ns, "monitor", &monitor, "mon-pw").await;
    let _controllers = ctl::start(&client, &ns, |_| {});
    let api: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    for login in ["admin", "blind", "monitor"] {
        create(&api, &instance(login, "mysql", &my, login, json!({}))).await;
    }
    let admin = judged(&api, "admin", "LoginPrivileges").await;
    let without = judged(&api, "blind", "LoginPrivileges").await;
    let documented = judged(&api, "monitor", "LoginPrivileges").await;
    fixtures::mysql_exec(&format!("DROP USER '{blind}'@'%'; DROP USER '{monitor}'@'%';")).await;

    assert_judged(&admin, "True", "Superuser");
    assert_judged(&without, "False", "Insufficient");
    assert!(
        without
            .2
            .contains(&format!("GRANT SELECT ON mysql.* TO '{blind}'@'%';")),
        "{}",
        without.2
    );
    assert_judged(&documented, "True", "LeastPrivilege");
}

/// Asserts a condition's status and reason, showing its message if not.
#[track_caller]
fn assert_judged(judged: &(String, String, String), status: &str, reason: &str) {
    assert_eq!((judged.0.as_str(), judged.1.as_str()), (status, reason), "{}", judged.2);
}
