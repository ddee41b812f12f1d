//! Ad-hoc connection tests (issue 9): a caller who may only view instances
//! cannot send a stored login to a host of its choosing.

use serde_json::json;

use crate::common::{self, assert_no_password};
use crate::harness::Facade;
use crate::tripwire::Tripwire;

const TEST_CONNECTION: &str = "/api/v1/instances/actions/test-connection";

#[tokio::test]
async fn a_view_only_caller_cannot_test_a_stored_credential_against_a_host_of_its_choosing() {
    let facade = Facade::start("trust-adhoc").await;
    let editor = facade.editor().await;
    let viewer = facade.user("viewer", &["dbinstances"], &["get", "list"]).await;
    let id = common::credential(&facade, &editor, "login", None).await;
    let wire = Tripwire::start().await;
    let adhoc = json!({"db_type": "postgresql", "host": "127.0.0.1", "port": wire.port, "credential_id": id});

    let denied = facade.post(&viewer, TEST_CONNECTION, adhoc.clone()).await;
    denied.expect(403, "PERMISSION_DENIED");
    let message = denied.body["message"].as_str().unwrap();
    assert!(message.contains("create on dbinstances"), "{message}");
    assert_no_password(&denied.body.to_string());
    common::settle().await;
    assert_eq!(wire.connections(), 0, "nothing may be dialled for a denied test");

    // Without a stored credential it stays a view action (and sends no login).
    let mut anonymous = adhoc.clone();
    anonymous.as_object_mut().unwrap().remove("credential_id");
    let untested = facade.post(&viewer, TEST_CONNECTION, anonymous).await;
    untested.expect(200, "OK");
    assert_eq!(
        untested.data()["error_kind"],
        "CredentialsNotSpecified",
        "{:#}",
        untested.body
    );
    // Checking parameters sends nothing either, so it needs only view.
    facade
        .post(
            &viewer,
            "/api/v1/instances/actions/validate-connection-params",
            json!({"db_type": "postgresql", "port": wire.port, "credential_id": id}),
        )
        .await
        .expect(200, "OK");
    assert_eq!(wire.connections(), 0);

    // A caller who may create instances may: the tripwire sees the attempt,
    // which shows it would have seen the denied one.
    let allowed = facade.post(&editor, TEST_CONNECTION, adhoc).await;
    allowed.expect(200, "OK");
    assert_eq!(allowed.data()["success"], false, "{:#}", allowed.body);
    assert_no_password(&allowed.body.to_string());
    assert!(wire.connections() >= 1, "the editor's test reaches the listener");
}
