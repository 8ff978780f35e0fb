//! The live state of this region's streams: what each peer's link has applied and how far this
//! region's view of each peer has come, which nearest reads and session tokens wait on.

use std::collections::BTreeMap;
use std::sync::Arc;

use koru_dataplane_api::region::{LinkState, PeerLink, RegionStatus};
use parking_lot::Mutex;
use tokio::sync::watch;

use super::RegionConfig;

/// One peer link's progress.
#[derive(Debug, Clone)]
pub struct Link {
    /// The peer's URL.
    pub url: String,
    /// How the stream is doing.
    pub state: LinkState,
    /// The peer's last LSN covered here (the watermark, skipped records included).
    pub applied_lsn: u64,
    /// The commit time (µs) at the peer of the last record applied.
    pub applied_time: Option<i64>,
    /// Every record the peer commits at or before this time (µs) is here.
    pub closed_time: Option<i64>,
    /// The peer's clock as last seen (its last commit time when the page was read), µs.
    pub peer_clock: Option<i64>,
    /// When that page was read.
    pub seen_at: Option<std::time::Instant>,
    /// Records applied since start.
    pub records_applied: u64,
    /// The last failure.
    pub last_error: Option<String>,
}

/// This region, its links and a signal that fires whenever one moves.
pub struct Regions {
    /// The flags.
    pub config: Arc<RegionConfig>,
    /// The replication secret: presented to peers, accepted on the feed and the snapshot.
    pub token: Option<String>,
    links: Mutex<BTreeMap<String, Link>>,
    /// Serializes applying pages from all peers, so two streams never decide one key at once.
    pub apply_lock: tokio::sync::Mutex<()>,
    moved: watch::Sender<u64>,
}

impl Regions {
    /// The runtime for `config`, every link `connecting`.
    pub fn new(config: Arc<RegionConfig>, token: Option<String>) -> Regions {
        let links = config
            .peers
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    Link {
                        url: p.url.clone(),
                        state: LinkState::Connecting,
                        applied_lsn: 0,
                        applied_time: None,
                        closed_time: None,
                        peer_clock: None,
                        seen_at: None,
                        records_applied: 0,
                        last_error: None,
                    },
                )
            })
            .collect();
        Regions {
            config,
            token,
            links: Mutex::new(links),
            apply_lock: tokio::sync::Mutex::new(()),
            moved: watch::channel(0).0,
        }
    }

    /// Whether an `Authorization` header carries the region token (compared in constant time).
    pub fn accepts(&self, header: Option<&str>) -> bool {
        use subtle::ConstantTimeEq;
        let (Some(token), Ok(sent)) = (&self.token, crate::auth::bearer(header)) else {
            return false;
        };
        token.as_bytes().ct_eq(sent.as_bytes()).into()
    }

    /// Changes one link and wakes every waiting read.
    pub fn update(&self, peer: &str, f: impl FnOnce(&mut Link)) {
        if let Some(link) = self.links.lock().get_mut(peer) {
            f(link);
        }
        self.moved.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A copy of one link.
    pub fn link(&self, peer: &str) -> Option<Link> {
        self.links.lock().get(peer).cloned()
    }

    /// A receiver that changes whenever a link moves.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.moved.subscribe()
    }

    /// Whether this region holds every record each peer committed at or before `micros`.
    pub fn reached_time(&self, micros: i64) -> bool {
        self.links.lock().values().all(|l| {
            l.closed_time
                .max(l.applied_time)
                .is_some_and(|t| t >= micros)
        })
    }

    /// Whether this region applied `origin`'s records through `lsn` (true for this region and
    /// for regions it does not stream from: there is nothing to wait for).
    pub fn reached_lsn(&self, origin: &str, lsn: u64) -> bool {
        self.links
            .lock()
            .get(origin)
            .is_none_or(|l| l.applied_lsn >= lsn)
    }

    /// `GET /admin/v1/regions`.
    pub fn status(&self) -> RegionStatus {
        let links = self.links.lock();
        RegionStatus {
            region: self.config.name.clone(),
            peers: links
                .iter()
                .map(|(name, l)| PeerLink {
                    name: name.clone(),
                    url: l.url.clone(),
                    state: l.state,
                    applied_lsn: l.applied_lsn,
                    applied_time: l.applied_time.map(crate::clock::rfc3339),
                    lag_seconds: l.lag_seconds(),
                    records_applied: l.records_applied,
                    last_error: match l.state {
                        LinkState::Failing => l.last_error.clone(),
                        _ => None,
                    },
                })
                .collect(),
        }
    }
}

impl Link {
    /// How far this region's view trails the peer's clock, in seconds: the peer's clock (as last
    /// seen, moved on by the time since) less the time this region holds everything up to (the
    /// later of its closed time and the last record applied: commit times grow with LSNs). It
    /// grows while the link is down.
    pub fn lag_seconds(&self) -> Option<f64> {
        let (clock, seen) = (self.peer_clock?, self.seen_at?);
        Some(lag_seconds(
            clock,
            seen.elapsed().as_micros() as i64,
            self.closed_time.max(self.applied_time),
        ))
    }
}

fn lag_seconds(peer_clock: i64, since_seen: i64, held: Option<i64>) -> f64 {
    ((peer_clock + since_seen - held.unwrap_or(0)).max(0) as f64) / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::Peer;

    #[test]
    fn reads_wait_for_every_peer_to_reach_the_time_or_the_lsn() {
        let config = RegionConfig {
            name: "a".into(),
            peers: vec![
                Peer {
                    name: "b".into(),
                    url: "http://b".into(),
                },
                Peer {
                    name: "c".into(),
                    url: "http://c".into(),
                },
            ],
            token_file: None,
        };
        let r = Regions::new(Arc::new(config), None);
        assert!(!r.reached_time(10));
        r.update("b", |l| l.closed_time = Some(10));
        assert!(!r.reached_time(10));
        r.update("c", |l| {
            l.applied_time = Some(11);
            l.applied_lsn = 7;
        });
        assert!(r.reached_time(10) && !r.reached_time(11));
        // c's last applied record was committed at 11: nothing of c's at or before 11 is missing.
        r.update("b", |l| l.closed_time = Some(11));
        assert!(r.reached_time(11) && !r.reached_time(12));
        assert!(r.reached_lsn("c", 7) && !r.reached_lsn("c", 8));
        assert!(r.reached_lsn("a", 100) && r.reached_lsn("zz", 1));
        assert_eq!(lag_seconds(3_000_000, 500_000, Some(1_000_000)), 2.5);
    }
}
