//! Scale to zero without errors: a request for a suspended cluster is held while the cluster
//! wakes (one wake call per cluster however many requests wait), then forwarded; only a wake
//! longer than the deadline is answered 503 `waking`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use koru_gateway_api::RouteState;

use crate::Gateway;
use crate::error::GatewayError;
use crate::metrics::ClusterLabel;
use crate::table::Entry;

/// How long a request for a running cluster with no ready member waits for one (a leader
/// election, a member restarting) before 503.
const NOT_READY_HOLD: Duration = Duration::from_secs(5);
/// How long a request for a cluster the table calls unavailable waits for a fresher table: the
/// cluster may have started since this replica's last sync (a client that saw it Running in the
/// API and used it at once met 503 here).
const STALE_TABLE_HOLD: Duration = Duration::from_secs(3);
/// How long a request for a cluster the table does not know waits for the next sync: it may
/// have been created since this replica's last one (a client that saw it Running in the API and
/// used it at once met 404 here).
const UNKNOWN_HOLD: Duration = Duration::from_millis(1500);
/// A wake call is repeated at most this often for one cluster while requests wait.
const WAKE_REPEAT: Duration = Duration::from_secs(10);

/// Whether a route can take the request now: running, with a member known to be ready.
fn serving(entry: &Entry) -> Readiness {
    match entry.route.state {
        RouteState::Running => {
            let health = entry.live.health.read();
            if entry.route.members.is_empty() || !health.polled {
                Readiness::NotYet
            } else if health.ready.is_empty() {
                Readiness::NoReadyMember
            } else {
                Readiness::Yes
            }
        }
        RouteState::Suspended => Readiness::Asleep,
        RouteState::Waking => Readiness::NotYet,
        RouteState::Unavailable => Readiness::Never,
    }
}

/// What [`serving`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Readiness {
    /// Forward now.
    Yes,
    /// Suspended: ask for a wake and hold.
    Asleep,
    /// On its way (waking, or running but its members not yet polled): hold.
    NotYet,
    /// Running but no member is ready: hold briefly.
    NoReadyMember,
    /// Not serving: refuse.
    Never,
}

/// Waits until cluster `id` can take a request (the forwarding reads its route afresh); holds it
/// while the cluster is suspended or waking, up to the wake deadline.
pub async fn until_serving(gateway: &Gateway, id: &str) -> Result<(), GatewayError> {
    let start = Instant::now();
    let deadline = start + gateway.config.wake_deadline;
    let mut changes = gateway.routes.subscribe();
    let mut held = false;
    loop {
        changes.borrow_and_update();
        let entry = gateway
            .routes
            .snapshot()
            .by_id(id)
            .ok_or(GatewayError::UnknownCluster)?;
        let limit = match serving(&entry) {
            Readiness::Yes => {
                if held {
                    gateway
                        .metrics
                        .wake_duration
                        .get_or_create(&ClusterLabel {
                            cluster: id.to_string(),
                        })
                        .observe(start.elapsed().as_secs_f64());
                    tracing::info!(cluster = %id, held_ms = start.elapsed().as_millis() as u64, "cluster awake; forwarding the held request");
                }
                return Ok(());
            }
            Readiness::Never => {
                let limit = (start + STALE_TABLE_HOLD).min(deadline);
                gateway.routes.hurry_until(limit);
                limit
            }
            Readiness::Asleep => {
                held = true;
                ask_wake(gateway, &entry, deadline);
                deadline
            }
            Readiness::NotYet => {
                // Waking: sync fast to see it run. Running but not yet polled: the poller was
                // woken by the table that named the members.
                if entry.route.state == RouteState::Waking {
                    held = true;
                    gateway.routes.hurry_until(deadline);
                }
                deadline
            }
            Readiness::NoReadyMember if held => deadline,
            Readiness::NoReadyMember => (start + NOT_READY_HOLD).min(deadline),
        };
        let now = Instant::now();
        if now >= limit {
            return Err(if held {
                GatewayError::Waking(gateway.config.wake_deadline)
            } else {
                GatewayError::Unavailable
            });
        }
        // A table or health change, or the limit: whichever first.
        let _ = tokio::time::timeout(limit - now, changes.changed()).await;
    }
}

/// For a request naming a cluster the table lacks: syncs now and waits for that table (up to
/// [`UNKNOWN_HOLD`]); true once a table newer than `since` is installed. Only with a control
/// plane: a routes file is re-read as soon as it changes anyway.
pub async fn next_table(gateway: &Gateway, since: Instant) -> bool {
    if gateway.control.is_none() {
        return false;
    }
    let limit = Instant::now() + UNKNOWN_HOLD;
    let mut changes = gateway.routes.subscribe();
    gateway.routes.hurry_until(limit);
    loop {
        if gateway.routes.loaded_since(since) {
            return true;
        }
        let now = Instant::now();
        if now >= limit {
            return false;
        }
        let _ = tokio::time::timeout(limit - now, changes.changed()).await;
    }
}

/// After a request reached no member: syncs fast and polls the members now, then waits for the
/// table or the members' health to change (true) or for [`STALE_TABLE_HOLD`], capped by
/// `deadline` (false: nothing new, the answer stands).
pub async fn fresher_view(
    gateway: &Gateway,
    changes: &mut tokio::sync::watch::Receiver<u64>,
    deadline: Instant,
) -> bool {
    let limit = (Instant::now() + STALE_TABLE_HOLD).min(deadline);
    gateway.routes.hurry_until(limit);
    gateway.routes.poll_now.notify_one();
    let wait = limit.saturating_duration_since(Instant::now());
    matches!(
        tokio::time::timeout(wait, changes.changed()).await,
        Ok(Ok(()))
    )
}

/// Asks the control plane to wake the cluster, once per [`WAKE_REPEAT`] however many requests
/// wait, and syncs fast until the deadline so the wake is seen at once. In routes-file mode
/// there is no one to ask: the request is held until the file says the cluster runs.
fn ask_wake(gateway: &Gateway, entry: &Entry, deadline: Instant) {
    gateway.routes.hurry_until(deadline);
    let Some(control) = gateway.control.clone() else {
        return;
    };
    {
        let mut asked = entry.live.wake_asked.lock();
        if asked.is_some_and(|t| t.elapsed() < WAKE_REPEAT) {
            return;
        }
        *asked = Some(Instant::now());
    }
    let id = entry.route.id.clone();
    gateway
        .metrics
        .wakes
        .get_or_create(&ClusterLabel {
            cluster: id.clone(),
        })
        .inc();
    let routes = Arc::clone(&gateway.routes);
    tokio::spawn(async move {
        match control.wake(&id).await {
            Ok(state) => {
                tracing::info!(cluster = %id, ?state, "asked the control plane to wake the cluster")
            }
            Err(e) => {
                tracing::warn!(cluster = %id, error = %e, "the wake call failed; held requests keep waiting for the next sync")
            }
        }
        routes.hurry.notify_one();
    });
}
