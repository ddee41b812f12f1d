//! The DbHistory beside each instance (issue 21): account changes made on
//! the real servers come back as exactly the expected entries, and
//! capacity samples taken while a database grows give a growth rate and a
//! forecast. Accounts and databases are uniquely named: other tests share
//! the servers, so only entries about this test's own accounts are looked
//! at.

use std::time::Duration;

use dbfleet::crd::keys::SYNC_ACCOUNTS_REQUESTED_AT;
use dbfleet::crd::{DbHistory, DbInstance};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use crate::fixtures::{self, create, instance, mysql_exec, postgres_exec, unique};
use crate::support::controller as ctl;
use crate::support::{self};

/// Asks for an account sync now and waits until the controller answered it.
async fn sync_accounts(api: &Api<DbInstance>, name: &str, token: &str) {
    let patch = json!({"metadata": {"annotations": {SYNC_ACCOUNTS_REQUESTED_AT: token}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    ctl::instance_where(api, name, "the account sync asked for", |i| {
        i.status.as_ref().and_then(|s| s.handled_requests.accounts.as_deref()) == Some(token)
    })
    .await;
}

/// `(kind, database, privileges)` of every logged change of `account`.
async fn changes_of(
    client: &Client,
    ns: &str,
    name: &str,
    account: &str,
) -> Vec<(String, Option<String>, Vec<String>)> {
    let api: Api<DbHistory> = Api::namespaced(client.clone(), ns);
    let history = api.get_opt(name).await.unwrap();
    history
        .and_then(|h| h.spec.accounts)
        .map(|a| a.entries)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.account == account)
        .map(|e| (e.kind.as_str().to_string(), e.database, e.privileges))
        .collect()
}

fn entry(kind: &str, database: Option<&str>, privileges: &[&str]) -> (String, Option<String>, Vec<String>) {
    (
        kind.to_string(),
        database.map(str::to_string),
        privileges.iter().map(|p| p.to_string()).collect(),
    )
}

/// Runs `steps` (SQL, then the entries the step must add for `account`),
/// syncing after each, and checks the log grows by exactly those.
async fn check_steps<F, Fut>(
    client: &Client,
    ns: &str,
    account: &str,
    exec: F,
    steps: Vec<(String, Vec<(String, Option<String>, Vec<String>)>)>,
) where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let api: Api<DbInstance> = Api::namespaced(client.clone(), ns);
    // The first sync is the baseline: it logs nothing.
    ctl::instance_where(&api, "db", "the baseline account sync", |i| {
        i.status.as_ref().is_some_and(|s| s.accounts.is_some())
    })
    .await;
    let mut expected = Vec::new();
    for (n, (sql, entries)) in steps.into_iter().enumerate() {
        exec(sql.clone()).await;
        sync_accounts(&api, "db", &format!("step-{n}")).await;
        expected.extend(entries);
        assert_eq!(changes_of(client, ns, "db", account).await, expected, "after {sql}");
    }
    // A resync with no change appends nothing.
    sync_accounts(&api, "db", "unchanged").await;
    assert_eq!(changes_of(client, ns, "db", account).await, expected, "after a resync");
}

#[tokio::test]
async fn postgresql_account_changes_are_logged_exactly() {
    let (client, ns) = support::admin_in_fresh_namespace("history-pg").await;
    let pg = fixtures::postgres();
    fixtures::create_login_secret(&client, &ns, "login", &pg.user, &pg.password).await;
    let _controllers = ctl::start(&client, &ns, |_| {});
    let api: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    let spec = json!({"intervals": {"accounts": "1h", "capacity": "1h"}});
    create(&api, &instance("db", "postgresql", &pg, "login", spec)).await;
    let role = unique("hist");
    let steps = vec![
        (
            format!("CREATE ROLE {role} LOGIN"),
            vec![entry("account_added", None, &[])],
        ),
        (
            format!("BEGIN; GRANT CONNECT, CREATE ON DATABASE postgres TO {role}; ALTER ROLE {role} SUPERUSER; COMMIT"),
            vec![
                entry("superuser_gained", None, &[]),
                entry("privileges_gained", Some("postgres"), &["CONNECT", "CREATE"]),
            ],
        ),
        (
            format!(
                "BEGIN; REVOKE CREATE ON DATABASE postgres FROM {role}; ALTER ROLE {role} NOSUPERUSER NOLOGIN; COMMIT"
            ),
            vec![
                entry("superuser_lost", None, &[]),
                entry("login_disabled", None, &[]),
                entry("privileges_lost", Some("postgres"), &["CREATE"]),
            ],
        ),
        (
            format!("BEGIN; REVOKE ALL ON DATABASE postgres FROM {role}; DROP ROLE {role}; COMMIT"),
            vec![entry("account_removed", None, &[])],
        ),
    ];
    check_steps(
        &client,
        &ns,
        &role,
        |sql| async move { postgres_exec(&sql).await },
        steps,
    )
    .await;
}

#[tokio::test]
async fn mariadb_account_changes_are_logged_exactly() {
    let (client, ns) = support::admin_in_fresh_namespace("history-my").await;
    let my = fixtures::mysql();
    fixtures::create_login_secret(&client, &ns, "login", &my.user, &my.password).await;
    let _controllers = ctl::start(&client, &ns, |_| {});
    let api: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    let spec = json!({"intervals": {"accounts": "1h", "capacity": "1h"}});
    create(&api, &instance("db", "mysql", &my, "login", spec)).await;
    let user = unique("hist");
    let db = unique("histdb");
    let steps = vec![
        (
            format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'Histories-are-long-1'"),
            vec![entry("account_added", None, &[])],
        ),
        (
            format!("GRANT SELECT, insert ON `{db}`.* TO '{user}'@'%'; GRANT SUPER ON *.* TO '{user}'@'%'"),
            vec![
                entry("superuser_gained", None, &[]),
                entry("privileges_gained", None, &["SUPER"]),
                entry("privileges_gained", Some(&db), &["INSERT", "SELECT"]),
            ],
        ),
        (
            format!("ALTER USER '{user}'@'%' ACCOUNT LOCK"),
            vec![entry("locked", None, &[])],
        ),
        (
            format!("REVOKE INSERT ON `{db}`.* FROM '{user}'@'%'; REVOKE SUPER ON *.* FROM '{user}'@'%'"),
            vec![
                entry("superuser_lost", None, &[]),
                entry("privileges_lost", None, &["SUPER"]),
                entry("privileges_lost", Some(&db), &["INSERT"]),
            ],
        ),
        (
            format!("DROP USER '{user}'@'%'"),
            vec![entry("account_removed", None, &[])],
        ),
    ];
    check_steps(&client, &ns, &user, |sql| async move { mysql_exec(&sql).await }, steps).await;
}

#[tokio::test]
async fn a_growing_database_gives_a_growth_rate_and_a_forecast() {
    let (client, ns) = support::admin_in_fresh_namespace("history-growth").await;
    let pg = fixtures::postgres();
    fixtures::create_login_secret(&client, &ns, "login", &pg.user, &pg.password).await;
    let database = unique("growth");
    postgres_exec(&format!("CREATE DATABASE {database}")).await;
    let _controllers = ctl::start(&client, &ns, |config| {
        config.history.sample_interval = Duration::from_secs(2);
    });
    let api: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    // A limit far above what the server holds: the forecast is finite and
    // far off.
    let spec =
        json!({"intervals": {"capacity": "1s", "accounts": "1h"}, "capacity": {"limitBytes": 50_000_000_000_000u64}});
    create(&api, &instance("db", "postgresql", &pg, "login", spec)).await;
    let grow = format!(
        "CREATE TABLE IF NOT EXISTS filler (pad text); \
         INSERT INTO filler SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 30) g, generate_series(1, 8000) r GROUP BY r"
    );
    let histories: Api<DbHistory> = Api::namespaced(client.clone(), &ns);
    let growing = ctl::eventually(Duration::from_secs(90), "a growth rate", || {
        let (api, histories, grow, database) = (api.clone(), histories.clone(), grow.clone(), database.clone());
        async move {
            postgres_exec_in(&database, &grow).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let samples = histories
                .get_opt("db")
                .await
                .ok()
                .flatten()
                .and_then(|h| h.spec.capacity)
                .map_or(0, |c| c.samples.len());
            let instance = api.get("db").await.unwrap();
            let growth = instance.status.and_then(|s| s.capacity_growth);
            match growth {
                Some(g) if g.bytes_per_day.is_some_and(|r| r > 0) => (Some(g), String::new()),
                other => (None, format!("{samples} samples; {other:?}")),
            }
        }
    })
    .await;
    postgres_exec(&format!("DROP DATABASE {database} WITH (FORCE)")).await;
    assert!(growing.samples >= 7, "{growing:?}");
    assert!(growing.r_squared.is_some_and(|r| r >= 0.7), "{growing:?}");
    let days = growing.days_until_full.expect("a finite forecast");
    assert!(days.is_finite() && days > 0.0, "{growing:?}");
    assert!(growing.full_at.is_some());
    let instance = api.get("db").await.unwrap();
    assert_eq!(
        ctl::condition(&instance, "CapacityOK"),
        Some(("True".into(), "NotFullSoon".into())),
        "{days} days away is not soon"
    );
    // The history goes with its instance (the test cluster has no garbage
    // collector: the controller deletes it).
    api.delete("db", &Default::default()).await.unwrap();
    ctl::eventually(Duration::from_secs(30), "the DbHistory deleted", || async {
        match histories.get_opt("db").await {
            Ok(None) => (Some(()), String::new()),
            other => (None, format!("{:?}", other.map(|h| h.is_some()))),
        }
    })
    .await;
}

/// Runs `sql` on the local PostgreSQL in `database`, as the admin.
async fn postgres_exec_in(database: &str, sql: &str) {
    use tracing::instrument::WithSubscriber;
    let db = fixtures::postgres();
    let config = format!(
        "host={} port={} user={} password={} dbname={database}",
        db.host, db.port, db.user, db.password
    );
    let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
        .with_subscriber(tracing::subscriber::NoSubscriber::default())
        .await
        .expect("connect to PostgreSQL");
    let task = tokio::spawn(connection.with_subscriber(tracing::subscriber::NoSubscriber::default()));
    client.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    drop(client);
    let _ = task.await;
}
