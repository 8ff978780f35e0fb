//! Prometheus metrics of the operator process: one registry and the calls that record into it.

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The outcome label of a reconcile.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    /// `ok` or `error`.
    result: &'static str,
}

/// Every metric of the process, registered once.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    reconcile_seconds: Histogram,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("koru_operator");
        let reconciles = Family::<ResultLabels, Counter>::default();
        // Both series exist from the start, so a rate() over errors works before the first one.
        for result in ["ok", "error"] {
            let _ = reconciles.get_or_create(&ResultLabels { result });
        }
        registry.register(
            "reconciles",
            "Reconciles of KoruClusters by result",
            reconciles.clone(),
        );
        // 1 ms to about 65 s: a reconcile is a handful of API calls, slower only when the API is.
        let reconcile_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        registry.register(
            "reconcile_duration_seconds",
            "Duration of KoruCluster reconciles",
            reconcile_seconds.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this process reconciles (holds the Lease), else 0",
            leader.clone(),
        );
        Metrics {
            registry,
            reconciles,
            reconcile_seconds,
            leader,
        }
    }
}

impl Metrics {
    /// Records one finished reconcile.
    pub fn record_reconcile(&self, ok: bool, seconds: f64) {
        let result = if ok { "ok" } else { "error" };
        self.reconciles
            .get_or_create(&ResultLabels { result })
            .inc();
        self.reconcile_seconds.observe(seconds);
    }

    /// Runs a reconcile future, recording its duration and outcome.
    pub async fn time_reconcile<T, E>(
        &self,
        reconcile: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let start = Instant::now();
        let result = reconcile.await;
        self.record_reconcile(result.is_ok(), start.elapsed().as_secs_f64());
        result
    }

    /// Sets the leader gauge.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// The registry in OpenMetrics text format.
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

    #[tokio::test]
    async fn reconciles_are_counted_by_result_and_timed() {
        let m = Metrics::default();
        let ok: Result<(), ()> = m.time_reconcile(async { Ok(()) }).await;
        assert!(ok.is_ok());
        let err: Result<(), &str> = m.time_reconcile(async { Err("boom") }).await;
        assert_eq!(err, Err("boom"));
        m.set_leader(true);
        let text = m.encode();
        assert!(
            text.contains("koru_operator_reconciles_total{result=\"ok\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("koru_operator_reconciles_total{result=\"error\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("koru_operator_reconcile_duration_seconds_count 2\n"),
            "{text}"
        );
        assert!(text.contains("koru_operator_leader 1\n"), "{text}");
    }
}
