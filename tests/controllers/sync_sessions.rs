//! DbSyncSessions: a run over the selected instances, each instance's status
//! updated, progress and results in the session, and expiry after the TTL.

use std::time::Duration;

use dbfleet::crd::sync_session::SyncPhase;
use dbfleet::crd::{DbInstance, DbSyncSession};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use crate::fixtures::{self, instance};
use crate::support::{self, controller as ctl};

#[tokio::test]
async fn a_session_syncs_the_selected_instances_and_expires() {
    let (client, ns) = support::admin_in_fresh_namespace("session").await;
    let (pg, my) = (fixtures::postgres(), fixtures::mysql());
    fixtures::create_login_secret(&client, &ns, "pg-login", &pg.user, &pg.password).await;
    fixtures::create_login_secret(&client, &ns, "my-login", &my.user, "wrong-password").await;
    // Room for one result: the failure is listed, the success only counted.
    let _controllers = ctl::start(&client, &ns, |c| {
        c.session_ttl = Duration::from_secs(4);
        c.session_results_cap = 1;
    });
    let api: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    let labelled = |name: &str, db_type: &str, server, secret: &str, team: &str| {
        let mut i = instance(name, db_type, server, secret, json!({"intervals": {"accounts": "6h"}}));
        i.metadata.labels = Some([("team".to_string(), team.to_string())].into());
        i
    };
    fixtures::create(&api, &labelled("pg", "postgresql", &pg, "pg-login", "payments")).await;
    fixtures::create(&api, &labelled("maria", "mysql", &my, "my-login", "payments")).await;
    fixtures::create(&api, &labelled("other", "postgresql", &pg, "pg-login", "search")).await;
    for name in ["pg", "maria", "other"] {
        ctl::instance_where(&api, name, "first probe", |i| {
            i.status.as_ref().is_some_and(|s| s.connection.is_some())
        })
        .await;
    }

    let sessions: Api<DbSyncSession> = Api::namespaced(client.clone(), &ns);
    let session = serde_json::from_value(json!({
        "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbSyncSession", "metadata": {"name": "accounts-now"},
        "spec": {"operation": "accounts", "instanceSelector": {"matchLabels": {"team": "payments"}}},
    }))
    .unwrap();
    sessions.create(&PostParams::default(), &session).await.unwrap();
    let done = ctl::eventually(Duration::from_secs(30), "the session to finish", || async {
        let s = sessions.get("accounts-now").await.unwrap();
        let finished = s.status.as_ref().and_then(|st| st.finished_at.as_ref()).is_some();
        (finished.then(|| s.clone()), format!("{:?}", s.status))
    })
    .await;
    let status = done.status.unwrap();
    assert_eq!(status.phase, Some(SyncPhase::PartiallyFailed));
    assert_eq!((status.total, status.succeeded, status.failed), (2, 1, 1));
    let names: Vec<_> = status
        .results
        .iter()
        .map(|r| (r.instance.as_str(), r.success))
        .collect();
    assert_eq!(names, [("maria", false)]);
    assert_eq!((status.omitted_failures, status.omitted_successes), (0, 1));
    assert!(status.results.iter().all(|r| r.id.is_some()));
    assert!(
        status.results[0].message.as_deref().unwrap().contains("password"),
        "{:?}",
        status.results[0].message
    );
    assert!(!serde_json::to_string(&status).unwrap().contains("wrong-password"));

    // The run was recorded in the instance's own status, as a sync would be.
    let pg_instance = api.get("pg").await.unwrap();
    let synced_at = pg_instance
        .status
        .as_ref()
        .unwrap()
        .accounts
        .as_ref()
        .unwrap()
        .synced_at
        .0;
    assert!(synced_at >= status.started_at.unwrap().0);

    ctl::eventually(Duration::from_secs(20), "the session's TTL", || async {
        let gone = sessions.get_opt("accounts-now").await.unwrap().is_none();
        (gone.then_some(()), "still there".into())
    })
    .await;
}
