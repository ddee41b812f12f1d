//! Command-line interface: one binary, one subcommand per role (SPEC §2.5).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::observe::budget::DEFAULT_MAX_CONCURRENT_PROBES;

#[derive(Parser, Debug)]
#[command(
    name = "dbfleet",
    version,
    about = "Inventory of existing PostgreSQL and MySQL/MariaDB servers, kept in Kubernetes"
)]
pub struct Cli {
    /// Log format; the level comes from RUST_LOG (default `info`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormatArg::Text, env = "DBFLEET_LOG_FORMAT")]
    pub log_format: LogFormatArg,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

impl From<LogFormatArg> for crate::telemetry::LogFormat {
    fn from(flag: LogFormatArg) -> Self {
        match flag {
            LogFormatArg::Text => crate::telemetry::LogFormat::Text,
            LogFormatArg::Json => crate::telemetry::LogFormat::Json,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the controllers.
    Controller(ControllerArgs),
    /// Run the controllers and the façade in one process (for a laptop).
    Run(RunArgs),
    /// Print the CustomResourceDefinitions as YAML (or write one file each).
    Crd {
        /// Write `<name>.yaml` per CRD into this directory instead of printing.
        #[arg(long)]
        output_dir: Option<PathBuf>,
    },
    /// Serve the REST façade over the custom resources of one namespace.
    Api(ApiArgs),
    /// Print the façade's OpenAPI document (JSON).
    Openapi,
}

#[derive(clap::Args, Debug)]
pub struct ApiArgs {
    /// The namespace whose DbInstances, DbTags and credentials are served.
    #[arg(long, env = "DBFLEET_NAMESPACE")]
    pub namespace: String,
    #[command(flatten)]
    pub serve: ServeArgs,
    /// How long a soft-deleted instance stays in the recycle bin (e.g. `30d`,
    /// `72h`).
    #[arg(long, env = "DBFLEET_RETENTION", default_value = "30d", value_parser = positive_duration)]
    pub retention: Duration,
    /// Bounds on ad-hoc connection tests, and on how long actions wait for
    /// the controller's answer.
    #[command(flatten)]
    pub timeouts: TimeoutArgs,
    /// Ad-hoc connection tests the façade runs at once (its only probes);
    /// a request waits a bounded time for a slot, then answers 503
    /// `PROBES_BUSY`.
    #[arg(long, default_value_t = DEFAULT_MAX_CONCURRENT_PROBES, value_parser = positive_count, env = "DBFLEET_MAX_CONCURRENT_PROBES")]
    pub max_concurrent_probes: usize,
}

/// Bounds on every probe, by the controller or the façade.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct TimeoutArgs {
    /// Bound on name resolution, TCP, TLS and login of every probe.
    #[arg(long, default_value = "5s", value_parser = positive_duration, env = "DBFLEET_CONNECT_TIMEOUT")]
    pub connect_timeout: Duration,
    /// Bound on one capacity collection or account sync after the login.
    #[arg(long, default_value = "30s", value_parser = positive_duration, env = "DBFLEET_OPERATION_TIMEOUT")]
    pub operation_timeout: Duration,
}

impl From<TimeoutArgs> for crate::probe::Timeouts {
    fn from(args: TimeoutArgs) -> Self {
        crate::probe::Timeouts {
            connect: args.connect_timeout,
            operation: args.operation_timeout,
        }
    }
}

/// How the façade serves HTTP.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on (the API, `/healthz`, `/readyz`, `/metrics`).
    #[arg(long, env = "DBFLEET_API_LISTEN", default_value = "0.0.0.0:8000")]
    pub listen: SocketAddr,
    /// `kubernetes` (TokenReview + RBAC) or `disabled` (laptop only: binds
    /// to loopback and lets everyone do everything).
    #[arg(long, env = "DBFLEET_API_AUTH", value_enum, default_value_t = AuthArg::Kubernetes)]
    pub auth: AuthArg,
    /// TokenReviews of invalid tokens one client address (the TCP peer:
    /// behind a proxy, the proxy) may cause per minute; beyond that, a
    /// token the façade does not know is answered 429 with Retry-After.
    #[arg(long, default_value_t = NonZeroU32::new(60).expect("non-zero"), env = "DBFLEET_FAILED_TOKEN_REVIEWS_PER_MINUTE")]
    pub failed_token_reviews_per_minute: NonZeroU32,
    /// How many of those may come at once.
    #[arg(long, default_value_t = NonZeroU32::new(20).expect("non-zero"), env = "DBFLEET_FAILED_TOKEN_REVIEW_BURST")]
    pub failed_token_review_burst: NonZeroU32,
    /// At most one login per instance this often through test-connection
    /// and batch tests; a repeat within it is answered with the last
    /// result, marked `cached: true`.
    #[arg(long, default_value = "10s", value_parser = positive_duration, env = "DBFLEET_TEST_CONNECTION_INTERVAL")]
    pub test_connection_interval: Duration,
    /// The web console's sign-in lapses after this long without a request
    /// (sooner when the token itself expires).
    #[arg(long, default_value = "30m", value_parser = positive_duration, env = "DBFLEET_CONSOLE_IDLE_TIMEOUT")]
    pub console_idle_timeout: Duration,
}

/// `dbfleet run`: the controllers and the façade in one process.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub controller: ControllerArgs,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthArg {
    Kubernetes,
    Disabled,
}

/// A duration such as `30d`, `72h` or `90s` that is more than zero.
pub fn positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text.trim()) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        Ok(_) => Err(format!("{text:?} must be more than zero")),
        Err(e) => Err(format!("{text:?}: {e}")),
    }
}

/// A count that is more than zero.
pub fn positive_count(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err(format!("{text:?} must be more than zero")),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{text:?}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_days_and_units_and_refuse_zero() {
        assert_eq!(positive_duration("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(positive_duration("72h").unwrap(), Duration::from_secs(72 * 3_600));
        assert!(positive_duration("0d").is_err());
        assert!(positive_duration("soon").is_err());
    }

    #[test]
    fn counts_refuse_zero_and_words() {
        assert_eq!(positive_count("8"), Ok(8));
        assert!(positive_count("0").is_err());
        assert!(positive_count("many").is_err());
    }

    #[test]
    fn version_lifecycle_flags_default_to_the_documented_values() {
        use crate::versions::LifecycleSettings;
        let Command::Controller(args) = Cli::try_parse_from(["dbfleet", "controller"]).unwrap().command else {
            panic!("not controller");
        };
        assert_eq!(
            LifecycleSettings::from(&args.version_lifecycle),
            LifecycleSettings::default()
        );
        let Command::Controller(args) = Cli::try_parse_from([
            "dbfleet",
            "controller",
            "--version-lifecycle-configmap",
            "site-eol",
            "--version-ending-soon",
            "90d",
        ])
        .unwrap()
        .command
        else {
            panic!("not controller");
        };
        let settings = LifecycleSettings::from(&args.version_lifecycle);
        assert_eq!(settings.configmap, "site-eol");
        assert_eq!(settings.ending_soon, Duration::from_secs(90 * 86_400));
        assert!(Cli::try_parse_from(["dbfleet", "controller", "--version-ending-soon", "0d"]).is_err());
    }

    #[test]
    fn history_flags_default_to_the_documented_values() {
        use crate::observe::history::HistorySettings;
        let Command::Controller(args) = Cli::try_parse_from(["dbfleet", "controller"]).unwrap().command else {
            panic!("not controller");
        };
        assert_eq!(HistorySettings::from(&args.history), HistorySettings::default());
        let Command::Controller(args) = Cli::try_parse_from([
            "dbfleet",
            "controller",
            "--capacity-sample-interval",
            "10s",
            "--capacity-history-databases",
            "3",
            "--account-history-entries",
            "50",
        ])
        .unwrap()
        .command
        else {
            panic!("not controller");
        };
        let settings = HistorySettings::from(&args.history);
        assert_eq!(settings.sample_interval, Duration::from_secs(10));
        assert_eq!((settings.top_databases, settings.account_entries), (3, 50));
        assert!(Cli::try_parse_from(["dbfleet", "controller", "--capacity-history-databases", "51"]).is_err());
        assert!(Cli::try_parse_from(["dbfleet", "controller", "--account-history-entries", "0"]).is_err());
    }

    #[test]
    fn leader_election_cannot_be_switched_off() {
        let parsed = Cli::try_parse_from(["dbfleet", "controller", "--leader-election=false"]);
        assert!(parsed.is_err(), "the flag is gone: a controller always elects a leader");
        let Command::Run(run) = Cli::try_parse_from(["dbfleet", "run", "--max-concurrent-probes", "4"])
            .expect("run parses")
            .command
        else {
            panic!("not run");
        };
        assert_eq!(run.controller.max_concurrent_probes, 4);
    }
}

#[derive(Args, Debug, Clone)]
pub struct ControllerArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "DBFLEET_NAMESPACE")]
    pub namespace: Option<String>,
    /// Reconciles running at once per controller.
    #[arg(long, default_value_t = 32, env = "DBFLEET_CONCURRENCY")]
    pub concurrency: u16,
    /// How long a recycled instance is kept before it is deleted for good.
    #[arg(long, default_value = "30d", value_parser = positive_duration, env = "DBFLEET_RETENTION")]
    pub retention: Duration,
    /// How long a finished DbSyncSession is kept.
    #[arg(long, default_value = "7d", value_parser = positive_duration, env = "DBFLEET_SESSION_TTL")]
    pub session_ttl: Duration,
    /// Split the instances into this many shards, each held by one replica
    /// through a Lease of its own (`<lease-name>-shard-<n>`); every replica
    /// competes for every shard. Use the same value on every replica.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64), env = "DBFLEET_SHARDS")]
    pub shards: u32,
    /// Instances one DbSyncSession probes at once.
    #[arg(long, default_value_t = 16, env = "DBFLEET_SESSION_CONCURRENCY")]
    pub session_concurrency: usize,
    #[command(flatten)]
    pub timeouts: TimeoutArgs,
    /// How often an unchanged instance's status is rewritten to refresh
    /// its freshness timestamps (it is written at once when anything else
    /// changes).
    #[arg(long, default_value = "10m", value_parser = positive_duration, env = "DBFLEET_STATUS_REPORT_INTERVAL")]
    pub status_report_interval: Duration,
    /// A database's size in the DbInventory is rewritten only when it moved
    /// by more than this percentage of it…
    #[arg(long, default_value_t = 1.0, env = "DBFLEET_INVENTORY_SIZE_THRESHOLD_PERCENT")]
    pub inventory_size_threshold_percent: f64,
    /// …and by more than this many bytes.
    #[arg(long, default_value_t = 1024 * 1024, env = "DBFLEET_INVENTORY_SIZE_THRESHOLD_BYTES")]
    pub inventory_size_threshold_bytes: u64,
    /// Probes running at once in this process: scheduled and requested
    /// probes (sync sessions' included) and, under `dbfleet run`, the
    /// façade's ad-hoc connection tests share them.
    #[arg(long, default_value_t = DEFAULT_MAX_CONCURRENT_PROBES, value_parser = positive_count, env = "DBFLEET_MAX_CONCURRENT_PROBES")]
    pub max_concurrent_probes: usize,
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, default_value = "0.0.0.0:8080", env = "DBFLEET_HTTP_ADDR")]
    pub http_addr: SocketAddr,
    /// The Lease the controllers run under: only its holder runs them,
    /// always, so a rolling update never runs two.
    #[arg(long, default_value = "dbfleet-controller", env = "DBFLEET_LEASE_NAME")]
    pub lease_name: String,
    /// Namespace of the Lease (default: --namespace, else `default`).
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// This replica's name in the Lease (default: host name and pid).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Seconds a Lease stays valid without renewal.
    #[arg(long, default_value_t = 15, env = "DBFLEET_LEASE_SECONDS")]
    pub lease_seconds: u64,
    #[command(flatten)]
    pub version_lifecycle: VersionLifecycleArgs,
    #[command(flatten)]
    pub history: HistoryArgs,
}

/// How much history each instance's DbHistory keeps (issue 21).
#[derive(Args, Debug, Clone)]
pub struct HistoryArgs {
    /// One capacity sample per this interval (taken by the first capacity
    /// collection after it passed).
    #[arg(long, default_value = "1d", value_parser = positive_duration, env = "DBFLEET_CAPACITY_SAMPLE_INTERVAL")]
    pub capacity_sample_interval: Duration,
    /// Capacity samples older than this are dropped.
    #[arg(long, default_value = "90d", value_parser = positive_duration, env = "DBFLEET_CAPACITY_HISTORY_RETENTION")]
    pub capacity_history_retention: Duration,
    /// The largest databases each capacity sample lists (at most 50).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=50), env = "DBFLEET_CAPACITY_HISTORY_DATABASES")]
    pub capacity_history_databases: u32,
    /// `CapacityOK` turns False (`FullSoon`) when the limit is this close.
    #[arg(long, default_value = "14d", value_parser = positive_duration, env = "DBFLEET_CAPACITY_FULL_SOON")]
    pub capacity_full_soon: Duration,
    /// Account changes kept per instance, newest (at most 2000).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=2000), env = "DBFLEET_ACCOUNT_HISTORY_ENTRIES")]
    pub account_history_entries: u32,
}

impl From<&HistoryArgs> for crate::observe::history::HistorySettings {
    fn from(args: &HistoryArgs) -> Self {
        crate::observe::history::HistorySettings {
            sample_interval: args.capacity_sample_interval,
            retention: args.capacity_history_retention,
            top_databases: args.capacity_history_databases as usize,
            account_entries: args.account_history_entries as usize,
            full_soon: args.capacity_full_soon,
            ..Default::default()
        }
    }
}

/// Where a site keeps its end-of-life dates, and how early a release
/// ending is announced (the `VersionSupported` condition).
#[derive(Args, Debug, Clone)]
pub struct VersionLifecycleArgs {
    /// The ConfigMap, in each watched namespace, whose entries
    /// (`postgresql-15: "2027-11-11"`) add to or correct dbfleet's
    /// built-in end-of-life table; read by name only.
    #[arg(long, default_value = crate::versions::LifecycleSettings::DEFAULT_CONFIGMAP, env = "DBFLEET_VERSION_LIFECYCLE_CONFIGMAP")]
    pub version_lifecycle_configmap: String,
    /// A release whose end of life is this close is `EndingSoon`.
    #[arg(long, default_value = "180d", value_parser = positive_duration, env = "DBFLEET_VERSION_ENDING_SOON")]
    pub version_ending_soon: Duration,
}

impl From<&VersionLifecycleArgs> for crate::versions::LifecycleSettings {
    fn from(args: &VersionLifecycleArgs) -> Self {
        crate::versions::LifecycleSettings {
            configmap: args.version_lifecycle_configmap.clone(),
            ending_soon: args.version_ending_soon,
            ..Default::default()
        }
    }
}
