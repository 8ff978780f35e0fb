//! One autoscaling look at a cluster: sample its members, decide storage and compute, and say
//! what the status and the events should show. The controller carries the outcome out.

use kube::{Client, ResourceExt};

use super::compute::{self, Policy};
use super::storage::{DEFAULT_THRESHOLD_PERCENT, StorageDecision, decide_storage, size_quantity};
use super::{
    History, bytes, current_requests, epoch_seconds, growth_in_progress, read_members,
    resources_status, storage_size,
};
use crate::admin::AdminClient;
use crate::status::Notice;
use koru_crd::{KoruCluster, ResourcesStatus, StorageStatus};

/// What one look decided.
#[derive(Debug, Default)]
pub struct Evaluation {
    /// The new `status.storage`, with storage autoscaling.
    pub storage: Option<StorageStatus>,
    /// The StorageAtCeiling condition's value and message, when looked at.
    pub at_ceiling: Option<(bool, String)>,
    /// The new `status.resources`, with compute autoscaling.
    pub resources: Option<ResourcesStatus>,
    /// Events to publish (StorageAutoscaled, ComputeResized).
    pub notices: Vec<Notice>,
}

/// Samples the cluster's members and decides. `live_size` is the StatefulSet's claim template
/// size; `now` the time as the status writes it.
pub async fn evaluate(
    client: &Client,
    admin: &AdminClient,
    history: &History,
    policy: &Policy,
    kc: &KoruCluster,
    live_size: Option<&str>,
    now: &str,
) -> Evaluation {
    let mut out = Evaluation::default();
    let reports = match read_members(client, admin, kc).await {
        Ok(reports) => reports,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the cluster's pods to sample them");
            Vec::new()
        }
    };
    let at = epoch_seconds(now).unwrap_or_default();
    let old = kc.status.clone().unwrap_or_default();
    if let Some(auto) = &kc.spec.storage.autoscale {
        let size = storage_size(kc, live_size);
        let max = bytes(&auto.max_size).unwrap_or(size);
        let threshold = auto.threshold_percent.unwrap_or(DEFAULT_THRESHOLD_PERCENT);
        let fullest = reports
            .iter()
            .filter_map(|r| r.figures.used_percent().map(|p| (p, r.pod.as_str())))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let growing = growth_in_progress(client, kc).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the cluster's volume claims");
            true
        });
        let mut storage = old.storage.clone().unwrap_or_default();
        storage.used_percent = fullest
            .map(|(p, _)| p.round() as i32)
            .or(storage.used_percent);
        let ceiling = size_quantity(max);
        match decide_storage(size, fullest.map(|f| f.0), threshold, max, growing) {
            StorageDecision::Grow(to) => {
                let (used, pod) = fullest.unwrap_or_default();
                out.notices.push(Notice {
                    warning: false,
                    reason: "StorageAutoscaled",
                    note: format!(
                        "{pod}'s volume is {used:.0}% full (threshold {threshold}%): growing the volumes from {} to {} (ceiling {ceiling})",
                        size_quantity(size),
                        size_quantity(to)
                    ),
                });
                storage.size = Some(size_quantity(to));
                storage.last_growth_time = Some(now.to_string());
                out.at_ceiling = Some((false, format!("the volumes can grow up to {ceiling}")));
            }
            StorageDecision::AtCeiling => {
                let (used, pod) = fullest.unwrap_or_default();
                out.at_ceiling = Some((
                    true,
                    format!(
                        "{pod}'s volume is {used:.0}% full and the volumes are at their ceiling {ceiling}: they cannot grow further; raise storage.autoscale.maxSize (the tier's limit) or free space"
                    ),
                ));
            }
            StorageDecision::Fine => {
                let room = size < max;
                out.at_ceiling = Some((
                    false,
                    if room {
                        format!("the volumes can grow up to {ceiling}")
                    } else {
                        format!("at the ceiling {ceiling}, below the {threshold}% threshold")
                    },
                ));
            }
            StorageDecision::Wait => {}
        }
        out.storage = Some(storage);
    }
    if let (Some(bounds), Some(current)) = (super::bounds(kc), current_requests(kc)) {
        let samples = history.record(&crate::controller::key(kc), at, &reports);
        let last_change = old
            .resources
            .as_ref()
            .and_then(|r| r.last_change_time.as_deref())
            .and_then(epoch_seconds);
        match compute::decide(current, &bounds, &samples, last_change, at, policy) {
            Some(decision) => {
                out.notices.push(Notice {
                    warning: false,
                    reason: "ComputeResized",
                    note: format!(
                        "CPU {} -> {}, memory {} -> {} for each pod of {}: {}",
                        compute::cpu_quantity(current.cpu_milli),
                        compute::cpu_quantity(decision.to.cpu_milli),
                        compute::memory_quantity(current.memory_bytes),
                        compute::memory_quantity(decision.to.memory_bytes),
                        kc.name_any(),
                        decision.why
                    ),
                });
                out.resources = Some(resources_status(decision.to, Some(now.to_string())));
            }
            None => {
                let since = old.resources.and_then(|r| r.last_change_time);
                out.resources = Some(resources_status(current, since));
            }
        }
    }
    out
}
