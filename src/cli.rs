//! Command-line interface: one binary, one subcommand per role (SPEC §2.5).

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
}
