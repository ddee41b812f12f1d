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

/// A session long enough to write its progress several times runs once:
/// the reconciles its own progress writes queue must not start it over from
/// a cache that has not seen its final write (48 instances whose server
/// accepts TCP and never answers; each probe waits for the connect timeout).
#[tokio::test]
async fn a_long_session_runs_exactly_once() {
    let logs = fixtures::captured_logs();
    let (client, ns) = support::admin_in_fresh_namespace("session-once").await;
    let pg = fixtures::postgres();
    fixtures::create_login_secret(&client, &ns, "login", &pg.user, &pg.password).await;
    // Accepts connections (the kernel completes them) and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let _controllers = ctl::start(&client, &ns, |c| {
        c.probes.timeouts.connect = Duration::from_secs(2);
        c.session_concurrency = 16;
    });
    let api: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    for i in 0..48 {
        let mut db = instance(&format!("mute-{i:02}"), "postgresql", &pg, "login", json!({}));
        db.spec.port = i32::from(port);
        fixtures::create(&api, &db).await;
    }
    // Created right after the instances: the session still runs over all
    // 48, as the API server lists them, whether or not the controller's
    // watch has shown each one yet.
    let sessions: Api<DbSyncSession> = Api::namespaced(client.clone(), &ns);
    let session = serde_json::from_value(json!({
        "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbSyncSession", "metadata": {"name": "once"},
        "spec": {"operation": "connection"},
    }))
    .unwrap();
    sessions.create(&PostParams::default(), &session).await.unwrap();
    let done = ctl::eventually(Duration::from_secs(120), "the session to finish", || async {
        let s = sessions.get("once").await.unwrap();
        let finished = s.status.as_ref().and_then(|st| st.finished_at.as_ref()).is_some();
        (
            finished.then(|| s.clone()),
            format!("{:?}", s.status.map(|s| (s.phase, s.succeeded, s.failed))),
        )
    })
    .await;
    let status = done.status.unwrap();
    assert_eq!((status.total, status.failed), (48, 48), "{status:?}");
    // Give a wrongly queued second run the time to show itself.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The session's name is unique in this test binary, whose tests share
    // one log capture.
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    let count = |what: &str| {
        logs.lines()
            .filter(|l| l.contains(what) && l.contains("session=once"))
            .count()
    };
    let (started, finished) = (count("sync session started"), count("sync session finished"));
    assert_eq!((started, finished), (1, 1), "the session ran more than once");
}

/// A selector that is no selector, or one the API server refuses, fails
/// the session with the reason, and runs nothing.
#[tokio::test]
async fn a_session_with_an_invalid_selector_fails_and_says_why() {
    let (client, ns) = support::admin_in_fresh_namespace("session-bad").await;
    let _controllers = ctl::start(&client, &ns, |_| {});
    let sessions: Api<DbSyncSession> = Api::namespaced(client.clone(), &ns);
    let bad_operator = json!({"matchExpressions": [{"key": "team", "operator": "Near", "values": ["x"]}]});
    let bad_value = json!({"matchLabels": {"team": "two words"}});
    for (name, selector) in [("bad-operator", bad_operator), ("bad-value", bad_value)] {
        let session = serde_json::from_value(json!({
            "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbSyncSession", "metadata": {"name": name},
            "spec": {"operation": "connection", "instanceSelector": selector},
        }))
        .unwrap();
        sessions.create(&PostParams::default(), &session).await.unwrap();
    }
    // What each message names: the operator, or the selector the API server
    // refused to parse.
    for (name, names) in [("bad-operator", "operator"), ("bad-value", "team=two words")] {
        let done = ctl::eventually(Duration::from_secs(30), "the session to fail", || async {
            let s = sessions.get(name).await.unwrap();
            let finished = s.status.as_ref().and_then(|st| st.finished_at.as_ref()).is_some();
            (finished.then(|| s.clone()), format!("{:?}", s.status))
        })
        .await;
        let status = done.status.unwrap();
        assert_eq!(status.phase, Some(SyncPhase::Failed), "{name}: {status:?}");
        assert_eq!((status.total, status.failed), (0, 0), "{name}: {status:?}");
        let message = status.results[0].message.as_deref().unwrap_or_default();
        assert!(
            message.starts_with("spec.instanceSelector is invalid: ") && message.contains(names),
            "{name}: {message}"
        );
    }
}

/// A session's run and the instance's own periodic probes go through the
/// one writer: the periodic probes (every second here) never undo what the
/// session's run recorded.
#[tokio::test]
async fn a_session_and_periodic_probes_do_not_undo_each_other() {
    let (client, ns) = support::admin_in_fresh_namespace("session-race").await;
    let my = fixtures::mysql();
    fixtures::create_login_secret(&client, &ns, "login", &my.user, &my.password).await;
    let _controllers = ctl::start(&client, &ns, |_| {});
    let api: Api<DbInstance> = Api::namespaced(client.clone(), &ns);
    let busy = json!({"intervals": {"connection": "1s", "capacity": "1s", "accounts": "6h"}});
    fixtures::create(&api, &instance("busy", "mysql", &my, "login", busy)).await;
    ctl::instance_where(&api, "busy", "first probe", |i| {
        i.status.as_ref().is_some_and(|s| s.accounts.is_some())
    })
    .await;
    let user = fixtures::unique("raced");
    fixtures::mysql_exec(&format!("CREATE USER '{user}'@'localhost' IDENTIFIED BY 'x-pw'")).await;

    let sessions: Api<DbSyncSession> = Api::namespaced(client.clone(), &ns);
    let session = serde_json::from_value(json!({
        "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbSyncSession", "metadata": {"name": "race"},
        "spec": {"operation": "accounts"},
    }))
    .unwrap();
    sessions.create(&PostParams::default(), &session).await.unwrap();
    ctl::eventually(Duration::from_secs(60), "the session to finish", || async {
        let s = sessions.get("race").await.unwrap();
        let done = s.status.as_ref().and_then(|st| st.finished_at.as_ref()).is_some();
        (done.then_some(()), format!("{:?}", s.status.map(|s| s.phase)))
    })
    .await;
    let answered = api.get("busy").await.unwrap();
    let token = answered.status.as_ref().unwrap().handled_requests.accounts.clone();
    assert!(token.is_some(), "the session's request was answered");
    // Several periodic connection and capacity runs later, the session's
    // account sync is still what the status and the inventory say.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let later = api.get("busy").await.unwrap();
    let status = later.status.as_ref().unwrap();
    assert_eq!(status.handled_requests.accounts, token);
    assert!(
        status.accounts.as_ref().unwrap().changes.added >= 1,
        "{:?}",
        status.accounts
    );
    let details = fixtures::inventory(&client, &ns, "busy").await;
    let items = &details.spec.accounts.as_ref().unwrap().items;
    assert!(items.iter().any(|a| a.name == user), "{user} is in the inventory");
    fixtures::mysql_exec(&format!("DROP USER '{user}'@'localhost'")).await;
}
