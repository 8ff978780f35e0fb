//! The server process: open the database, load keys, start the provisioner, serve HTTP until
//! SIGTERM or Ctrl-C.

use std::sync::Arc;

use crate::auth::keys::{KeyError, KeyPair};
use crate::auth::session::Sessions;
use crate::config::{Config, Keys, ProvisionerKind};
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
    Ok(AppState {
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
    println!("koru-controlplane listening on http://{addr}");
    let app = crate::http::app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(koru_telemetry::shutdown_signal())
        .await
        .map_err(|source| ServerError::Listen { addr, source })
}
