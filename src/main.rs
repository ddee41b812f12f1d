use std::process::ExitCode;

use clap::Parser;
use dbfleet::api::auth::AuthMode;
use dbfleet::cli::{ApiArgs, AuthArg, Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd { output_dir } => print_crds(output_dir.as_deref()),
        Command::Api(args) => run_api(args),
        Command::Openapi => {
            print!("{}", dbfleet::api::openapi::document());
            Ok(())
        }
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

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json { builder.json().init() } else { builder.init() }
}

fn run_api(args: ApiArgs) -> Result<(), Box<dyn std::error::Error>> {
    init_logging(args.log_json);
    let auth = match args.auth {
        AuthArg::Kubernetes => AuthMode::Kubernetes,
        AuthArg::Disabled => AuthMode::Disabled,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let client = kube::Client::try_default().await?;
        let listener = tokio::net::TcpListener::bind(dbfleet::api::effective_listen(auth, args.listen)).await?;
        let config = dbfleet::api::ApiConfig { namespace: args.namespace, auth, retention: args.retention };
        dbfleet::api::serve(client, config, listener, shutdown_signal()).await?;
        Ok(())
    })
}

/// SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = terminate => {} }
    tracing::info!("shutting down");
}
