use std::process::ExitCode;

use clap::Parser;
use dbfleet::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    dbfleet::telemetry::init(cli.log_format);
    let result = match cli.command {
        Command::Crd { output_dir } => print_crds(output_dir.as_deref()),
        Command::Controller(args) => runtime().and_then(|rt| rt.block_on(dbfleet::app::run_controller(args))),
        Command::Run(args) => runtime().and_then(|rt| rt.block_on(dbfleet::app::run_all(args))),
        Command::Api(args) => runtime().and_then(|rt| Ok(rt.block_on(dbfleet::api::run(args))?)),
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

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
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
