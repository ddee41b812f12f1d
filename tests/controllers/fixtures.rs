//! Databases, accounts, Secrets and manifests the controller tests use, and
//! a log capture so tests can prove no password is ever logged.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use dbfleet::crd::DbInstance;
use dbfleet_testenv::DatabaseServer;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::json;

pub use crate::support::databases::{mysql, mysql_exec, postgres, postgres_exec, unique};

/// The DbInventory beside instance `name`, once the controller wrote it.
pub async fn inventory(client: &Client, namespace: &str, name: &str) -> dbfleet::crd::DbInventory {
    let api: Api<dbfleet::crd::DbInventory> = Api::namespaced(client.clone(), namespace);
    crate::support::controller::eventually(std::time::Duration::from_secs(30), "the DbInventory", || async {
        match api.get_opt(name).await {
            Ok(Some(found)) => (Some(found), String::new()),
            Ok(None) => (None, "not found".into()),
            Err(e) => (None, e.to_string()),
        }
    })
    .await
}

/// A login Secret, as a user would create it (labelled as a credential).
pub async fn create_login_secret(client: &Client, ns: &str, name: &str, username: &str, password: &str) {
    crate::support::create_secret(client, ns, &crate::support::login_secret(name, username, password)).await;
}

/// A DbInstance manifest pointing at `server`, merged with `extra` spec fields.
pub fn instance(
    name: &str,
    db_type: &str,
    server: &DatabaseServer,
    secret: &str,
    extra: serde_json::Value,
) -> DbInstance {
    let mut spec = json!({
        "dbType": db_type,
        "host": server.host,
        "port": server.port,
        "credentialsSecretRef": {"name": secret},
        "tls": {"mode": "disable"},
    });
    for (k, v) in extra.as_object().expect("extra is an object") {
        spec[k] = v.clone();
    }
    serde_json::from_value(
        json!({"apiVersion": "dbfleet.io/v1alpha1", "kind": "DbInstance", "metadata": {"name": name}, "spec": spec}),
    )
    .expect("a valid DbInstance")
}

pub async fn create(api: &Api<DbInstance>, instance: &DbInstance) -> DbInstance {
    api.create(&PostParams::default(), instance)
        .await
        .expect("create DbInstance")
}

/// Everything the tests' in-process controllers log, at debug level.
pub fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let make_writer = move || LogWriter(writer.clone());
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug,hyper=info,h2=info,rustls=info,tower=info")
            .with_writer(make_writer)
            .with_ansi(false)
            .try_init();
        buffer
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
