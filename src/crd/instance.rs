//! `DbInstance`: one existing database server in the inventory (SPEC §1.1).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

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

/// Written only by dbfleet, through the status subresource. A summary that
/// stays small (a few KiB) whatever the server holds: the databases and
/// accounts themselves are in the `DbInventory` of the same name. Written
/// when something meaningful changes, and otherwise at most once per
/// `--status-report-interval` to refresh the freshness timestamps.
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
    /// The request annotations (`dbfleet.io/*-requested-at`) whose runs are
    /// recorded in this status: a client that set one waits until its value
    /// shows up here, then reads the result.
    #[serde(default, skip_serializing_if = "HandledRequests::is_empty")]
    pub handled_requests: HandledRequests,
    /// The `DbInventory` holding this instance's databases and accounts
    /// (same name), once one was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub inventory: Option<String>,
}

/// The value of each request annotation that a run answered.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HandledRequests {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub connection: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub capacity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub accounts: Option<String>,
}

impl HandledRequests {
    pub fn is_empty(&self) -> bool {
        self.connection.is_none() && self.capacity.is_none() && self.accounts.is_none()
    }
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
    /// When the connection was last tested, refreshed at most once per
    /// report interval while nothing else changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked_at: Option<Time>,
    /// When `status`, the failure reason or the server version last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_changed_at: Option<Time>,
    /// Round trip of the test written last (connect, TLS, login, one
    /// query); Prometheus has every test's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// As the server reports it, e.g. `15.18 (Debian 15.18-0+deb12u1)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub server_version: Option<String>,
    /// Why the last test failed (`ConnectionRefused`, `AuthenticationFailed`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub reason: Option<String>,
    /// The failure's message, capped in length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub message: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionState {
    Connected,
    Failed,
    Unknown,
}

/// Totals of the last successful capacity collection; the per-database
/// list is in the `DbInventory`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapacityStatus {
    /// Sum of every user database's size, in bytes.
    pub total_size_bytes: u64,
    pub database_count: u32,
    /// When capacity was last collected successfully, refreshed at most
    /// once per report interval while the totals stay the same.
    pub collected_at: Time,
    /// How long that collection took, in milliseconds.
    pub duration_ms: u64,
}

/// Counts of the last successful account sync; the accounts are in the
/// `DbInventory`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountsStatus {
    pub count: u32,
    /// When accounts were last synced successfully, refreshed at most once
    /// per report interval while nothing changes.
    pub synced_at: Time,
    /// How long that sync took, in milliseconds.
    pub duration_ms: u64,
    pub superuser_count: u32,
    /// How the account set last changed.
    #[serde(default)]
    pub changes: AccountChanges,
}

/// How the last account sync differed from the one before it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountChanges {
    pub added: u32,
    pub removed: u32,
    pub modified: u32,
}
