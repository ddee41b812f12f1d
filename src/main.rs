use std::process::ExitCode;

use clap::Parser;
use dbfleet::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    dbfleet::telemetry::init(cli.log_format.into());
    let result = match cli.command {
        Command::Crd { output_dir } => print_crds(output_dir.as_deref()),
        Command::Controller(args) => block_on(dbfleet::app::run_controller(args)),
        Command::Run(args) => block_on(dbfleet::app::run_all(args)),
        Command::Api(args) => block_on(dbfleet::app::run_api(args)),
        Command::Openapi => {
            print!("{}", dbfleet::api::openapi::document());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dbfleet: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Tasks still running when `work` returns (a request to an API server
/// that does not answer, a blocked DNS lookup) get this long, then the
/// process exits without them.
const RUNTIME_WIND_DOWN: std::time::Duration = std::time::Duration::from_millis(500);

fn block_on(work: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(work);
    runtime.shutdown_timeout(RUNTIME_WIND_DOWN);
    result
}

fn print_crds(output_dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    let crds = dbfleet::crd::definitions();
    match output_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            for crd in &crds {
                let path = dir.join(dbfleet::crd::file_name(crd));
                std::fs::write(&path, dbfleet::crd::to_yaml(crd)?)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            }
        }
        None => {
            let docs: Result<Vec<_>, _> = crds.iter().map(dbfleet::crd::to_yaml).collect();
            print!("{}", docs?.join("---\n"));
        }
    }
    Ok(())
}
