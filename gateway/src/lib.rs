//! `koru-gateway`: the one public endpoint of every hosted cluster (see README.md). It routes by
//! host name or path prefix, checks requests at the edge (allow list, size, data token,
//! revocation, this replica's share of the rate limit), holds requests for a suspended cluster
//! while it wakes, and forwards writes to the leader and reads to ready members.

pub mod body;
pub mod config;
pub mod edge;
pub mod error;
pub mod handler;
pub mod health;
pub mod hold;
pub mod limiter;
pub mod metrics;
pub mod proxy;
pub mod routing;
pub mod server;
pub mod sync;
pub mod table;
pub mod tls;

use std::future::IntoFuture;
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use config::{Config, Source};
use metrics::Metrics;
use proxy::Upstream;
use sync::ControlPlane;
use table::Routes;

/// The line prefix printed on stdout once the public listener accepts connections (the rest of
/// the line is its URL).
pub const READY_LINE: &str = "koru-gateway listening on ";
/// The line prefix printed on stdout with the admin listener's URL, before [`READY_LINE`].
pub const ADMIN_LINE: &str = "koru-gateway admin listening on ";

/// Everything a request needs, shared by every connection.
pub struct Gateway {
    /// The configuration.
    pub config: Config,
    /// The route table and each cluster's live state.
    pub routes: Arc<Routes>,
    /// The metrics.
    pub metrics: Metrics,
    /// The pooled client to the members.
    pub upstream: Upstream,
    /// The control plane, when the table comes from it.
    pub control: Option<ControlPlane>,
    /// When the process started (the sync age before the first table).
    pub started: Instant,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS pair is unusable.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The control-plane client could not be built.
    #[error("cannot build the control-plane client: {0}")]
    Client(#[from] sync::SyncError),
}

/// Runs the gateway until SIGTERM or Ctrl-C.
pub async fn run(config: Config) -> Result<(), StartError> {
    let control = match &config.source {
        Source::ControlPlane { url, secret } => Some(ControlPlane::new(url, secret)?),
        Source::File(_) => None,
    };
    let tls = match &config.tls {
        Some(files) => {
            let cert = tls::ReloadingCert::load(files.clone())?;
            tokio::spawn(Arc::clone(&cert).watch());
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(
                cert.server_config(),
            )))
        }
        None => None,
    };
    let bind = |addr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })
    };
    let public = bind(config.listen).await?;
    let admin = bind(config.admin_listen).await?;
    let public_addr = public.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let admin_addr = admin.local_addr().map_err(|source| StartError::Bind {
        addr: config.admin_listen,
        source,
    })?;
    let gateway = Arc::new(Gateway {
        routes: Arc::new(Routes::default()),
        metrics: Metrics::default(),
        upstream: proxy::upstream_client(),
        control: control.clone(),
        started: Instant::now(),
        config,
    });
    match (&gateway.config.source, control) {
        (Source::File(path), _) => {
            tracing::info!(file = %path.display(), "standalone mode: routes from a file");
            // Serve from the first request on when the file is there; the loop keeps it fresh.
            if let Ok(table) = std::fs::read(path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            {
                gateway.routes.install(table);
            }
            tokio::spawn(sync::file_loop(Arc::clone(&gateway.routes), path.clone()));
        }
        (Source::ControlPlane { url, .. }, Some(control)) => {
            tracing::info!(%url, gateway_id = %gateway.config.gateway_id, "routes from the control plane");
            tokio::spawn(sync::sync_loop(
                Arc::clone(&gateway.routes),
                control,
                gateway.config.gateway_id.clone(),
                gateway.config.sync_interval,
            ));
        }
        (Source::ControlPlane { .. }, None) => {}
    }
    tokio::spawn(health::watch_members(
        Arc::clone(&gateway.routes),
        gateway.upstream.clone(),
    ));
    let admin_served =
        tokio::spawn(axum::serve(admin, server::admin_app(Arc::clone(&gateway))).into_future());
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%public_addr, %admin_addr, tls = tls.is_some(), domain = ?gateway.config.domain, "serving");
    println!("{ADMIN_LINE}http://{admin_addr}");
    println!("{READY_LINE}{scheme}://{public_addr}");
    let _ = std::io::stdout().flush();
    let exit_with_parent = gateway.config.exit_with_parent;
    let stop = async move {
        tokio::select! {
            () = koru_telemetry::shutdown_signal() => {}
            () = parent_exit(), if exit_with_parent => {
                tracing::info!("the process that started the gateway exited; stopping");
            }
        }
    };
    server::serve_public(Arc::clone(&gateway), public, tls, stop).await;
    admin_served.abort();
    tracing::info!("stopped");
    Ok(())
}

/// Resolves once this process's parent has exited (it is then re-parented, so its parent id
/// changes): a gateway started by `dev` must not outlive a `dev` that was killed.
async fn parent_exit() {
    let parent = std::os::unix::process::parent_id();
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    loop {
        tick.tick().await;
        if std::os::unix::process::parent_id() != parent {
            return;
        }
    }
}
