//! One reconcile of a new instance against a mocked API server (the
//! `tower-test` pattern of kube-rs' controller-rs): it must make exactly
//! the requests its decision calls for, in order — an id from the counter
//! ConfigMap, the id label, the site's end-of-life ConfigMap (read once
//! per refresh interval), one status write — and nothing else but its
//! Events. The probe goes to a closed loopback port, so it fails at once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::Secret;
use kube::client::Body;
use kube::runtime::events::Reporter;
use kube::runtime::reflector;
use kube::runtime::watcher::Event;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{LifecycleOverrides, Reconciler, first_tests, reconcile};
use crate::controller::{Config, Context, events, leases};
use crate::crd::DbInstance;
use crate::ids::IdIndex;
use crate::metrics::Metrics;
use crate::versions::LifecycleSettings;

const NAMESPACE: &str = "team";
const LIFECYCLE_PATH: &str = "/api/v1/namespaces/team/configmaps/dbfleet-version-lifecycle";
const INSTANCE_PATH: &str = "/apis/dbfleet.io/v1alpha1/namespaces/team/dbinstances/orders";

/// A port on loopback that nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn new_instance(port: u16) -> DbInstance {
    serde_json::from_value(json!({
        "apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInstance",
        "metadata": {"name": "orders", "namespace": NAMESPACE, "uid": "uid-orders", "resourceVersion": "10", "generation": 1},
        "spec": {"dbType": "postgresql", "host": "127.0.0.1", "port": port,
                 "credentialsSecretRef": {"name": "login"}, "tls": {"mode": "disable"}},
    }))
    .unwrap()
}

fn login() -> Secret {
    serde_json::from_value(json!({
        "metadata": {"name": "login", "namespace": NAMESPACE, "resourceVersion": "3",
                     "labels": {"dbfleet.io/credential": "true"}},
        "stringData": {"username": "monitor", "password": "mock-test-password"},
    }))
    .unwrap()
}

fn respond(status: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

/// What the mocked API server answers, from what it was sent.
fn answer(method: &Method, path: &str, body: &Value, instance: &mut Value) -> Response<Body> {
    match (method.as_str(), path) {
        ("GET", "/api/v1/namespaces/team/configmaps/dbfleet-ids" | LIFECYCLE_PATH) => respond(
            StatusCode::NOT_FOUND,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
        ),
        ("POST", "/api/v1/namespaces/team/configmaps") => {
            let mut created = body.clone();
            created["metadata"]["resourceVersion"] = json!("1");
            respond(StatusCode::CREATED, &created)
        }
        ("PATCH", INSTANCE_PATH) => {
            let labels = body["metadata"]["labels"].clone();
            instance["metadata"]["labels"] = labels;
            instance["metadata"]["resourceVersion"] = json!("11");
            respond(StatusCode::OK, instance)
        }
        ("PATCH", p) if p == format!("{INSTANCE_PATH}/status") => {
            instance["status"] = body["status"].clone();
            instance["metadata"]["resourceVersion"] = json!("12");
            respond(StatusCode::OK, instance)
        }
        ("POST", "/apis/events.k8s.io/v1/namespaces/team/events") => respond(StatusCode::CREATED, body),
        (method, path) => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 500,
                    "message": format!("the mock does not expect {method} {path}")}),
        ),
    }
}

#[tokio::test]
async fn one_reconcile_of_a_new_instance_makes_exactly_these_requests() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, NAMESPACE);
    let instance = new_instance(closed_port());

    let (instances, mut instances_w) = reflector::store();
    instances_w.apply_watcher_event(&Event::Apply(instance.clone()));
    let (secrets, mut secrets_w) = reflector::store();
    secrets_w.apply_watcher_event(&Event::Apply(login()));
    let (wake_instances, _woken) = mpsc::unbounded_channel();
    let reporter = Reporter {
        controller: "dbfleet-test".into(),
        instance: None,
    };
    let shared = Arc::new(Context {
        client: client.clone(),
        config: Config::default(),
        metrics: Arc::new(Metrics::default()),
        events: events::Events::new(client.clone(), reporter),
        instances,
        tags: reflector::store().0,
        secrets,
        ca_secrets: reflector::store().0,
        id_configmaps: reflector::store().0,
        instance_ids: Mutex::new(IdIndex::default()),
        failures: Mutex::default(),
        allocators: Mutex::default(),
        leases: Arc::new(leases::HeldLeases::everything(1)),
        wake_instances,
    });
    let ctx = Arc::new(Reconciler {
        shared,
        memory: Mutex::default(),
        first_tests: first_tests::FirstTests::default(),
        lifecycle: LifecycleOverrides::new(client.clone(), LifecycleSettings::default()),
    });

    let seen = Arc::new(Mutex::new(Vec::<(String, Value)>::new()));
    let record = seen.clone();
    let mut stored = serde_json::to_value(&instance).unwrap();
    let server = tokio::spawn(async move {
        while let Some((request, reply)) = handle.next_request().await {
            let (method, path) = (request.method().clone(), request.uri().path().to_string());
            let bytes = request.into_body().collect().await.unwrap().to_bytes();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            reply.send_response(answer(&method, &path, &body, &mut stored));
            record.lock().unwrap().push((format!("{method} {path}"), body));
        }
    });

    reconcile(Arc::new(instance), ctx.clone())
        .await
        .expect("the reconcile succeeds");
    // Events go out beside the reconcile: give them a moment.
    for _ in 0..50 {
        if seen.lock().unwrap().iter().any(|(r, _)| r.ends_with("/events")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    server.abort();

    let seen = seen.lock().unwrap().clone();
    let (events, requests): (Vec<_>, Vec<_>) = seen.into_iter().partition(|(r, _)| r.ends_with("/events"));
    let names: Vec<&str> = requests.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(
        names,
        [
            "GET /api/v1/namespaces/team/configmaps/dbfleet-ids",
            "POST /api/v1/namespaces/team/configmaps",
            &format!("PATCH {INSTANCE_PATH}"),
            &format!("GET {LIFECYCLE_PATH}"),
            &format!("PATCH {INSTANCE_PATH}/status"),
        ]
    );
    // The id comes from the counter it created, and the label patch is
    // conditional on the version the decision was made on.
    let counters: BTreeMap<String, String> = serde_json::from_value(requests[1].1["data"].clone()).unwrap();
    let id = counters.values().next().expect("a counter").clone();
    assert_eq!(requests[2].1["metadata"]["labels"]["dbfleet.io/id"], json!(id));
    assert_eq!(requests[2].1["metadata"]["resourceVersion"], json!("10"));
    // One status write: not connected, and why.
    let status = &requests[4].1["status"];
    let connected = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Connected")
        .expect("a Connected condition");
    assert_eq!(
        (connected["status"].as_str(), connected["reason"].as_str()),
        (Some("False"), Some("ConnectionRefused"))
    );
    assert!(!requests[4].1.to_string().contains("mock-test-password"));
    // Its Event says the same.
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].1["reason"], "ConnectionRefused");
}
