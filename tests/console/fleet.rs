//! The fleet the browser looks at: the test PostgreSQL and MariaDB with
//! their admin logins, a closed port whose description is hostile, a
//! database whose name is hostile, enough inactive spares to page, and an
//! inactive `growing` instance with a limit and two months of history.
//!
//! That history is written here, as the controller writes it (a DbHistory
//! of the same name), because the controller takes one sample a day: the
//! chart's dates, fit and forecast need weeks of them. The instance is
//! inactive, so the controller never adds to it.

use std::time::Duration;

use dbfleet::crd::{DbHistory, DbInstance};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::harness::{Facade, User};
use crate::support;

/// Inactive instances named `spare-NN`: more than one page of 20.
pub const SPARES: usize = 26;
pub const HOSTILE: &str = "<script>alert('owned')</script> & more";
/// An account name in `growing`'s change log.
pub const HOSTILE_ACCOUNT: &str = "<script>alert('account')</script>";
/// `growing`'s history: daily samples from 6 GiB, 40 MiB a day, with a
/// little noise; its limit is reached 25 days after the newest.
pub const SAMPLES: usize = 60;
const START_BYTES: u64 = 6 << 30;
const BYTES_PER_DAY: u64 = 40 << 20;
const DAYS_TO_LIMIT: u64 = 25;

pub struct Fleet {
    pub pg: i64,
    pub maria: i64,
    pub growing: i64,
    pub pg_user: String,
    pub maria_user: String,
    pub hostile_db: String,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run `eval \"$(scripts/test-env.sh)\"` first"))
}

async fn credential(facade: &Facade, name: &str, username: &str, password: &str) -> i64 {
    let secret = support::login_secret(name, username, password);
    support::create_secret(&facade.admin, &facade.namespace, &secret).await;
    support::record_credential(&facade.admin, &facade.namespace, name).await
}

pub async fn build(facade: &Facade, editor: &User) -> Fleet {
    let hostile_db = format!("{}<script>x</script>", support::databases::unique("console"));
    support::databases::postgres_exec(&format!("CREATE DATABASE \"{hostile_db}\"")).await;
    let pg_user = env("DBFLEET_TEST_POSTGRES_USER");
    let maria_user = env("DBFLEET_TEST_MYSQL_USER");
    let pg_login = credential(facade, "pg-login", &pg_user, &env("DBFLEET_TEST_POSTGRES_PASSWORD")).await;
    let my_login = credential(facade, "my-login", &maria_user, &env("DBFLEET_TEST_MYSQL_PASSWORD")).await;
    let tag = facade.tag(editor, "prod").await;
    // The façade's credential cache must have the ids before they are used.
    let mut pg = None;
    for _ in 0..100 {
        let answer = facade
            .post(
                editor,
                "/api/v1/instances",
                json!({"name": "pg", "db_type": "postgresql", "host": env("DBFLEET_TEST_POSTGRES_HOST"),
                    "port": env("DBFLEET_TEST_POSTGRES_PORT").parse::<i64>().unwrap(), "credential_id": pg_login,
                    "description": "orders and billing", "tag_names": ["prod"]}),
            )
            .await;
        if answer.status == 201 {
            pg = answer.data()["id"].as_i64();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pg = pg.expect("the façade knows the credential");
    let maria = facade
        .instance(
            editor,
            "maria",
            json!({"db_type": "mysql", "host": env("DBFLEET_TEST_MYSQL_HOST"),
                "port": env("DBFLEET_TEST_MYSQL_PORT").parse::<i64>().unwrap(), "credential_id": my_login,
                "tag_names": ["prod"]}),
        )
        .await;
    facade
        .instance(
            editor,
            "closed",
            json!({"host": "127.0.0.1", "port": 1, "credential_id": pg_login, "description": HOSTILE}),
        )
        .await;
    for n in 1..=SPARES {
        facade
            .instance(editor, &format!("spare-{n:02}"), json!({"is_active": false}))
            .await;
    }
    let _ = tag;
    let growing = facade
        .instance(
            editor,
            "growing",
            json!({"is_active": false, "description": "history written by the test"}),
        )
        .await;
    write_history(facade, "growing").await;
    // The controller collects both servers' inventories.
    for id in [pg, maria] {
        for section in ["databases", "accounts"] {
            support::controller::eventually(Duration::from_secs(90), "an inventory", || async {
                let answer = facade.get(editor, &format!("/api/v1/instances/{id}/{section}")).await;
                (
                    (answer.data()["collected"] == true).then_some(()),
                    answer.body.to_string(),
                )
            })
            .await;
        }
    }
    Fleet {
        pg,
        maria,
        growing,
        pg_user,
        maria_user,
        hostile_db,
    }
}

/// Lets the ServiceAccount `name` list Events in the façade's namespace,
/// which the console asks before showing an instance's.
pub async fn allow_events(facade: &Facade, name: &str) {
    let meta = || ObjectMeta {
        name: Some(format!("{name}-events")),
        ..Default::default()
    };
    let role = Role {
        metadata: meta(),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["events".into()]),
            verbs: vec!["list".into()],
            ..Default::default()
        }]),
    };
    Api::<Role>::namespaced(facade.admin.clone(), &facade.namespace)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding = RoleBinding {
        metadata: meta(),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: format!("{name}-events"),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: name.into(),
            namespace: Some(facade.namespace.clone()),
            ..Default::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(facade.admin.clone(), &facade.namespace)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
}

/// `name`'s limit and two months of daily samples up to today, with a
/// few account changes, one of a hostile name.
async fn write_history(facade: &Facade, name: &str) {
    const DAY: i64 = 86_400;
    let today = Timestamp::now().as_second().div_euclid(DAY) * DAY;
    let day = |n: usize| {
        Timestamp::from_second(today - (SAMPLES - 1 - n) as i64 * DAY)
            .unwrap()
            .to_string()
    };
    // Up to 150 MiB off the line, as vacuums and bulk loads do: R² stays
    // near 0.99.
    let noise = |n: usize| ((n * 7919) % 13) as u64 * (START_BYTES / 500);
    let size = |n: usize| START_BYTES + n as u64 * BYTES_PER_DAY + noise(n);
    let samples: Vec<_> = (0..SAMPLES)
        .map(|n| json!({"at": day(n), "totalSizeBytes": size(n), "databaseCount": 2,
            "databases": [{"name": "orders", "sizeBytes": size(n) - (1 << 30)}, {"name": "billing", "sizeBytes": 1u64 << 30}]}))
        .collect();
    let limit = size(SAMPLES - 1) + DAYS_TO_LIMIT * BYTES_PER_DAY;
    let change = |n: usize, account: &str, kind: &str, privileges: &[&str]| {
        json!({"at": day(n), "account": account, "host": "%", "kind": kind,
            "database": if privileges.is_empty() { None } else { Some("orders") }, "privileges": privileges})
    };
    let entries = vec![
        change(20, "reporting", "account_added", &[]),
        change(20, "reporting", "privileges_gained", &["SELECT"]),
        change(41, HOSTILE_ACCOUNT, "account_added", &[]),
        change(52, "reporting", "privileges_gained", &["INSERT", "UPDATE"]),
        change(58, "app", "superuser_gained", &[]),
    ];
    let history: DbHistory = serde_json::from_value(json!({
        "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbHistory", "metadata": {"name": name},
        "spec": {"dbType": "postgresql",
            "capacity": {"sampleCount": SAMPLES, "samples": samples},
            "accounts": {"entryCount": entries.len(), "dropped": 0, "entries": entries}}}))
    .unwrap();
    Api::<DbHistory>::namespaced(facade.admin.clone(), &facade.namespace)
        .create(&PostParams::default(), &history)
        .await
        .unwrap();
    Api::<DbInstance>::namespaced(facade.admin.clone(), &facade.namespace)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"capacity": {"limitBytes": limit}}})),
        )
        .await
        .unwrap();
}
