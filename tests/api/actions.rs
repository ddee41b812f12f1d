//! Actions that probe real databases: PostgreSQL and MariaDB from
//! scripts/test-env.sh, and a port nothing listens on.

use std::time::{Duration, Instant};

use dbfleet::crd::DbInstance;
use dbfleet::observe::ProbeBudget;
use kube::Api;
use serde_json::json;

use crate::harness::{Facade, User};
use crate::instances::credential;
use crate::support;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run `eval \"$(scripts/test-env.sh)\"` first"))
}

/// Ids of instances for the test PostgreSQL, the test MariaDB and a closed
/// port, all with the admin login; and that login's password.
pub async fn fleet(facade: &Facade, editor: &User) -> (i64, i64, i64, String) {
    let password = env("DBFLEET_TEST_POSTGRES_PASSWORD");
    let pg_login = credential(
        facade,
        editor,
        "pg-login",
        &env("DBFLEET_TEST_POSTGRES_USER"),
        &password,
    )
    .await;
    let my_login = credential(
        facade,
        editor,
        "my-login",
        &env("DBFLEET_TEST_MYSQL_USER"),
        &env("DBFLEET_TEST_MYSQL_PASSWORD"),
    )
    .await;
    let pg = facade
        .instance(
            editor,
            "pg",
            json!({"host": env("DBFLEET_TEST_POSTGRES_HOST"),
            "port": env("DBFLEET_TEST_POSTGRES_PORT").parse::<i64>().unwrap(), "credential_id": pg_login}),
        )
        .await;
    let my = facade
        .instance(
            editor,
            "maria",
            json!({"db_type": "mysql", "host": env("DBFLEET_TEST_MYSQL_HOST"),
            "port": env("DBFLEET_TEST_MYSQL_PORT").parse::<i64>().unwrap(), "credential_id": my_login}),
        )
        .await;
    let closed = facade
        .instance(
            editor,
            "closed",
            json!({"host": "127.0.0.1", "port": 1, "credential_id": pg_login}),
        )
        .await;
    (pg, my, closed, password)
}

#[tokio::test]
async fn connection_tests_run_against_real_servers() {
    let facade = Facade::start("api-conntest").await;
    // Tests of existing instances are run and recorded by their controller.
    let _controllers = support::controller::start(&facade.admin, &facade.namespace, |_| {});
    let editor = facade.editor().await;
    let (pg, my, closed, password) = fleet(&facade, &editor).await;

    let ok = facade
        .post(
            &editor,
            "/api/v1/instances/actions/test-connection",
            json!({"instance_id": pg}),
        )
        .await;
    ok.expect(200, "OK");
    assert_eq!(ok.data()["success"], true, "{:#}", ok.body);
    assert!(ok.data()["version"].as_str().unwrap().starts_with("15"));
    let recorded = facade
        .get(&editor, &format!("/api/v1/instances/{pg}/connection-status"))
        .await;
    assert_eq!(recorded.data()["status"], "connected", "the status records the test");
    assert_eq!(recorded.data()["version"], ok.data()["version"]);

    let failed = facade
        .post(
            &editor,
            "/api/v1/instances/actions/test-connection",
            json!({"instance_id": closed}),
        )
        .await;
    failed.expect(200, "OK");
    assert_eq!(
        (failed.data()["success"].as_bool(), failed.data()["error_kind"].as_str()),
        (Some(false), Some("ConnectionRefused"))
    );

    let adhoc = facade
        .post(
            &editor,
            "/api/v1/instances/actions/test-connection",
            json!({"db_type": "mysql",
            "host": env("DBFLEET_TEST_MYSQL_HOST"), "port": env("DBFLEET_TEST_MYSQL_PORT").parse::<i64>().unwrap()}),
        )
        .await;
    adhoc.expect(200, "OK");
    assert_eq!(
        adhoc.data()["error_kind"],
        "CredentialsNotSpecified",
        "{:#}",
        adhoc.body
    );
    let batch = facade
        .post(
            &editor,
            "/api/v1/instances/actions/batch-test-connections",
            json!({"instance_ids": [pg, my, closed, 9999]}),
        )
        .await;
    batch.expect(200, "OK");
    assert_eq!(
        (
            batch.data()["success_count"].as_i64(),
            batch.data()["failed_count"].as_i64()
        ),
        (Some(2), Some(2))
    );
    let before = facade.snapshot().await;
    let incomplete = facade
        .post(
            &editor,
            "/api/v1/instances/actions/test-connection",
            json!({"db_type": "mysql"}),
        )
        .await;
    incomplete.expect(400, "VALIDATION_ERROR");
    assert_eq!(incomplete.field(), "host");
    facade
        .post(
            &editor,
            "/api/v1/instances/actions/test-connection",
            json!({"db_type": "mysql", "host": "h", "port": 1, "credential_id": 404}),
        )
        .await
        .expect(400, "VALIDATION_ERROR");
    facade
        .post(
            &editor,
            "/api/v1/instances/actions/test-connection",
            json!({"instance_id": 9999}),
        )
        .await
        .expect(404, "NOT_FOUND");

    let too_many: Vec<i64> = (1..=51).collect();
    facade
        .post(
            &editor,
            "/api/v1/instances/actions/batch-test-connections",
            json!({"instance_ids": too_many}),
        )
        .await
        .expect(400, "BATCH_TOO_LARGE");

    let params = facade
        .post(
            &editor,
            "/api/v1/instances/actions/validate-connection-params",
            json!({"db_type": "mysql", "port": 3306}),
        )
        .await;
    params.expect(200, "OK");
    assert_eq!(params.data()["valid"], true);
    let bad = facade
        .post(
            &editor,
            "/api/v1/instances/actions/validate-connection-params",
            json!({"db_type": "mysql", "port": 0, "credential_id": 77}),
        )
        .await;
    bad.expect(400, "VALIDATION_ERROR");
    assert_eq!(bad.data()["errors"].as_array().unwrap().len(), 2);
    assert_eq!(facade.snapshot().await, before);

    for answer in [&ok, &failed, &batch] {
        assert!(
            !answer.body.to_string().contains(&password),
            "a password leaked into a response"
        );
    }
}

/// The value of the annotation through which the façade last asked the
/// controller to test `name`.
async fn test_requested_at(facade: &Facade, name: &str) -> Option<String> {
    let instance = Api::<DbInstance>::namespaced(facade.admin.clone(), &facade.namespace)
        .get(name)
        .await
        .unwrap();
    instance
        .metadata
        .annotations
        .unwrap_or_default()
        .get(dbfleet::crd::keys::TEST_CONNECTION_REQUESTED_AT)
        .cloned()
}

#[tokio::test]
async fn an_instance_is_logged_in_to_at_most_once_per_interval() {
    // An interval no test run outlasts: every repeat below is within it.
    let facade = Facade::start_with("api-login-limit", |config| {
        config.test_connection_interval = Duration::from_secs(3600);
    })
    .await;
    let _controllers = support::controller::start(&facade.admin, &facade.namespace, |_| {});
    let editor = facade.editor().await;
    let viewer = facade.user("viewer", &["dbinstances"], &["list"]).await;
    let (pg, my, _, password) = fleet(&facade, &editor).await;
    let test = |user: &User, id: i64| {
        let user = user.clone();
        let facade = &facade;
        async move {
            let answer = facade
                .post(
                    &user,
                    "/api/v1/instances/actions/test-connection",
                    json!({"instance_id": id}),
                )
                .await;
            answer.expect(200, "OK");
            answer.data().clone()
        }
    };

    // The first test logs in (the controller, asked by an annotation).
    let first = test(&viewer, pg).await;
    assert_eq!(
        (&first["success"], &first["cached"]),
        (&json!(true), &json!(false)),
        "{first}"
    );
    let requested = test_requested_at(&facade, "pg").await;
    assert!(requested.is_some(), "the façade asked the controller");
    // Repeats, by anyone, get that result, marked, and ask nothing.
    for user in [&viewer, &editor, &viewer] {
        let again = test(user, pg).await;
        assert_eq!(again["cached"], true, "{again}");
        assert_eq!(
            (&again["tested_at"], &again["version"], &again["success"]),
            (&first["tested_at"], &first["version"], &first["success"])
        );
    }
    // Batch tests count against the same limit, both ways.
    let batch = facade
        .post(
            &viewer,
            "/api/v1/instances/actions/batch-test-connections",
            json!({"instance_ids": [pg, my]}),
        )
        .await;
    batch.expect(200, "OK");
    let results = batch.data()["results"].as_array().unwrap();
    assert_eq!(
        (&results[0]["cached"], &results[0]["tested_at"]),
        (&json!(true), &first["tested_at"])
    );
    assert_eq!(
        (&results[1]["success"], &results[1]["cached"]),
        (&json!(true), &json!(false))
    );
    assert_eq!(test(&viewer, my).await["cached"], true);
    assert_eq!(
        test_requested_at(&facade, "pg").await,
        requested,
        "no new login was asked for pg"
    );
    assert!(!batch.body.to_string().contains(&password));
}

#[tokio::test]
async fn on_demand_syncs_collect_or_say_why_not() {
    let facade = Facade::start("api-sync").await;
    let _controllers = support::controller::start(&facade.admin, &facade.namespace, |_| {});
    let editor = facade.editor().await;
    let reader = facade.user("reader", &["dbinstances"], &["list"]).await;
    let (pg, my, closed, password) = fleet(&facade, &editor).await;

    let capacity = facade
        .post(
            &editor,
            &format!("/api/v1/instances/{pg}/actions/sync-capacity"),
            json!({}),
        )
        .await;
    capacity.expect(200, "OK");
    let result = &capacity.data()["result"];
    assert!(
        result["databases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["name"] == "postgres"),
        "{:#}",
        capacity.body
    );
    assert!(result["inventory"]["total_size_bytes"].as_u64().unwrap() > 0);
    let stored = Api::<DbInstance>::namespaced(facade.admin.clone(), &facade.namespace)
        .get("pg")
        .await
        .unwrap();
    let stored_capacity = stored
        .status
        .and_then(|s| s.capacity)
        .expect("the status records the collection");
    assert_eq!(
        stored_capacity.total_size_bytes,
        result["inventory"]["total_size_bytes"].as_u64().unwrap()
    );
    let detail = facade.get(&editor, &format!("/api/v1/instances/{pg}")).await;
    assert_eq!(
        detail.data()["capacity"]["total_size_bytes"],
        result["inventory"]["total_size_bytes"]
    );

    let accounts = facade
        .post(
            &editor,
            &format!("/api/v1/instances/{my}/actions/sync-accounts"),
            json!({}),
        )
        .await;
    accounts.expect(200, "OK");
    assert!(
        accounts.data()["result"]["total"].as_u64().unwrap() >= 1,
        "{:#}",
        accounts.body
    );
    assert_eq!(accounts.data()["result"]["success"], true);

    facade
        .post(
            &editor,
            &format!("/api/v1/instances/{closed}/actions/sync-capacity"),
            json!({}),
        )
        .await
        .expect(409, "DATABASE_CONNECTION_ERROR");
    facade
        .post(
            &editor,
            &format!("/api/v1/instances/{closed}/actions/sync-accounts"),
            json!({}),
        )
        .await
        .expect(409, "DATABASE_CONNECTION_ERROR");
    facade
        .post(
            &reader,
            &format!("/api/v1/instances/{pg}/actions/sync-capacity"),
            json!({}),
        )
        .await
        .expect(403, "PERMISSION_DENIED");
    facade
        .post(&editor, "/api/v1/instances/31337/actions/sync-capacity", json!({}))
        .await
        .expect(404, "NOT_FOUND");
    for answer in [&capacity, &accounts] {
        assert!(
            !answer.body.to_string().contains(&password),
            "a password leaked into a response"
        );
    }
}

#[tokio::test]
async fn adhoc_tests_wait_for_the_probe_budget_a_bounded_time() {
    // One budget for the façade and the controller, as under `dbfleet run`.
    let budget = ProbeBudget::new(1);
    let wait = Duration::from_millis(400);
    let facade = Facade::start_with("api-budget", |config| {
        config.probe_budget = budget.clone();
        config.probe_wait = wait;
    })
    .await;
    let _controllers = support::controller::start(&facade.admin, &facade.namespace, |config| {
        config.probes.budget = budget.clone();
    });
    let editor = facade.editor().await;
    let (pg, _, _, _) = fleet(&facade, &editor).await;
    let login = facade.get(&editor, &format!("/api/v1/instances/{pg}")).await.data()["credential_id"].clone();
    let adhoc = json!({"db_type": "postgresql", "host": env("DBFLEET_TEST_POSTGRES_HOST"),
        "port": env("DBFLEET_TEST_POSTGRES_PORT").parse::<i64>().unwrap(), "credential_id": login});

    // Something else (the controller, another request) holds the only slot.
    let held = budget.acquire().await;
    let started = Instant::now();
    let busy = facade
        .post(&editor, "/api/v1/instances/actions/test-connection", adhoc.clone())
        .await;
    let waited = started.elapsed();
    busy.expect(503, "PROBES_BUSY");
    assert_eq!(busy.headers["retry-after"], "5");
    assert!(waited >= wait && waited < wait * 10, "{waited:?}");

    // A test of an existing instance is the controller's probe: it is not
    // refused, it waits until the controller gets a slot.
    let existing = facade.post(
        &editor,
        "/api/v1/instances/actions/test-connection",
        json!({"instance_id": pg}),
    );
    tokio::pin!(existing);
    let early = tokio::time::timeout(Duration::from_secs(1), &mut existing).await;
    assert!(early.is_err(), "the controller probed without a slot");
    drop(held);
    let answered = existing.await;
    answered.expect(200, "OK");
    assert_eq!(answered.data()["success"], true, "{:#}", answered.body);

    // Once the slot is free the ad-hoc test probes too.
    let ok = facade
        .post(&editor, "/api/v1/instances/actions/test-connection", adhoc)
        .await;
    ok.expect(200, "OK");
    assert_eq!(ok.data()["success"], true, "{:#}", ok.body);
    assert_eq!(budget.available(), 1, "every probe gave its slot back");
}

#[tokio::test]
async fn statistics_count_end_of_life_versions_and_login_privileges() {
    use k8s_openapi::api::core::v1::ConfigMap;
    let facade = Facade::start("api-judged").await;
    let configmap: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "dbfleet-version-lifecycle"},
        "data": {"postgresql-15": "2020-01-01", "mariadb-10.11": "2099-12-31"},
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(facade.admin.clone(), &facade.namespace)
        .create(&Default::default(), &configmap)
        .await
        .unwrap();
    let _controllers = support::controller::start(&facade.admin, &facade.namespace, |_| {});
    let editor = facade.editor().await;
    fleet(&facade, &editor).await;
    let instances: Api<DbInstance> = Api::namespaced(facade.admin.clone(), &facade.namespace);
    for name in ["pg", "maria"] {
        support::controller::instance_where(&instances, name, "both judgements", |i| {
            ["VersionSupported", "LoginPrivileges"]
                .iter()
                .all(|t| support::controller::condition(i, t).is_some())
        })
        .await;
    }
    let stats = facade.get(&editor, "/api/v1/instances/statistics").await;
    stats.expect(200, "OK");
    let data = stats.data();
    // pg has ended (by the ConfigMap), maria is supported; the closed port
    // was never reached, so neither is known for it.
    assert_eq!(
        data["version_support"],
        json!({"end_of_life": 1, "supported": 1, "unknown": 1}),
        "{data:#}"
    );
    assert_eq!(
        data["login_privileges"],
        json!({"superuser": 2, "unknown": 1}),
        "{data:#}"
    );
    assert_eq!(
        data["versions"],
        json!([
            {"release": "MariaDB 10.11", "count": 1, "end_of_life": "2099-12-31", "support": "supported", "is_end_of_life": false},
            {"release": "PostgreSQL 15", "count": 1, "end_of_life": "2020-01-01", "support": "end_of_life", "is_end_of_life": true},
        ])
    );
}
