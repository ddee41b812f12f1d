//! `DbInstance`: one existing database server in the inventory (SPEC §1.1).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::bounds;
use super::schema::{DNS1123_LABEL, DNS1123_SUBDOMAIN, GO_DURATION, HOSTNAME_OR_IP, SECRET_KEY};

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "dbfleet.io",
    version = "v1alpha1",
    kind = "DbInstance",
    plural = "dbinstances",
    shortname = "dbi",
    category = "dbfleet",
    namespaced,
    status = "DbInstanceStatus",
    derive = "PartialEq",
    doc = "An existing PostgreSQL or MySQL/MariaDB server that dbfleet tests and inventories.",
    printcolumn(name = "ID", type_ = "string", json_path = ".metadata.labels.dbfleet\\.io/id"),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.dbType"),
    printcolumn(name = "Host", type_ = "string", json_path = ".spec.host"),
    printcolumn(name = "Port", type_ = "integer", json_path = ".spec.port"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.connection.serverVersion"),
    printcolumn(
        name = "Size",
        type_ = "integer",
        json_path = ".status.capacity.totalSizeBytes",
        description = "Total size of all databases in bytes"
    ),
    printcolumn(name = "Accounts", type_ = "integer", json_path = ".status.accounts.count"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct DbInstanceSpec {
    /// Wire protocol of the server; MariaDB speaks `mysql`.
    pub db_type: DbType,

    /// Hostname or IP address of the server.
    #[schemars(length(min = 1, max = 253), regex(pattern = HOSTNAME_OR_IP))]
    pub host: String,

    /// TCP port of the server.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Database to connect to (PostgreSQL defaults to `postgres`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub database_name: Option<String>,

    /// Secret in the same namespace holding the login dbfleet uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<CredentialsSecretRef>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,

    /// An inactive instance is kept in the inventory but never probed.
    #[serde(default = "super::default_true")]
    pub is_active: bool,

    /// Names of DbTags in the same namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(length(min = 1, max = 63), regex(pattern = DNS1123_LABEL)),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub tags: Vec<String>,

    #[serde(default)]
    pub tls: TlsConfig,

    /// How often each probe runs.
    #[serde(default)]
    pub intervals: Intervals,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DbType {
    Mysql,
    Postgresql,
}

impl DbType {
    pub fn as_str(self) -> &'static str {
        match self {
            DbType::Mysql => "mysql",
            DbType::Postgresql => "postgresql",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS1123_SUBDOMAIN))]
    pub name: String,
    #[serde(default = "default_username_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY))]
    pub username_key: String,
    #[serde(default = "default_password_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY))]
    pub password_key: String,
}

fn default_username_key() -> String {
    "username".into()
}
fn default_password_key() -> String {
    "password".into()
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.caSecretRef) || self.mode == 'verify-full'")
    .message("caSecretRef is only used with mode verify-full")
    .field_path(".caSecretRef"))]
pub struct TlsConfig {
    #[serde(default)]
    pub mode: TlsMode,
    /// CA bundle that signs the server's certificate (for `verify-full`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<CaSecretRef>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Never use TLS.
    Disable,
    /// Use TLS when the server offers it, without verifying the certificate.
    #[default]
    Prefer,
    /// Always use TLS, without verifying the certificate.
    Require,
    /// Always use TLS and verify the certificate chain and host name.
    VerifyFull,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaSecretRef {
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS1123_SUBDOMAIN))]
    pub name: String,
    /// Key of the PEM bundle in the Secret.
    #[serde(default = "default_ca_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY))]
    pub key: String,
}

fn default_ca_key() -> String {
    "ca.crt".into()
}

/// Probe intervals as Go durations (`30s`, `15m`, `1h30m`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Intervals {
    #[serde(default = "default_connection_interval")]
    #[schemars(length(max = 32), regex(pattern = GO_DURATION))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s')").message("must be at least 1s"))]
    pub connection: String,
    #[serde(default = "default_capacity_interval")]
    #[schemars(length(max = 32), regex(pattern = GO_DURATION))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s')").message("must be at least 1s"))]
    pub capacity: String,
    #[serde(default = "default_accounts_interval")]
    #[schemars(length(max = 32), regex(pattern = GO_DURATION))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s')").message("must be at least 1s"))]
    pub accounts: String,
}

fn default_connection_interval() -> String {
    "60s".into()
}
fn default_capacity_interval() -> String {
    "1h".into()
}
fn default_accounts_interval() -> String {
    "6h".into()
}

impl Default for Intervals {
    fn default() -> Self {
        Intervals {
            connection: default_connection_interval(),
            capacity: default_capacity_interval(),
            accounts: default_accounts_interval(),
        }
    }
}

/// Written only by dbfleet, through the status subresource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DbInstanceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Connected`, `CredentialsResolved`, `TagsResolved`,
    /// `CapacitySynced`, `AccountsSynced`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacityStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<AccountsStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recycled_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retained_until: Option<Time>,
    /// The controller's bookkeeping for the probe schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<ProbeSchedule>,
}

/// When each probe last ran and on what inputs, so the controller knows what
/// is due without keeping state of its own.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeSchedule {
    /// Fingerprint of what the last probes used (spec generation, Secret
    /// versions); when it changes every probe runs at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<String>,
    #[serde(default)]
    pub connection: ProbeRecord,
    #[serde(default)]
    pub capacity: ProbeRecord,
    #[serde(default)]
    pub accounts: ProbeRecord,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeRecord {
    /// The last run, successful or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempted_at: Option<Time>,
    /// The value of the request annotation that run answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_request: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum Phase {
    Pending,
    Ready,
    Failed,
    Inactive,
    Recycled,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionStatus {
    pub status: ConnectionState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionState {
    Connected,
    Failed,
    Unknown,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapacityStatus {
    pub total_size_bytes: u64,
    pub database_count: u32,
    /// The largest databases, capped (default 500) so the object stays far
    /// below the API server's size limit; `truncated` says when. The total
    /// and the count cover every database.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<DatabaseCapacity>,
    /// There are more databases than `databases` lists.
    #[serde(default)]
    pub truncated: bool,
    pub collected_at: Time,
    pub duration_ms: u64,
}

impl CapacityStatus {
    /// Keeps the `cap` largest databases (ties by name), listed by name.
    pub fn capped(mut self, cap: usize) -> Self {
        if self.databases.len() > cap {
            self.databases
                .sort_by(|a, b| b.size_bytes.cmp(&a.size_bytes).then_with(|| a.name.cmp(&b.name)));
            self.truncated = bounds::truncate(&mut self.databases, cap);
            self.databases.sort_by(|a, b| a.name.cmp(&b.name));
        }
        self
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseCapacity {
    pub name: String,
    pub size_bytes: u64,
    /// Absent when the monitoring login may not enter the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_count: Option<u32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountsStatus {
    pub count: u32,
    pub synced_at: Time,
    pub duration_ms: u64,
    pub superuser_count: u32,
    /// Capped (default 500) so the object stays far below the API server's
    /// size limit; `truncated` says when.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<AccountItem>,
    #[serde(default)]
    pub truncated: bool,
    #[serde(default)]
    pub changes: AccountChanges,
}

impl AccountsStatus {
    /// Caps each listed account's database list at `cap` names.
    pub fn with_capped_databases(mut self, cap: usize) -> Self {
        for item in &mut self.items {
            item.cap_databases(cap);
        }
        self
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountItem {
    pub name: String,
    /// The host part of a MySQL `user@host` account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub superuser: bool,
    pub can_login: bool,
    pub locked: bool,
    /// The password has expired (PostgreSQL `VALID UNTIL` in the past,
    /// MySQL `PASSWORD EXPIRE`).
    #[serde(default)]
    pub expired: bool,
    /// Databases the account has privileges on, capped (default 16);
    /// `databasesTruncated` says when.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<String>,
    /// The account has privileges on more databases than `databases`
    /// lists.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub databases_truncated: bool,
}

impl AccountItem {
    /// Keeps the first `cap` database names (the probes sort them).
    pub fn cap_databases(&mut self, cap: usize) {
        if bounds::truncate(&mut self.databases, cap) {
            self.databases_truncated = true;
        }
    }
}

/// How the last account sync differed from the one before it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountChanges {
    pub added: u32,
    pub removed: u32,
    pub modified: u32,
}
