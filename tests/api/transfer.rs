//! CSV export, import template, batch-create, and sync sessions.

use std::time::Duration;

use dbfleet::crd::DbSyncSession;
use kube::Api;
use kube::api::{Patch, PatchParams};
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::json;

use crate::harness::{Answer, Facade, User};
use crate::support;

async fn upload(facade: &Facade, user: &User, file_name: &str, body: Vec<u8>) -> Answer {
    let form = Form::new().part("file", Part::bytes(body).file_name(file_name.to_string()));
    let request = facade
        .request(Method::POST, "/api/v1/instances/actions/batch-create")
        .bearer_auth(&user.token)
        .header("X-CSRFToken", &user.csrf)
        .multipart(form);
    facade.raw(request).await
}

async fn download(facade: &Facade, user: &User, path: &str) -> (reqwest::header::HeaderMap, String) {
    let response = facade
        .request(Method::GET, path)
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    (headers, response.text().await.unwrap())
}

#[tokio::test]
async fn batch_create_reports_each_row() {
    let facade = Facade::start("api-import").await;
    let editor = facade.editor().await;
    facade.tag(&editor, "prod").await;
    let (headers, template) = download(&facade, &editor, "/api/v1/instances/imports/template").await;
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert!(template.starts_with('\u{feff}'));
    assert!(template.contains("name,db_type,host,port"));

    let file = "name,db_type,host,port,tag_names\n\
                good-1,mysql,10.0.0.1,3306,prod\n\
                bad-port,mysql,10.0.0.2,99999,\n\
                good-2,postgresql,pg.example.com,5432,\n\
                bad-tag,postgresql,pg.example.com,5432,missing\n";
    let answer = upload(&facade, &editor, "fleet.csv", file.into()).await;
    answer.expect(207, "PARTIAL_SUCCESS");
    assert_eq!(answer.data()["created_count"], 2);
    let failed: Vec<_> = answer.data()["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["row"].as_i64().unwrap())
        .collect();
    assert_eq!(failed, [3, 5]);
    assert_eq!(facade.get(&editor, "/api/v1/instances").await.data()["total"], 2);

    let before = facade.snapshot().await;
    let none = upload(
        &facade,
        &editor,
        "fleet.csv",
        "name,db_type,host,port\ngood-1,mysql,h,1\nx,oracle,h,1\n".into(),
    )
    .await;
    none.expect(400, "VALIDATION_ERROR");
    assert_eq!(none.data()["failed_count"], 2);
    upload(&facade, &editor, "fleet.txt", "name,db_type,host,port\n".into())
        .await
        .expect(400, "VALIDATION_ERROR");
    upload(&facade, &editor, "fleet.csv", "name,host\nx,y\n".into())
        .await
        .expect(400, "VALIDATION_ERROR");
    let mut huge = String::from("name,db_type,host,port,description\n");
    while huge.len() <= 1024 * 1024 {
        huge.push_str(&format!("n{},mysql,h,1,{}\n", huge.len(), "x".repeat(500)));
    }
    upload(&facade, &editor, "huge.csv", huge.into())
        .await
        .expect(413, "PAYLOAD_TOO_LARGE");
    let mut many = String::from("name,db_type,host,port\n");
    for i in 0..1001 {
        many.push_str(&format!("n{i},mysql,h,1\n"));
    }
    upload(&facade, &editor, "many.csv", many.into())
        .await
        .expect(400, "BATCH_TOO_LARGE");
    assert_eq!(facade.snapshot().await, before);

    let all_good = upload(
        &facade,
        &editor,
        "more.csv",
        "name,db_type,host,port\ngood-3,mysql,h,1\n".into(),
    )
    .await;
    all_good.expect(200, "OK");
}

#[tokio::test]
async fn an_export_imported_elsewhere_recreates_the_instances() {
    let source = Facade::start("api-export").await;
    let editor = source.editor().await;
    source.tag(&editor, "prod").await;
    source
        .instance(
            &editor,
            "alpha",
            json!({"description": "comma, \"quotes\" and ünïcode", "tag_names": ["prod"]}),
        )
        .await;
    source
        .instance(
            &editor,
            "beta",
            json!({"db_type": "mysql", "port": 3306, "is_active": false, "database_name": "app"}),
        )
        .await;
    source.instance(&editor, "gamma", json!({"db_type": "mysql"})).await;
    // Cells a spreadsheet would run as formulas.
    source
        .instance(
            &editor,
            "delta",
            json!({"description": "=HYPERLINK(\"http://evil.example\",\"open\")", "database_name": "-app"}),
        )
        .await;
    source
        .instance(&editor, "epsilon", json!({"description": "'@already quoted"}))
        .await;

    let (headers, filtered) = download(&source, &editor, "/api/v1/instances/exports?db_type=mysql").await;
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert_eq!(filtered.lines().count(), 3, "header and the two mysql instances");
    let (_, csv) = download(&source, &editor, "/api/v1/instances/exports").await;
    assert!(csv.starts_with('\u{feff}'));
    let delta = csv.lines().find(|l| l.starts_with("delta,")).unwrap();
    assert!(
        delta.contains(",'-app,") && delta.contains("\"'=HYPERLINK("),
        "formula cells start with a quote: {delta}"
    );
    let epsilon = csv.lines().find(|l| l.starts_with("epsilon,")).unwrap();
    assert!(epsilon.contains(",''@already quoted,"), "{epsilon}");
    for line in csv.lines().skip(1) {
        for cell in line.split(',') {
            assert!(
                !cell.trim_start_matches('"').starts_with(['=', '+', '-', '@']),
                "a cell a spreadsheet would run: {line}"
            );
        }
    }
    source
        .get(&editor, "/api/v1/instances/exports?status=nope")
        .await
        .expect(400, "VALIDATION_ERROR");

    let target = Facade::start("api-export-target").await;
    let editor2 = target.editor().await;
    target.tag(&editor2, "prod").await;
    upload(&target, &editor2, "export.csv", csv.into_bytes())
        .await
        .expect(200, "OK");

    let shape = |answer: Answer| {
        let mut items: Vec<_> = answer.data()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                json!([
                    i["name"],
                    i["db_type"],
                    i["host"],
                    i["port"],
                    i["database_name"],
                    i["description"],
                    i["is_active"],
                    i["tags"][0]["name"]
                ])
            })
            .collect();
        items.sort_by_key(|v| v.to_string());
        items
    };
    assert_eq!(
        shape(source.get(&editor, "/api/v1/instances").await),
        shape(target.get(&editor2, "/api/v1/instances").await)
    );
}

#[tokio::test]
async fn full_account_sync_starts_a_session() {
    let facade = Facade::start("api-sessions").await;
    let editor = facade.editor().await;
    let reader = facade.user("reader", &["dbinstances"], &["list"]).await;
    facade
        .post(&reader, "/api/v1/instances/actions/sync-accounts", json!({}))
        .await
        .expect(403, "PERMISSION_DENIED");

    // Several at once: one starts a session, the others are told about it.
    let answers = futures_util::future::join_all(
        (0..4).map(|_| facade.post(&editor, "/api/v1/instances/actions/sync-accounts", json!({}))),
    )
    .await;
    let mut statuses: Vec<u16> = answers.iter().map(|a| a.status.as_u16()).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 200, 200, 201], "exactly one started");
    let started = answers.iter().find(|a| a.status == 201).unwrap();
    assert_eq!(started.data()["already_running"], false);
    let session = started.data()["session_id"].as_str().unwrap().to_string();
    for answer in &answers {
        assert_eq!(answer.data()["session_id"], session.as_str(), "{:#}", answer.body);
    }
    let again = facade
        .post(&editor, "/api/v1/instances/actions/sync-accounts", json!({}))
        .await;
    again.expect(200, "OK");
    assert_eq!(
        (
            again.data()["session_id"].as_str(),
            again.data()["already_running"].as_bool()
        ),
        (Some(session.as_str()), Some(true))
    );
    let detail = facade.get(&reader, &format!("/api/v1/sync-sessions/{session}")).await;
    detail.expect(200, "OK");
    assert_eq!(
        (detail.data()["operation"].as_str(), detail.data()["status"].as_str()),
        (Some("accounts"), Some("pending"))
    );
    let list = facade.get(&reader, "/api/v1/sync-sessions?operation=accounts").await;
    assert_eq!(list.data()["items"][0]["session_id"], session.as_str());
    assert_eq!(
        facade.get(&reader, "/api/v1/sync-sessions?status=running").await.data()["total"],
        0
    );
    facade
        .get(&reader, "/api/v1/sync-sessions?operation=backup")
        .await
        .expect(400, "VALIDATION_ERROR");
    facade
        .get(&reader, "/api/v1/sync-sessions/no-such-session")
        .await
        .expect(404, "NOT_FOUND");

    // Once it has finished, the next request starts a new one.
    let sessions: Api<DbSyncSession> = Api::namespaced(facade.admin.clone(), &facade.namespace);
    let finished = json!({"status": {"phase": "Succeeded", "total": 0, "finishedAt": "2026-01-01T00:00:00Z"}});
    sessions
        .patch_status(&session, &PatchParams::default(), &Patch::Merge(&finished))
        .await
        .unwrap();
    let next = support::controller::eventually(Duration::from_secs(10), "a new session", || async {
        let answer = facade
            .post(&editor, "/api/v1/instances/actions/sync-accounts", json!({}))
            .await;
        let id = answer.data()["session_id"].as_str().unwrap_or_default().to_string();
        ((answer.status == 201).then_some(id), format!("{:#}", answer.body))
    })
    .await;
    assert_ne!(next, session);
    let detail = facade.get(&reader, &format!("/api/v1/sync-sessions/{session}")).await;
    assert_eq!(
        (
            detail.data()["omitted_failures"].as_u64(),
            detail.data()["omitted_successes"].as_u64()
        ),
        (Some(0), Some(0))
    );
}
