//! `/api/v1/instances`: CRUD, list filters and pagination, the recycle bin,
//! batch delete, options and statistics.

use serde_json::json;

use crate::harness::{Facade, User};
use crate::support;

/// A credential Secret with an id, recorded in the id ConfigMap as the
/// controller would record it.
pub async fn credential(facade: &Facade, user: &User, name: &str, username: &str, password: &str) -> i64 {
    let secret = support::login_secret(name, username, password);
    support::create_secret(&facade.admin, &facade.namespace, &secret).await;
    let id = support::record_credential(&facade.admin, &facade.namespace, name).await;
    // The façade's cache must have seen it before it can be referenced.
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let probe = facade
            .post(
                user,
                "/api/v1/instances/actions/validate-connection-params",
                json!({"db_type": "mysql", "port": 1, "credential_id": id}),
            )
            .await;
        if probe.status == 200 {
            break;
        }
    }
    id
}

#[tokio::test]
async fn instance_crud_reads_its_own_writes() {
    let facade = Facade::start("api-crud").await;
    let editor = facade.editor().await;
    facade.tag(&editor, "prod").await;
    let created = facade
        .post(
            &editor,
            "/api/v1/instances",
            json!({
            "name": "orders", "db_type": "postgresql", "host": "10.1.2.3", "port": 5432,
            "database_name": "orders", "description": "Orders DB", "tag_names": ["prod"]}),
        )
        .await;
    created.expect(201, "OK");
    let id = created.data()["id"].as_i64().unwrap();
    assert_eq!(created.data()["tags"][0]["display_name"], "PROD");
    assert_eq!(created.data()["status"], "pending");
    assert_eq!(created.data()["connection"]["status"], "unknown");

    let detail = facade.get(&editor, &format!("/api/v1/instances/{id}")).await;
    detail.expect(200, "OK");
    assert_eq!(detail.data()["database_name"], "orders");

    let before = facade.snapshot().await;
    facade
        .post(
            &editor,
            "/api/v1/instances",
            json!({"name": "orders", "db_type": "mysql", "host": "h", "port": 3306}),
        )
        .await
        .expect(409, "NAME_CONFLICT");
    facade
        .get(&editor, "/api/v1/instances/424242")
        .await
        .expect(404, "NOT_FOUND");
    facade
        .put(
            &editor,
            "/api/v1/instances/424242",
            json!({"name": "x", "db_type": "mysql", "host": "h", "port": 1}),
        )
        .await
        .expect(404, "NOT_FOUND");
    let bad = facade
        .put(
            &editor,
            &format!("/api/v1/instances/{id}"),
            json!({"name": "orders", "db_type": "mysql", "host": "h", "port": 0}),
        )
        .await;
    bad.expect(400, "VALIDATION_ERROR");
    assert_eq!(bad.field(), "port");
    assert_eq!(facade.snapshot().await, before);

    let updated = facade
        .put(
            &editor,
            &format!("/api/v1/instances/{id}"),
            json!({
            "name": "orders", "db_type": "mysql", "host": "db.example.com", "port": 3306, "is_active": false}),
        )
        .await;
    updated.expect(200, "OK");
    let detail = facade.get(&editor, &format!("/api/v1/instances/{id}")).await;
    assert_eq!(
        (detail.data()["host"].as_str(), detail.data()["port"].as_i64()),
        (Some("db.example.com"), Some(3306))
    );
    assert_eq!(detail.data()["tags"], json!([]), "tags left out of a PUT are cleared");
    assert_eq!(detail.data()["description"], serde_json::Value::Null);
    assert_eq!(detail.data()["is_active"], false);

    let status = facade
        .get(&editor, &format!("/api/v1/instances/{id}/connection-status"))
        .await;
    status.expect(200, "OK");
    assert_eq!(status.data()["status"], "unknown");
}

#[tokio::test]
async fn recycle_bin_hides_and_restores() {
    let facade = Facade::start("api-recycle").await;
    let editor = facade.editor().await;
    let id = facade.instance(&editor, "legacy", json!({})).await;
    let other = facade.instance(&editor, "keeper", json!({})).await;

    let deleted = facade.delete(&editor, &format!("/api/v1/instances/{id}")).await;
    deleted.expect(200, "OK");
    let deleted_at: k8s_openapi::jiff::Timestamp = deleted.data()["deleted_at"].as_str().unwrap().parse().unwrap();
    let retained: k8s_openapi::jiff::Timestamp = deleted.data()["retained_until"].as_str().unwrap().parse().unwrap();
    assert_eq!(retained.duration_since(deleted_at).as_hours(), 30 * 24);

    facade
        .get(&editor, &format!("/api/v1/instances/{id}"))
        .await
        .expect(404, "NOT_FOUND");
    facade
        .delete(&editor, &format!("/api/v1/instances/{id}"))
        .await
        .expect(404, "NOT_FOUND");
    let list = facade.get(&editor, "/api/v1/instances").await;
    assert_eq!(list.data()["total"], 1);
    let list = facade.get(&editor, "/api/v1/instances?include_deleted=on").await;
    assert_eq!(list.data()["total"], 2);
    let recycled = list.data()["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .unwrap()
        .clone();
    assert_eq!(recycled["status"], "recycled");
    facade
        .post(
            &editor,
            "/api/v1/instances",
            json!({"name": "legacy", "db_type": "mysql", "host": "h", "port": 1}),
        )
        .await
        .expect(409, "NAME_CONFLICT");
    let stats = facade.get(&editor, "/api/v1/instances/statistics").await;
    assert_eq!(
        (stats.data()["total"].as_i64(), stats.data()["recycled"].as_i64()),
        (Some(1), Some(1))
    );

    facade
        .post(&editor, &format!("/api/v1/instances/{id}/actions/restore"), json!({}))
        .await
        .expect(200, "OK");
    facade
        .get(&editor, &format!("/api/v1/instances/{id}"))
        .await
        .expect(200, "OK");
    let again = facade
        .post(
            &editor,
            &format!("/api/v1/instances/{other}/actions/restore"),
            json!({}),
        )
        .await;
    again.expect(200, "OK");
    assert_eq!(facade.get(&editor, "/api/v1/instances").await.data()["total"], 2);
}

#[tokio::test]
async fn batch_delete_reports_each_instance() {
    let facade = Facade::start("api-batchdel").await;
    let editor = facade.editor().await;
    let soft = facade.instance(&editor, "soft", json!({})).await;
    let hard = facade.instance(&editor, "hard", json!({})).await;

    let answer = facade
        .post(
            &editor,
            "/api/v1/instances/actions/batch-delete",
            json!({"instance_ids": [soft, 999]}),
        )
        .await;
    answer.expect(207, "PARTIAL_SUCCESS");
    assert_eq!(answer.data()["deleted_count"], 1);
    assert_eq!(answer.data()["results"][1]["result"], "failed");

    let answer = facade
        .post(
            &editor,
            "/api/v1/instances/actions/batch-delete",
            json!({"instance_ids": [hard, soft], "deletion_mode": "hard"}),
        )
        .await;
    answer.expect(200, "OK");
    assert_eq!(answer.data()["deleted_count"], 2);
    let everything = facade.get(&editor, "/api/v1/instances?include_deleted=true").await;
    assert_eq!(everything.data()["total"], 0);
    assert_eq!(facade.snapshot().await["instances"], json!([]));

    let before = facade.snapshot().await;
    let wrong = facade
        .post(
            &editor,
            "/api/v1/instances/actions/batch-delete",
            json!({"instance_ids": [1], "deletion_mode": "shred"}),
        )
        .await;
    wrong.expect(400, "VALIDATION_ERROR");
    assert_eq!(wrong.field(), "deletion_mode");
    let too_many: Vec<i64> = (1..=101).collect();
    facade
        .post(
            &editor,
            "/api/v1/instances/actions/batch-delete",
            json!({"instance_ids": too_many}),
        )
        .await
        .expect(400, "BATCH_TOO_LARGE");
    assert_eq!(facade.snapshot().await, before);
}

#[tokio::test]
async fn list_filters_sorting_and_pagination() {
    let facade = Facade::start("api-list").await;
    let editor = facade.editor().await;
    facade.tag(&editor, "eu").await;
    facade.tag(&editor, "us").await;
    let mut ids = Vec::new();
    for i in 0..25 {
        let tag = if i % 2 == 0 { "eu" } else { "us" };
        let db_type = if i < 5 { "mysql" } else { "postgresql" };
        let extra = json!({"db_type": db_type, "tag_names": [tag], "is_active": i != 3,
            "description": if i == 7 { "Billing ledger" } else { "" }});
        ids.push(facade.instance(&editor, &format!("db-{i:02}"), extra).await);
    }

    let page = facade.get(&editor, "/api/v1/instances").await;
    page.expect(200, "OK");
    assert_eq!(
        (
            page.data()["total"].as_i64(),
            page.data()["pages"].as_i64(),
            page.data()["limit"].as_i64()
        ),
        (Some(25), Some(2), Some(20))
    );
    assert_eq!(page.data()["items"][0]["id"], *ids.last().unwrap(), "newest id first");
    let page2 = facade.get(&editor, "/api/v1/instances?page=2&limit=20").await;
    assert_eq!(page2.data()["items"].as_array().unwrap().len(), 5);
    let clamped = facade.get(&editor, "/api/v1/instances?limit=500&page=0").await;
    assert_eq!(
        (clamped.data()["limit"].as_i64(), clamped.data()["page"].as_i64()),
        (Some(100), Some(1))
    );
    let fallback = facade.get(&editor, "/api/v1/instances?limit=ten&page=two").await;
    assert_eq!(
        (fallback.data()["limit"].as_i64(), fallback.data()["page"].as_i64()),
        (Some(20), Some(1))
    );
    let tiny = facade.get(&editor, "/api/v1/instances?limit=0").await;
    assert_eq!(tiny.data()["limit"], 1);

    let count = |answer: crate::harness::Answer| answer.data()["total"].as_i64().unwrap();
    assert_eq!(count(facade.get(&editor, "/api/v1/instances?db_type=mysql").await), 5);
    assert_eq!(count(facade.get(&editor, "/api/v1/instances?tags=eu").await), 13);
    assert_eq!(
        count(facade.get(&editor, "/api/v1/instances?tags=eu&tags=us").await),
        25
    );
    assert_eq!(count(facade.get(&editor, "/api/v1/instances?status=inactive").await), 1);
    assert_eq!(count(facade.get(&editor, "/api/v1/instances?status=unknown").await), 25);
    assert_eq!(count(facade.get(&editor, "/api/v1/instances?search=LEDGER").await), 1);
    assert_eq!(count(facade.get(&editor, "/api/v1/instances?search=db-1").await), 10);
    facade
        .get(&editor, "/api/v1/instances?status=sleeping")
        .await
        .expect(400, "VALIDATION_ERROR");
    facade
        .get(&editor, "/api/v1/instances?db_type=oracle")
        .await
        .expect(400, "VALIDATION_ERROR");

    let by_name = facade
        .get(&editor, "/api/v1/instances?sort=name&order=asc&limit=3")
        .await;
    let names: Vec<_> = by_name.data()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["db-00", "db-01", "db-02"]);
    let unknown_sort = facade
        .get(&editor, "/api/v1/instances?sort=color&order=asc&limit=1")
        .await;
    assert_eq!(unknown_sort.data()["items"][0]["id"], ids[0]);

    let options = facade.get(&editor, "/api/v1/instances/options?db_type=mysql").await;
    assert_eq!(
        options.data()["instances"].as_array().unwrap().len(),
        4,
        "the inactive one is no option"
    );
    assert!(
        options.data()["instances"][0]["label"]
            .as_str()
            .unwrap()
            .contains(":5432)")
    );
    let stats = facade.get(&editor, "/api/v1/instances/statistics").await;
    assert_eq!(stats.data()["by_db_type"], json!({"mysql": 5, "postgresql": 20}));
    assert_eq!(stats.data()["inactive"], 1);
}
