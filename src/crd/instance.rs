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
    printcolumn(
        name = "ID",
        type_ = "string",
        json_path = ".metadata.labels.dbfleet\\.io/id",
        description = "The integer id the REST API uses"
    ),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.dbType"),
    printcolumn(name = "Host", type_ = "string", json_path = ".spec.host"),
    printcolumn(name = "Port", type_ = "integer", json_path = ".spec.port"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.connection.version",
        description = "Server version without the distribution's build suffix"
    ),
    printcolumn(
        name = "Size",
        type_ = "string",
        json_path = ".status.capacity.totalSize",
        description = "Total size of the user databases, in binary units"
    ),
    printcolumn(name = "Accounts", type_ = "integer", json_path = ".status.accounts.count"),
    printcolumn(
        name = "Checked",
        type_ = "date",
        json_path = ".status.connection.lastCheckedAt",
        description = "When the connection was last tested"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(name = "TLS", type_ = "string", json_path = ".spec.tls.mode", priority = 1),
    printcolumn(
        name = "Databases",
        type_ = "integer",
        json_path = ".status.capacity.databaseCount",
        priority = 1
    ),
    printcolumn(
        name = "Capacity Synced",
        type_ = "date",
        json_path = ".status.capacity.collectedAt",
        priority = 1,
        description = "When sizes were last collected"
    ),
    printcolumn(
        name = "Accounts Synced",
        type_ = "date",
        json_path = ".status.accounts.syncedAt",
        priority = 1,
        description = "When accounts were last synced"
    ),
    printcolumn(
        name = "Server Version",
        type_ = "string",
        json_path = ".status.connection.serverVersion",
        priority = 1,
        description = "The version banner as the server reports it"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = 1
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
/// What dbfleet needs to reach and log in to one existing database server,
/// and how often to probe it.
pub struct DbInstanceSpec {
    /// Wire protocol of the server: `mysql` (MySQL and MariaDB) or
    /// `postgresql`.
    pub db_type: DbType,

    /// Host name or IP address of the server, 1 to 253 characters.
    #[schemars(length(min = 1, max = 253), regex(pattern = HOSTNAME_OR_IP))]
    pub host: String,

    /// TCP port of the server, 1 to 65535 (PostgreSQL usually listens on
    /// 5432, MySQL and MariaDB on 3306).
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,

    /// Database to connect to. Default: `postgres` on PostgreSQL; none on
    /// MySQL, which needs no database to log in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub database_name: Option<String>,

    /// Secret in the same namespace holding the login dbfleet probes with.
    /// Without it the instance is kept but cannot be probed
    /// (`CredentialsResolved=False`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<CredentialsSecretRef>,

    /// Free text for people, at most 1024 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,

    /// Whether dbfleet probes the instance. An inactive instance is kept in
    /// the inventory but never connected to. Default: true.
    #[serde(default = "super::default_true")]
    pub is_active: bool,

    /// Names of DbTags in the same namespace, at most 64, each a DNS-1123
    /// label. A missing tag sets `TagsResolved=False`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(length(min = 1, max = 63), regex(pattern = DNS1123_LABEL)),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub tags: Vec<String>,

    /// Whether and how the connection is encrypted and the server verified.
    /// Default: mode `prefer`.
    #[serde(default)]
    pub tls: TlsConfig,

    /// How often each probe runs. Default: connection every 60s, capacity
    /// every 1h, accounts every 6h.
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

/// Where the login is: a Secret with a user name and a password key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    /// Name of the Secret, in the DbInstance's namespace.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS1123_SUBDOMAIN))]
    pub name: String,
    /// Key of the user name in the Secret's data. Default: `username`.
    #[serde(default = "default_username_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY))]
    pub username_key: String,
    /// Key of the password in the Secret's data. Default: `password`.
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
    /// `disable`: never use TLS. `prefer`: use TLS when the server offers
    /// it, without verifying its certificate. `require`: always use TLS,
    /// without verifying the certificate. `verify-full`: always use TLS and
    /// verify the certificate chain against `caSecretRef` and the host
    /// name. Default: `prefer`.
    #[serde(default)]
    pub mode: TlsMode,
    /// The CA bundle that signs the server's certificate; only with mode
    /// `verify-full`, where it is required.
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

/// Where the CA bundle is: a key of a Secret holding PEM certificates.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaSecretRef {
    /// Name of the Secret, in the DbInstance's namespace.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS1123_SUBDOMAIN))]
    pub name: String,
    /// Key of the PEM bundle in the Secret's data. Default: `ca.crt`.
    #[serde(default = "default_ca_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY))]
    pub key: String,
}

fn default_ca_key() -> String {
    "ca.crt".into()
}

/// Probe intervals as Go durations (`30s`, `15m`, `1h30m`), each at least
/// `1s`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Intervals {
    /// How often the connection is tested (a Go duration, at least `1s`).
    /// Default: `60s`.
    #[serde(default = "default_connection_interval")]
    #[schemars(length(max = 32), regex(pattern = GO_DURATION))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s')").message("must be at least 1s"))]
    pub connection: String,
    /// How often database sizes are collected (a Go duration, at least
    /// `1s`). Default: `1h`.
    #[serde(default = "default_capacity_interval")]
    #[schemars(length(max = 32), regex(pattern = GO_DURATION))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s')").message("must be at least 1s"))]
    pub capacity: String,
    /// How often accounts are synced (a Go duration, at least `1s`).
    /// Default: `6h`.
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

/// What dbfleet observed; written only by dbfleet, through the status
/// subresource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DbInstanceStatus {
    /// The `metadata.generation` of the spec this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Connected`, `CredentialsResolved`, `TagsResolved`,
    /// `CapacitySynced` and `AccountsSynced`, each with a machine-readable
    /// reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The last connection test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionStatus>,
    /// The last successful collection of database sizes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacityStatus>,
    /// The last successful account sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<AccountsStatus>,
    /// `Pending` (not tested yet), `Ready`, `Failed`, `Inactive`
    /// (`spec.isActive` is false) or `Recycled` (in the recycle bin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// When the instance was moved to the recycle bin (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recycled_at: Option<Time>,
    /// When a recycled instance is deleted for good: `recycledAt` plus the
    /// retention (`--retention`, default 30 days), RFC 3339.
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
    /// The connection test's last run.
    #[serde(default)]
    pub connection: ProbeRecord,
    /// The capacity collection's last run.
    #[serde(default)]
    pub capacity: ProbeRecord,
    /// The account sync's last run.
    #[serde(default)]
    pub accounts: ProbeRecord,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeRecord {
    /// When the probe last ran, successful or not (RFC 3339).
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
    /// `connected`, `failed` or `unknown` (not tested yet).
    pub status: ConnectionState,
    /// When the connection was last tested (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked_at: Option<Time>,
    /// Time from the start of the connection to a completed login, in
    /// milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// The version banner exactly as the server reports it, e.g.
    /// `15.18 (Debian 15.18-0+deb12u1)` or `10.11.19-MariaDB-0+deb12u1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// The version without the distribution's build suffix, e.g. `15.18` or
    /// `10.11.19-MariaDB`; derived from `serverVersion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Why the last test failed; absent when it succeeded.
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
    /// Total size of the user databases, in bytes (MySQL system schemas are
    /// not counted).
    pub total_size_bytes: u64,
    /// `totalSizeBytes` for people, in binary units (`1.4 GiB`, `512 MiB`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_size: Option<String>,
    /// How many user databases the server holds.
    pub database_count: u32,
    /// Every user database with its size.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<DatabaseCapacity>,
    /// When the sizes were collected (RFC 3339).
    pub collected_at: Time,
    /// How long the collection took, in milliseconds.
    pub duration_ms: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseCapacity {
    /// The database's name.
    pub name: String,
    /// Its size on disk, in bytes.
    pub size_bytes: u64,
    /// How many tables it holds; absent when the monitoring login may not
    /// enter the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_count: Option<u32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountsStatus {
    /// How many accounts (PostgreSQL roles, MySQL `user@host` pairs) exist.
    pub count: u32,
    /// When the accounts were synced (RFC 3339).
    pub synced_at: Time,
    /// How long the sync took, in milliseconds.
    pub duration_ms: u64,
    /// How many accounts are superusers.
    pub superuser_count: u32,
    /// The accounts, sorted by name then host, capped (`--account-items-cap`,
    /// default 500) so the object stays far below the API server's size
    /// limit; `truncated` says when.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<AccountItem>,
    /// Whether `items` leaves accounts out. Default: false.
    #[serde(default)]
    pub truncated: bool,
    /// How this sync differed from the one before it. Default: no changes.
    #[serde(default)]
    pub changes: AccountChanges,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountItem {
    /// The account's (role's or user's) name.
    pub name: String,
    /// The host part of a MySQL `user@host` account; absent on PostgreSQL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Whether the account bypasses privilege checks (PostgreSQL
    /// `SUPERUSER`, MySQL `SUPER`).
    pub superuser: bool,
    /// Whether the account may log in (PostgreSQL `LOGIN`; false for a
    /// MySQL role).
    pub can_login: bool,
    /// Whether the account is locked (MySQL `ACCOUNT LOCK`; always false on
    /// PostgreSQL).
    pub locked: bool,
    /// Whether the password has expired (PostgreSQL `VALID UNTIL` in the
    /// past, MySQL `PASSWORD EXPIRE`). Default: false.
    #[serde(default)]
    pub expired: bool,
    /// Databases the account has privileges on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<String>,
}

/// How the last account sync differed from the one before it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountChanges {
    /// Accounts that appeared.
    pub added: u32,
    /// Accounts that disappeared.
    pub removed: u32,
    /// Accounts whose privileges or attributes changed.
    pub modified: u32,
}
