//! The gateway replicas' reports in the database: when each replica last synced, what it served
//! per cluster per second (for the rate shares), and per-minute totals per cluster (for the
//! SLOs). In the database rather than in memory, so every control-plane replica sees all of them.

use std::collections::{BTreeMap, HashMap, HashSet};

use koru_gateway_api::ClusterActivity;
use sqlx::{AnyPool, Row};

use crate::error::Result;

/// A replica that synced within this window is live.
pub const LIVE_WINDOW_MS: i64 = 5_000;
/// The demand behind the rate shares: what each replica reported over this window.
pub const DEMAND_WINDOW_MS: i64 = 5_000;
/// Per-second reports are kept this long (only the last seconds are read).
const KEEP_REPORTS_MS: i64 = 60_000;
/// A replica that has not synced for this long is forgotten.
const KEEP_SYNCS_MS: i64 = 3_600_000;
/// Per-minute totals are kept 31 days, enough for the 30-day SLO.
pub const KEEP_MINUTES_MS: i64 = 31 * 24 * 3_600_000;

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Records one sync of `gateway_id` at `now` (ms) with what it served since its previous sync:
/// marks it live, adds its per-second and per-minute counts, and marks clusters that had
/// requests as active (clusters unknown here, deleted meanwhile, are skipped).
pub async fn record(
    db: &AnyPool,
    gateway_id: &str,
    activity: &[ClusterActivity],
    now: i64,
) -> Result<()> {
    let known: HashSet<String> = if activity.is_empty() {
        HashSet::new()
    } else {
        sqlx::query("SELECT id FROM clusters")
            .fetch_all(db)
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<std::result::Result<_, _>>()?
    };
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO gateway_syncs (gateway_id, synced_at) VALUES ($1, $2) \
         ON CONFLICT (gateway_id) DO UPDATE SET synced_at = excluded.synced_at",
    )
    .bind(gateway_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    for a in activity.iter().filter(|a| known.contains(&a.cluster_id)) {
        if a.requests == 0 && a.throttled == 0 {
            continue;
        }
        sqlx::query(
            "INSERT INTO gateway_reports (gateway_id, cluster_id, bucket, requests, throttled, server_errors, slow_requests) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (gateway_id, cluster_id, bucket) DO UPDATE SET \
             requests = gateway_reports.requests + excluded.requests, \
             throttled = gateway_reports.throttled + excluded.throttled, \
             server_errors = gateway_reports.server_errors + excluded.server_errors, \
             slow_requests = gateway_reports.slow_requests + excluded.slow_requests",
        )
        .bind(gateway_id)
        .bind(&a.cluster_id)
        .bind(now / 1000)
        .bind(count(a.requests))
        .bind(count(a.throttled))
        .bind(count(a.server_errors))
        .bind(count(a.slow_requests))
        .execute(&mut *tx)
        .await?;
        if a.requests == 0 {
            continue;
        }
        sqlx::query(
            "INSERT INTO cluster_minutes (cluster_id, minute, requests, server_errors, slow_requests) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (cluster_id, minute) DO UPDATE SET \
             requests = cluster_minutes.requests + excluded.requests, \
             server_errors = cluster_minutes.server_errors + excluded.server_errors, \
             slow_requests = cluster_minutes.slow_requests + excluded.slow_requests",
        )
        .bind(&a.cluster_id)
        .bind(now / 60_000)
        .bind(count(a.requests))
        .bind(count(a.server_errors))
        .bind(count(a.slow_requests))
        .execute(&mut *tx)
        .await?;
        crate::lifecycle::mark_active(&mut tx, &a.cluster_id, now).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The replicas that synced within [`LIVE_WINDOW_MS`] of `now`, by id.
pub async fn live(db: &AnyPool, now: i64) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT gateway_id FROM gateway_syncs WHERE synced_at >= $1 ORDER BY gateway_id",
    )
    .bind(now - LIVE_WINDOW_MS)
    .fetch_all(db)
    .await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get("gateway_id"))
        .collect::<std::result::Result<_, _>>()?)
}

/// Each cluster's demand per replica (requests plus throttled) over [`DEMAND_WINDOW_MS`].
pub async fn demand(db: &AnyPool, now: i64) -> Result<HashMap<String, BTreeMap<String, u64>>> {
    let rows = sqlx::query(
        "SELECT cluster_id, gateway_id, CAST(SUM(requests + throttled) AS BIGINT) AS wanted \
         FROM gateway_reports WHERE bucket >= $1 GROUP BY cluster_id, gateway_id",
    )
    .bind((now - DEMAND_WINDOW_MS) / 1000)
    .fetch_all(db)
    .await?;
    let mut out: HashMap<String, BTreeMap<String, u64>> = HashMap::new();
    for r in rows {
        let wanted: i64 = r.try_get("wanted")?;
        out.entry(r.try_get("cluster_id")?)
            .or_default()
            .insert(r.try_get("gateway_id")?, u64::try_from(wanted).unwrap_or(0));
    }
    Ok(out)
}

/// Drops reports, syncs and per-minute totals past their keeping time.
pub async fn prune(db: &AnyPool, now: i64) -> Result<()> {
    sqlx::query("DELETE FROM gateway_reports WHERE bucket < $1")
        .bind((now - KEEP_REPORTS_MS) / 1000)
        .execute(db)
        .await?;
    sqlx::query("DELETE FROM gateway_syncs WHERE synced_at < $1")
        .bind(now - KEEP_SYNCS_MS)
        .execute(db)
        .await?;
    sqlx::query("DELETE FROM cluster_minutes WHERE minute < $1")
        .bind((now - KEEP_MINUTES_MS) / 60_000)
        .execute(db)
        .await?;
    Ok(())
}

/// A cluster's per-minute totals since `since` (ms): (minute start ms, requests, server errors,
/// slow requests), oldest first.
pub async fn minutes(
    db: &AnyPool,
    cluster_id: &str,
    since: i64,
) -> Result<Vec<(i64, u64, u64, u64)>> {
    let rows = sqlx::query(
        "SELECT minute, requests, server_errors, slow_requests FROM cluster_minutes \
         WHERE cluster_id = $1 AND minute >= $2 ORDER BY minute",
    )
    .bind(cluster_id)
    .bind(since / 60_000)
    .fetch_all(db)
    .await?;
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<i64, _>("minute")? * 60_000,
                n(r.try_get("requests")?),
                n(r.try_get("server_errors")?),
                n(r.try_get("slow_requests")?),
            ))
        })
        .collect()
}
