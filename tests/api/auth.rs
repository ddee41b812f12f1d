//! Authentication, RBAC permissions, CSRF and the envelope's edges.

use reqwest::Method;
use serde_json::json;

use crate::harness::{Facade, User};

#[tokio::test]
async fn no_token_or_a_bad_token_is_401_in_the_envelope() {
    let facade = Facade::start("api-authn").await;
    let answer = facade.raw(facade.request(Method::GET, "/api/v1/instances")).await;
    answer.expect(401, "UNAUTHENTICATED");
    assert_eq!(answer.body["success"], false);
    assert!(answer.body["timestamp"].as_str().unwrap().ends_with('Z'));
    let forged = User {
        token: "not-a-real-token".into(),
        csrf: String::new(),
    };
    facade.get(&forged, "/api/v1/tags").await.expect(401, "UNAUTHENTICATED");
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let facade = Facade::start("api-reqid").await;
    let answer = facade
        .raw(
            facade
                .request(Method::GET, "/api/v1/instances")
                .header("X-Request-ID", "trace-42"),
        )
        .await;
    assert_eq!(answer.headers["x-request-id"], "trace-42");
    assert_eq!(answer.body["request_id"], "trace-42");
    let answer = facade.raw(facade.request(Method::GET, "/api/v1/nowhere")).await;
    answer.expect(404, "NOT_FOUND");
    let generated = answer.headers["x-request-id"].to_str().unwrap();
    assert!(!generated.is_empty());
    assert_eq!(answer.body["request_id"], generated);
}

#[tokio::test]
async fn rbac_decides_each_permission() {
    let facade = Facade::start("api-rbac").await;
    let editor = facade.editor().await;
    let reader = facade.user("reader", &["dbinstances", "dbtags"], &["list"]).await;
    let nobody = facade.user("nobody", &[], &[]).await;
    let id = facade.instance(&editor, "orders", json!({})).await;
    let before = facade.snapshot().await;

    facade
        .get(&nobody, "/api/v1/instances")
        .await
        .expect(403, "PERMISSION_DENIED");
    facade
        .get(&nobody, "/api/v1/tags")
        .await
        .expect(403, "PERMISSION_DENIED");
    facade.get(&reader, "/api/v1/instances").await.expect(200, "OK");
    facade
        .get(&reader, &format!("/api/v1/instances/{id}"))
        .await
        .expect(200, "OK");
    let body = json!({"name": "other", "db_type": "mysql", "host": "h", "port": 3306});
    facade
        .post(&reader, "/api/v1/instances", body.clone())
        .await
        .expect(403, "PERMISSION_DENIED");
    facade
        .delete(&reader, &format!("/api/v1/instances/{id}"))
        .await
        .expect(403, "PERMISSION_DENIED");
    facade
        .put(
            &reader,
            &format!("/api/v1/instances/{id}"),
            json!({"name": "orders", "db_type": "mysql", "host": "h", "port": 1}),
        )
        .await
        .expect(403, "PERMISSION_DENIED");
    facade
        .post(
            &reader,
            "/api/v1/tags",
            json!({"name": "x", "display_name": "X", "category": "c"}),
        )
        .await
        .expect(403, "PERMISSION_DENIED");
    assert_eq!(facade.snapshot().await, before);

    let me = facade.get(&reader, "/api/v1/auth/me").await;
    me.expect(200, "OK");
    assert_eq!(me.data()["permissions"]["instances"], json!(["view"]));
    assert!(me.data()["username"].as_str().unwrap().ends_with(":reader"));
    let me = facade.get(&editor, "/api/v1/auth/me").await;
    assert_eq!(
        me.data()["permissions"]["tags"],
        json!(["view", "create", "update", "delete"])
    );
}

#[tokio::test]
async fn unsafe_methods_need_the_callers_own_csrf_token() {
    let facade = Facade::start("api-csrf").await;
    let editor = facade.editor().await;
    let other = facade
        .user("other", &["dbinstances", "dbtags"], &["list", "create"])
        .await;
    let body = json!({"name": "prod", "display_name": "Prod", "category": "env"});
    let before = facade.snapshot().await;

    let missing = User {
        csrf: String::new(),
        ..editor.clone()
    };
    facade
        .post(&missing, "/api/v1/tags", body.clone())
        .await
        .expect(400, "CSRF_FAILED");
    let forged = User {
        csrf: "123.abcd".into(),
        ..editor.clone()
    };
    facade
        .post(&forged, "/api/v1/tags", body.clone())
        .await
        .expect(400, "CSRF_FAILED");
    let borrowed = User {
        csrf: other.csrf.clone(),
        ..editor.clone()
    };
    facade
        .post(&borrowed, "/api/v1/tags", body.clone())
        .await
        .expect(400, "CSRF_FAILED");
    let mut in_body = body.clone();
    in_body["csrf_token"] = json!(editor.csrf);
    facade
        .post(&editor, "/api/v1/tags", in_body)
        .await
        .expect(400, "CSRF_FAILED");
    assert_eq!(facade.snapshot().await, before);

    facade.post(&editor, "/api/v1/tags", body).await.expect(201, "OK");
}

#[tokio::test]
async fn malformed_bodies_are_400s_naming_the_field() {
    let facade = Facade::start("api-badjson").await;
    let editor = facade.editor().await;
    let before = facade.snapshot().await;
    let raw = facade
        .request(Method::POST, "/api/v1/instances")
        .bearer_auth(&editor.token)
        .header("X-CSRFToken", &editor.csrf)
        .header("Content-Type", "application/json")
        .body("{\"name\": ");
    let answer = facade.raw(raw).await;
    answer.expect(400, "VALIDATION_ERROR");
    assert_eq!(answer.field(), "body");
    let cases = [
        (
            json!({"name": "a", "db_type": "mysql", "host": "h", "port": "3306"}),
            "port",
        ),
        (
            json!({"name": "a", "db_type": "oracle", "host": "h", "port": 1}),
            "db_type",
        ),
        (
            json!({"name": "a", "db_type": "mysql", "host": "h", "port": 70000}),
            "port",
        ),
        (json!({"name": "a", "db_type": "mysql", "host": "h"}), "port"),
        (
            json!({"name": "Not A Name", "db_type": "mysql", "host": "h", "port": 1}),
            "name",
        ),
        (
            json!({"name": "a", "db_type": "mysql", "host": "h", "port": 1, "tag_names": ["missing"]}),
            "tag_names",
        ),
        (
            json!({"name": "a", "db_type": "mysql", "host": "h", "port": 1, "credential_id": 99}),
            "credential_id",
        ),
        (
            json!({"name": "a", "db_type": "mysql", "host": "h", "port": 1, "is_active": "yes"}),
            "is_active",
        ),
    ];
    for (body, field) in cases {
        let answer = facade.post(&editor, "/api/v1/instances", body.clone()).await;
        answer.expect(400, "VALIDATION_ERROR");
        assert_eq!(answer.field(), field, "{body}");
    }
    assert_eq!(facade.snapshot().await, before);
    facade
        .call(&editor, Method::PATCH, "/api/v1/instances", None)
        .await
        .expect(405, "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn health_and_openapi_are_served() {
    let facade = Facade::start("api-health").await;
    let health = facade.raw(facade.request(Method::GET, "/healthz")).await;
    assert_eq!(health.status, 200);
    let doc = facade.raw(facade.request(Method::GET, "/api/v1/openapi.json")).await;
    assert_eq!(doc.status, 200);
    assert!(doc.body["paths"]["/api/v1/instances"].is_object());
}
