//! The server process: open the database, load keys, start the provisioner, serve HTTP until
//! SIGTERM or Ctrl-C.

use std::sync::Arc;

use crate::auth::keys::{KeyError, KeyPair};
use crate::auth::session::Sessions;
use crate::config::{Config, GatewaySecret, Keys, ProvisionerKind};
use crate::provisioner::{ProvisionError, Provisioner};
use crate::state::{AppState, LoginLimiter};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The database.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    /// A signing key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The provisioner.
    #[error(transparent)]
    Provisioner(#[from] ProvisionError),
    /// The data directory.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The gateway's secret or child process.
    #[error("gateway: {0}")]
    Gateway(String),
    /// Listening or serving.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Builds the state of a server from its configuration.
pub async fn state(config: &Config) -> Result<AppState, ServerError> {
    if config.dev || config.provisioner == ProvisionerKind::Local {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
    }
    let db = crate::db::connect(&config.database_url).await?;
    let (session_key, dataplane_key) = match &config.keys {
        Keys::Files { session, dataplane } => (KeyPair::load(session)?, KeyPair::load(dataplane)?),
        Keys::Generated(dir) => (
            KeyPair::load_or_generate(&dir.join("session.pem"))?,
            KeyPair::load_or_generate(&dir.join("dataplane.pem"))?,
        ),
    };
    let provisioner = match config.provisioner {
        ProvisionerKind::Local => Provisioner::Local(
            crate::provisioner::local::LocalProvisioner::start(
                config.data_dir.clone(),
                config.dataplane_bin.clone(),
            )
            .await?,
        ),
        ProvisionerKind::Kubernetes => {
            let client = kube::Client::try_default()
                .await
                .map_err(|e| ProvisionError::Kubernetes(format!("cannot reach Kubernetes: {e}")))?;
            Provisioner::Kubernetes(crate::provisioner::kubernetes::KubeProvisioner::new(
                client,
                config.kubernetes.clone(),
            ))
        }
    };
    let secret = match &config.gateway.secret {
        GatewaySecret::None => None,
        GatewaySecret::Value(v) => Some(v.clone()),
        GatewaySecret::File(path) => Some(crate::gateway::read_secret(path).map_err(|e| {
            ServerError::Gateway(format!("cannot read the secret {}: {e}", path.display()))
        })?),
        GatewaySecret::Generated(path) => {
            Some(crate::gateway::load_or_generate_secret(path).map_err(|e| {
                ServerError::Gateway(format!("cannot write the secret {}: {e}", path.display()))
            })?)
        }
    };
    Ok(AppState {
        gateway: Arc::new(crate::gateway::GatewayConfig {
            secret,
            routing: config.gateway.routing.clone(),
        }),
        suspend_policy: Arc::new(crate::lifecycle::SuspendPolicy::with_overrides(
            &config.suspend_after,
        )),
        db,
        sessions: Sessions::new(session_key),
        dataplane_key,
        provisioner: Arc::new(provisioner),
        login_limiter: Arc::new(LoginLimiter::new()),
        public_url: config.public_url.clone(),
        metrics: crate::metrics::Metrics::new(),
        sso: Arc::new(crate::state::SsoState {
            dns: crate::sso::domains::DnsConfig {
                resolver: config.dns_resolver,
            },
            ..Default::default()
        }),
    })
}

/// Serves the API on `config.listen` until a shutdown signal.
pub async fn run(config: Config) -> Result<(), ServerError> {
    if config.dev {
        tracing::warn!(
            data_dir = %config.data_dir.display(),
            "DEV MODE: SQLite, local clusters and signing keys generated into the data directory; not for production"
        );
    }
    let state = state(&config).await?;
    match crate::clusters::resume_operations(&state).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(operations = n, "resumed operations left running"),
        Err(e) => tracing::error!(error = %e, "cannot resume operations left running"),
    }
    crate::usage::spawn_collector(state.clone(), crate::usage::DEFAULT_INTERVAL);
    crate::audit::digest::spawn_periodic(
        state.db.clone(),
        state.sessions.key_pair().signing.clone(),
        crate::audit::digest::DIGEST_INTERVAL,
    );
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServerError::Listen {
            addr: config.listen,
            source,
        })?;
    let mut state = state;
    // Listening on port 0 (tests), the real address is known only now; links need it.
    if config.listen.port() == 0 && state.public_url == format!("http://{}", config.listen) {
        state.public_url = format!("http://{addr}");
    }
    let gateway = match (&config.gateway.child, &state.gateway.secret) {
        (Some(child), Some(secret)) => {
            let started = crate::gateway::child::spawn(
                &child.bin,
                child.listen,
                &format!("http://{addr}"),
                secret,
            )
            .await
            .map_err(|e| ServerError::Gateway(e.to_string()))?;
            if let Some(g) = &started {
                // Clusters are shown behind the gateway only once it really runs.
                state.gateway = Arc::new(crate::gateway::GatewayConfig {
                    secret: state.gateway.secret.clone(),
                    routing: crate::gateway::Routing::Path(format!("http://{}", g.addr)),
                });
                println!(
                    "koru-gateway listening on http://{} (clusters at http://{}/c/<org>/<cluster>)",
                    g.addr, g.addr
                );
            }
            started
        }
        _ => None,
    };
    // Only a gateway wakes a cluster on a request: without one in front of the users, a suspended
    // cluster would refuse its clients' connections until someone resumes it by hand.
    let behind_gateway = state.gateway.routing != crate::gateway::Routing::Direct;
    if !behind_gateway {
        tracing::warn!("no gateway in front of the clusters: idle clusters are not suspended");
    }
    crate::lifecycle::spawn_idle_check(state.clone(), behind_gateway);
    println!("koru-controlplane listening on http://{addr}");
    let provisioner = Arc::clone(&state.provisioner);
    let app = crate::http::app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let (signal_tx, signal_rx) = tokio::sync::oneshot::channel();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = signal_tx.send(stop_signal().await);
        })
        .await
        .map_err(|source| ServerError::Listen { addr, source });
    if let Some(g) = gateway {
        let pid = g.pid();
        g.stop().await;
        println!(
            "stopped the gateway (pid {})",
            pid.map_or("?".into(), |p| p.to_string())
        );
    }
    let signal = signal_rx.await.ok();
    if let Provisioner::Local(local) = provisioner.as_ref() {
        if config.dev && signal == Some(StopSignal::Interrupt) {
            let stopped = local.stop_all().await;
            for (id, port) in &stopped {
                println!(
                    "stopped cluster {id} (data plane on 127.0.0.1:{port}); its data is kept for the next start"
                );
            }
            println!("stopped {} local cluster(s)", stopped.len());
        } else {
            println!(
                "local clusters keep running and are adopted at the next start; stop them with Ctrl-C on `koru-controlplane dev`, \
                 or `pkill -f 'koru-dataplane.*{}'`",
                config.data_dir.display()
            );
        }
    }
    served
}

/// Which signal stopped the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGINT (Ctrl-C): `dev` also stops its local clusters.
    Interrupt,
    /// SIGTERM (a service manager, a restart): local clusters keep running, to be adopted.
    Terminate,
}

/// Waits for SIGINT or SIGTERM.
async fn stop_signal() -> StopSignal {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => tokio::select! {
            _ = int.recv() => StopSignal::Interrupt,
            _ = term.recv() => StopSignal::Terminate,
        },
        _ => {
            koru_telemetry::shutdown_signal().await;
            StopSignal::Terminate
        }
    }
}
