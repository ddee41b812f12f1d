//! Command-line interface: one binary, one subcommand per role (SPEC §2.5).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "dbfleet", version, about = "Inventory of existing PostgreSQL and MySQL/MariaDB servers, kept in Kubernetes")]
pub struct Cli {
    /// Log format; the level comes from RUST_LOG (default `info`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "DBFLEET_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the controllers.
    Controller(ControllerArgs),
    /// Print the CustomResourceDefinitions as YAML (or write one file each).
    Crd {
        /// Write `<name>.yaml` per CRD into this directory instead of printing.
        #[arg(long)]
        output_dir: Option<PathBuf>,
    },
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
    #[arg(long, default_value = "30d", value_parser = humantime::parse_duration, env = "DBFLEET_RETENTION")]
    pub retention: Duration,
    /// How long a finished DbSyncSession is kept.
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration, env = "DBFLEET_SESSION_TTL")]
    pub session_ttl: Duration,
    /// Instances one DbSyncSession probes at once.
    #[arg(long, default_value_t = 16, env = "DBFLEET_SESSION_CONCURRENCY")]
    pub session_concurrency: usize,
    /// Bound on name resolution, TCP, TLS and login of every probe.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, env = "DBFLEET_CONNECT_TIMEOUT")]
    pub connect_timeout: Duration,
    /// Bound on one capacity collection or account sync after the login.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, env = "DBFLEET_OPERATION_TIMEOUT")]
    pub operation_timeout: Duration,
    /// Accounts kept in `status.accounts.items` (the rest is counted).
    #[arg(long, default_value_t = 500, env = "DBFLEET_ACCOUNT_ITEMS_CAP")]
    pub account_items_cap: usize,
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, default_value = "0.0.0.0:8080", env = "DBFLEET_HTTP_ADDR")]
    pub http_addr: SocketAddr,
    /// Run the controllers only while holding the leader Lease.
    #[arg(long, default_value_t = true, action = ArgAction::Set, env = "DBFLEET_LEADER_ELECTION")]
    pub leader_election: bool,
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
}
