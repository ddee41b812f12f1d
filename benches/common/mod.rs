//! Shared by the benchmark programs (`#[path = "common/mod.rs"]`).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use dbfleet::crd::keys::CREDENTIAL_LABEL;
use dbfleet_testenv::DatabaseServer;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

/// A labelled credential Secret with `server`'s admin login.
pub async fn login_secret(client: &Client, ns: &str, name: &str, server: &DatabaseServer) -> Result<()> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([(CREDENTIAL_LABEL.to_string(), "true".to_string())])),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([
            ("username".into(), server.user.clone()),
            ("password".into(), server.password.clone()),
        ])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await?;
    Ok(())
}

/// A `/proc/<pid>/status` line's value in KiB (`VmRSS:`, `VmHWM:`).
pub fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with(key)).context(key.to_string())?;
    Ok(line.split_whitespace().nth(1).context("value")?.parse()?)
}
