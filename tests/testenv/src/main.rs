//! `dbfleet-testenv up`: runs a control plane in the foreground for the local
//! stack, with its state (kubeconfig, certificates, logs) in a fixed
//! directory, until it is interrupted.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use dbfleet_testenv::{ControlPlane, Options};

const USAGE: &str = "usage: dbfleet-testenv up --state-dir DIR [--port PORT] [--crds DIR]";

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some("up") {
        bail!(USAGE);
    }
    let mut options = Options::default();
    while let Some(flag) = args.next() {
        let value = args.next().with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--state-dir" => options.state_dir = Some(PathBuf::from(value)),
            "--port" => options.api_port = Some(value.parse().context("--port")?),
            "--crds" => options.crd_dir = Some(PathBuf::from(value)),
            _ => bail!("unknown flag {flag}\n{USAGE}"),
        }
    }
    if options.state_dir.is_none() {
        bail!(USAGE);
    }
    let plane = ControlPlane::start(options).await?;
    println!("control plane ready at {}", plane.url());
    println!("kubeconfig: {}", plane.dir().join("kubeconfig").display());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
