//! Command-line interface: one binary, one subcommand per role (SPEC §2.5).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "dbfleet", version, about = "Inventory of existing PostgreSQL and MySQL/MariaDB servers, kept in Kubernetes")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
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
    /// Log as JSON lines.
    #[arg(long, env = "DBFLEET_LOG_JSON")]
    pub log_json: bool,
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
