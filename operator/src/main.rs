//! `koru-operator`: runs the controller (optionally behind leader election) with its health and
//! metrics server, or with `crd` prints the CRDs.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use koru_operator::admin::AdminClient;
use koru_operator::config::{Cli, Command, Config};
use koru_operator::http::{self, AppState, Health};
use koru_operator::metrics::Metrics;
use koru_operator::{controller, leader};
use tokio_util::sync::CancellationToken;

/// Pause between attempts to reach the API server at start-up.
const CONNECT_RETRY: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    // Bad flags end here with clap's message and exit code 2 (--help and --version with 0).
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Crd) => match koru_crd::crds_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("koru-operator: cannot render the CRDs: {e}");
                ExitCode::FAILURE
            }
        },
        None => match cli.run.into_config() {
            Ok(config) => run(config),
            Err(e) => {
                eprintln!("koru-operator: {e}");
                ExitCode::from(2)
            }
        },
    }
}

/// Runs the process: telemetry, the HTTP server, then the controller until a signal.
fn run(config: Config) -> ExitCode {
    // Other crates in a build may enable a second rustls backend; naming one avoids rustls
    // refusing to guess at the first TLS connection (kube's, and the OTLP exporter's).
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Outside the runtime: the OTLP exporter builds a blocking HTTP client.
    let telemetry = match koru_telemetry::init(&config.telemetry) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("koru-operator: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match tokio::runtime::Runtime::new() {
        Ok(runtime) => {
            let code = runtime.block_on(serve(config));
            // Reconciles still running after a lost lease are dropped here, not waited for.
            runtime.shutdown_timeout(Duration::from_secs(1));
            code
        }
        Err(e) => {
            eprintln!("koru-operator: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}

/// The async part of [`run`].
async fn serve(config: Config) -> ExitCode {
    let metrics = Arc::new(Metrics::default());
    let admin = match AdminClient::new() {
        Ok(admin) => admin,
        Err(e) => {
            eprintln!("koru-operator: cannot build the data-plane client: {e}");
            return ExitCode::FAILURE;
        }
    };
    let settings = controller::Settings {
        namespace: config.watch_namespace.clone(),
        backup_deadline: config.backup_deadline,
        backup_status_interval: config.backup_status_interval,
        region_status_interval: config.region_status_interval,
        admin,
        autoscale: config.autoscale.clone(),
        api_access: config.api_access.clone(),
    };
    let health = Arc::new(Health::default());
    let listener = match http::bind(config.metrics_addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("koru-operator: {e}");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => tracing::info!(%addr, "serving /healthz, /readyz and /metrics"),
        Err(e) => tracing::warn!(error = %e, "serving /healthz, /readyz and /metrics"),
    }
    let state = AppState {
        metrics: metrics.clone(),
        health: health.clone(),
    };
    let mut server = tokio::spawn(http::serve(listener, state));

    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));

    // True when the process should exit 0: stopped by a signal, not by a failure.
    let work = async {
        let Some(client) = connect(&shutdown).await else {
            return shutdown.is_cancelled();
        };
        health.set_ready(true);
        match &config.watch_namespace {
            Some(ns) => tracing::info!(namespace = %ns, "watching one namespace"),
            None => tracing::info!("watching all namespaces"),
        }
        match &config.leader_election {
            Some(lease) => {
                let lead = |stop: CancellationToken| {
                    controller::run(
                        client.clone(),
                        settings.clone(),
                        metrics.clone(),
                        stop.cancelled_owned(),
                    )
                };
                if let Err(e) =
                    leader::run(client.clone(), lease, &metrics, shutdown.clone(), lead).await
                {
                    // client-go's convention: a replica that lost the Lease restarts as a
                    // candidate rather than carrying on with possibly stale state.
                    tracing::error!(error = %e, "lost leadership; exiting");
                    return false;
                }
            }
            None => {
                metrics.set_leader(true);
                tracing::info!("reconciling KoruClusters (no leader election)");
                controller::run(
                    client,
                    settings.clone(),
                    metrics.clone(),
                    shutdown.clone().cancelled_owned(),
                )
                .await;
            }
        }
        if !shutdown.is_cancelled() {
            tracing::error!("the controller stopped by itself; exiting");
        }
        shutdown.is_cancelled()
    };
    let ok = tokio::select! {
        ok = work => ok,
        served = &mut server => {
            match served {
                Ok(Err(e)) => tracing::error!(error = %e, "the metrics server stopped"),
                Ok(Ok(())) => tracing::error!("the metrics server stopped"),
                Err(e) => tracing::error!(error = %e, "the metrics server task failed"),
            }
            false
        }
    };
    health.set_stopped();
    server.abort();
    tracing::info!("koru-operator stopped");
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A client whose API server has answered; None on shutdown or when no configuration exists.
async fn connect(shutdown: &CancellationToken) -> Option<kube::Client> {
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("koru-operator: cannot reach Kubernetes: {e}");
            return None;
        }
    };
    loop {
        let answer = tokio::select! {
            () = shutdown.cancelled() => return None,
            answer = client.apiserver_version() => answer,
        };
        match answer {
            Ok(v) => {
                tracing::info!(version = %v.git_version, "connected to the Kubernetes API server");
                return Some(client);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach the Kubernetes API server; will retry")
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(CONNECT_RETRY) => {}
        }
    }
}

/// Cancels `shutdown` on SIGTERM or SIGINT; a second signal exits at once.
async fn stop_on_signal(shutdown: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return;
        }
    };
    for n in 0.. {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        if n == 0 {
            tracing::info!("shutting down: stopping the controller");
            shutdown.cancel();
        } else {
            tracing::warn!("second signal: exiting at once");
            std::process::exit(1);
        }
    }
}
