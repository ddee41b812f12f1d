//! The inventory endpoints over DbInventory objects written straight to the
//! API server (no database, no controller): one instance's databases,
//! accounts and root status, the recycle bin, and the fleet-wide searches
//! following inventories as they change.

use std::time::Duration;

use dbfleet::crd::DbInventory;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::harness::{Answer, Facade, User};

fn inventories(facade: &Facade) -> Api<DbInventory> {
    Api::namespaced(facade.admin.clone(), &facade.namespace)
}

/// A DbInventory for instance `name`, as the controller would write it.
async fn write_inventory(facade: &Facade, name: &str, db_type: &str, databases: Value, accounts: Value) {
    let superusers = accounts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["superuser"] == true)
        .count();
    let spec = json!({
        "dbType": db_type,
        "capacity": {"collectedAt": "2026-03-01T10:00:00Z", "databaseCount": databases.as_array().unwrap().len(),
            "totalSizeBytes": 0, "databases": databases, "contentHash": "c"},
        "accounts": {"syncedAt": "2026-03-01T10:05:00Z", "count": accounts.as_array().unwrap().len(),
            "superuserCount": superusers, "items": accounts, "contentHash": "a"},
    });
    let inventory = DbInventory::new(name, serde_json::from_value(spec).unwrap());
    inventories(facade)
        .create(&PostParams::default(), &inventory)
        .await
        .unwrap();
}

/// Asks `path` until `done` holds (the fleet index follows watch events).
async fn eventually(facade: &Facade, user: &User, path: &str, done: impl Fn(&Answer) -> bool) -> Answer {
    for _ in 0..100 {
        let answer = facade.get(user, path).await;
        if done(&answer) {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answer = facade.get(user, path).await;
    panic!("GET {path} never reached the expected answer: {:#}", answer.body);
}

/// Each item as `instance:account@host`, `instance:database`, `account@host`
/// or a plain name.
fn names(answer: &Answer) -> Vec<String> {
    let own = |item: &Value| match item["host"].as_str() {
        Some(host) => format!("{}@{host}", item["name"].as_str().unwrap()),
        None => item["name"].as_str().unwrap().to_string(),
    };
    answer.data()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| match (i["instance"]["name"].as_str(), i.get("account")) {
            (Some(instance), Some(account)) => format!(
                "{instance}:{}@{}",
                account["name"].as_str().unwrap(),
                account["host"].as_str().unwrap_or("")
            ),
            (Some(instance), None) => format!("{instance}:{}", i["name"].as_str().unwrap()),
            _ => own(i),
        })
        .collect()
}

#[track_caller]
fn expect_field(answer: &Answer, field: &str) {
    answer.expect(400, "VALIDATION_ERROR");
    assert_eq!(answer.field(), field, "{:#}", answer.body);
}

fn mysql_accounts() -> Value {
    json!([
        {"name": "app", "host": "%", "superuser": false, "canLogin": true, "locked": false,
         "authPlugin": "mysql_native_password",
         "databases": [{"name": "shop", "privileges": ["SELECT"]}]},
        {"name": "app", "host": "10.0.0.%", "superuser": false, "canLogin": true, "locked": false,
         "globalPrivileges": ["PROCESS"],
         "databases": [{"name": "admin", "privileges": ["ALL PRIVILEGES"], "grantOption": true, "objectGrants": true}]},
        {"name": "locked", "host": "localhost", "superuser": false, "canLogin": true, "locked": true, "expired": true},
        {"name": "root", "host": "%", "superuser": true, "canLogin": true, "locked": false,
         "globalPrivileges": ["ALL PRIVILEGES"], "globalGrantOption": true},
        {"name": "root", "host": "localhost", "superuser": true, "canLogin": true, "locked": false},
        {"name": "we/ird ü", "host": "%", "superuser": false, "canLogin": true, "locked": false, "roles": ["reporting"]},
    ])
}

fn postgres_accounts() -> Value {
    json!([
        {"name": "app_rw", "superuser": false, "canLogin": true, "locked": false, "roles": ["readers"],
         "databases": [{"name": "app", "privileges": ["CREATE"]}, {"name": "orders", "privileges": ["CONNECT"]}]},
        {"name": "old", "superuser": false, "canLogin": true, "locked": false, "expired": true,
         "validUntil": "2020-01-01T00:00:00Z"},
        {"name": "postgres", "superuser": true, "canLogin": true, "locked": false,
         "attributes": ["BYPASSRLS", "CREATEDB", "CREATEROLE", "REPLICATION"],
         "databases": [{"name": "orders", "privileges": ["CONNECT", "CREATE", "TEMPORARY"], "grantOption": true, "owner": true}]},
        {"name": "readers", "superuser": false, "canLogin": false, "locked": false},
    ])
}

#[tokio::test]
async fn one_instance_databases_accounts_and_root_status() {
    let facade = Facade::start("api-inventory").await;
    let editor = facade.editor().await;
    let viewer = facade
        .user("viewer", &["dbinstances", "dbinventories"], &["list", "get"])
        .await;
    let pg = facade.instance(&editor, "pg", json!({})).await;
    let my = facade
        .instance(&editor, "my", json!({"db_type": "mysql", "port": 3306}))
        .await;

    // Nothing collected yet: empty, and said so; not an error.
    let empty = facade.get(&viewer, &format!("/api/v1/instances/{pg}/databases")).await;
    empty.expect(200, "OK");
    assert_eq!(
        empty.data(),
        &json!({"items": [], "total": 0, "page": 1, "pages": 0, "limit": 20,
            "collected": false, "collected_at": null, "truncated": false, "omitted": 0})
    );
    assert!(empty.body["message"].as_str().unwrap().contains("not collected yet"));
    let root = facade
        .get(&viewer, &format!("/api/v1/instances/{pg}/root-status"))
        .await;
    root.expect(200, "OK");
    assert_eq!(
        (root.data()["collected"].clone(), root.data()["root_enabled"].clone()),
        (json!(false), Value::Null)
    );
    facade
        .get(&viewer, &format!("/api/v1/instances/{pg}/accounts/postgres"))
        .await
        .expect(404, "NOT_FOUND");

    write_inventory(
        &facade,
        "pg",
        "postgresql",
        json!([{"name": "app", "sizeBytes": 50, "tableCount": 3}, {"name": "orders", "sizeBytes": 900},
            {"name": "orders_2025", "sizeBytes": 400, "tableCount": 12}]),
        postgres_accounts(),
    )
    .await;
    write_inventory(
        &facade,
        "my",
        "mysql",
        json!([{"name": "shop", "sizeBytes": 10}]),
        mysql_accounts(),
    )
    .await;

    let databases = facade
        .get(&viewer, &format!("/api/v1/instances/{pg}/databases?sort=size&limit=2"))
        .await;
    databases.expect(200, "OK");
    assert_eq!(
        databases.data(),
        &json!({"items": [{"name": "orders", "size_bytes": 900, "table_count": null},
                          {"name": "orders_2025", "size_bytes": 400, "table_count": 12}],
            "total": 3, "page": 1, "pages": 2, "limit": 2,
            "collected": true, "collected_at": "2026-03-01T10:00:00Z", "truncated": false, "omitted": 0})
    );
    let searched = facade
        .get(
            &viewer,
            &format!("/api/v1/instances/{pg}/databases?search=ORDERS&order=desc"),
        )
        .await;
    assert_eq!(names(&searched), ["orders_2025", "orders"]);

    let accounts = facade
        .get(&viewer, &format!("/api/v1/instances/{pg}/accounts?superuser=true"))
        .await;
    accounts.expect(200, "OK");
    assert_eq!(
        accounts.data()["items"],
        json!([{"name": "postgres", "host": null, "superuser": true, "can_login": true, "locked": false,
            "expired": false, "auth_plugin": null, "roles": [], "roles_truncated": false, "global_privileges": [],
            "global_grant_option": false, "attributes": ["BYPASSRLS", "CREATEDB", "CREATEROLE", "REPLICATION"],
            "valid_until": null,
            "databases": [{"name": "orders", "privileges": ["CONNECT", "CREATE", "TEMPORARY"], "grant_option": true,
                "owner": true, "object_grants": false}],
            "databases_truncated": false}])
    );
    assert_eq!(accounts.data()["collected_at"], "2026-03-01T10:05:00Z");
    let logins = facade
        .get(&viewer, &format!("/api/v1/instances/{pg}/accounts?can_login=false"))
        .await;
    assert_eq!(names(&logins), ["readers"]);
    let app = facade
        .get(&viewer, &format!("/api/v1/instances/{pg}/accounts?search=APP"))
        .await;
    assert_eq!(app.data()["items"][0]["roles"], json!(["readers"]));
    assert_eq!(
        app.data()["items"][0]["databases"],
        json!([{"name": "app", "privileges": ["CREATE"], "grant_option": false, "owner": false, "object_grants": false},
            {"name": "orders", "privileges": ["CONNECT"], "grant_option": false, "owner": false, "object_grants": false}])
    );
    let old = facade
        .get(&viewer, &format!("/api/v1/instances/{pg}/accounts/old"))
        .await;
    old.expect(200, "OK");
    assert_eq!(
        (old.data()["expired"].clone(), old.data()["valid_until"].clone()),
        (json!(true), json!("2020-01-01T00:00:00Z"))
    );

    // MySQL: a name on two hosts needs its host; names are percent-encoded.
    let mysql = facade
        .get(&viewer, &format!("/api/v1/instances/{my}/accounts?locked=false"))
        .await;
    assert_eq!(
        names(&mysql),
        ["app@%", "app@10.0.0.%", "root@%", "root@localhost", "we/ird ü@%"]
    );
    let ambiguous = facade
        .get(&viewer, &format!("/api/v1/instances/{my}/accounts/app"))
        .await;
    expect_field(&ambiguous, "host");
    assert!(ambiguous.body["message"].as_str().unwrap().contains("10.0.0.%"));
    let one = facade
        .get(&viewer, &format!("/api/v1/instances/{my}/accounts/app?host=10.0.0.%25"))
        .await;
    one.expect(200, "OK");
    assert_eq!(
        one.data(),
        &json!({"name": "app", "host": "10.0.0.%", "superuser": false, "can_login": true, "locked": false,
            "expired": false, "auth_plugin": null, "roles": [], "roles_truncated": false,
            "global_privileges": ["PROCESS"], "global_grant_option": false, "attributes": [], "valid_until": null,
            "databases": [{"name": "admin", "privileges": ["ALL PRIVILEGES"], "grant_option": true, "owner": false,
                "object_grants": true}],
            "databases_truncated": false})
    );
    let weird = facade
        .get(&viewer, &format!("/api/v1/instances/{my}/accounts/we%2Fird%20%C3%BC"))
        .await;
    weird.expect(200, "OK");
    assert_eq!(weird.data()["roles"], json!(["reporting"]));
    facade
        .get(&viewer, &format!("/api/v1/instances/{my}/accounts/app?host=elsewhere"))
        .await
        .expect(404, "NOT_FOUND");
    facade
        .get(&viewer, &format!("/api/v1/instances/{my}/accounts/nobody"))
        .await
        .expect(404, "NOT_FOUND");

    let root = facade
        .get(&viewer, &format!("/api/v1/instances/{my}/root-status"))
        .await;
    root.expect(200, "OK");
    assert_eq!(
        root.data(),
        &json!({"collected": true, "collected_at": "2026-03-01T10:05:00Z", "root_enabled": true,
            "superuser_count": 2,
            "superusers": [
                {"name": "root", "host": "%", "can_login": true, "locked": false, "expired": false, "from_anywhere": true},
                {"name": "root", "host": "localhost", "can_login": true, "locked": false, "expired": false,
                    "from_anywhere": false}],
            "login_from_anywhere": true, "truncated": false})
    );
    let pg_root = facade
        .get(&viewer, &format!("/api/v1/instances/{pg}/root-status"))
        .await;
    assert_eq!(
        (
            pg_root.data()["superusers"][0]["name"].clone(),
            pg_root.data()["login_from_anywhere"].clone()
        ),
        (json!("postgres"), json!(false))
    );

    // Malformed query values name their field.
    for (query, field) in [
        ("databases?sort=bytes", "sort"),
        ("databases?order=up", "order"),
        ("accounts?superuser=yes", "superuser"),
        ("accounts?can_login=1", "can_login"),
        ("accounts?locked=TRUE", "locked"),
    ] {
        expect_field(
            &facade.get(&viewer, &format!("/api/v1/instances/{pg}/{query}")).await,
            field,
        );
    }

    // `view` on dbinstances is needed.
    let outsider = facade.user("outsider", &["dbtags"], &["list"]).await;
    facade
        .get(&outsider, &format!("/api/v1/instances/{pg}/accounts"))
        .await
        .expect(403, "PERMISSION_DENIED");
    // And `get` on dbinventories: a role may list instances without seeing
    // who has which account, on any inventory endpoint.
    let lister = facade.user("lister", &["dbinstances"], &["get", "list"]).await;
    facade
        .get(&lister, &format!("/api/v1/instances/{pg}"))
        .await
        .expect(200, "OK");
    for path in [
        format!("/api/v1/instances/{pg}/databases"),
        format!("/api/v1/instances/{pg}/accounts"),
        format!("/api/v1/instances/{pg}/accounts/postgres"),
        format!("/api/v1/instances/{pg}/root-status"),
        "/api/v1/accounts".to_string(),
        "/api/v1/databases".to_string(),
    ] {
        let refused = facade.get(&lister, &path).await;
        refused.expect(403, "PERMISSION_DENIED");
        assert!(
            refused.body["message"].as_str().unwrap().contains("get dbinventories"),
            "{path}: {}",
            refused.body
        );
    }

    // A recycled instance is not found, as for detail.
    facade
        .delete(&editor, &format!("/api/v1/instances/{my}"))
        .await
        .expect(200, "OK");
    for tail in ["databases", "accounts", "accounts/root?host=%25", "root-status"] {
        facade
            .get(&viewer, &format!("/api/v1/instances/{my}/{tail}"))
            .await
            .expect(404, "NOT_FOUND");
    }
    facade
        .get(&viewer, "/api/v1/instances/424242/accounts")
        .await
        .expect(404, "NOT_FOUND");
}

#[tokio::test]
async fn the_recycle_bin_lists_exactly_the_recycled_newest_first() {
    let facade = Facade::start("api-bin").await;
    let editor = facade.editor().await;
    let kept = facade.instance(&editor, "kept", json!({})).await;
    let first = facade
        .instance(&editor, "first", json!({"db_type": "mysql", "port": 3306}))
        .await;
    let second = facade.instance(&editor, "second", json!({})).await;
    let mut deleted_at = vec![];
    for id in [first, second] {
        let deleted = facade.delete(&editor, &format!("/api/v1/instances/{id}")).await;
        deleted.expect(200, "OK");
        deleted_at.push((
            deleted.data()["deleted_at"].clone(),
            deleted.data()["retained_until"].clone(),
        ));
    }

    let bin = facade.get(&editor, "/api/v1/instances/recycle-bin").await;
    bin.expect(200, "OK");
    // Deleted in that order (or within the same second: the higher id
    // first), so `second` is the newest.
    assert_eq!(
        bin.data(),
        &json!({"items": [
            {"id": second, "name": "second", "db_type": "postgresql", "host": "second.example.com", "port": 5432,
             "version": null, "deleted_at": deleted_at[1].0, "retained_until": deleted_at[1].1, "days_left": 30},
            {"id": first, "name": "first", "db_type": "mysql", "host": "first.example.com", "port": 3306,
             "version": null, "deleted_at": deleted_at[0].0, "retained_until": deleted_at[0].1, "days_left": 30}],
            "total": 2, "page": 1, "pages": 1, "limit": 20})
    );
    let page = facade
        .get(&editor, "/api/v1/instances/recycle-bin?limit=1&page=2")
        .await;
    assert_eq!(
        (page.data()["items"][0]["id"].as_i64(), page.data()["total"].as_i64()),
        (Some(first), Some(2))
    );
    let listed = facade.get(&editor, "/api/v1/instances?status=recycled&order=asc").await;
    listed.expect(200, "OK");
    let ids: Vec<i64> = listed.data()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [first, second]);
    assert!(!ids.contains(&kept));
    expect_field(&facade.get(&editor, "/api/v1/instances?status=binned").await, "status");

    let viewer_of_tags = facade.user("tags-only", &["dbtags"], &["list"]).await;
    facade
        .get(&viewer_of_tags, "/api/v1/instances/recycle-bin")
        .await
        .expect(403, "PERMISSION_DENIED");
}

#[tokio::test]
async fn fleet_search_follows_inventories_as_they_change() {
    let facade = Facade::start("api-fleet").await;
    let editor = facade.editor().await;
    let viewer = facade
        .user("viewer", &["dbinstances", "dbinventories"], &["list", "get"])
        .await;
    facade.tag(&editor, "prod").await;
    let a = facade.instance(&editor, "a", json!({"tag_names": ["prod"]})).await;
    let b = facade
        .instance(&editor, "b", json!({"db_type": "mysql", "port": 3306}))
        .await;
    facade.instance(&editor, "c", json!({})).await;
    write_inventory(
        &facade,
        "a",
        "postgresql",
        json!([{"name": "orders", "sizeBytes": 900, "tableCount": 4}]),
        postgres_accounts(),
    )
    .await;
    write_inventory(
        &facade,
        "b",
        "mysql",
        json!([{"name": "orders", "sizeBytes": 5}]),
        mysql_accounts(),
    )
    .await;
    // An inventory whose instance does not exist is never shown.
    write_inventory(&facade, "orphan", "mysql", json!([]), mysql_accounts()).await;

    let found = eventually(&facade, &viewer, "/api/v1/accounts?name=app", |a| {
        a.data()["total"] == 2
    })
    .await;
    found.expect(200, "OK");
    assert_eq!(
        found.data()["items"][0],
        json!({"instance": {"id": b, "name": "b", "db_type": "mysql", "host": "b.example.com", "port": 3306},
            "account": {"name": "app", "host": "%", "superuser": false, "can_login": true, "locked": false,
                "expired": false, "auth_plugin": "mysql_native_password", "roles": [], "roles_truncated": false,
                "global_privileges": [], "global_grant_option": false, "attributes": [], "valid_until": null,
                "databases": [{"name": "shop", "privileges": ["SELECT"], "grant_option": false, "owner": false,
                    "object_grants": false}],
                "databases_truncated": false}})
    );
    assert_eq!(names(&found), ["b:app@%", "b:app@10.0.0.%"]);
    // a, b and c searched; c has no inventory, so an answer there is unknown.
    assert_eq!(
        (
            &found.data()["searched_instances"],
            &found.data()["instances_not_collected"],
            &found.data()["instances_truncated"]
        ),
        (&json!(3), &json!(1), &json!(0))
    );
    let search = facade.get(&viewer, "/api/v1/accounts?search=APP").await;
    assert_eq!(names(&search), ["a:app_rw@", "b:app@%", "b:app@10.0.0.%"]);
    let superusers = facade.get(&viewer, "/api/v1/accounts?superuser=true").await;
    assert_eq!(names(&superusers), ["a:postgres@", "b:root@%", "b:root@localhost"]);
    let tagged = facade.get(&viewer, "/api/v1/accounts?superuser=true&tags=prod").await;
    assert_eq!(names(&tagged), ["a:postgres@"]);
    let mysql = facade
        .get(&viewer, "/api/v1/accounts?search=root&db_type=mysql&limit=1&page=2")
        .await;
    assert_eq!(
        (names(&mysql), mysql.data()["total"].as_i64()),
        (vec!["b:root@localhost".to_string()], Some(2))
    );
    let databases = facade.get(&viewer, "/api/v1/databases?name=orders").await;
    databases.expect(200, "OK");
    assert_eq!(
        databases.data()["items"],
        json!([{"instance": {"id": a, "name": "a", "db_type": "postgresql", "host": "a.example.com", "port": 5432},
                "name": "orders", "size_bytes": 900, "table_count": 4, "owner": "postgres"},
               {"instance": {"id": b, "name": "b", "db_type": "mysql", "host": "b.example.com", "port": 3306},
                "name": "orders", "size_bytes": 5, "table_count": null, "owner": null}])
    );
    for (query, field) in [
        ("accounts?db_type=oracle", "db_type"),
        ("accounts?superuser=maybe", "superuser"),
        ("databases?db_type=db2", "db_type"),
    ] {
        expect_field(&facade.get(&viewer, &format!("/api/v1/{query}")).await, field);
    }

    // An update replaces the instance's postings.
    inventories(&facade)
        .patch(
            "b",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"accounts": {"items": [
                {"name": "app2", "host": "%", "superuser": false, "canLogin": true, "locked": false}]}}})),
        )
        .await
        .unwrap();
    let moved = eventually(&facade, &viewer, "/api/v1/accounts?name=app2", |a| {
        a.data()["total"] == 1
    })
    .await;
    assert_eq!(names(&moved), ["b:app2@%"]);
    assert_eq!(
        names(&facade.get(&viewer, "/api/v1/accounts?search=app").await),
        ["a:app_rw@", "b:app2@%"]
    );

    // A deleted inventory leaves no posting.
    inventories(&facade)
        .delete("b", &DeleteParams::default())
        .await
        .unwrap();
    eventually(&facade, &viewer, "/api/v1/accounts?search=app", |a| {
        names(a) == ["a:app_rw@"]
    })
    .await;

    // A recycled instance's accounts are not shown (its inventory stays).
    facade
        .delete(&editor, &format!("/api/v1/instances/{a}"))
        .await
        .expect(200, "OK");
    let none = facade.get(&viewer, "/api/v1/accounts?search=app").await;
    assert_eq!(none.data()["total"], 0, "{:#}", none.body);
    assert_eq!(
        facade.get(&viewer, "/api/v1/databases?search=ord").await.data()["total"],
        0
    );
}

#[tokio::test]
async fn fleet_findings_filter_and_need_get_on_dbinventories() {
    let facade = Facade::start("api-findings").await;
    let editor = facade.editor().await;
    let viewer = facade
        .user("viewer", &["dbinstances", "dbinventories"], &["list", "get"])
        .await;
    facade.tag(&editor, "prod").await;
    facade
        .instance(
            &editor,
            "a",
            json!({"db_type": "mysql", "port": 3306, "tag_names": ["prod"]}),
        )
        .await;
    let b = facade.instance(&editor, "b", json!({})).await;
    let findings = |items: Value, not_checked: Value| {
        json!({"checkedAt": "2026-03-01T10:05:00Z", "counts": {"high": 0, "medium": 0, "low": 0},
            "items": items, "notChecked": not_checked, "contentHash": "f"})
    };
    for (name, db_type, f) in [
        (
            "a",
            "mysql",
            findings(
                json!([
                    {"code": "empty_password", "severity": "high", "account": "app", "host": "%", "message": "m"},
                    {"code": "native_password", "severity": "low", "account": "app", "host": "%", "message": "m"}]),
                json!([]),
            ),
        ),
        (
            "b",
            "postgresql",
            findings(
                json!([{"code": "password_encryption_md5", "severity": "medium", "message": "m"}]),
                json!([{"code": "md5_password", "reason": "the login may not read pg_authid"}]),
            ),
        ),
    ] {
        let spec = json!({"dbType": db_type, "findings": f});
        inventories(&facade)
            .create(
                &PostParams::default(),
                &DbInventory::new(name, serde_json::from_value(spec).unwrap()),
            )
            .await
            .unwrap();
    }

    let all = eventually(&facade, &viewer, "/api/v1/findings", |a| a.data()["total"] == 3).await;
    all.expect(200, "OK");
    let data = all.data();
    assert_eq!(data["items"][0]["instance"]["name"], "a");
    assert_eq!(data["items"][0]["code"], "empty_password");
    assert_eq!(data["items"][0]["account"], "app");
    assert_eq!(data["items"][2]["account"], Value::Null, "a server setting");
    assert_eq!(data["by_severity"], json!({"high": 1, "medium": 1, "low": 1}));
    assert_eq!(data["not_checked"], json!([{"code": "md5_password", "instances": 1}]));

    let high = facade.get(&viewer, "/api/v1/findings?severity=high").await;
    assert_eq!(high.data()["total"], 1);
    let tagged = facade
        .get(&viewer, "/api/v1/findings?tags=prod&code=native_password")
        .await;
    assert_eq!(tagged.data()["items"][0]["severity"], "low");
    let one = facade.get(&viewer, &format!("/api/v1/findings?instance_id={b}")).await;
    assert_eq!(
        (one.data()["total"].clone(), one.data()["searched_instances"].clone()),
        (json!(1), json!(1))
    );
    expect_field(
        &facade.get(&viewer, "/api/v1/findings?severity=urgent").await,
        "severity",
    );
    expect_field(&facade.get(&viewer, "/api/v1/findings?code=weak").await, "code");

    let lister = facade.user("lister", &["dbinstances"], &["get", "list"]).await;
    let refused = facade.get(&lister, "/api/v1/findings").await;
    refused.expect(403, "PERMISSION_DENIED");
    assert!(
        refused.body["message"].as_str().unwrap().contains("get dbinventories"),
        "{}",
        refused.body
    );
}
