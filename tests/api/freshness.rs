//! Freshness end to end: the façade, not the controller, says when an
//! instance's facts are stale (a stopped controller cannot say so itself),
//! and a server back from an outage is seen again within moments, not after
//! a whole connection interval.

use std::time::Duration;

use dbfleet::crd::DbInstance;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::harness::{Facade, User};
use crate::instances::credential;
use crate::support;
use crate::support::controller::eventually;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run `eval \"$(scripts/test-env.sh)\"` first"))
}

/// A DbInstance of the test PostgreSQL (through `port`) with the admin
/// login and these intervals, created with kubectl's rights; its id once
/// the controller gave it one.
async fn instance(facade: &Facade, user: &User, name: &str, port: u16, intervals: Value) -> i64 {
    credential(
        facade,
        user,
        &format!("{name}-login"),
        &env("DBFLEET_TEST_POSTGRES_USER"),
        &env("DBFLEET_TEST_POSTGRES_PASSWORD"),
    )
    .await;
    let manifest: DbInstance = serde_json::from_value(json!({
        "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInstance",
        "metadata": {"name": name},
        "spec": {"dbType": "postgresql", "host": env("DBFLEET_TEST_POSTGRES_HOST"), "port": port,
                 "credentialsSecretRef": {"name": format!("{name}-login")},
                 "tls": {"mode": "disable"}, "intervals": intervals},
    }))
    .unwrap();
    Api::<DbInstance>::namespaced(facade.admin.clone(), &facade.namespace)
        .create(&PostParams::default(), &manifest)
        .await
        .unwrap();
    eventually(Duration::from_secs(30), &format!("{name} has an id"), || async {
        let listed = facade.get(user, &format!("/api/v1/instances?search={name}")).await;
        let id = listed.data()["items"][0]["id"].as_i64();
        (id, listed.body.to_string())
    })
    .await
}

async fn view(facade: &Facade, user: &User, id: i64) -> Value {
    facade
        .get(user, &format!("/api/v1/instances/{id}"))
        .await
        .data()
        .clone()
}

#[tokio::test]
async fn a_stopped_controller_leaves_its_instances_stale_and_the_facade_says_so() {
    let facade = Facade::start("api-stale").await;
    let controllers = support::controller::start(&facade.admin, &facade.namespace, |config| {
        config.probes.report_interval = Duration::from_secs(1);
    });
    let user = facade.editor().await;
    let port: u16 = env("DBFLEET_TEST_POSTGRES_PORT").parse().unwrap();
    // Overdue 2 × 2 s + 1 s after its last successful test; the
    // collections have an hour.
    let id = instance(
        &facade,
        &user,
        "watched",
        port,
        json!({"connection": "2s", "capacity": "1h", "accounts": "1h"}),
    )
    .await;
    let fresh = eventually(Duration::from_secs(60), "a fresh, inventoried instance", || async {
        let view = view(&facade, &user, id).await;
        let done = view["status"] == "ready" && view["capacity"].is_object() && view["accounts"].is_object();
        (
            (done && view["stale"] == false).then_some(view.clone()),
            view.to_string(),
        )
    })
    .await;
    assert_eq!(fresh["stale_probes"], json!([]));
    let stored = Api::<DbInstance>::namespaced(facade.admin.clone(), &facade.namespace)
        .get("watched")
        .await
        .unwrap();
    let freshness = stored.status.unwrap().freshness.expect("status.freshness is written");
    assert_eq!(freshness.report_interval_seconds, 1);
    assert!(freshness.connection.last_success_at.is_some() && freshness.capacity.last_success_at.is_some());
    let metrics = controllers.metrics.encode();
    assert!(
        metrics.contains(&format!(
            "dbfleet_probe_last_success_timestamp_seconds{{namespace=\"{}\",name=\"watched\",kind=\"connection\"}}",
            facade.namespace
        )),
        "{metrics}"
    );

    drop(controllers);
    let stale = eventually(Duration::from_secs(30), "the façade calls it stale", || async {
        let view = view(&facade, &user, id).await;
        ((view["stale"] == true).then_some(view.clone()), view.to_string())
    })
    .await;
    assert_eq!(stale["stale_probes"], json!(["connection"]));
    let listed = facade.get(&user, "/api/v1/instances?status=stale").await;
    listed.expect(200, "OK");
    assert_eq!(listed.data()["items"][0]["id"], id, "{:#}", listed.body);
    let statistics = facade.get(&user, "/api/v1/instances/statistics").await;
    assert_eq!(statistics.data()["stale"], 1, "{:#}", statistics.body);
    facade
        .get(&user, "/api/v1/instances?status=rotten")
        .await
        .expect(400, "VALIDATION_ERROR");
}

/// Forwards loopback connections on `listener` to `target` until aborted
/// (dropping the listener: connections are then refused).
fn forward(listener: TcpListener, target: String) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    })
}

#[tokio::test]
async fn a_server_back_from_an_outage_is_ready_again_well_within_one_interval() {
    let facade = Facade::start("api-outage").await;
    let controllers = support::controller::start(&facade.admin, &facade.namespace, |_| {});
    let user = facade.editor().await;
    let target = format!(
        "{}:{}",
        env("DBFLEET_TEST_POSTGRES_HOST"),
        env("DBFLEET_TEST_POSTGRES_PORT")
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let proxy = forward(listener, target.clone());
    let id = instance(
        &facade,
        &user,
        "flaky",
        port,
        json!({"connection": "5m", "capacity": "1h", "accounts": "1h"}),
    )
    .await;
    // Inventoried too, so no collection is due to notice the return early.
    eventually(
        Duration::from_secs(60),
        "Ready and inventoried through the proxy",
        || async {
            let view = view(&facade, &user, id).await;
            let done = view["status"] == "ready" && view["capacity"].is_object() && view["accounts"].is_object();
            (done.then_some(()), view.to_string())
        },
    )
    .await;

    // The server goes away; a test asked for now sees it.
    proxy.abort();
    let _ = proxy.await;
    let down = facade
        .post(
            &user,
            "/api/v1/instances/actions/test-connection",
            json!({"instance_id": id}),
        )
        .await;
    assert_eq!(down.data()["success"], false, "{:#}", down.body);
    assert_eq!(view(&facade, &user, id).await["status"], "failed");

    // It comes back: the controller retries after 10 s, not after 5 min.
    let back = std::time::Instant::now();
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let _proxy = forward(listener, target);
    eventually(Duration::from_secs(45), "Ready again", || async {
        let view = view(&facade, &user, id).await;
        ((view["status"] == "ready").then_some(()), view.to_string())
    })
    .await;
    // Seen again by the retry 10 s after the failure, not after 5 min, and
    // by that one retry.
    assert!(back.elapsed() < Duration::from_secs(30), "{:?}", back.elapsed());
    let connection_tests = |result: &str| {
        controllers
            .metrics
            .encode()
            .lines()
            .find(|l| l.contains("probe_duration_seconds_count{probe=\"connection\"") && l.contains(result))
            .map(|l| l.rsplit(' ').next().unwrap_or_default().to_string())
    };
    assert_eq!(connection_tests("failure").as_deref(), Some("1"));
    assert_eq!(connection_tests("success").as_deref(), Some("2"));
}
