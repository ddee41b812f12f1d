//! The inventory queries end to end: accounts with specific grants on the
//! real PostgreSQL and MariaDB, collected by the controller and answered by
//! the façade with their exact privileges; the fleet-wide search, the root
//! status, the recycle bin and malformed queries.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::actions::fleet;
use crate::harness::{Answer, Facade, User};
use crate::support::controller::eventually;
use crate::support::databases::{mysql_exec, postgres, postgres_exec, unique};
use crate::support::{self};

/// What the test created on the servers, dropped at the end.
struct Grants {
    /// On both engines: a PostgreSQL role and two MariaDB accounts.
    shared: String,
    /// PostgreSQL: a NOLOGIN role `shared` is a member of.
    group: String,
    /// PostgreSQL: VALID UNTIL in the past.
    expired: String,
    /// PostgreSQL: a superuser; MariaDB: a SUPER account at `%`.
    superuser: String,
    /// MariaDB: an account at `%`, and a locked one.
    anywhere: String,
    locked: String,
    /// Databases of both names on both engines.
    first_db: String,
    second_db: String,
}

impl Grants {
    async fn create() -> Grants {
        let grants = Grants {
            shared: unique("shared"),
            group: unique("group"),
            expired: unique("expired"),
            superuser: unique("root"),
            anywhere: unique("anywhere"),
            locked: unique("locked"),
            first_db: unique("first"),
            second_db: unique("second"),
        };
        let Grants {
            shared,
            group,
            expired,
            superuser,
            anywhere,
            locked,
            first_db,
            second_db,
        } = &grants;
        // CREATE DATABASE runs outside a transaction block: one at a time.
        postgres_exec(&format!("CREATE DATABASE {first_db}")).await;
        postgres_exec(&format!("CREATE DATABASE {second_db}")).await;
        postgres_exec(&format!(
            "CREATE ROLE {shared} LOGIN PASSWORD 'not-used-1';
             CREATE ROLE {group} NOLOGIN;
             CREATE ROLE {expired} LOGIN PASSWORD 'not-used-2' VALID UNTIL '2000-01-01 00:00:00+00';
             CREATE ROLE {superuser} LOGIN SUPERUSER PASSWORD 'not-used-3';
             GRANT {group} TO {shared};
             GRANT CONNECT ON DATABASE {first_db} TO {shared};
             GRANT CREATE ON DATABASE {second_db} TO {shared};"
        ))
        .await;
        mysql_exec(&format!(
            "CREATE DATABASE {first_db}; CREATE DATABASE {second_db};
             CREATE USER '{shared}'@'127.0.0.1' IDENTIFIED BY 'not-used-4';
             CREATE USER '{shared}'@'%' IDENTIFIED BY 'not-used-5';
             GRANT SELECT ON {first_db}.* TO '{shared}'@'127.0.0.1';
             GRANT ALL PRIVILEGES ON {second_db}.* TO '{shared}'@'127.0.0.1' WITH GRANT OPTION;
             CREATE USER '{anywhere}'@'%' IDENTIFIED BY 'not-used-6';
             GRANT SELECT ON {first_db}.* TO '{anywhere}'@'%';
             CREATE USER '{locked}'@'127.0.0.1' IDENTIFIED BY 'not-used-7' ACCOUNT LOCK;
             CREATE USER '{superuser}'@'%' IDENTIFIED BY 'not-used-8';
             GRANT SUPER ON *.* TO '{superuser}'@'%';"
        ))
        .await;
        grants
    }

    async fn drop(&self) {
        for db in [&self.first_db, &self.second_db] {
            postgres_exec(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await;
            mysql_exec(&format!("DROP DATABASE IF EXISTS {db}")).await;
        }
        for role in [&self.shared, &self.group, &self.expired, &self.superuser] {
            postgres_exec(&format!("DROP ROLE IF EXISTS {role}")).await;
        }
        for (user, host) in [
            (&self.shared, "127.0.0.1"),
            (&self.shared, "%"),
            (&self.anywhere, "%"),
            (&self.locked, "127.0.0.1"),
            (&self.superuser, "%"),
        ] {
            mysql_exec(&format!("DROP USER IF EXISTS '{user}'@'{host}'")).await;
        }
    }
}

/// The answer to `path` once it is a 200 for which `ready` holds.
async fn once(facade: &Facade, user: &User, path: &str, ready: impl Fn(&Value) -> bool) -> Answer {
    eventually(Duration::from_secs(60), path, || async {
        let answer = facade.get(user, path).await;
        if answer.status.as_u16() == 200 && ready(answer.data()) {
            (Some(answer), String::new())
        } else {
            (None, format!("{} {:#}", answer.status, answer.body))
        }
    })
    .await
}

fn items(answer: &Answer) -> &Vec<Value> {
    answer.data()["items"].as_array().expect("a list answer")
}

/// The fields of an account answer this test pins down.
fn account_facts(account: &Value) -> Value {
    let pick = |key: &str| account[key].clone();
    json!({
        "name": pick("name"), "host": pick("host"), "superuser": pick("superuser"),
        "can_login": pick("can_login"), "locked": pick("locked"), "expired": pick("expired"),
        "roles": pick("roles"), "databases": pick("databases"),
    })
}

fn database(name: &str, privileges: &[&str], grant_option: bool) -> Value {
    json!({"name": name, "privileges": privileges, "grant_option": grant_option,
           "owner": false, "object_grants": false})
}

#[tokio::test]
async fn inventory_queries_answer_exact_privileges_on_both_engines() {
    let facade = Facade::start("api-privileges").await;
    let _controllers = support::controller::start(&facade.admin, &facade.namespace, |_| {});
    let editor = facade.editor().await;
    let reader = facade
        .user("reader", &["dbinstances", "dbinventories"], &["list", "get"])
        .await;
    let grants = Grants::create().await;
    let (pg, my, closed, _) = fleet(&facade, &editor).await;
    let g = &grants;

    // PostgreSQL: CONNECT on one database, CREATE on the other, a member of
    // a NOLOGIN role; the expired role says until when.
    let path = format!("/api/v1/instances/{pg}/accounts/{}", g.shared);
    let shared = once(&facade, &reader, &path, |_| true).await;
    let mut expected_databases = vec![
        database(&g.first_db, &["CONNECT"], false),
        database(&g.second_db, &["CREATE"], false),
    ];
    expected_databases.sort_by_key(|d| d["name"].as_str().unwrap().to_string());
    assert_eq!(
        account_facts(shared.data()),
        json!({"name": g.shared, "host": null, "superuser": false, "can_login": true, "locked": false,
               "expired": false, "roles": [g.group], "databases": expected_databases}),
        "{:#}",
        shared.body
    );
    let group = facade
        .get(&reader, &format!("/api/v1/instances/{pg}/accounts/{}", g.group))
        .await;
    group.expect(200, "OK");
    assert_eq!(group.data()["can_login"], false, "{:#}", group.body);
    let expired = facade
        .get(&reader, &format!("/api/v1/instances/{pg}/accounts/{}", g.expired))
        .await;
    expired.expect(200, "OK");
    assert_eq!(
        (&expired.data()["expired"], &expired.data()["valid_until"]),
        (&json!(true), &json!("2000-01-01T00:00:00Z")),
        "{:#}",
        expired.body
    );

    // MariaDB: the same name on two hosts needs `host`.
    let path = format!("/api/v1/instances/{my}/accounts/{}", g.anywhere);
    let anywhere = once(&facade, &reader, &path, |_| true).await;
    let ambiguous = facade
        .get(&reader, &format!("/api/v1/instances/{my}/accounts/{}", g.shared))
        .await;
    ambiguous.expect(400, "VALIDATION_ERROR");
    assert_eq!(ambiguous.field(), "host", "{:#}", ambiguous.body);
    let local = facade
        .get(
            &reader,
            &format!("/api/v1/instances/{my}/accounts/{}?host=127.0.0.1", g.shared),
        )
        .await;
    local.expect(200, "OK");
    let account = local.data();
    assert_eq!(
        (&account["host"], &account["auth_plugin"], &account["global_privileges"]),
        (&json!("127.0.0.1"), &json!("mysql_native_password"), &json!([])),
        "{:#}",
        local.body
    );
    let databases = account["databases"].as_array().unwrap();
    let on = |name: &str| {
        databases
            .iter()
            .find(|d| d["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {databases:?}"))
    };
    assert_eq!(on(&g.first_db), &database(&g.first_db, &["SELECT"], false));
    let all = on(&g.second_db);
    assert_eq!(all["grant_option"], true, "{all}");
    let privileges: Vec<&str> = all["privileges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    for privilege in [
        "ALTER", "CREATE", "DELETE", "DROP", "INDEX", "INSERT", "SELECT", "UPDATE",
    ] {
        assert!(privileges.contains(&privilege), "{privilege} in {privileges:?}");
    }
    assert_eq!(
        account_facts(anywhere.data()),
        json!({"name": g.anywhere, "host": "%", "superuser": false, "can_login": true, "locked": false,
               "expired": false, "roles": [], "databases": [database(&g.first_db, &["SELECT"], false)]}),
        "{:#}",
        anywhere.body
    );
    let locked = facade
        .get(
            &reader,
            &format!("/api/v1/instances/{my}/accounts?locked=true&search={}", g.locked),
        )
        .await;
    locked.expect(200, "OK");
    assert_eq!(
        items(&locked)
            .iter()
            .map(|a| (&a["name"], &a["locked"]))
            .collect::<Vec<_>>(),
        [(&json!(g.locked), &json!(true))],
        "{:#}",
        locked.body
    );

    // Fleet-wide: `shared` exists on both servers and nowhere else (the
    // closed port's instance has no inventory).
    let search = once(
        &facade,
        &reader,
        &format!("/api/v1/accounts?name={}", g.shared),
        |data| data["total"] == 3,
    )
    .await;
    let mut found: Vec<(i64, Value)> = items(&search)
        .iter()
        .map(|item| {
            (
                item["instance"]["id"].as_i64().unwrap(),
                item["account"]["host"].clone(),
            )
        })
        .collect();
    found.sort_by_key(|(id, host)| (*id, host.to_string()));
    let mut expected = vec![(pg, Value::Null), (my, json!("%")), (my, json!("127.0.0.1"))];
    expected.sort_by_key(|(id, host)| (*id, host.to_string()));
    assert_eq!(found, expected, "{:#}", search.body);
    let on_pg = items(&search).iter().find(|i| i["instance"]["id"] == pg).unwrap();
    assert_eq!(on_pg["account"]["roles"], json!([g.group]), "{on_pg}");
    assert!(!closed_is_named(&search, closed));
    let group_only = facade.get(&reader, &format!("/api/v1/accounts?name={}", g.group)).await;
    group_only.expect(200, "OK");
    assert_eq!(
        items(&group_only)
            .iter()
            .map(|i| i["instance"]["id"].clone())
            .collect::<Vec<_>>(),
        [json!(pg)]
    );
    let databases = facade
        .get(&reader, &format!("/api/v1/databases?name={}", g.first_db))
        .await;
    databases.expect(200, "OK");
    let mut owners: Vec<(i64, Value)> = items(&databases)
        .iter()
        .map(|d| (d["instance"]["id"].as_i64().unwrap(), d["owner"].clone()))
        .collect();
    owners.sort_by_key(|(id, _)| *id);
    let mut expected = vec![(pg, json!(postgres().user)), (my, Value::Null)];
    expected.sort_by_key(|(id, _)| *id);
    assert_eq!(owners, expected, "{:#}", databases.body);

    // Root status names the superusers; only MariaDB's can come from anywhere.
    let root = facade
        .get(&reader, &format!("/api/v1/instances/{pg}/root-status"))
        .await;
    root.expect(200, "OK");
    let names = superuser_names(&root);
    assert!(
        names.contains(&g.superuser) && names.contains(&postgres().user),
        "{names:?}"
    );
    assert_eq!(
        (&root.data()["root_enabled"], &root.data()["login_from_anywhere"]),
        (&json!(true), &json!(false))
    );
    let root = facade
        .get(&reader, &format!("/api/v1/instances/{my}/root-status"))
        .await;
    root.expect(200, "OK");
    assert!(superuser_names(&root).contains(&g.superuser), "{:#}", root.body);
    assert_eq!(root.data()["login_from_anywhere"], true, "{:#}", root.body);

    // Malformed queries name their field.
    for (path, field) in [
        ("/api/v1/accounts?superuser=maybe".to_string(), "superuser"),
        (format!("/api/v1/instances/{pg}/databases?sort=owner"), "sort"),
        (format!("/api/v1/instances/{pg}/accounts?locked=yes"), "locked"),
        ("/api/v1/databases?db_type=oracle".to_string(), "db_type"),
    ] {
        let answer = facade.get(&reader, &path).await;
        answer.expect(400, "VALIDATION_ERROR");
        assert_eq!(answer.field(), field, "{path}: {:#}", answer.body);
    }

    // The recycle bin lists exactly the recycled instance, kept 30 days.
    facade
        .delete(&editor, &format!("/api/v1/instances/{closed}"))
        .await
        .expect(200, "OK");
    let bin = once(&facade, &reader, "/api/v1/instances/recycle-bin", |data| {
        data["items"][0]["retained_until"].is_string()
    })
    .await;
    assert_eq!(
        items(&bin).iter().map(|i| i["id"].clone()).collect::<Vec<_>>(),
        [json!(closed)],
        "{:#}",
        bin.body
    );
    let recycled = &items(&bin)[0];
    let at = |key: &str| -> Timestamp { recycled[key].as_str().unwrap().parse().unwrap() };
    assert_eq!(
        at("retained_until").duration_since(at("deleted_at")),
        SignedDuration::from_hours(30 * 24),
        "{recycled}"
    );
    assert_eq!(recycled["days_left"], 30, "{recycled}");
    facade
        .get(&reader, &format!("/api/v1/instances/{closed}/accounts"))
        .await
        .expect(404, "NOT_FOUND");

    grants.drop().await;
}

fn superuser_names(answer: &Answer) -> Vec<String> {
    answer.data()["superusers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

fn closed_is_named(search: &Answer, closed: i64) -> bool {
    items(search).iter().any(|i| i["instance"]["id"] == closed)
}
