//! The route table in force and each cluster's live state on this replica: its bucket, token
//! verifier, members' health, activity counters and pending wake. A new table replaces the
//! routes atomically; the live state of a cluster that stays is kept.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use ipnet::IpNet;
use koru_gateway_api::{ClusterActivity, ClusterRoute, RouteState, RouteTable};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{Notify, watch};

use crate::edge::{TokenVerifier, parse_cidrs};
use crate::limiter::RateShare;

/// One cluster's route as this replica uses it.
pub struct Entry {
    /// The route as the control plane sent it.
    pub route: ClusterRoute,
    /// The parsed allow list.
    pub allow: Vec<IpNet>,
    /// Revoked token ids.
    pub revoked: HashSet<String>,
    /// State kept across tables.
    pub live: Arc<Live>,
}

/// What this replica knows of a cluster beyond its route, kept while the cluster stays in the
/// table.
#[derive(Default)]
pub struct Live {
    /// This replica's share of the cluster's ops/s.
    pub limiter: RateShare,
    /// The verifier of the route's current key (None: the route has no key, tokens unchecked).
    pub verifier: RwLock<Option<Arc<TokenVerifier>>>,
    /// The members' health, from their `/readyz`.
    pub health: RwLock<Health>,
    /// Round-robin position among ready members for reads.
    pub next_read: AtomicUsize,
    /// Counters since the last report to the control plane.
    pub activity: Activity,
    /// When this replica last asked the control plane to wake the cluster.
    pub wake_asked: Mutex<Option<Instant>>,
}

/// The members as last polled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// The member URLs this view is of (the route's, when it was polled).
    pub members: Vec<String>,
    /// Whether they have been polled since the route named them.
    pub polled: bool,
    /// Members that answered `/readyz` with `ready`.
    pub ready: Vec<String>,
    /// The member that leads (a one-member cluster leads itself).
    pub leader: Option<String>,
}

/// Counters reported to the control plane and swapped to zero on each sync.
#[derive(Default)]
pub struct Activity {
    requests: AtomicU64,
    server_errors: AtomicU64,
    slow_requests: AtomicU64,
    throttled: AtomicU64,
}

impl Activity {
    /// Records one answered request.
    pub fn record(&self, status: u16, slow: bool, throttled: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if status >= 500 {
            self.server_errors.fetch_add(1, Ordering::Relaxed);
        }
        if slow {
            self.slow_requests.fetch_add(1, Ordering::Relaxed);
        }
        if throttled {
            self.throttled.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Takes the counters (None when nothing happened).
    fn take(&self, cluster_id: &str) -> Option<ClusterActivity> {
        let activity = ClusterActivity {
            cluster_id: cluster_id.to_string(),
            requests: self.requests.swap(0, Ordering::Relaxed),
            server_errors: self.server_errors.swap(0, Ordering::Relaxed),
            slow_requests: self.slow_requests.swap(0, Ordering::Relaxed),
            throttled: self.throttled.swap(0, Ordering::Relaxed),
        };
        (activity.requests > 0 || activity.throttled > 0).then_some(activity)
    }

    /// Puts back counters a failed sync could not deliver.
    fn give_back(&self, a: &ClusterActivity) {
        self.requests.fetch_add(a.requests, Ordering::Relaxed);
        self.server_errors
            .fetch_add(a.server_errors, Ordering::Relaxed);
        self.slow_requests
            .fetch_add(a.slow_requests, Ordering::Relaxed);
        self.throttled.fetch_add(a.throttled, Ordering::Relaxed);
    }
}

/// The routes in force, by name and by id.
#[derive(Default)]
pub struct Snapshot {
    by_name: HashMap<(String, String), Arc<Entry>>,
    by_id: HashMap<String, Arc<Entry>>,
}

impl Snapshot {
    /// The cluster `name` of organization `org`.
    pub fn by_name(&self, org: &str, name: &str) -> Option<Arc<Entry>> {
        self.by_name
            .get(&(org.to_string(), name.to_string()))
            .cloned()
    }

    /// The cluster with id `id`.
    pub fn by_id(&self, id: &str) -> Option<Arc<Entry>> {
        self.by_id.get(id).cloned()
    }

    /// Every cluster.
    pub fn entries(&self) -> impl Iterator<Item = &Arc<Entry>> {
        self.by_id.values()
    }
}

/// The table in force and the signals around it.
pub struct Routes {
    snapshot: RwLock<Arc<Snapshot>>,
    loaded: AtomicBool,
    last_loaded: Mutex<Option<Instant>>,
    changed: watch::Sender<u64>,
    /// Wakes the member poller at once (new members to look at, or a write found no leader).
    pub poll_now: Notify,
    /// Wakes the sync loop at once, and keeps it syncing fast until the instant stored.
    pub hurry: Notify,
    hurry_until: Mutex<Option<Instant>>,
}

impl Default for Routes {
    fn default() -> Self {
        Routes {
            snapshot: RwLock::default(),
            loaded: AtomicBool::new(false),
            last_loaded: Mutex::new(None),
            changed: watch::channel(0).0,
            poll_now: Notify::new(),
            hurry: Notify::new(),
            hurry_until: Mutex::new(None),
        }
    }
}

impl Routes {
    /// The routes in force.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.read())
    }

    /// Whether a table has been loaded (the gateway is ready).
    pub fn loaded(&self) -> bool {
        self.loaded.load(Ordering::SeqCst)
    }

    /// Whether a table was installed after `since`.
    pub fn loaded_since(&self, since: Instant) -> bool {
        self.last_loaded.lock().is_some_and(|t| t > since)
    }

    /// Seconds since the last table was loaded (None before the first).
    pub fn age_secs(&self) -> Option<f64> {
        self.last_loaded.lock().map(|t| t.elapsed().as_secs_f64())
    }

    /// A receiver that sees every change of the table or of a cluster's health.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Tells waiters that something they wait on changed.
    pub fn notify_changed(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Syncs fast (see `config::FAST_SYNC_INTERVAL`) until `until`, starting now if that is
    /// news (every held request calls it on every change; only the first hurries the loop).
    pub fn hurry_until(&self, until: Instant) {
        let mut current = self.hurry_until.lock();
        let already = current.is_some_and(|c| c > Instant::now());
        if current.is_none_or(|c| c < until) {
            *current = Some(until);
        }
        drop(current);
        if !already {
            self.hurry.notify_one();
        }
    }

    /// Whether syncs should be fast now.
    pub fn hurrying(&self) -> bool {
        self.hurry_until.lock().is_some_and(|t| t > Instant::now())
    }

    /// Installs a new table: the live state of clusters that stay is kept; a cluster whose
    /// members changed is polled again before it is served.
    pub fn install(&self, table: RouteTable) {
        let old = self.snapshot();
        let mut next = Snapshot::default();
        let mut new_members = false;
        for route in table.clusters {
            let previous = old.by_id(&route.id);
            // A cluster that just came back (members named the same, e.g. Kubernetes Service
            // names) is polled at once, so held requests need not wait for the next tick.
            new_members |= route.state == RouteState::Running
                && previous
                    .as_ref()
                    .is_some_and(|e| e.route.state != RouteState::Running);
            let live = previous.map_or_else(Arc::default, |e| Arc::clone(&e.live));
            live.limiter.set(route.max_ops_per_sec, route.ops_share);
            {
                let mut verifier = live.verifier.write();
                let key = route.token_public_key_pem.trim();
                if key.is_empty() {
                    *verifier = None;
                } else if verifier.as_ref().is_none_or(|v| v.pem != key) {
                    *verifier = Some(Arc::new(TokenVerifier::new(key, &route.id)));
                }
            }
            {
                let mut health = live.health.write();
                if health.members != route.members {
                    *health = Health {
                        members: route.members.clone(),
                        ..Health::default()
                    };
                    new_members |= !route.members.is_empty();
                }
            }
            let (allow, bad) = parse_cidrs(&route.allowed_cidrs);
            if !bad.is_empty() {
                tracing::warn!(cluster = %route.id, ?bad, "allow-list entries that are not CIDRs are ignored (the list allows only the rest)");
            }
            let entry = Arc::new(Entry {
                allow,
                revoked: route.revoked_token_ids.iter().cloned().collect(),
                live,
                route,
            });
            next.by_name.insert(
                (
                    entry.route.org_slug.to_ascii_lowercase(),
                    entry.route.name.to_ascii_lowercase(),
                ),
                Arc::clone(&entry),
            );
            next.by_id.insert(entry.route.id.clone(), entry);
        }
        *self.snapshot.write() = Arc::new(next);
        self.loaded.store(true, Ordering::SeqCst);
        *self.last_loaded.lock() = Some(Instant::now());
        if new_members {
            self.poll_now.notify_one();
        }
        self.notify_changed();
    }

    /// Takes every cluster's activity counters for a report.
    pub fn take_activity(&self) -> Vec<ClusterActivity> {
        self.snapshot()
            .entries()
            .filter_map(|e| e.live.activity.take(&e.route.id))
            .collect()
    }

    /// Puts back the counters of a report that was not delivered.
    pub fn give_back(&self, activity: &[ClusterActivity]) {
        let snapshot = self.snapshot();
        for a in activity {
            if let Some(e) = snapshot.by_id(&a.cluster_id) {
                e.live.activity.give_back(a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(id: &str, members: &[&str]) -> ClusterRoute {
        ClusterRoute {
            id: id.into(),
            name: format!("n-{id}"),
            org_slug: "Acme".into(),
            state: RouteState::Running,
            members: members.iter().map(|m| m.to_string()).collect(),
            token_public_key_pem: String::new(),
            revoked_token_ids: vec!["t1".into()],
            allowed_cidrs: vec![],
            max_ops_per_sec: 0,
            max_request_bytes: 0,
            ops_share: 1.0,
        }
    }

    #[test]
    fn a_new_table_keeps_live_state_and_repolls_changed_members() {
        let routes = Routes::default();
        assert!(!routes.loaded());
        routes.install(RouteTable {
            clusters: vec![route("c1", &["http://a"]), route("c2", &[])],
            live_gateways: 1,
        });
        assert!(routes.loaded());
        let c1 = routes.snapshot().by_name("acme", "n-c1").expect("by name");
        c1.live.health.write().polled = true;
        c1.live.activity.record(503, true, false);
        routes.install(RouteTable {
            clusters: vec![route("c1", &["http://a"])],
            live_gateways: 1,
        });
        let again = routes.snapshot().by_id("c1").expect("by id");
        assert!(Arc::ptr_eq(&c1.live, &again.live));
        assert!(again.live.health.read().polled, "same members: health kept");
        assert!(routes.snapshot().by_id("c2").is_none());
        let activity = routes.take_activity();
        assert_eq!(activity.len(), 1);
        assert_eq!(
            (
                activity[0].requests,
                activity[0].server_errors,
                activity[0].slow_requests
            ),
            (1, 1, 1)
        );
        assert!(routes.take_activity().is_empty(), "counters are swapped");
        routes.give_back(&activity);
        assert_eq!(routes.take_activity(), activity);
        routes.install(RouteTable {
            clusters: vec![route("c1", &["http://b"])],
            live_gateways: 1,
        });
        let moved = routes.snapshot().by_id("c1").expect("by id");
        assert!(
            !moved.live.health.read().polled,
            "new members are polled again"
        );
        assert!(moved.revoked.contains("t1"));
    }

    /// Whether `notify` holds a permit (was notified with nobody waiting).
    async fn notified(notify: &Notify) -> bool {
        tokio::time::timeout(std::time::Duration::from_millis(10), notify.notified())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_cluster_back_to_running_is_polled_at_once_and_hurrying_notifies_once() {
        let routes = Routes::default();
        let mut asleep = route("c1", &["http://a"]);
        asleep.state = RouteState::Suspended;
        routes.install(RouteTable {
            clusters: vec![asleep.clone()],
            live_gateways: 1,
        });
        assert!(notified(&routes.poll_now).await, "new members");
        routes.install(RouteTable {
            clusters: vec![asleep],
            live_gateways: 1,
        });
        assert!(!notified(&routes.poll_now).await, "nothing new");
        routes.install(RouteTable {
            clusters: vec![route("c1", &["http://a"])],
            live_gateways: 1,
        });
        assert!(
            notified(&routes.poll_now).await,
            "back to running under the same names"
        );

        let until = Instant::now() + std::time::Duration::from_secs(5);
        routes.hurry_until(until);
        assert!(routes.hurrying());
        assert!(notified(&routes.hurry).await);
        routes.hurry_until(until);
        assert!(
            !notified(&routes.hurry).await,
            "already hurrying: no second wake-up"
        );
    }
}
