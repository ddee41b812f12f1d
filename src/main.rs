use std::process::ExitCode;

use clap::Parser;
use dbfleet::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd { output_dir } => print_crds(output_dir.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dbfleet: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_crds(output_dir: Option<&std::path::Path>) -> Result<(), Box<dyn std::error::Error>> {
    let crds = dbfleet::crd::definitions();
    match output_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            for crd in &crds {
                let path = dir.join(dbfleet::crd::file_name(crd));
                std::fs::write(&path, dbfleet::crd::to_yaml(crd)?)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        None => {
            let docs: Result<Vec<_>, _> = crds.iter().map(dbfleet::crd::to_yaml).collect();
            print!("{}", docs?.join("---\n"));
        }
    }
    Ok(())
}
