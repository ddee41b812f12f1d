//! Two controller replicas: only the Lease holder reconciles; stopping it
//! hands over to the other.

use std::sync::Arc;
use std::time::Duration;

use dbfleet::controller::leader::{self, LeaderConfig};
use dbfleet::controller::{self, Config};
use dbfleet::crd::DbInstance;
use dbfleet::crd::instance::Phase;
use dbfleet::metrics::Metrics;
use kube::Api;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::fixtures::{self, instance};
use crate::support::{self, controller as ctl};

fn reconciles(metrics: &Metrics) -> u64 {
    metrics
        .encode()
        .lines()
        .filter(|l| l.starts_with("dbfleet_reconcile_total{controller=\"dbinstance\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn only_the_leader_reconciles_and_a_standby_takes_over() {
    let (client, ns) = support::admin_in_fresh_namespace("leader").await;
    let pg = fixtures::postgres();
    fixtures::create_login_secret(&client, &ns, "login", &pg.user, &pg.password).await;
    let config = Config {
        namespace: Some(ns.clone()),
        ..Config::default()
    };
    let replica = |identity: &str| {
        let (client, config, stop, metrics) = (
            client.clone(),
            config.clone(),
            CancellationToken::new(),
            Arc::new(Metrics::default()),
        );
        let lease = LeaderConfig {
            lease_name: "dbfleet-controller".into(),
            lease_namespace: ns.clone(),
            identity: identity.into(),
            lease_seconds: 4,
        };
        let task = {
            let (stop, metrics) = (stop.clone(), metrics.clone());
            tokio::spawn(async move {
                leader::run_while_leading(client.clone(), lease, stop, |term| {
                    controller::run_controllers(client.clone(), config.clone(), metrics.clone(), term)
                })
                .await
            })
        };
        (stop, metrics, task)
    };
    let (stop_a, metrics_a, task_a) = replica("replica-a");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (stop_b, metrics_b, task_b) = replica("replica-b");

    let api: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    fixtures::create(&api, &instance("first", "postgresql", &pg, "login", json!({}))).await;
    ctl::instance_where(&api, "first", "Ready", |i| {
        i.status.as_ref().and_then(|s| s.phase) == Some(Phase::Ready)
    })
    .await;
    assert!(reconciles(&metrics_a) > 0, "replica-a leads and reconciles");
    assert_eq!(reconciles(&metrics_b), 0, "the standby does not touch anything");

    // Stopping the leader releases the Lease; the standby takes over.
    stop_a.cancel();
    task_a.await.unwrap().unwrap();
    fixtures::create(&api, &instance("second", "postgresql", &pg, "login", json!({}))).await;
    ctl::instance_where(&api, "second", "Ready under the new leader", |i| {
        i.status.as_ref().and_then(|s| s.phase) == Some(Phase::Ready)
    })
    .await;
    assert!(reconciles(&metrics_b) > 0, "replica-b reconciles now");
    stop_b.cancel();
    task_b.await.unwrap().unwrap();
}
