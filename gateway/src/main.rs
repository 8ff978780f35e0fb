//! `koru-gateway`: parses the command line, sets up telemetry and runs the gateway.

use std::process::ExitCode;

use clap::Parser;

use koru_gateway::config::Cli;

/// The data plane's allocator: a proxy allocates and frees small buffers on every request, which
/// glibc's malloc does at a tenth of the gateway's CPU.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli.config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("koru-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    // One process-wide TLS provider (ring) for the listener and the control-plane client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let telemetry = match koru_telemetry::init(
        &cli.telemetry
            .config("koru-gateway", koru_telemetry::DEFAULT_LOG_FILTER),
    ) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("koru-gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("koru-gateway: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(koru_gateway::run(config));
    drop(runtime);
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("koru-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}
