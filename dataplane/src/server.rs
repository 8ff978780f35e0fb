//! The server process: open the store, serve HTTP, and shut down cleanly on SIGTERM or Ctrl-C.

use std::io::Write;
use std::sync::Arc;

use axum::serve::ListenerExt;
use thiserror::Error;
use tokio::net::TcpListener;

use crate::auth::{AdminToken, AdminTokenError, KeyError, Verifier};
use crate::backup::{Archiver, BackupStore, schedule};
use crate::config::Config;
use crate::error::StoreError;
use crate::http::{AppState, app, peer_app};
use crate::metrics::Metrics;
use crate::store::Store;

/// Why the server could not start or stopped with an error.
#[derive(Debug, Error)]
pub enum ServerError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The backup store could not be opened.
    #[error(transparent)]
    Backup(#[from] crate::backup::BackupError),
    /// The token verification key is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The admin token file is unusable.
    #[error(transparent)]
    AdminToken(#[from] AdminTokenError),
    /// Replication could not start.
    #[error(transparent)]
    Replica(#[from] crate::raft::ReplicaError),
    /// Reading the key file, binding, or serving failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Runs the server until a shutdown signal, then drains requests and fsyncs the log.
pub async fn run(config: Config) -> Result<(), ServerError> {
    let metrics = Arc::new(Metrics::default());
    let verifier = match &config.auth {
        Some((path, cluster)) => {
            let pem = std::fs::read(path).map_err(|source| ServerError::Io {
                context: format!("reading {}", path.display()),
                source,
            })?;
            Some(Verifier::from_pem(
                &pem,
                &path.display().to_string(),
                cluster,
            )?)
        }
        None => {
            tracing::warn!(
                "no --auth-public-key: the API is open to anyone who can reach it (development mode)"
            );
            None
        }
    };
    if let (Some(verifier), Some((source, interval))) = (&verifier, &config.revocations) {
        tracing::info!(?source, ?interval, "polling the revoked-token list");
        crate::revocations::spawn(verifier.clone(), source.clone(), *interval);
    }
    // Members authenticate to each other with the member credential (--peer-token-file, else
    // the admin token), so they keep its text.
    let mut member_token = None;
    let admin_token = match &config.admin_token_file {
        Some(path) => {
            let (token, text) = read_secret_file(path)?;
            member_token = Some(text);
            // The path only: the secret itself is never logged.
            tracing::info!(file = %path.display(), "the admin token grants admin scope");
            if verifier.is_none() {
                tracing::warn!(
                    "--admin-token-file without --auth-public-key: the API is open anyway"
                );
            }
            Some(token)
        }
        None => None,
    };
    let peer_token = match &config.peer_token_file {
        Some(path) => {
            let (token, text) = read_secret_file(path)?;
            member_token = Some(text);
            Some(token)
        }
        None => admin_token.clone(),
    };
    let store_config = config.store.clone();
    let store_metrics = Arc::clone(&metrics.store);
    let (store, report) =
        tokio::task::spawn_blocking(move || Store::open(store_config, store_metrics))
            .await
            .map_err(|e| ServerError::Io {
                context: "opening the store".into(),
                source: std::io::Error::other(e),
            })??;
    tracing::info!(
        data_dir = %config.store.data_dir.display(),
        records = report.records,
        segments = report.segments,
        truncated_bytes = report.truncated_bytes,
        elapsed_ms = report.elapsed.as_millis() as u64,
        fsync = %config.store.fsync,
        "store opened"
    );
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Io {
            context: format!("binding {}", config.listen),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServerError::Io {
        context: "reading the bound address".into(),
        source,
    })?;
    let archive_metrics = Arc::clone(&metrics.archive);
    let mut state = AppState::new(store.clone(), metrics, verifier, config.max_ops_per_sec);
    let region_token = match &config.region.token_file {
        Some(path) => Some(read_secret_file(path)?.1),
        None => None,
    };
    state = state.with_regions(config.region.clone(), region_token);
    if let Some(token) = admin_token {
        state = state.with_admin_token(token);
    }
    let mut replica = None;
    let mut peer_listener = None;
    if let Some(r) = &config.replication {
        // Bound before the Raft node starts, so peers' first calls wait in the backlog.
        let bound = TcpListener::bind(r.peer_listen)
            .await
            .map_err(|source| ServerError::Io {
                context: format!("binding --peer-listen {}", r.peer_listen),
                source,
            })?;
        match &peer_token {
            Some(token) => state = state.with_member_token(token.clone()),
            None => tracing::warn!(
                "no --peer-token-file or --admin-token-file: the member routes on --peer-listen are open to anyone who can reach them (development mode)"
            ),
        }
        peer_listener = Some(bound);
        let started =
            crate::raft::Replica::start(store.clone(), r, &config.store.data_dir, member_token)
                .await?;
        started.set_redirect_writes(r.redirect_writes);
        // Clients reach this member at its peer host name on the API's port.
        let host = r.peers.0[&r.node_id]
            .rsplit_once(':')
            .map_or(r.peers.0[&r.node_id].as_str(), |(h, _)| h);
        started.set_public_addr(format!("{host}:{}", addr.port()));
        state = state.with_replica(std::sync::Arc::clone(&started));
        replica = Some(started);
    }
    if let Some(archive) = &config.archive {
        let backup = BackupStore::open(&archive.store, true)?;
        tracing::info!(store = %archive.store, timeout_ms = archive.timeout.as_millis() as u64, "archiving sealed log segments");
        let status = Archiver::start(
            store.clone(),
            backup,
            archive.timeout,
            archive_metrics,
            archive.retention,
            // A member hands sealing and uploading to the cluster before anything runs: its
            // archiver, schedules and drills never act as a single node's, even for a moment.
            replica
                .as_ref()
                .map(|r| Arc::clone(r) as Arc<dyn crate::backup::archiver::Role>),
        );
        if let Some(schedule) = &archive.schedule {
            tracing::info!(%schedule, retention_secs = archive.retention.map(|r| r.as_secs()), "scheduled base backups on");
            schedule::start(Arc::clone(&status), schedule.clone(), archive.retention);
        }
        // Drills copy beside the data directory: on the same volume, never among the store's files.
        let drill_dir = config
            .store
            .data_dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(
                || std::path::PathBuf::from("."),
                std::path::Path::to_path_buf,
            );
        status.set_drill_dir(drill_dir);
        tokio::spawn({
            let status = Arc::clone(&status);
            async move { crate::backup::verify::load_last(&status).await }
        });
        if let Some(schedule) = &archive.verify_schedule {
            tracing::info!(%schedule, dir = %status.drill_dir().display(), "scheduled restore drills on");
            crate::backup::verify::start(Arc::clone(&status), schedule.clone());
        }
        state = state.with_archive(status);
    }
    crate::region::stream::start(state.clone());
    // Small responses go out at once instead of waiting on Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tracing::info!(%addr, "serving the KoruDelta HTTP API v1");
    // The URL on stdout is the contract for scripts and tests that start us on port 0; it comes
    // once everything that can refuse to start has started.
    if let Some(peer) = &peer_listener
        && let Ok(peer_addr) = peer.local_addr()
    {
        println!("koru-dataplane serving members on http://{peer_addr}");
    }
    println!("koru-dataplane listening on http://{addr}");
    let _ = std::io::stdout().flush();
    let stop_peers = Arc::new(tokio::sync::Notify::new());
    let peers_served = peer_listener.map(|peer| {
        let peer_addr = peer.local_addr().ok();
        tracing::info!(addr = ?peer_addr, "serving the member routes");
        let peer = peer.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let stop = Arc::clone(&stop_peers);
        let serving = axum::serve(peer, peer_app(state.clone()))
            .with_graceful_shutdown(async move { stop.notified().await });
        tokio::spawn(std::future::IntoFuture::into_future(serving))
    });
    let mut router = app(state);
    if let Some(cors) = crate::http::cors::layer(&config.cors_allow_origins) {
        tracing::info!(origins = ?config.cors_allow_origins, "browser pages of these origins may call the API (CORS)");
        router = router.layer(cors);
    }
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(koru_telemetry::shutdown_signal())
        .await;
    // Members keep answering each other until the API has drained.
    stop_peers.notify_one();
    if let Some(task) = peers_served {
        let _ = task.await;
    }
    if let Some(replica) = replica {
        replica.shutdown().await;
    }
    tokio::task::spawn_blocking(move || store.close())
        .await
        .map_err(|e| ServerError::Io {
            context: "closing the store".into(),
            source: std::io::Error::other(e),
        })?;
    tracing::info!("log flushed and fsynced; bye");
    served.map_err(|source| ServerError::Io {
        context: "serving HTTP".into(),
        source,
    })
}

/// Reads a secret file (`--admin-token-file`, `--peer-token-file`): the checked token and its text.
fn read_secret_file(path: &std::path::Path) -> Result<(AdminToken, String), ServerError> {
    let contents = std::fs::read(path).map_err(|source| ServerError::Io {
        context: format!("reading {}", path.display()),
        source,
    })?;
    let token = AdminToken::from_file_contents(&contents, &path.display().to_string())?;
    Ok((token, String::from_utf8_lossy(&contents).trim().to_owned()))
}
