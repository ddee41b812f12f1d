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

/// `dbfleet_token_reviews_total{outcome="…"}` from the façade's /metrics.
async fn token_reviews(facade: &Facade, outcome: &str) -> u64 {
    let text = facade
        .raw(facade.request(Method::GET, "/metrics"))
        .await
        .body
        .as_str()
        .unwrap_or_default()
        .to_string();
    let series = format!("dbfleet_token_reviews_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0, |value| value.trim().parse().unwrap())
}

#[tokio::test]
async fn junk_tokens_are_limited_per_address_and_do_not_flush_good_ones() {
    use std::num::NonZeroU32;
    let burst = 3;
    let facade = Facade::start_with("api-junk", |config| {
        // One failure a minute after the burst: the test never waits it out.
        config.failed_reviews = dbfleet::api::auth::FailedReviewLimit {
            per_minute: NonZeroU32::new(1).unwrap(),
            burst: NonZeroU32::new(burst).unwrap(),
        };
    })
    .await;
    let editor = facade.editor().await;
    facade.get(&editor, "/api/v1/instances").await.expect(200, "OK");
    let authenticated = token_reviews(&facade, "authenticated").await;

    // A bounded burst of fresh junk tokens, to loopback only.
    let mut statuses = Vec::new();
    for i in 0..12 {
        let junk = User {
            token: format!("junk-{i}"),
            csrf: String::new(),
        };
        let answer = facade.get(&junk, "/api/v1/instances").await;
        if answer.status == 429 {
            answer.expect(429, "TOO_MANY_REQUESTS");
            let retry_after: u64 = answer.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
            assert_eq!(answer.data()["retry_after_seconds"], retry_after);
        } else {
            answer.expect(401, "UNAUTHENTICATED");
        }
        statuses.push(answer.status.as_u16());
    }
    let first_refusal = statuses.iter().position(|s| *s == 429).expect("no 429 in the burst");
    assert!(
        first_refusal <= burst as usize + 1 && statuses[first_refusal..].iter().all(|s| *s == 429),
        "{statuses:?}"
    );
    let rejected = token_reviews(&facade, "rejected").await;
    assert!(
        rejected <= u64::from(burst) + 1,
        "{rejected} TokenReviews for junk tokens"
    );

    // The good token still works, from the cache: no new review.
    facade.get(&editor, "/api/v1/instances").await.expect(200, "OK");
    assert_eq!(token_reviews(&facade, "authenticated").await, authenticated);
    // A junk token seen before is refused from its own cache, not reviewed.
    let seen = User {
        token: "junk-0".into(),
        csrf: String::new(),
    };
    facade
        .get(&seen, "/api/v1/instances")
        .await
        .expect(401, "UNAUTHENTICATED");
    // Another address has its own allowance (all of 127/8 is loopback).
    let elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let answer = elsewhere
        .get(format!("{}/api/v1/instances", facade.base))
        .bearer_auth("junk-from-another-address")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert_eq!(token_reviews(&facade, "rejected").await, rejected + 1);
}
