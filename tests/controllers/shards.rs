//! Two replicas with two shards: each instance is probed by exactly one of
//! them, and when one replica dies the other takes its shard over.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use dbfleet::controller::leader::LeaderConfig;
use dbfleet::controller::leases::preferred_order;
use dbfleet::controller::{self, Config};
use dbfleet::crd::DbInstance;
use dbfleet::crd::instance::Phase;
use dbfleet::metrics::Metrics;
use futures_util::StreamExt;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::fixtures::{self, instance};
use crate::support::{self, controller as ctl};

const INSTANCES: usize = 200;

/// The instances a replica has reported on (its per-instance gauges): the
/// ones it reconciled as their shard's holder.
fn reported(metrics: &Metrics) -> BTreeSet<String> {
    metrics
        .encode()
        .lines()
        .filter(|l| l.starts_with("dbfleet_instance_up{"))
        .filter_map(|l| l.split("name=\"").nth(1)?.split('"').next().map(String::from))
        .collect()
}

#[tokio::test]
async fn two_shards_split_the_fleet_and_a_standby_takes_over() {
    // Two identities that prefer different shards first, as most pairs do.
    split_and_take_over("split", identities(|a, b| a != b)).await;
}

#[tokio::test]
async fn replicas_whose_identities_prefer_the_same_shard_still_split_the_fleet() {
    // Half of all pairs of replicas collide on their first choice; the one
    // that loses the race claims the other shard, not nothing.
    split_and_take_over("collide", identities(|a, b| a == b)).await;
}

/// The first two identities `replica-N` whose preferred first shards (of
/// two) satisfy `pair`.
fn identities(pair: impl Fn(u32, u32) -> bool) -> Vec<String> {
    let first = "replica-0".to_string();
    let preferred = |id: &str| preferred_order(id, 2)[0];
    let second = (1..)
        .map(|i| format!("replica-{i}"))
        .find(|id| pair(preferred(&first), preferred(id)))
        .expect("some identity");
    vec![first, second]
}

async fn split_and_take_over(prefix: &str, identities: Vec<String>) {
    let (client, ns) = support::admin_in_fresh_namespace(&format!("shards-{prefix}")).await;
    let pg = fixtures::postgres();
    fixtures::create_login_secret(&client, &ns, "login", &pg.user, &pg.password).await;
    let api: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    // A port nothing listens on: probes fail fast, and no database is loaded.
    futures_util::stream::iter(0..INSTANCES)
        .for_each_concurrent(16, |i| {
            let api = api.clone();
            let mut db = instance(&format!("db-{i:03}"), "postgresql", &pg, "login", json!({}));
            db.spec.port = 1;
            async move {
                fixtures::create(&api, &db).await;
            }
        })
        .await;

    let replica = |identity: &str| {
        let config = Config {
            namespace: Some(ns.clone()),
            shards: 2,
            ..Config::default()
        };
        let lease = LeaderConfig {
            lease_name: "dbfleet-controller".into(),
            lease_namespace: ns.clone(),
            identity: identity.into(),
            lease_seconds: 3,
        };
        let (stop, metrics) = (CancellationToken::new(), Arc::new(Metrics::default()));
        let task = tokio::spawn(controller::run_leased(
            client.clone(),
            config,
            metrics.clone(),
            lease,
            || {},
            stop.clone(),
        ));
        (stop, metrics, task)
    };
    let (_stop_a, metrics_a, task_a) = replica(&identities[0]);
    let (stop_b, metrics_b, task_b) = replica(&identities[1]);

    ctl::eventually(Duration::from_secs(60), "every instance probed", || async {
        let list = api.list(&ListParams::default()).await.unwrap();
        let failed = list
            .items
            .iter()
            .filter(|i| i.status.as_ref().and_then(|s| s.phase) == Some(Phase::Failed))
            .count();
        let waiting: Vec<String> = list
            .items
            .iter()
            .filter(|i| i.status.as_ref().and_then(|s| s.phase) != Some(Phase::Failed))
            .take(5)
            .map(|i| {
                let uid = i.metadata.uid.clone().unwrap_or_default();
                format!(
                    "{} id={:?} shard={} phase={:?}",
                    i.metadata.name.clone().unwrap_or_default(),
                    dbfleet::ids::id_of(&i.metadata),
                    dbfleet::controller::leases::shard_of(&uid, 2),
                    i.status.as_ref().and_then(|s| s.phase)
                )
            })
            .collect();
        (
            (failed == INSTANCES).then_some(()),
            format!(
                "{failed} of {INSTANCES} probed; a: {}, b: {}; waiting: {waiting:?}",
                reported(&metrics_a).len(),
                reported(&metrics_b).len()
            ),
        )
    })
    .await;
    let (a, b) = (reported(&metrics_a), reported(&metrics_b));
    assert!(
        a.is_disjoint(&b),
        "probed by both: {:?}",
        a.intersection(&b).collect::<Vec<_>>()
    );
    assert_eq!(a.len() + b.len(), INSTANCES);
    assert!(
        !a.is_empty() && !b.is_empty(),
        "the shards are split: {} and {}",
        a.len(),
        b.len()
    );

    // Replica a dies; b takes its shard over within the Lease duration.
    task_a.abort();
    let _ = task_a.await;
    ctl::eventually(Duration::from_secs(30), "b to report on every instance", || async {
        let now = reported(&metrics_b);
        (
            (now.len() == INSTANCES).then_some(()),
            format!("{} of {INSTANCES}", now.len()),
        )
    })
    .await;
    stop_b.cancel();
    task_b.await.unwrap().unwrap();
}
