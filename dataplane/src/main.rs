//! `koru-dataplane`: parses the configuration, sets up logging, and runs the server — or, as
//! `koru-dataplane restore …`, rebuilds a data directory from a backup store.

use std::process::ExitCode;

use clap::Parser;
use koru_dataplane::config::{Cli, DEFAULT_LOG_FILTER, RestoreCli, SERVICE_NAME};

/// jemalloc instead of glibc malloc: request buffers are allocated on the HTTP workers and freed on
/// the commit thread, a cross-thread pattern glibc handles slowly (measured +13–25% PUT, +45% batch).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    // The S3 client speaks TLS through rustls; naming the ring provider keeps aws-lc-rs out and
    // avoids rustls refusing to pick one when a build enables two.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if std::env::args_os().nth(1).is_some_and(|a| a == "restore") {
        return restore();
    }
    let config = match Cli::parse().into_config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("koru-dataplane: {message}");
            return ExitCode::from(2);
        }
    };
    // Outside the runtime: the OTLP exporter, when configured, builds a blocking HTTP client.
    let telemetry = match koru_telemetry::init(&config.telemetry) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("koru-dataplane: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match tokio::runtime::Runtime::new() {
        Ok(runtime) => match runtime.block_on(koru_dataplane::server::run(config)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("koru-dataplane: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("koru-dataplane: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}

/// The logs of `restore`: text on stderr, filtered by `KORU_LOG` when it holds a valid filter
/// (the server's default otherwise); no trace export for a one-shot command.
fn restore_telemetry() -> Result<koru_telemetry::Telemetry, koru_telemetry::TelemetryError> {
    let log_filter = std::env::var("KORU_LOG")
        .ok()
        .filter(|f| koru_telemetry::parse_log_filter(f).is_ok())
        .unwrap_or_else(|| DEFAULT_LOG_FILTER.to_string());
    koru_telemetry::init(&koru_telemetry::TelemetryConfig {
        service_name: SERVICE_NAME,
        log_format: koru_telemetry::LogFormat::Text,
        log_filter,
        otlp_endpoint: None,
    })
}

/// `koru-dataplane restore …`: exit 0 with a summary on stdout, 1 with the error on stderr.
fn restore() -> ExitCode {
    let args = std::env::args_os().skip(1);
    let cli = RestoreCli::parse_from(args);
    if cli.already_restored() {
        println!(
            "koru-dataplane restore: {} already holds data; nothing restored (--skip-existing)",
            cli.data_dir.display()
        );
        return ExitCode::SUCCESS;
    }
    let request = match cli.into_request() {
        Ok(r) => r,
        Err(message) => {
            eprintln!("koru-dataplane restore: {message}");
            return ExitCode::from(2);
        }
    };
    let telemetry = match restore_telemetry() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("koru-dataplane restore: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("koru-dataplane restore: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(koru_dataplane::backup::restore::restore(&request)) {
        Ok(report) => {
            println!(
                "{}",
                koru_dataplane::backup::restore::summary(&request, &report)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("koru-dataplane restore: {e}");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}
