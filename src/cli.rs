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
    /// Address to listen on.
    #[arg(long, env = "DBFLEET_API_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// `kubernetes` (TokenReview + RBAC) or `disabled` (laptop only: binds
    /// to loopback and lets everyone do everything).
    #[arg(long, env = "DBFLEET_API_AUTH", value_enum, default_value_t = AuthArg::Kubernetes)]
    pub auth: AuthArg,
    /// How long a soft-deleted instance stays in the recycle bin (e.g. `30d`,
    /// `72h`).
    #[arg(long, env = "DBFLEET_RETENTION", default_value = "30d", value_parser = parse_retention)]
    pub retention: k8s_openapi::jiff::SignedDuration,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthArg {
    Kubernetes,
    Disabled,
}

/// `30d`, `12h`, `90m`, `45s`, or an ISO 8601 / friendly duration jiff reads.
pub fn parse_retention(text: &str) -> Result<k8s_openapi::jiff::SignedDuration, String> {
    let text = text.trim();
    if let Some(days) = text.strip_suffix('d').and_then(|d| d.parse::<i64>().ok()) {
        return days
            .checked_mul(24)
            .map(k8s_openapi::jiff::SignedDuration::from_hours)
            .filter(|d| d.is_positive())
            .ok_or_else(|| format!("retention {text:?} must be positive"));
    }
    text.parse::<k8s_openapi::jiff::SignedDuration>()
        .map_err(|e| format!("retention {text:?}: {e}"))
        .and_then(|d| if d.is_positive() { Ok(d) } else { Err(format!("retention {text:?} must be positive")) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_accepts_days_and_friendly_durations() {
        assert_eq!(parse_retention("30d").unwrap().as_hours(), 720);
        assert_eq!(parse_retention("72h").unwrap().as_hours(), 72);
        assert!(parse_retention("0d").is_err());
        assert!(parse_retention("soon").is_err());
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
