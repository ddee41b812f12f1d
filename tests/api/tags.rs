//! `/api/v1/tags`: CRUD, TAG_IN_USE, batch delete and bulk assignment.

use serde_json::json;

use crate::harness::Facade;

#[tokio::test]
async fn tag_crud_and_listing() {
    let facade = Facade::start("api-tags").await;
    let editor = facade.editor().await;
    let prod = facade.tag(&editor, "prod").await;
    let created = facade
        .post(
            &editor,
            "/api/v1/tags",
            json!({"name": "eu", "display_name": "Europe", "category": "region", "color": "#00aa00"}),
        )
        .await;
    created.expect(201, "OK");
    let eu = created.data()["id"].as_i64().unwrap();
    assert_ne!(prod, eu);
    assert_eq!(created.data()["color"], "#00aa00");

    // Form bodies work too.
    let form = facade
        .request(reqwest::Method::POST, "/api/v1/tags")
        .bearer_auth(&editor.token)
        .header("X-CSRFToken", &editor.csrf)
        .form(&[
            ("name", "lab"),
            ("display_name", "Lab"),
            ("category", "env"),
            ("is_active", "false"),
        ]);
    let lab = facade.raw(form).await;
    lab.expect(201, "OK");
    assert_eq!(lab.data()["is_active"], false);

    let before = facade.snapshot().await;
    facade
        .post(
            &editor,
            "/api/v1/tags",
            json!({"name": "prod", "display_name": "P", "category": "env"}),
        )
        .await
        .expect(409, "NAME_CONFLICT");
    let bad = facade
        .post(
            &editor,
            "/api/v1/tags",
            json!({"name": "Bad Code", "display_name": "P", "category": "env"}),
        )
        .await;
    bad.expect(400, "VALIDATION_ERROR");
    assert_eq!(bad.field(), "name");
    let bad = facade
        .post(
            &editor,
            "/api/v1/tags",
            json!({"name": "ok", "display_name": "P", "category": "env", "color": "#12"}),
        )
        .await;
    assert_eq!(bad.field(), "color");
    facade.get(&editor, "/api/v1/tags/9999").await.expect(404, "NOT_FOUND");
    facade.get(&editor, "/api/v1/tags/abc").await.expect(404, "NOT_FOUND");
    assert_eq!(facade.snapshot().await, before);

    let list = facade.get(&editor, "/api/v1/tags?category=env").await;
    list.expect(200, "OK");
    assert_eq!(list.data()["total"], 2);
    let list = facade.get(&editor, "/api/v1/tags?search=EURO").await;
    assert_eq!(list.data()["items"][0]["name"], "eu");
    assert_eq!(
        facade.get(&editor, "/api/v1/tags?status=inactive").await.data()["total"],
        1
    );
    assert_eq!(facade.get(&editor, "/api/v1/tags?status=all").await.data()["total"], 3);
    facade
        .get(&editor, "/api/v1/tags?status=sometimes")
        .await
        .expect(400, "VALIDATION_ERROR");
    let clamped = facade.get(&editor, "/api/v1/tags?limit=5000&page=-2").await;
    assert_eq!(
        (clamped.data()["limit"].as_i64(), clamped.data()["page"].as_i64()),
        (Some(200), Some(1))
    );
    let fallback = facade.get(&editor, "/api/v1/tags?limit=lots&page=x").await;
    assert_eq!(
        (fallback.data()["limit"].as_i64(), fallback.data()["page"].as_i64()),
        (Some(20), Some(1))
    );

    let options = facade.get(&editor, "/api/v1/tags/options").await;
    assert_eq!(
        options.data().as_array().unwrap().len(),
        2,
        "inactive tags are not options"
    );
    let categories = facade.get(&editor, "/api/v1/tags/categories").await;
    assert_eq!(
        categories.data(),
        &json!([{"name": "env", "count": 2}, {"name": "region", "count": 1}])
    );

    let updated = facade
        .put(
            &editor,
            &format!("/api/v1/tags/{eu}"),
            json!({"name": "eu", "display_name": "EU", "category": "region"}),
        )
        .await;
    updated.expect(200, "OK");
    assert_eq!(
        facade.get(&editor, &format!("/api/v1/tags/{eu}")).await.data()["display_name"],
        "EU"
    );
    assert_eq!(updated.data()["color"], serde_json::Value::Null);
    let before = facade.snapshot().await;
    let renamed = facade
        .put(
            &editor,
            &format!("/api/v1/tags/{eu}"),
            json!({"name": "europe", "display_name": "EU", "category": "region"}),
        )
        .await;
    renamed.expect(400, "VALIDATION_ERROR");
    assert_eq!(facade.snapshot().await, before);
}

#[tokio::test]
async fn a_tag_in_use_cannot_be_deleted() {
    let facade = Facade::start("api-taginuse").await;
    let editor = facade.editor().await;
    let prod = facade.tag(&editor, "prod").await;
    let spare = facade.tag(&editor, "spare").await;
    let id = facade.instance(&editor, "orders", json!({"tag_names": ["prod"]})).await;
    assert_eq!(
        facade.get(&editor, &format!("/api/v1/tags/{prod}")).await.data()["instance_count"],
        1
    );

    let before = facade.snapshot().await;
    let refused = facade.delete(&editor, &format!("/api/v1/tags/{prod}")).await;
    refused.expect(409, "TAG_IN_USE");
    assert_eq!(refused.data()["instances"][0]["id"], id);
    assert_eq!(facade.snapshot().await, before);

    let batch = facade
        .post(
            &editor,
            "/api/v1/tags/batch-delete",
            json!({"tag_ids": [prod, spare, 4242]}),
        )
        .await;
    batch.expect(207, "PARTIAL_SUCCESS");
    let results = batch.data()["results"].as_array().unwrap();
    assert_eq!(
        results
            .iter()
            .map(|r| r["result"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["failed", "success", "failed"]
    );
    assert_eq!(results[0]["code"], "TAG_IN_USE");
    assert_eq!(batch.data()["deleted_count"], 1);
    facade
        .get(&editor, &format!("/api/v1/tags/{spare}"))
        .await
        .expect(404, "NOT_FOUND");

    facade
        .post(
            &editor,
            "/api/v1/tags/bulk/actions/remove-all",
            json!({"instance_ids": [id]}),
        )
        .await
        .expect(200, "OK");
    facade
        .delete(&editor, &format!("/api/v1/tags/{prod}"))
        .await
        .expect(200, "OK");
    facade
        .get(&editor, &format!("/api/v1/tags/{prod}"))
        .await
        .expect(404, "NOT_FOUND");
}

#[tokio::test]
async fn bulk_assignment_counts_only_real_changes() {
    let facade = Facade::start("api-bulk").await;
    let editor = facade.editor().await;
    let a = facade.tag(&editor, "a").await;
    let b = facade.tag(&editor, "b").await;
    let one = facade.instance(&editor, "one", json!({"tag_names": ["a"]})).await;
    let two = facade.instance(&editor, "two", json!({})).await;

    let assigned = facade
        .post(
            &editor,
            "/api/v1/tags/bulk/actions/assign",
            json!({"instance_ids": [one, two], "tag_ids": [a, b]}),
        )
        .await;
    assigned.expect(200, "OK");
    assert_eq!(assigned.data()["assigned_count"], 3);
    let again = facade
        .post(
            &editor,
            "/api/v1/tags/bulk/actions/assign",
            json!({"instance_ids": [one, two], "tag_ids": [a, b]}),
        )
        .await;
    assert_eq!(again.data()["assigned_count"], 0);

    let tags = facade
        .post(
            &editor,
            "/api/v1/tags/bulk/instance-tags",
            json!({"instance_ids": [one, two]}),
        )
        .await;
    tags.expect(200, "OK");
    assert_eq!(tags.data()["tags"].as_array().unwrap().len(), 2);
    assert_eq!(tags.data()["by_instance"][two.to_string()][1]["name"], "b");

    let before = facade.snapshot().await;
    let unknown = facade
        .post(
            &editor,
            "/api/v1/tags/bulk/actions/assign",
            json!({"instance_ids": [one, 777], "tag_ids": [a]}),
        )
        .await;
    unknown.expect(400, "VALIDATION_ERROR");
    assert_eq!(unknown.field(), "instance_ids");
    let unknown = facade
        .post(
            &editor,
            "/api/v1/tags/bulk/actions/remove",
            json!({"instance_ids": [one], "tag_ids": [777]}),
        )
        .await;
    assert_eq!(unknown.field(), "tag_ids");
    facade
        .post(
            &editor,
            "/api/v1/tags/bulk/actions/assign",
            json!({"instance_ids": [], "tag_ids": [a]}),
        )
        .await
        .expect(400, "VALIDATION_ERROR");
    assert_eq!(facade.snapshot().await, before);

    let removed = facade
        .post(
            &editor,
            "/api/v1/tags/bulk/actions/remove",
            json!({"instance_ids": [one, two], "tag_ids": [b]}),
        )
        .await;
    assert_eq!(removed.data()["removed_count"], 2);
    let removed = facade
        .post(
            &editor,
            "/api/v1/tags/bulk/actions/remove",
            json!({"instance_ids": [one, two], "tag_ids": [b]}),
        )
        .await;
    assert_eq!(removed.data()["removed_count"], 0);
    let removed = facade
        .post(
            &editor,
            "/api/v1/tags/bulk/actions/remove-all",
            json!({"instance_ids": [one, two]}),
        )
        .await;
    assert_eq!(removed.data()["removed_count"], 2);

    let pick = facade.get(&editor, "/api/v1/tags/bulk/instances").await;
    assert_eq!(pick.data().as_array().unwrap().len(), 2);
    let pick = facade.get(&editor, "/api/v1/tags/bulk/tags").await;
    assert_eq!(pick.data().as_array().unwrap().len(), 2);
}
