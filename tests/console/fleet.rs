//! The fleet the browser looks at: the test PostgreSQL and MariaDB with
//! their admin logins, a closed port whose description is hostile, a
//! database whose name is hostile, and enough inactive spares to page.

use std::collections::BTreeMap;
use std::time::Duration;

use dbfleet::crd::keys::CREDENTIAL_LABEL;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use serde_json::json;

use crate::harness::{Facade, User};
use crate::support;

/// Inactive instances named `spare-NN`: more than one page of 20.
pub const SPARES: usize = 26;
pub const HOSTILE: &str = "<script>alert('owned')</script> & more";

pub struct Fleet {
    pub pg: i64,
    pub maria: i64,
    pub pg_user: String,
    pub maria_user: String,
    pub hostile_db: String,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run `eval \"$(scripts/test-env.sh)\"` first"))
}

async fn credential(facade: &Facade, name: &str, username: &str, password: &str) -> i64 {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([(CREDENTIAL_LABEL.to_string(), "true".to_string())])),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([
            ("username".to_string(), username.to_string()),
            ("password".to_string(), password.to_string()),
        ])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(facade.admin.clone(), &facade.namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
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
        pg_user,
        maria_user,
        hostile_db,
    }
}
