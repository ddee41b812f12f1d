//! A façade per test namespace and an HTTP client that speaks to it.

use std::time::Duration;

use dbfleet::api::ApiConfig;
use dbfleet::api::auth::AuthMode;
use dbfleet::crd::{DbInstance, DbTag};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support;

pub struct Facade {
    pub base: String,
    pub namespace: String,
    pub admin: Client,
    http: reqwest::Client,
}

/// A caller: a ServiceAccount token and the CSRF token issued to it.
#[derive(Clone)]
pub struct User {
    pub token: String,
    pub csrf: String,
}

pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    /// The first field a VALIDATION_ERROR names.
    pub fn field(&self) -> &str {
        self.body["data"]["errors"][0]["field"].as_str().unwrap_or_default()
    }

    #[track_caller]
    pub fn expect(&self, status: u16, code: &str) -> &Self {
        assert_eq!((self.status.as_u16(), self.code()), (status, code), "{:#}", self.body);
        self
    }
}

impl Facade {
    /// A fresh namespace with the façade serving it.
    pub async fn start(prefix: &str) -> Facade {
        Self::start_with(prefix, |_| {}).await
    }

    /// `start`, with the façade's configuration adjusted by `tweak`.
    pub async fn start_with(prefix: &str, tweak: impl FnOnce(&mut ApiConfig)) -> Facade {
        let (admin, namespace) = support::admin_in_fresh_namespace(prefix).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut config = ApiConfig::new(namespace.clone(), AuthMode::Kubernetes);
        tweak(&mut config);
        tokio::spawn(dbfleet::api::serve(
            admin.clone(),
            config,
            listener,
            tokio_util::sync::CancellationToken::new(),
        ));
        let http = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
                if r.status() == StatusCode::OK {
                    return Facade {
                        base,
                        namespace,
                        admin,
                        http,
                    };
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the façade never became ready");
    }

    /// A ServiceAccount allowed `verbs` on `resources` (dbfleet.io), with
    /// its CSRF token.
    pub async fn user(&self, name: &str, resources: &[&str], verbs: &[&str]) -> User {
        let token = support::service_account_token(&self.admin, &self.namespace, name, resources, verbs).await;
        let mut user = User {
            token,
            csrf: String::new(),
        };
        let answer = self.call(&user, Method::GET, "/api/v1/auth/csrf-token", None).await;
        answer.expect(200, "OK");
        user.csrf = answer.data()["csrf_token"].as_str().unwrap().to_string();
        user
    }

    /// Everything on instances and tags, and reading their inventories.
    pub async fn editor(&self) -> User {
        self.user(
            "editor",
            &["dbinstances", "dbtags", "dbinventories"],
            &["get", "list", "create", "update", "delete"],
        )
        .await
    }

    pub async fn call(&self, user: &User, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&user.token)
            .header("X-CSRFToken", &user.csrf);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Self::answer(request.send().await.unwrap()).await
    }

    pub async fn raw(&self, request: reqwest::RequestBuilder) -> Answer {
        Self::answer(request.send().await.unwrap()).await
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer { status, body, headers }
    }

    pub async fn get(&self, user: &User, path: &str) -> Answer {
        self.call(user, Method::GET, path, None).await
    }

    pub async fn post(&self, user: &User, path: &str, body: Value) -> Answer {
        self.call(user, Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, user: &User, path: &str, body: Value) -> Answer {
        self.call(user, Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, user: &User, path: &str) -> Answer {
        self.call(user, Method::DELETE, path, None).await
    }

    /// Creates an instance through the façade and returns its id.
    pub async fn instance(&self, user: &User, name: &str, extra: Value) -> i64 {
        let mut body =
            json!({"name": name, "db_type": "postgresql", "host": format!("{name}.example.com"), "port": 5432});
        for (k, v) in extra.as_object().into_iter().flatten() {
            body[k] = v.clone();
        }
        let answer = self.post(user, "/api/v1/instances", body).await;
        answer.expect(201, "OK");
        answer.data()["id"].as_i64().unwrap()
    }

    pub async fn tag(&self, user: &User, name: &str) -> i64 {
        let body = json!({"name": name, "display_name": name.to_uppercase(), "category": "env"});
        let answer = self.post(user, "/api/v1/tags", body).await;
        answer.expect(201, "OK");
        answer.data()["id"].as_i64().unwrap()
    }

    /// Every stored DbInstance and DbTag (name, labels, annotations, spec,
    /// generation) straight from the API server, to prove a failed request
    /// changed nothing. Instances leave their resourceVersion out: a
    /// controller running beside the façade writes their status.
    pub async fn snapshot(&self) -> Value {
        let instances = Api::<DbInstance>::namespaced(self.admin.clone(), &self.namespace)
            .list(&ListParams::default())
            .await
            .unwrap();
        let tags = Api::<DbTag>::namespaced(self.admin.clone(), &self.namespace)
            .list(&ListParams::default())
            .await
            .unwrap();
        let mut instances: Vec<Value> = instances
            .items
            .iter()
            .map(|i| json!([i.name_any(), i.labels(), i.annotations(), i.spec, i.metadata.generation]))
            .collect();
        let mut tags: Vec<Value> = tags
            .items
            .iter()
            .map(|t| json!([t.name_any(), t.labels(), t.spec, t.metadata.resource_version]))
            .collect();
        instances.sort_by_key(|v| v[0].to_string());
        tags.sort_by_key(|v| v[0].to_string());
        json!({"instances": instances, "tags": tags})
    }
}
