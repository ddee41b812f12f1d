//! `DbInstance`: one existing database server in the inventory (SPEC §1.1).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::schema::{
    DNS1123_LABEL, DNS1123_SUBDOMAIN, GO_DURATION, HOSTNAME_OR_IP, MAX_DATABASE_NAME_LEN, MAX_DESCRIPTION_LEN,
    MAX_HOST_LEN, MAX_LABEL_LEN, MAX_PORT, MAX_TAGS_PER_INSTANCE, MIN_PORT, SECRET_KEY,
};

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
        name = "Role",
        type_ = "string",
        json_path = ".status.replication.role",
        priority = 1,
        description = "primary, replica or standalone"
    ),
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".status.replication.clusterId",
        priority = 1,
        description = "The replication cluster: the same for a primary and its replicas"
    ),
    printcolumn(
        name = "Version Support",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"VersionSupported\")].reason",
        priority = 1,
        description = "Supported, EndingSoon, EndOfLife, or why it is not known"
    ),
    printcolumn(
        name = "End Of Life",
        type_ = "string",
        json_path = ".status.release.endOfLife",
        priority = 1,
        description = "When the vendor stops fixing the server's release line"
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
    #[schemars(length(min = 1, max = MAX_HOST_LEN), regex(pattern = HOSTNAME_OR_IP))]
    pub host: String,

    /// TCP port of the server, 1 to 65535 (PostgreSQL usually listens on
    /// 5432, MySQL and MariaDB on 3306).
    #[schemars(range(min = MIN_PORT, max = MAX_PORT))]
    pub port: i32,

    /// Database to connect to. Default: `postgres` on PostgreSQL; none on
    /// MySQL, which needs no database to log in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_DATABASE_NAME_LEN))]
    pub database_name: Option<String>,

    /// Secret in the same namespace holding the login dbfleet probes with.
    /// Without it the instance is kept but cannot be probed
    /// (`CredentialsResolved=False`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<CredentialsSecretRef>,

    /// Free text for people, at most 1024 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_DESCRIPTION_LEN))]
    pub description: Option<String>,

    /// Whether dbfleet probes the instance. An inactive instance is kept in
    /// the inventory but never connected to. Default: true.
    #[serde(default = "super::default_true")]
    pub is_active: bool,

    /// Names of DbTags in the same namespace, at most 64, each a DNS-1123
    /// label. A missing tag sets `TagsResolved=False`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = MAX_TAGS_PER_INSTANCE),
        inner(length(min = 1, max = MAX_LABEL_LEN), regex(pattern = DNS1123_LABEL)),
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

    /// What the server may hold, for the forecast of when it is full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacitySpec>,
}

/// The space a server may fill. The disk cannot be read through SQL, so
/// the limit is the user's: a quota, or the disk size the DBA knows.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapacitySpec {
    /// Bytes the user databases may take in total; with a growth rate it
    /// gives `status.capacityGrowth.daysUntilFull` and the `CapacityOK`
    /// condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub limit_bytes: Option<u64>,
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
/// subresource. A summary that stays small (a few KiB) whatever the server
/// holds: the databases and accounts themselves are in the `DbInventory` of
/// the same name. Written when something meaningful changes, and otherwise
/// at most once per `--status-report-interval` (default 10m) to refresh the
/// freshness timestamps.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DbInstanceStatus {
    /// The `metadata.generation` of the spec this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Connected`, `CredentialsResolved`, `TagsResolved`,
    /// `CapacitySynced`, `AccountsSynced`, `VersionSupported` and
    /// `LoginPrivileges`, each with a machine-readable reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The last connection test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionStatus>,
    /// Totals of the last successful collection of database sizes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacityStatus>,
    /// Counts of the last successful account sync.
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
    /// The request annotations (`dbfleet.io/*-requested-at`) whose runs are
    /// recorded in this status: a client that set one waits until its value
    /// shows up here, then reads the result. Values longer than 64
    /// characters are kept as `sha256:<digest>`.
    #[serde(default, skip_serializing_if = "HandledRequests::is_empty")]
    pub handled_requests: HandledRequests,
    /// The name of the `DbInventory` holding this instance's databases and
    /// accounts (the instance's own name), once one was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub inventory: Option<String>,
    /// When each probe last ran and last succeeded, refreshed at most once
    /// per report interval while nothing else changes. The façade reads it
    /// to say whether the instance is stale (`docs/facade.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freshness: Option<Freshness>,
    /// Replication role, cluster and delay, read with every connection
    /// test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationStatus>,
    /// The server's release line and its end of life (the
    /// `VersionSupported` condition says what that means today).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleaseStatus>,
    /// How fast the server grows and when it is full, from the capacity
    /// samples in the DbHistory of the same name; refreshed when a sample
    /// is added or the limit changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_growth: Option<CapacityGrowth>,
    /// Hygiene findings of the last successful account sync, by severity
    /// (the list is in the DbInventory's `findings`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub findings: Option<super::findings::FindingCounts>,
}

/// The least-squares fit over the capacity samples, and the forecast it
/// gives against `spec.capacity.limitBytes`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapacityGrowth {
    /// Samples the fit was made over.
    pub samples: u32,
    /// When the newest sample was taken.
    pub last_sample_at: Time,
    /// The newest sample's total size, in bytes.
    pub last_total_bytes: u64,
    /// Growth in bytes per day (negative when shrinking); absent, with
    /// `reason`, when there are too few samples or the fit is poor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_day: Option<i64>,
    /// R² of the fit (0 to 1, three decimals); absent with too few samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r_squared: Option<f64>,
    /// Why there is no growth rate: `TooFewSamples` or `PoorFit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub reason: Option<String>,
    /// The limit the forecast is against (`spec.capacity.limitBytes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_bytes: Option<u64>,
    /// Days from the newest sample until the total reaches the limit at
    /// this rate (one decimal; 0 when it already has); absent without a
    /// limit or a growth rate, or when the server is not growing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days_until_full: Option<f64>,
    /// When the total reaches the limit at this rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_at: Option<Time>,
}

/// When each probe kind last ran and last succeeded.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Freshness {
    /// Logins: a connection test, or a collection's login.
    #[serde(default)]
    pub connection: ProbeTimes,
    /// Collections of database sizes.
    #[serde(default)]
    pub capacity: ProbeTimes,
    /// Account syncs.
    #[serde(default)]
    pub accounts: ProbeTimes,
    /// The controller's `--status-report-interval` in seconds: the times
    /// here may lag the truth by this much. Default 0: unknown, and readers
    /// assume the default interval (600).
    #[serde(default)]
    pub report_interval_seconds: u64,
}

/// The last attempt and the last success of one probe kind (RFC 3339).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeTimes {
    /// When the probe last ran, whatever its result (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<Time>,
    /// When it last succeeded (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<Time>,
}

/// Longest `status.replication.clusterId`, in characters.
pub const MAX_CLUSTER_ID_LEN: usize = 320;
/// Longest `status.replication.source` (a host name and a port).
pub const MAX_REPLICATION_ADDRESS_LEN: usize = 300;
/// Longest name of one of `status.replication.replicas`; with at most
/// `probe::replication::MAX_REPLICAS_LISTED` of them the list stays near
/// 1 KiB, whatever the primary serves.
pub const MAX_REPLICA_NAME_LEN: usize = 128;
/// Longest `status.replication.serverUuid` (a uuid has 36 characters).
pub const MAX_SERVER_UUID_LEN: usize = 64;

/// What the last connection test read about replication. The delay is
/// written at report granularity, like the latency: a newer value waits
/// for another change or the report interval (Prometheus has every one).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationStatus {
    /// `primary` (sends to a replica now), `replica` (in recovery, or
    /// replication to it configured) or `standalone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// The same for a primary and its replicas: `postgresql:<system
    /// identifier>`, `mysql:<server_uuid of the source>` on MySQL, or
    /// `mariadb:<server_id of the source>@<its host>:<port>` on MariaDB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_CLUSTER_ID_LEN))]
    pub cluster_id: Option<String>,
    /// A replica's source as the replica names it (`host:port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_REPLICATION_ADDRESS_LEN))]
    pub source: Option<String>,
    /// A replica's state: `streaming`, `idle` (PostgreSQL: no transaction
    /// replayed since it started, so no delay to measure) or `stopped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_state: Option<LagState>,
    /// A streaming replica's delay behind its source, in whole seconds;
    /// absent when `lagState` is `idle` or `stopped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<u64>,
    /// MySQL's `read_only`; PostgreSQL: in recovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// MySQL and MariaDB `server_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<u32>,
    /// MySQL's `server_uuid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_SERVER_UUID_LEN))]
    pub server_uuid: Option<String>,
    /// How many replicas this server sends to now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_count: Option<u32>,
    /// The first of them (PostgreSQL `application_name@address`, MySQL the
    /// replica's host), sorted; `replicaCount` counts them all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(length(max = MAX_REPLICA_NAME_LEN)))]
    pub replicas: Vec<String>,
    /// Why the replication state could not be read (a missing grant); the
    /// fields above are then the last ones read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub message: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Replica,
    Standalone,
}

impl Role {
    /// As serialized: `primary`, `replica`, `standalone`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
            Role::Standalone => "standalone",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum LagState {
    Streaming,
    Idle,
    Stopped,
}

impl LagState {
    /// As serialized: `streaming`, `idle`, `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            LagState::Streaming => "streaming",
            LagState::Idle => "idle",
            LagState::Stopped => "stopped",
        }
    }
}

/// A release line and when its vendor stops fixing it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseStatus {
    /// The line, e.g. `PostgreSQL 15`, `MySQL 8.0`, `MariaDB 10.11`.
    #[schemars(length(max = 64))]
    pub line: String,
    /// Its end of life (`YYYY-MM-DD`), from dbfleet's table or the site's
    /// ConfigMap; absent when neither knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10))]
    pub end_of_life: Option<String>,
}

/// The value of each request annotation that a run answered.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HandledRequests {
    /// The `dbfleet.io/test-connection-requested-at` value last answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub connection: Option<String>,
    /// The `dbfleet.io/sync-capacity-requested-at` value last answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub capacity: Option<String>,
    /// The `dbfleet.io/sync-accounts-requested-at` value last answered.
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

impl Phase {
    /// Lowercase, as the REST contract shows it (`ready`).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Ready => "ready",
            Phase::Failed => "failed",
            Phase::Inactive => "inactive",
            Phase::Recycled => "recycled",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionStatus {
    /// `connected`, `failed` or `unknown` (not tested yet).
    pub status: ConnectionState,
    /// When the connection was last tested (RFC 3339); refreshed at most
    /// once per report interval while nothing else changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked_at: Option<Time>,
    /// When `status`, `reason` or the server version last changed
    /// (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_changed_at: Option<Time>,
    /// Time from the start of the connection to the answer of one query,
    /// in milliseconds, of the test written last (Prometheus has every
    /// test's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// The version banner exactly as the server reports it, e.g.
    /// `15.18 (Debian 15.18-0+deb12u1)` or `10.11.19-MariaDB-0+deb12u1`;
    /// kept from the last successful test while the server is down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub server_version: Option<String>,
    /// The version without the distribution's build suffix, e.g. `15.18` or
    /// `10.11.19-MariaDB`; derived from `serverVersion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub version: Option<String>,
    /// Why the last test failed (`ConnectionRefused`,
    /// `AuthenticationFailed`, `InsecureAuthentication`, …); absent when it
    /// succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub reason: Option<String>,
    /// The failure's message, at most 1,024 bytes; absent when it
    /// succeeded.
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

impl ConnectionState {
    /// As serialized: `connected`, `failed`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Connected => "connected",
            ConnectionState::Failed => "failed",
            ConnectionState::Unknown => "unknown",
        }
    }
}

/// Totals of the last successful capacity collection; the per-database
/// list is in the `DbInventory`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapacityStatus {
    /// Total size of the user databases, in bytes (MySQL system schemas are
    /// not counted). Moves only when a database's size moved beyond the
    /// inventory threshold.
    pub total_size_bytes: u64,
    /// `totalSizeBytes` for people, in binary units (`1.4 GiB`, `512 MiB`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub total_size: Option<String>,
    /// How many user databases the server holds.
    pub database_count: u32,
    /// When the sizes were last collected successfully (RFC 3339);
    /// refreshed at most once per report interval while the totals stay
    /// the same.
    pub collected_at: Time,
    /// How long that collection took, in milliseconds.
    pub duration_ms: u64,
}

/// Counts of the last successful account sync; the accounts are in the
/// `DbInventory`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountsStatus {
    /// How many accounts (PostgreSQL roles, MySQL `user@host` pairs) exist.
    pub count: u32,
    /// When the accounts were last synced successfully (RFC 3339);
    /// refreshed at most once per report interval while nothing changes.
    pub synced_at: Time,
    /// How long that sync took, in milliseconds.
    pub duration_ms: u64,
    /// How many accounts are superusers.
    pub superuser_count: u32,
    /// How the account set last changed. Default: no changes.
    #[serde(default)]
    pub changes: AccountChanges,
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
