//! `koru-controlplane`: parses the command line, starts logging, runs the server.

use std::process::ExitCode;

use clap::Parser;
use koru_controlplane::config::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Other crates in the build may enable a second rustls backend; naming one avoids rustls
    // refusing to guess at the first TLS connection (PostgreSQL, Kubernetes, OTLP).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let telemetry = match koru_telemetry::init(
        &cli.telemetry
            .config("koru-controlplane", koru_telemetry::DEFAULT_LOG_FILTER),
    ) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("koru-controlplane: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("koru-controlplane: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match cli.command {
        Command::Audit { command } => audit(&runtime, command),
        Command::Admin { command } => admin(&runtime, command),
        command => match command.into_config() {
            Ok(config) => match runtime.block_on(koru_controlplane::server::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("koru-controlplane: {e}");
                    ExitCode::FAILURE
                }
            },
            Err(e) => {
                eprintln!("koru-controlplane: {e}");
                ExitCode::from(2)
            }
        },
    };
    drop(runtime);
    telemetry.shutdown();
    code
}

/// Runs a staff tool: exit 0 when done, 1 when refused or failed (the reason on stderr).
fn admin(
    runtime: &tokio::runtime::Runtime,
    command: koru_controlplane::admin::cli::AdminCommand,
) -> ExitCode {
    let mut out = std::io::stdout();
    match runtime.block_on(koru_controlplane::admin::cli::run(command, &mut out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("koru-controlplane: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs an audit tool: exit 0 when the chain is intact, 1 at a broken link, 2 when it cannot check.
fn audit(
    runtime: &tokio::runtime::Runtime,
    command: koru_controlplane::audit::cli::AuditCommand,
) -> ExitCode {
    let mut out = std::io::stdout();
    match runtime.block_on(koru_controlplane::audit::cli::run(command, &mut out)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("koru-controlplane: {e}");
            ExitCode::from(2)
        }
    }
}
