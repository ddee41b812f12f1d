//! Probing an instance and recording the outcome in its status — the one
//! path shared by the DbInstance controller (on its schedule), the
//! DbSyncSession controller and the façade's actions (on demand), so all
//! three write the same status under the same field manager.

pub mod allowed_hosts;
pub mod credentials;
pub mod plan;
pub mod status;

use std::time::SystemTime;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};

use crate::crd::{DbInstance, DbInstanceStatus, DbTag};
use crate::probe::{self, Accounts, Capacity, ConnectionInfo, ProbeError, Target, Timeouts};
pub use credentials::{Credentials, CredentialsError};
pub use plan::{Ops, Requests};

/// The field manager of every status write (SPEC §2.1).
pub const FIELD_MANAGER: &str = "dbfleet-controller";

/// Knobs shared by every path that probes.
#[derive(Clone, Copy, Debug)]
pub struct ProbeSettings {
    pub timeouts: Timeouts,
    /// How many accounts `status.accounts.items` keeps.
    pub account_items_cap: usize,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            timeouts: Timeouts::default(),
            account_items_cap: probe::DEFAULT_ACCOUNT_ITEMS_CAP,
        }
    }
}

/// The probes that ran in one go, with their results.
#[derive(Clone, Debug)]
pub struct ProbeRun {
    pub at: SystemTime,
    pub connection: Option<Result<ConnectionInfo, ProbeError>>,
    pub capacity: Option<Result<Capacity, ProbeError>>,
    pub accounts: Option<Result<Accounts, ProbeError>>,
}

/// Runs the probes in `ops`. When the connection test fails, the other
/// probes are not attempted and carry its error: they could not have
/// connected either.
pub async fn run_probes(target: &Target, ops: Ops) -> ProbeRun {
    let at = SystemTime::now();
    let mut run = ProbeRun {
        at,
        connection: None,
        capacity: None,
        accounts: None,
    };
    if ops.connection {
        let result = probe::test_connection(target).await;
        if let Err(error) = &result {
            run.capacity = ops.capacity.then(|| Err(error.clone()));
            run.accounts = ops.accounts.then(|| Err(error.clone()));
            run.connection = Some(result);
            return run;
        }
        run.connection = Some(result);
    }
    let capacity = async {
        if ops.capacity {
            Some(probe::collect_capacity(target).await)
        } else {
            None
        }
    };
    let accounts = async {
        if ops.accounts {
            Some(probe::collect_accounts(target).await)
        } else {
            None
        }
    };
    (run.capacity, run.accounts) = tokio::join!(capacity, accounts);
    run
}

/// The probe target for an instance with resolved credentials. The host is
/// the one the credentials were approved for (`credentials::resolve` took it
/// from the same spec), so a login never goes anywhere else.
pub fn target(instance: &DbInstance, credentials: &Credentials, settings: &ProbeSettings) -> Target {
    let spec = &instance.spec;
    let port = u16::try_from(spec.port).unwrap_or(0);
    let mut target = Target::new(
        spec.db_type,
        credentials.host().to_string(),
        port,
        credentials.username.clone(),
        credentials.password.clone(),
    )
    .with_tls(probe::TlsSettings {
        mode: spec.tls.mode,
        ca_pem: credentials.ca_pem.clone(),
    })
    .with_timeouts(settings.timeouts);
    target.database = spec.database_name.clone();
    target
}

/// Fingerprint of everything a probe depends on besides the schedule.
pub fn inputs_fingerprint(instance: &DbInstance, credentials: Option<&Credentials>) -> String {
    let generation = instance.metadata.generation.unwrap_or(0);
    match credentials {
        Some(c) => format!("g{generation}/s{}", c.fingerprint),
        None => format!("g{generation}"),
    }
}

/// Tags the instance names that do not exist.
pub fn missing_tags(instance: &DbInstance, exists: impl Fn(&str) -> bool) -> Vec<String> {
    instance.spec.tags.iter().filter(|t| !exists(t)).cloned().collect()
}

/// Writes `status` as the whole status subresource, by server-side apply.
pub async fn write_status(api: &Api<DbInstance>, name: &str, status: &DbInstanceStatus) -> kube::Result<DbInstance> {
    let patch = serde_json::json!({
        "apiVersion": "dbfleet.io/v1alpha1",
        "kind": "DbInstance",
        "status": status,
    });
    api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await
}

/// Reads the Secret `name` the way dbfleet may: its metadata first, and its
/// data only when it opted in with a label, so the values of other Secrets
/// are never fetched. A Secret that did not opt in comes back without data,
/// for `credentials::resolve` to refuse by name (`SecretNotLabelled`).
pub async fn read_secret(api: &Api<Secret>, name: &str) -> kube::Result<Option<Secret>> {
    let Some(meta) = api.get_metadata_opt(name).await? else {
        return Ok(None);
    };
    if credentials::opted_in(&meta.metadata) {
        return api.get_opt(name).await;
    }
    Ok(Some(Secret {
        metadata: meta.metadata,
        ..Default::default()
    }))
}

/// [`read_secret`] for every Secret `spec` refers to (those that exist).
pub async fn read_referenced_secrets(
    api: &Api<Secret>,
    spec: &crate::crd::DbInstanceSpec,
) -> kube::Result<Vec<Secret>> {
    let mut fetched = Vec::new();
    for name in credentials::referenced_secrets(spec) {
        fetched.extend(read_secret(api, name).await?);
    }
    Ok(fetched)
}

/// What an on-demand run produced.
#[derive(Debug)]
pub struct RunReport {
    pub run: ProbeRun,
    /// The instance as stored after its status was written.
    pub instance: DbInstance,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// Probes `instance` now and writes the outcome into its status, exactly as
/// the controller would (the façade's actions use this). Failing probes are
/// part of the report, not errors; unresolvable credentials are recorded in
/// the status and returned as an error.
pub async fn run_now(
    client: &Client,
    instance: &DbInstance,
    ops: Ops,
    settings: &ProbeSettings,
) -> Result<RunReport, RunError> {
    let namespace = instance.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let fetched = read_referenced_secrets(&secrets, &instance.spec).await?;
    let resolved = credentials::resolve(&instance.spec, |name| {
        fetched.iter().find(|s| s.metadata.name.as_deref() == Some(name))
    });
    let tags: Api<DbTag> = Api::namespaced(client.clone(), &namespace);
    let mut missing = Vec::new();
    for tag in &instance.spec.tags {
        if tags.get_opt(tag).await?.is_none() {
            missing.push(tag.clone());
        }
    }
    let instances: Api<DbInstance> = Api::namespaced(client.clone(), &namespace);
    let previous = instance.status.clone().unwrap_or_default();
    let requests = Requests::from_annotations(instance.metadata.annotations.as_ref());
    let credentials = match resolved {
        Ok(credentials) => credentials,
        Err(error) => {
            let observation = status::Observation {
                now: SystemTime::now(),
                generation: instance.metadata.generation,
                credentials: Err(&error),
                missing_tags: &missing,
                run: None,
                requests: &requests,
                inputs: &inputs_fingerprint(instance, None),
                account_items_cap: settings.account_items_cap,
            };
            write_status(
                &instances,
                &instance.name_any(),
                &status::observed(&previous, &observation),
            )
            .await?;
            return Err(error.into());
        }
    };
    let run = run_probes(&target(instance, &credentials, settings), ops).await;
    let observation = status::Observation {
        now: run.at,
        generation: instance.metadata.generation,
        credentials: Ok(()),
        missing_tags: &missing,
        run: Some(&run),
        requests: &requests,
        inputs: &inputs_fingerprint(instance, Some(&credentials)),
        account_items_cap: settings.account_items_cap,
    };
    let next = status::observed(&previous, &observation);
    let instance = write_status(&instances, &instance.name_any(), &next).await?;
    Ok(RunReport { run, instance })
}
