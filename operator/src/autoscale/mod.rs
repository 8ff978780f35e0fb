//! Storage and compute autoscaling: the operator samples each member's `/metrics` (volume usage,
//! CPU seconds, resident memory), hands the figures to pure decisions ([`storage`], [`compute`]),
//! and carries them out: volumes grow through the storage growth machinery (`resize`), CPU and
//! memory change in place through each pod's `resize` subresource (see [`inplace`]).
//!
//! The grown volume size and the chosen requests live in the cluster's status
//! (`status.storage.size`, `status.resources`), never in its spec, which stays what its writer
//! (the control plane, or a person) set: a control plane re-applying its spec would otherwise
//! shrink the size, which the CRD refuses.

pub mod compute;
pub mod evaluate;
pub mod inplace;
pub mod metrics;
pub mod storage;

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use crate::admin::AdminClient;
use crate::desired::{HTTP_PORT, selector_string};
use crate::quantity;
use compute::{Bounds, Requests, Sample};
use koru_crd::{ADMIN_ENDPOINT_ANNOTATION, KoruCluster, ResourcesStatus};
use metrics::MemberFigures;

/// Samples kept per cluster: the down window and some more at the default interval.
const HISTORY: usize = 40;

/// What one member reported, with the pod it came from.
#[derive(Debug, Clone)]
pub struct MemberReport {
    /// The pod (or the admin endpoint, for a cluster reached through its annotation).
    pub pod: String,
    /// Its figures.
    pub figures: MemberFigures,
}

/// The load samples of every autoscaled cluster, kept in memory (an operator that restarts
/// starts collecting again: it decides nothing until it has enough).
#[derive(Default)]
pub struct History {
    clusters: Mutex<HashMap<String, ClusterHistory>>,
}

/// One cluster's samples and each pod's last CPU counter.
#[derive(Default)]
struct ClusterHistory {
    samples: VecDeque<Sample>,
    /// Per pod: when its CPU counter was last read, and its value.
    last_cpu: HashMap<String, (f64, f64)>,
}

impl History {
    /// Records the members' reports taken at `at` (seconds since the epoch) and returns the
    /// cluster's samples, oldest first. A sample needs a CPU rate, so the first read of a pod
    /// only starts its counter.
    pub fn record(&self, key: &str, at: f64, reports: &[MemberReport]) -> Vec<Sample> {
        let mut clusters = self
            .clusters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let history = clusters.entry(key.to_string()).or_default();
        let mut cpu: Option<f64> = None;
        let mut memory: Option<f64> = None;
        for report in reports {
            if let Some(rss) = report.figures.resident_memory_bytes {
                memory = Some(memory.map_or(rss, |m| m.max(rss)));
            }
            let Some(seconds) = report.figures.cpu_seconds else {
                continue;
            };
            // A counter that went back belongs to a restarted process: start over.
            if let Some((then, before)) = history.last_cpu.get(&report.pod)
                && at > *then
                && seconds >= *before
            {
                let rate = (seconds - before) / (at - then);
                cpu = Some(cpu.map_or(rate, |c| c.max(rate)));
            }
            history.last_cpu.insert(report.pod.clone(), (at, seconds));
        }
        if let (Some(cpu_cores), Some(memory_bytes)) = (cpu, memory) {
            history.samples.push_back(Sample {
                at,
                cpu_cores,
                memory_bytes,
            });
            while history.samples.len() > HISTORY {
                history.samples.pop_front();
            }
        }
        history.samples.iter().copied().collect()
    }

    /// Forgets a cluster (suspended: its next pods start afresh).
    pub fn forget(&self, key: &str) {
        self.clusters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(key);
    }
}

/// Reads `/metrics` of every running member of the cluster (at its pod's address, or at the
/// `koru.dev/admin-endpoint` annotation's when set); members that do not answer are left out.
pub async fn read_members(
    client: &Client,
    admin: &AdminClient,
    kc: &KoruCluster,
) -> Result<Vec<MemberReport>, kube::Error> {
    let mut endpoints = Vec::new();
    if let Some(url) = kc.annotations().get(ADMIN_ENDPOINT_ANNOTATION) {
        endpoints.push((url.clone(), url.trim().trim_end_matches('/').to_string()));
    } else {
        let ns = kc.namespace().unwrap_or_default();
        let Ok(selector) = selector_string(kc) else {
            return Ok(Vec::new());
        };
        let pods = Api::<Pod>::namespaced(client.clone(), &ns)
            .list(&ListParams::default().labels(&selector))
            .await?;
        for pod in pods {
            let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
            if let Some(ip) = ip.filter(|_| pod.metadata.deletion_timestamp.is_none()) {
                endpoints.push((pod.name_any(), format!("http://{ip}:{HTTP_PORT}")));
            }
        }
    }
    let mut reports = Vec::new();
    for (pod, url) in endpoints {
        match admin.metrics(&url).await {
            Ok(text) => reports.push(MemberReport {
                pod,
                figures: metrics::parse(&text),
            }),
            Err(e) => tracing::info!(%pod, error = %e, "cannot read a member's metrics"),
        }
    }
    Ok(reports)
}

/// Whether a volume growth is still being carried out: a claim whose capacity is below what it
/// asks for.
pub async fn growth_in_progress(client: &Client, kc: &KoruCluster) -> Result<bool, kube::Error> {
    let ns = kc.namespace().unwrap_or_default();
    let Ok(selector) = selector_string(kc) else {
        return Ok(false);
    };
    let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns)
        .list(&ListParams::default().labels(&selector))
        .await?;
    Ok(claims.items.iter().any(|c| {
        let asked = c
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .and_then(|q| quantity::value(&q.0));
        let has = c
            .status
            .as_ref()
            .and_then(|s| s.capacity.as_ref())
            .and_then(|r| r.get("storage"))
            .and_then(|q| quantity::value(&q.0));
        matches!((asked, has), (Some(a), Some(h)) if h < a)
    }))
}

/// The bounds of `resources.autoscale`, when set and readable.
pub fn bounds(kc: &KoruCluster) -> Option<Bounds> {
    let a = kc.spec.resources.as_ref()?.autoscale.as_ref()?;
    Some(Bounds {
        min: Requests {
            cpu_milli: milli(&a.min_cpu)?,
            memory_bytes: bytes(&a.min_memory)?,
        },
        max: Requests {
            cpu_milli: milli(&a.max_cpu)?,
            memory_bytes: bytes(&a.max_memory)?,
        },
    })
}

/// The requests an autoscaled cluster's pods have now: those in its status, else the spec's
/// `cpu` and `memory`, else the lower bounds; always within the bounds. None without autoscaling.
pub fn current_requests(kc: &KoruCluster) -> Option<Requests> {
    let bounds = bounds(kc)?;
    let spec = kc.spec.resources.as_ref();
    let status = kc.status.as_ref().and_then(|s| s.resources.as_ref());
    let pick = |status: Option<&String>, spec: Option<&String>| {
        status.or(spec).map(String::as_str).map(str::to_string)
    };
    let cpu = pick(
        status.and_then(|s| s.cpu.as_ref()),
        spec.and_then(|s| s.cpu.as_ref()),
    )
    .and_then(|q| milli(&q))
    .unwrap_or(bounds.min.cpu_milli);
    let memory = pick(
        status.and_then(|s| s.memory.as_ref()),
        spec.and_then(|s| s.memory.as_ref()),
    )
    .and_then(|q| bytes(&q))
    .unwrap_or(bounds.min.memory_bytes);
    Some(bounds.clamp(Requests {
        cpu_milli: cpu,
        memory_bytes: memory,
    }))
}

/// The requests a status entry names, when it names both.
pub fn requests_of(r: &ResourcesStatus) -> Option<Requests> {
    Some(Requests {
        cpu_milli: milli(r.cpu.as_deref()?)?,
        memory_bytes: bytes(r.memory.as_deref()?)?,
    })
}

/// The status entry for requests.
pub fn resources_status(r: Requests, last_change_time: Option<String>) -> ResourcesStatus {
    ResourcesStatus {
        cpu: Some(compute::cpu_quantity(r.cpu_milli)),
        memory: Some(compute::memory_quantity(r.memory_bytes)),
        last_change_time,
    }
}

/// The size the cluster's volumes should have: the larger of the spec's, the grown size in its
/// status, and `live` (the claim template's, when the StatefulSet exists), in bytes.
pub fn storage_size(kc: &KoruCluster, live: Option<&str>) -> u64 {
    let grown = kc
        .status
        .as_ref()
        .and_then(|s| s.storage.as_ref())
        .and_then(|s| s.size.as_deref());
    [Some(kc.spec.storage.size.as_str()), grown, live]
        .into_iter()
        .flatten()
        .filter_map(bytes)
        .max()
        .unwrap_or(0)
}

/// A quantity in millicores.
pub fn milli(q: &str) -> Option<u64> {
    quantity::value(q).map(|v| (v * 1000.0).round() as u64)
}

/// A quantity in bytes.
pub fn bytes(q: &str) -> Option<u64> {
    quantity::value(q).map(|v| v.round() as u64)
}

/// Seconds since the epoch of an RFC 3339 time as the operator writes it.
pub fn epoch_seconds(rfc3339: &str) -> Option<f64> {
    rfc3339
        .parse::<k8s_openapi::jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond() as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(pod: &str, cpu: f64, rss: f64) -> MemberReport {
        MemberReport {
            pod: pod.into(),
            figures: MemberFigures {
                cpu_seconds: Some(cpu),
                resident_memory_bytes: Some(rss),
                ..MemberFigures::default()
            },
        }
    }

    #[test]
    fn samples_take_the_busiest_pods_rate_and_skip_restarted_counters() {
        let history = History::default();
        assert!(
            history
                .record("ns/a", 100.0, &[report("a-0", 10.0, 5.0)])
                .is_empty()
        );
        let s = history.record(
            "ns/a",
            110.0,
            &[report("a-0", 15.0, 7.0), report("a-1", 1.0, 9.0)],
        );
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].cpu_cores, s[0].memory_bytes), (0.5, 9.0));
        // a-0 restarted (its counter went back): only a-1 gives a rate.
        let s = history.record(
            "ns/a",
            120.0,
            &[report("a-0", 1.0, 7.0), report("a-1", 3.0, 9.0)],
        );
        assert_eq!(s[1].cpu_cores, 0.2);
        history.forget("ns/a");
        assert!(
            history
                .record("ns/a", 130.0, &[report("a-0", 2.0, 1.0)])
                .is_empty()
        );
    }

    #[test]
    fn times_read_back_as_epoch_seconds() {
        assert_eq!(epoch_seconds("1970-01-01T00:01:00Z"), Some(60.0));
        assert_eq!(epoch_seconds("soon"), None);
    }
}
