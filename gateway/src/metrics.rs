//! The gateway's Prometheus metrics (names from `koru_gateway_api::metrics`), served on the
//! admin listener.

use std::sync::atomic::AtomicU64;

use koru_gateway_api::metrics as names;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a per-cluster series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabel {
    /// The cluster's id.
    pub cluster: String,
}

/// Labels of the requests counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    /// The cluster's id.
    pub cluster: String,
    /// The HTTP status.
    pub code: u16,
}

/// Labels of the refusals counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// The cluster's id.
    pub cluster: String,
    /// Why it was refused.
    pub reason: &'static str,
}

/// A histogram family with fixed buckets.
type Histograms = Family<ClusterLabel, Histogram, fn() -> Histogram>;

/// Request latency buckets: 0.5 ms to about 16 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Wake duration buckets: 50 ms to about 100 s.
fn wake_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 12))
}

/// Every metric, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    /// Requests answered by cluster and status.
    pub requests: Family<CodeLabels, Counter>,
    /// Time to the response head by cluster.
    pub duration: Histograms,
    /// Refusals at the edge by cluster and reason.
    pub refused: Family<ReasonLabels, Counter>,
    /// Wakes asked for by cluster.
    pub wakes: Family<ClusterLabel, Counter>,
    /// How long held requests waited for a wake.
    pub wake_duration: Histograms,
    /// Seconds since the last route table.
    pub sync_age: Gauge<f64, AtomicU64>,
}

/// A counter's name as prometheus-client registers it (it appends `_total` itself).
fn counter_name(name: &str) -> &str {
    name.strip_suffix("_total").unwrap_or(name)
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<CodeLabels, Counter>::default();
        registry.register(
            counter_name(names::REQUESTS),
            "Requests answered",
            requests.clone(),
        );
        let duration: Histograms = Family::new_with_constructor(latency_histogram);
        registry.register(
            names::REQUEST_DURATION,
            "Seconds from request to response head",
            duration.clone(),
        );
        let refused = Family::<ReasonLabels, Counter>::default();
        registry.register(
            counter_name(names::REFUSED),
            "Requests refused at the edge",
            refused.clone(),
        );
        let wakes = Family::<ClusterLabel, Counter>::default();
        registry.register(
            counter_name(names::WAKES),
            "Wakes of suspended clusters asked for",
            wakes.clone(),
        );
        let wake_duration: Histograms = Family::new_with_constructor(wake_histogram);
        registry.register(
            names::WAKE_DURATION,
            "Seconds a held request waited for its cluster to wake",
            wake_duration.clone(),
        );
        let sync_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            names::SYNC_AGE,
            "Seconds since the last route table was loaded",
            sync_age.clone(),
        );
        Metrics {
            registry,
            requests,
            duration,
            refused,
            wakes,
            wake_duration,
            sync_age,
        }
    }
}

impl Metrics {
    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contract_name_is_exported() {
        let m = Metrics::default();
        let c = ClusterLabel {
            cluster: "c1".into(),
        };
        m.requests
            .get_or_create(&CodeLabels {
                cluster: "c1".into(),
                code: 200,
            })
            .inc();
        m.duration.get_or_create(&c).observe(0.01);
        m.refused
            .get_or_create(&ReasonLabels {
                cluster: "c1".into(),
                reason: "token",
            })
            .inc();
        m.wakes.get_or_create(&c).inc();
        m.wake_duration.get_or_create(&c).observe(1.0);
        m.sync_age.set(1.5);
        let text = m.encode();
        for name in [
            names::REQUESTS,
            names::REFUSED,
            names::WAKES,
            names::SYNC_AGE,
        ] {
            assert!(text.contains(&format!("\n{name}")), "{name} in {text}");
        }
        for name in [names::REQUEST_DURATION, names::WAKE_DURATION] {
            assert!(
                text.contains(&format!("{name}_bucket{{")),
                "{name} in {text}"
            );
        }
        assert!(
            text.contains(r#"koru_gateway_requests_total{cluster="c1",code="200"} 1"#),
            "{text}"
        );
    }
}
