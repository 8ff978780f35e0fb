//! Leader election on a coordination.k8s.io/v1 Lease, so that one replica reconciles at a time.
//!
//! The protocol is client-go's. A candidate takes the Lease when it is free, or when its record
//! has not changed for a whole lease duration as measured on the candidate's own monotonic clock
//! (so clock skew between nodes does not matter). Every write carries the resourceVersion it was
//! based on, so of two candidates racing only one succeeds (the other gets 409 and looks again).
//! The leader renews every retry period; if it has not renewed within the renew deadline (shorter
//! than the duration), or finds another holder, it stops reconciling at once and the process
//! exits non-zero, to restart as a candidate. On graceful shutdown it releases the Lease (no holder,
//! one-second duration) so a successor need not wait for it to expire.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use rand::{RngExt, rng};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// How long a graceful shutdown waits to release the Lease.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// Which Lease to hold, as whom, and the timings derived from its duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Name of the Lease.
    pub name: String,
    /// Namespace of the Lease.
    pub namespace: String,
    /// This replica's holder identity.
    pub identity: String,
    /// How long the Lease stays valid without renewal.
    pub duration: Duration,
    /// The leader steps down when it has not renewed for this long (two thirds of the duration,
    /// leaving a third as margin before a candidate may take over).
    pub renew_deadline: Duration,
    /// How often the leader renews and candidates look (a sixth of the duration).
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// A configuration whose renew deadline and retry period derive from `duration`.
    pub fn new(name: String, namespace: String, identity: String, duration: Duration) -> Self {
        LeaseConfig {
            name,
            namespace,
            identity,
            duration,
            renew_deadline: duration * 2 / 3,
            retry_period: duration / 6,
        }
    }
}

/// Why this replica stopped being the leader.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// Another replica holds the Lease now, or someone released it.
    #[error("the Lease {lease} is now held by {holder}")]
    TakenOver {
        /// The Lease.
        lease: String,
        /// Its holder now, or "nobody".
        holder: String,
    },
    /// No renewal succeeded within the renew deadline.
    #[error("could not renew the Lease {lease} within {deadline:?}: {last_error}")]
    RenewDeadline {
        /// The Lease.
        lease: String,
        /// The renew deadline.
        deadline: Duration,
        /// What the last attempt failed with.
        last_error: String,
    },
    /// The Lease was deleted while held.
    #[error("the Lease {lease} was deleted")]
    Deleted {
        /// The Lease.
        lease: String,
    },
}

/// The holder named in `spec`; an empty identity means the Lease was released.
fn holder(spec: Option<&LeaseSpec>) -> Option<&str> {
    spec.and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty())
}

/// Whether `me` may take the Lease: it is free, already ours (a restart with the same pod name),
/// or its record has stayed unchanged, as we observed, for its whole duration.
fn may_acquire(
    spec: Option<&LeaseSpec>,
    me: &str,
    unchanged_for: Duration,
    default_duration: Duration,
) -> bool {
    match holder(spec) {
        None => true,
        Some(h) if h == me => true,
        Some(_) => {
            let duration = spec
                .and_then(|s| s.lease_duration_seconds)
                .and_then(|d| u64::try_from(d).ok())
                .filter(|d| *d > 0)
                .map_or(default_duration, Duration::from_secs);
            unchanged_for >= duration
        }
    }
}

/// The spec making `me` the holder as of `now`: a renewal when the term is already ours, a new
/// term (acquire time now, one more transition) otherwise. Other fields are kept.
fn held_spec(old: Option<&LeaseSpec>, me: &str, now: Timestamp, duration: Duration) -> LeaseSpec {
    let ours = holder(old) == Some(me);
    // client-go's count: 0 for a new Lease, one more whenever the holder changes.
    let transitions = match old {
        None => 0,
        Some(s) if ours => s.lease_transitions.unwrap_or(0),
        Some(s) => s.lease_transitions.unwrap_or(0) + 1,
    };
    let old = old.cloned().unwrap_or_default();
    LeaseSpec {
        holder_identity: Some(me.to_string()),
        lease_duration_seconds: Some(i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)),
        acquire_time: match (&old.acquire_time, ours) {
            (Some(t), true) => Some(t.clone()),
            _ => Some(MicroTime(now)),
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..old
    }
}

/// The spec of a released Lease: no holder and a one-second duration (client-go's convention).
fn released_spec(old: Option<&LeaseSpec>, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        acquire_time: None,
        renew_time: Some(MicroTime(now)),
        lease_duration_seconds: Some(1),
        ..old.cloned().unwrap_or_default()
    }
}

/// What one attempt to take the Lease found.
enum Attempt {
    /// We hold it now.
    Acquired(Box<Lease>),
    /// Another replica holds it and has renewed recently.
    HeldBy(String),
    /// Another replica wrote it between our read and our write.
    Contended,
}

/// What one renewal found.
enum Renewal {
    /// Renewed; the new object carries the next resourceVersion.
    Renewed(Box<Lease>),
    /// Someone else wrote our Lease (say, a label); renew on top of this version.
    Stale(Box<Lease>),
    /// The holder is no longer us.
    TakenOver(String),
    /// The Lease is gone.
    Deleted,
}

/// The candidate's view of the Lease.
struct Elector<'a> {
    api: Api<Lease>,
    config: &'a LeaseConfig,
    /// The resourceVersion last read and when we first saw it, on our monotonic clock.
    observed: Option<(String, Instant)>,
}

impl<'a> Elector<'a> {
    /// How long the Lease's record has been unchanged, as far as we have watched it.
    fn observe(&mut self, lease: &Lease) -> Duration {
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        match &self.observed {
            Some((seen, since)) if *seen == version => since.elapsed(),
            _ => {
                self.observed = Some((version, Instant::now()));
                Duration::ZERO
            }
        }
    }

    /// One attempt to create or take over the Lease.
    async fn try_acquire(&mut self) -> Result<Attempt, kube::Error> {
        let c = self.config;
        let Some(current) = self.api.get_opt(&c.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(c.name.clone()),
                    namespace: Some(c.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(held_spec(None, &c.identity, Timestamp::now(), c.duration)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(lease) => Ok(Attempt::Acquired(Box::new(lease))),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Contended),
                Err(e) => Err(e),
            };
        };
        let unchanged_for = self.observe(&current);
        let spec = current.spec.as_ref();
        if !may_acquire(spec, &c.identity, unchanged_for, c.duration) {
            return Ok(Attempt::HeldBy(
                holder(spec).unwrap_or_default().to_string(),
            ));
        }
        let mut next = current.clone();
        next.spec = Some(held_spec(spec, &c.identity, Timestamp::now(), c.duration));
        // `next` carries the resourceVersion we read: a write by anyone since then fails with 409.
        match self
            .api
            .replace(&c.name, &PostParams::default(), &next)
            .await
        {
            Ok(lease) => Ok(Attempt::Acquired(Box::new(lease))),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Contended),
            Err(e) => Err(e),
        }
    }

    /// Retries [`Elector::try_acquire`] every retry period until it succeeds; None on shutdown.
    async fn acquire(&mut self, shutdown: &CancellationToken) -> Option<Lease> {
        let mut last_holder = String::new();
        loop {
            let attempt = tokio::select! {
                () = shutdown.cancelled() => return None,
                attempt = self.try_acquire() => attempt,
            };
            match attempt {
                Ok(Attempt::Acquired(lease)) => return Some(*lease),
                Ok(Attempt::HeldBy(h)) if h != last_holder => {
                    tracing::info!(holder = %h, lease = %self.config.name, "waiting for the Lease");
                    last_holder = h;
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, lease = %self.config.name, "cannot read or take the Lease; will retry")
                }
            }
            // Jitter keeps candidates that started together from colliding on every try.
            let pause = self
                .config
                .retry_period
                .mul_f64(1.0 + rng().random_range(0.0..0.2));
            tokio::select! {
                () = shutdown.cancelled() => return None,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One renewal of `held`, which must be the latest version we know.
    async fn renew(&self, held: &Lease) -> Result<Renewal, kube::Error> {
        let c = self.config;
        let mut next = held.clone();
        next.spec = Some(held_spec(
            held.spec.as_ref(),
            &c.identity,
            Timestamp::now(),
            c.duration,
        ));
        match self
            .api
            .replace(&c.name, &PostParams::default(), &next)
            .await
        {
            Ok(lease) => Ok(Renewal::Renewed(Box::new(lease))),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(Renewal::Deleted),
            Err(kube::Error::Api(e)) if e.code == 409 => match self.api.get_opt(&c.name).await? {
                None => Ok(Renewal::Deleted),
                Some(current) => match holder(current.spec.as_ref()) {
                    Some(h) if h == c.identity => Ok(Renewal::Stale(Box::new(current))),
                    h => Ok(Renewal::TakenOver(h.unwrap_or("nobody").to_string())),
                },
            },
            Err(e) => Err(e),
        }
    }

    /// Renews `held` every retry period; returns only when leadership is lost.
    async fn keep(&self, held: &mut Lease) -> LeaderError {
        let c = self.config;
        let mut renewed_at = Instant::now();
        loop {
            tokio::time::sleep(c.retry_period).await;
            let mut last_error = String::from("timed out");
            loop {
                let started = Instant::now();
                let remaining = (renewed_at + c.renew_deadline).saturating_duration_since(started);
                if remaining.is_zero() {
                    return LeaderError::RenewDeadline {
                        lease: c.name.clone(),
                        deadline: c.renew_deadline,
                        last_error,
                    };
                }
                match tokio::time::timeout(remaining, self.renew(held)).await {
                    Ok(Ok(Renewal::Renewed(lease))) => {
                        *held = *lease;
                        // Measured from before the write: candidates see it only after.
                        renewed_at = started;
                        break;
                    }
                    Ok(Ok(Renewal::Stale(current))) => *held = *current,
                    Ok(Ok(Renewal::TakenOver(holder))) => {
                        return LeaderError::TakenOver {
                            lease: c.name.clone(),
                            holder,
                        };
                    }
                    Ok(Ok(Renewal::Deleted)) => {
                        return LeaderError::Deleted {
                            lease: c.name.clone(),
                        };
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(%error, lease = %c.name, "cannot renew the Lease; will retry");
                        last_error = error.to_string();
                        let left = (renewed_at + c.renew_deadline)
                            .saturating_duration_since(Instant::now());
                        tokio::time::sleep(c.retry_period.min(left)).await;
                    }
                    Err(_elapsed) => {}
                }
            }
        }
    }

    /// Gives the Lease up if we still hold it, so a successor can take it at once.
    async fn release(&self, mut held: Lease) -> Result<(), kube::Error> {
        let c = self.config;
        // A few rounds cover someone else touching the object meanwhile; a successor's Lease is
        // never written, as every write is guarded by the version we read.
        for _ in 0..3 {
            if holder(held.spec.as_ref()) != Some(c.identity.as_str()) {
                return Ok(());
            }
            let mut next = held.clone();
            next.spec = Some(released_spec(held.spec.as_ref(), Timestamp::now()));
            match self
                .api
                .replace(&c.name, &PostParams::default(), &next)
                .await
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(e)) if e.code == 409 => match self.api.get_opt(&c.name).await?
                {
                    Some(current) => held = current,
                    None => return Ok(()),
                },
                Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Waits for the Lease, then runs `lead` while holding it, renewing meanwhile.
///
/// Returns Ok when `shutdown` fires (before leading, or after `lead` has finished, the Lease then
/// released), or when `lead` ends by itself. Returns the reason when leadership is lost; `lead`
/// is then dropped at once, since another replica may already be leading.
pub async fn run<F, Fut>(
    client: Client,
    config: &LeaseConfig,
    metrics: &Metrics,
    shutdown: CancellationToken,
    lead: F,
) -> Result<(), LeaderError>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut elector = Elector {
        api: Api::namespaced(client, &config.namespace),
        config,
        observed: None,
    };
    metrics.set_leader(false);
    tracing::info!(lease = %config.name, namespace = %config.namespace, identity = %config.identity, "waiting to become the leader");
    let Some(mut held) = elector.acquire(&shutdown).await else {
        return Ok(());
    };
    tracing::info!(lease = %config.name, identity = %config.identity, "became the leader");
    metrics.set_leader(true);
    let stop = shutdown.child_token();
    let leading = lead(stop.clone());
    let mut leading = std::pin::pin!(leading);
    let lost = tokio::select! {
        () = &mut leading => None,
        lost = elector.keep(&mut held) => Some(lost),
    };
    if let Some(lost) = lost {
        metrics.set_leader(false);
        stop.cancel();
        return Err(lost);
    }
    metrics.set_leader(false);
    match tokio::time::timeout(RELEASE_TIMEOUT, elector.release(held)).await {
        Ok(Ok(())) => tracing::info!(lease = %config.name, "released the Lease"),
        Ok(Err(error)) => {
            tracing::warn!(%error, lease = %config.name, "cannot release the Lease; it will expire")
        }
        Err(_) => {
            tracing::warn!(lease = %config.name, "releasing the Lease timed out; it will expire")
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: Option<&str>, duration: i32, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_string),
            lease_duration_seconds: Some(duration),
            lease_transitions: Some(transitions),
            acquire_time: Some(MicroTime(Timestamp::UNIX_EPOCH)),
            renew_time: Some(MicroTime(Timestamp::UNIX_EPOCH)),
            ..LeaseSpec::default()
        }
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn timings_derive_from_the_duration() {
        let c = LeaseConfig::new("l".into(), "ns".into(), "me".into(), 15 * SECOND);
        assert_eq!(c.renew_deadline, 10 * SECOND);
        assert_eq!(c.retry_period, Duration::from_millis(2500));
    }

    #[test]
    fn a_free_or_own_lease_may_be_taken_at_once() {
        assert!(may_acquire(None, "me", Duration::ZERO, 15 * SECOND));
        assert!(may_acquire(
            Some(&spec(None, 1, 3)),
            "me",
            Duration::ZERO,
            15 * SECOND
        ));
        assert!(may_acquire(
            Some(&spec(Some(""), 15, 3)),
            "me",
            Duration::ZERO,
            15 * SECOND
        ));
        assert!(may_acquire(
            Some(&spec(Some("me"), 15, 3)),
            "me",
            Duration::ZERO,
            15 * SECOND
        ));
    }

    #[test]
    fn another_holder_is_waited_out_for_its_whole_duration() {
        let held = spec(Some("other"), 4, 1);
        assert!(!may_acquire(Some(&held), "me", 3 * SECOND, 15 * SECOND));
        assert!(may_acquire(Some(&held), "me", 4 * SECOND, 15 * SECOND));
        let no_duration = LeaseSpec {
            lease_duration_seconds: None,
            ..held
        };
        assert!(!may_acquire(
            Some(&no_duration),
            "me",
            4 * SECOND,
            15 * SECOND
        ));
        assert!(may_acquire(
            Some(&no_duration),
            "me",
            15 * SECOND,
            15 * SECOND
        ));
    }

    #[test]
    fn a_new_term_counts_a_transition_and_a_renewal_keeps_the_term() {
        let now = Timestamp::from_second(1_000).unwrap();
        let taken = held_spec(Some(&spec(Some("other"), 4, 2)), "me", now, 6 * SECOND);
        assert_eq!(taken.holder_identity.as_deref(), Some("me"));
        assert_eq!(taken.lease_transitions, Some(3));
        assert_eq!(taken.lease_duration_seconds, Some(6));
        assert_eq!(taken.acquire_time, Some(MicroTime(now)));
        let renewed = held_spec(Some(&spec(Some("me"), 6, 3)), "me", now, 6 * SECOND);
        assert_eq!(renewed.lease_transitions, Some(3));
        assert_eq!(renewed.acquire_time, Some(MicroTime(Timestamp::UNIX_EPOCH)));
        assert_eq!(renewed.renew_time, Some(MicroTime(now)));
        let created = held_spec(None, "me", now, 6 * SECOND);
        assert_eq!(created.lease_transitions, Some(0));
    }

    #[test]
    fn a_released_lease_has_no_holder_and_expires_at_once() {
        let now = Timestamp::from_second(1_000).unwrap();
        let released = released_spec(Some(&spec(Some("me"), 15, 3)), now);
        assert_eq!(holder(Some(&released)), None);
        assert_eq!(released.lease_duration_seconds, Some(1));
        assert_eq!(released.lease_transitions, Some(3));
    }
}
