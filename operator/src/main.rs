//! `koru-operator`: `koru-operator crd` prints the CRDs; the controller itself comes next.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The KoruDelta Kubernetes operator.
#[derive(Parser)]
#[command(name = "koru-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What to do.
#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML.
    Crd,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Crd => match koru_operator::crds_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("koru-operator: cannot render the CRDs: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
