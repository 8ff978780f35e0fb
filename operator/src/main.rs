//! `koru-operator`: runs the controller, or with `crd` prints the CRDs.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// The KoruDelta Kubernetes operator.
#[derive(Parser)]
#[command(name = "koru-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

/// What to do besides running the controller.
#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML.
    Crd,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Some(Command::Crd) => match koru_operator::crds_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("koru-operator: cannot render the CRDs: {e}");
                ExitCode::FAILURE
            }
        },
        None => run(),
    }
}

/// Runs the controller against the current kubeconfig or the in-cluster config.
fn run() -> ExitCode {
    let filter = EnvFilter::try_from_env("KORU_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // Other crates in a build may enable a second rustls backend; naming one avoids rustls
    // refusing to guess at the first TLS connection.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("koru-operator: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match kube::Client::try_default().await {
            Ok(client) => {
                tracing::info!("koru-operator reconciling KoruClusters");
                koru_operator::controller::run(client).await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("koru-operator: cannot reach Kubernetes: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
