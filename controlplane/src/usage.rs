//! Usage: each running cluster's stored bytes and request count, sampled from its data plane's
//! `/metrics`, kept as a time series per cluster for the dashboard and quota reports.

use std::time::Duration;

use serde::Serialize;
use sqlx::{AnyPool, Row};
use utoipa::ToSchema;

use crate::clusters;
use crate::db::now_ms;
use crate::error::{Error, Result};
use crate::provisioner::Provisioner;
use crate::state::AppState;

/// How often the collector samples every cluster.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Width of a sample bucket: at most one sample per cluster per bucket.
const BUCKET_MS: i64 = 60_000;

/// What one scrape of a data plane's metrics says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scrape {
    /// Bytes of the write-ahead log (`koru_log_bytes`): what the cluster stores.
    pub stored_bytes: i64,
    /// HTTP requests served since the data plane started (`koru_http_requests_total`, summed).
    pub requests_total: i64,
    /// Of those, the ones clients made: without [`PROBE_ROUTES`] and the `/admin` routes, which
    /// the control plane, the supervisor and the gateway call on their own. Scale to zero counts
    /// its rise as activity.
    pub client_requests: i64,
}

/// Routes that the control plane (usage samples, readiness probes) and the gateway (member
/// health, leader discovery) call by themselves: never a sign that a client uses the cluster.
pub const PROBE_ROUTES: [&str; 4] = ["/metrics", "/healthz", "/readyz", "/api/v1/status"];

/// The `route` label of a Prometheus series, if any.
fn route_label(series: &str) -> Option<&str> {
    let labels = series.split_once('{')?.1;
    let rest = labels.split("route=\"").nth(1)?;
    rest.split('"').next()
}

/// Whether a series of `koru_http_requests_total` counts client requests.
fn is_client_route(series: &str) -> bool {
    match route_label(series) {
        Some(route) => {
            !PROBE_ROUTES.contains(&route)
                && !route.starts_with("/admin")
                && !route.starts_with("/raft")
        }
        // No route label (an unmatched path): a client's request.
        None => true,
    }
}

/// Reads the two figures out of Prometheus/OpenMetrics text.
pub fn parse_metrics(text: &str) -> Scrape {
    let mut scrape = Scrape::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        match name {
            "koru_log_bytes" => scrape.stored_bytes = value as i64,
            "koru_http_requests_total" => {
                scrape.requests_total += value as i64;
                if is_client_route(series) {
                    scrape.client_requests += value as i64;
                }
            }
            _ => {}
        }
    }
    scrape
}

/// Whether clients used a data plane between a sample counting `previous` client requests and one
/// counting `now`: the count rose, or fell (the data plane restarted) to above zero. Without a
/// previous sample nothing can be said.
pub fn used_since(previous: Option<i64>, now: i64) -> bool {
    match previous {
        Some(p) if now >= p => now > p,
        Some(_) => now > 0,
        None => false,
    }
}

/// Samples every running cluster once; returns how many were sampled. A cluster that cannot be
/// reached is skipped (and logged), never failing the others; suspended clusters are not sampled
/// (their series simply has no points while they sleep).
pub async fn collect_once(state: &AppState) -> Result<usize> {
    // A cluster being suspended may still say Running while its process stops: skipped too, so
    // scale to zero never shows up as an unreachable data plane.
    let rows = sqlx::query(
        "SELECT id, org_id, endpoint FROM clusters WHERE phase = 'Running' AND suspended = 0 AND endpoint IS NOT NULL",
    )
        .fetch_all(&state.db)
        .await?;
    let client = reqwest_client()?;
    let mut sampled = 0;
    for row in rows {
        let id: String = row.try_get("id")?;
        let org_id: String = row.try_get("org_id")?;
        let endpoint: String = row.try_get("endpoint")?;
        let scrape = match client.get(format!("{endpoint}/metrics")).send().await {
            Ok(r) if r.status().is_success() => match r.text().await {
                Ok(text) => parse_metrics(&text),
                Err(e) => {
                    tracing::warn!(cluster = %id, error = %e, "cannot read the cluster's metrics");
                    continue;
                }
            },
            Ok(r) => {
                tracing::warn!(cluster = %id, status = %r.status(), "the cluster's metrics were refused");
                continue;
            }
            Err(e) => {
                tracing::warn!(cluster = %id, error = %e, "cannot reach the cluster's metrics");
                continue;
            }
        };
        let now = now_ms();
        let previous = sqlx::query(
            "SELECT client_requests FROM usage_samples WHERE cluster_id = $1 AND bucket < $2 ORDER BY bucket DESC LIMIT 1",
        )
        .bind(&id)
        .bind(now / BUCKET_MS)
        .fetch_optional(&state.db)
        .await?
        .map(|r| r.try_get::<i64, _>("client_requests"))
        .transpose()?;
        if used_since(previous, scrape.client_requests) {
            let mut tx = state.db.begin().await?;
            crate::lifecycle::mark_active(&mut tx, &id, now).await?;
            tx.commit().await?;
        }
        sqlx::query(
            "INSERT INTO usage_samples (cluster_id, org_id, bucket, at, stored_bytes, requests_total, client_requests) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (cluster_id, bucket) DO UPDATE SET \
             at = excluded.at, stored_bytes = excluded.stored_bytes, requests_total = excluded.requests_total, \
             client_requests = excluded.client_requests",
        )
        .bind(&id)
        .bind(&org_id)
        .bind(now / BUCKET_MS)
        .bind(now)
        .bind(scrape.stored_bytes)
        .bind(scrape.requests_total)
        .bind(scrape.client_requests)
        .execute(&state.db)
        .await?;
        sampled += 1;
        if let Err(e) = check_ceiling(state, &org_id, &id, scrape.stored_bytes).await {
            tracing::warn!(cluster = %id, error = %e, "cannot tell whether the cluster's storage is at its ceiling");
        }
    }
    Ok(sampled)
}

/// Records whether a sampled cluster is at its storage ceiling: the operator's condition on
/// Kubernetes, its stored bytes against the tier's storage with the local provisioner.
async fn check_ceiling(state: &AppState, org_id: &str, id: &str, stored_bytes: i64) -> Result<()> {
    let cluster = clusters::get(&state.db, org_id, id).await?;
    let at_ceiling = match &*state.provisioner {
        Provisioner::Local(_) => Some(crate::storage_ceiling::local_at_ceiling(
            stored_bytes,
            cluster.max_storage_bytes,
        )),
        Provisioner::Kubernetes(p) => {
            let Some(org) = crate::orgs::find(&state.db, org_id).await? else {
                return Ok(());
            };
            // Only the namespace, name and id are read: no token key is needed.
            let spec = clusters::spec(state, &org, &cluster, String::new());
            p.storage_at_ceiling(&spec)
                .await
                .map_err(|e| Error::Unavailable(e.to_string()))?
        }
    };
    if let Some(at_ceiling) = at_ceiling {
        crate::storage_ceiling::observe(&state.db, org_id, id, at_ceiling).await?;
    }
    Ok(())
}

fn reqwest_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| Error::Internal(format!("building the metrics client: {e}")))
}

/// Samples all clusters every `interval`, forever.
pub fn spawn_collector(state: AppState, interval: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            if let Err(e) = collect_once(&state).await {
                tracing::warn!(error = %e, "usage collection failed");
            }
        }
    });
}

/// One point of a cluster's usage series.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Point {
    /// Sample time, ms since the epoch.
    pub at: i64,
    /// Stored bytes.
    pub stored_bytes: i64,
    /// Requests per second since the previous sample (0 for the first).
    pub ops_per_sec: f64,
}

/// A cluster's usage against its tier's limits.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClusterUsage {
    /// Cluster id.
    pub cluster_id: String,
    /// Cluster name.
    pub name: String,
    /// The tier's storage limit.
    pub max_storage_bytes: u64,
    /// The tier's operations-per-second limit.
    pub max_ops_per_sec: u64,
    /// Samples, oldest first.
    pub points: Vec<Point>,
}

/// Turns raw samples into points with rates; a counter that went down (a restarted data plane)
/// counts from zero again.
pub fn points(samples: &[(i64, i64, i64)]) -> Vec<Point> {
    let mut out = Vec::with_capacity(samples.len());
    let mut previous: Option<(i64, i64)> = None;
    for &(at, stored_bytes, requests) in samples {
        let ops_per_sec = match previous {
            Some((t, r)) if at > t => {
                let delta = if requests >= r {
                    requests - r
                } else {
                    requests
                };
                delta as f64 * 1000.0 / (at - t) as f64
            }
            _ => 0.0,
        };
        out.push(Point {
            at,
            stored_bytes,
            ops_per_sec,
        });
        previous = Some((at, requests));
    }
    out
}

/// The usage series of every cluster of an organization since `since` (ms).
pub async fn of_org(db: &AnyPool, org_id: &str, since: i64) -> Result<Vec<ClusterUsage>> {
    let mut out = Vec::new();
    for c in clusters::list(db, org_id).await? {
        let rows = sqlx::query(
            "SELECT at, stored_bytes, requests_total FROM usage_samples WHERE cluster_id = $1 AND at >= $2 ORDER BY at",
        )
        .bind(&c.id)
        .bind(since)
        .fetch_all(db)
        .await?;
        let samples = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("at")?,
                    r.try_get("stored_bytes")?,
                    r.try_get("requests_total")?,
                ))
            })
            .collect::<Result<Vec<(i64, i64, i64)>>>()?;
        // The cluster's effective limits: its tier's, or its organization's custom ones.
        out.push(ClusterUsage {
            cluster_id: c.id,
            name: c.name,
            max_storage_bytes: c.max_storage_bytes,
            max_ops_per_sec: c.max_ops_per_sec,
            points: points(&samples),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_text_gives_stored_bytes_and_summed_requests() {
        let text = "# TYPE koru_log_bytes gauge\nkoru_log_bytes 4096\n\
            koru_http_requests_total{route=\"/api/v1/{ns}/{key}\",method=\"PUT\",status=\"200\"} 7\n\
            koru_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 3\n\
            koru_http_requests_created{route=\"x\"} 1.7e9\nkoru_keys 2\n# EOF\n";
        assert_eq!(
            parse_metrics(text),
            Scrape {
                stored_bytes: 4096,
                requests_total: 10,
                client_requests: 7,
            }
        );
        assert_eq!(parse_metrics("garbage\n{}"), Scrape::default());
    }

    #[test]
    fn probes_are_not_client_requests() {
        let text = "koru_http_requests_total{route=\"/metrics\",method=\"GET\",status=\"200\"} 50\n\
            koru_http_requests_total{route=\"/readyz\",method=\"GET\",status=\"200\"} 900\n\
            koru_http_requests_total{route=\"/api/v1/status\",method=\"GET\",status=\"200\"} 9\n\
            koru_http_requests_total{route=\"/admin/backups\",method=\"POST\",status=\"201\"} 2\n\
            koru_http_requests_total{route=\"/api/v1/{namespace}/{key}\",method=\"GET\",status=\"200\"} 3\n\
            koru_http_requests_total{method=\"GET\",status=\"404\"} 1\n";
        let s = parse_metrics(text);
        assert_eq!((s.requests_total, s.client_requests), (965, 4));
        assert!(used_since(Some(3), 4) && !used_since(Some(4), 4));
        assert!(used_since(Some(40), 2), "restarted and used since");
        assert!(!used_since(Some(40), 0) && !used_since(None, 5));
    }

    #[test]
    fn rates_come_from_deltas_and_survive_restarts() {
        let p = points(&[(0, 10, 100), (10_000, 20, 600), (20_000, 20, 50)]);
        assert_eq!(p[0].ops_per_sec, 0.0);
        assert_eq!(p[1].ops_per_sec, 50.0);
        assert_eq!(
            p[2].ops_per_sec, 5.0,
            "a restarted counter counts from zero"
        );
    }
}
