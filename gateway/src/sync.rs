//! Where the route table comes from: the control plane's sync call (made every `--sync-interval`
//! with this replica's activity, faster while requests are held), or a routes file re-read when
//! it changes. The last table keeps serving while the control plane is unreachable.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use koru_gateway_api::{RouteState, RouteTable, SYNC_PATH, SyncRequest, WakeResponse, wake_path};

use crate::config::FAST_SYNC_INTERVAL;
use crate::table::Routes;

/// How long one call to the control plane may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the routes file is looked at.
const FILE_POLL: Duration = Duration::from_millis(200);

/// Why a call to the control plane failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// No answer, or an error status.
    #[error("{0}")]
    Http(#[from] reqwest::Error),
}

/// The control plane's internal gateway API.
#[derive(Clone)]
pub struct ControlPlane {
    client: reqwest::Client,
    url: String,
    secret: String,
}

impl ControlPlane {
    /// A client of the control plane at `url` with the shared secret.
    pub fn new(url: &str, secret: &str) -> Result<ControlPlane, SyncError> {
        Ok(ControlPlane {
            client: reqwest::Client::builder().timeout(CALL_TIMEOUT).build()?,
            url: url.to_string(),
            secret: secret.to_string(),
        })
    }

    /// One sync: reports `request`, returns the table.
    pub async fn sync(&self, request: &SyncRequest) -> Result<RouteTable, SyncError> {
        Ok(self
            .client
            .post(format!("{}{SYNC_PATH}", self.url))
            .bearer_auth(&self.secret)
            .json(request)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// Asks for cluster `id` to be woken.
    pub async fn wake(&self, id: &str) -> Result<RouteState, SyncError> {
        let answer: WakeResponse = self
            .client
            .post(format!("{}{}", self.url, wake_path(id)))
            .bearer_auth(&self.secret)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(answer.state)
    }
}

/// Syncs with the control plane until the process ends.
pub async fn sync_loop(
    routes: Arc<Routes>,
    control: ControlPlane,
    gateway_id: String,
    interval: Duration,
) {
    let mut failing = false;
    loop {
        let request = SyncRequest {
            gateway_id: gateway_id.clone(),
            activity: routes.take_activity(),
        };
        match control.sync(&request).await {
            Ok(table) => {
                if failing {
                    tracing::info!("route table synced again");
                }
                failing = false;
                routes.install(table);
            }
            Err(e) => {
                // The counters are reported with the next sync instead.
                routes.give_back(&request.activity);
                if !failing {
                    tracing::warn!(error = %e, age_secs = routes.age_secs(), "cannot sync the route table; serving the last one");
                }
                failing = true;
            }
        }
        let pause = if routes.hurrying() {
            FAST_SYNC_INTERVAL.min(interval)
        } else {
            interval
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = routes.hurry.notified() => tokio::time::sleep(FAST_SYNC_INTERVAL.min(pause) / 4).await,
        }
    }
}

/// Loads the routes file whenever its contents change, until the process ends; a file that does
/// not parse leaves the last table in force.
pub async fn file_loop(routes: Arc<Routes>, path: PathBuf) {
    let mut last: Option<Vec<u8>> = None;
    let mut unreadable = false;
    loop {
        match tokio::fs::read(&path).await {
            Ok(bytes) if last.as_ref() != Some(&bytes) => {
                unreadable = false;
                match serde_json::from_slice::<RouteTable>(&bytes) {
                    Ok(table) => {
                        tracing::info!(file = %path.display(), clusters = table.clusters.len(), "route table loaded");
                        routes.install(table);
                    }
                    Err(e) => {
                        tracing::warn!(file = %path.display(), error = %e, "the routes file is not a route table; keeping the last one")
                    }
                }
                last = Some(bytes);
            }
            Ok(_) => unreadable = false,
            Err(e) => {
                if !unreadable {
                    tracing::warn!(file = %path.display(), error = %e, "cannot read the routes file; keeping the last table");
                }
                unreadable = true;
            }
        }
        tokio::time::sleep(FILE_POLL).await;
    }
}
