//! The streams: on the single node or the Raft leader, one task per peer follows the peer's
//! raw, local-origin change feed from the stored watermark and applies each page here as one
//! atomic write; and an idle region writes a heartbeat so its feed's closed time keeps moving.

use std::sync::Arc;
use std::time::Duration;

use koru_dataplane_api::region::LinkState;

use super::apply::{self, ApplyError, RemotePage};
use super::links::Regions;
use super::{Peer, REGION_NS};
use crate::StoreError;
use crate::http::AppState;
use crate::store::WriteOp;

/// Records asked for per page.
const PAGE_LIMIT: usize = 500;
/// Wait between polls of a drained feed.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// The first and the longest wait after a failure.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(5));
/// An idle region writes a heartbeat this often, so peers' nearest reads can pass its clock.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// How long one feed request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why one round of a stream failed.
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("peer unreachable: {0}")]
    Http(#[from] reqwest::Error),
    #[error("peer answered {0}")]
    Status(reqwest::StatusCode),
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

/// Starts a stream per peer and the heartbeat, when this region has peers.
pub fn start(state: AppState) {
    let regions = Arc::clone(&state.regions);
    if regions.config.peers.is_empty() {
        return;
    }
    let client = match reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the region streams' HTTP client");
            return;
        }
    };
    for peer in regions.config.peers.clone() {
        tokio::spawn(follow(state.clone(), client.clone(), peer));
    }
    tokio::spawn(heartbeat(state));
}

/// Whether this member takes the streams: a single node, or the Raft leader.
fn leads(state: &AppState) -> bool {
    state.replica.as_ref().is_none_or(|r| r.is_leader())
}

async fn follow(state: AppState, client: reqwest::Client, peer: Peer) {
    let regions = Arc::clone(&state.regions);
    let mut since: Option<u64> = None;
    let mut backoff = BACKOFF.0;
    loop {
        if !leads(&state) {
            // A new leader resumes from the watermark replicated with the log.
            since = None;
            regions.update(&peer.name, |l| l.state = LinkState::Connecting);
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let round = async {
            let from = match since {
                Some(s) => s,
                None => apply::stored_watermark(&state.store, &peer.name)
                    .map_err(ApplyError::from)?
                    .map_or(0, |w| w.lsn),
            };
            since = Some(from);
            round(&state, &regions, &client, &peer, from).await
        };
        match round.await {
            Ok((next, drained)) => {
                since = Some(next);
                backoff = BACKOFF.0;
                if drained {
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
            }
            Err(e) => {
                tracing::warn!(peer = %peer.name, error = %e, "region stream failed; retrying");
                state.metrics.region_errors(&peer.name);
                regions.update(&peer.name, |l| {
                    l.state = LinkState::Failing;
                    l.last_error = Some(e.to_string());
                });
                report_lag(&state, &regions, &peer.name);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF.1);
            }
        }
    }
}

/// Reads and applies one page; the next watermark and whether the feed was drained.
async fn round(
    state: &AppState,
    regions: &Regions,
    client: &reqwest::Client,
    peer: &Peer,
    since: u64,
) -> Result<(u64, bool), StreamError> {
    let mut request = client.get(format!(
        "{}/api/v1/changes?since={since}&limit={PAGE_LIMIT}&raw=true&origin=local",
        peer.url
    ));
    if let Some(token) = &regions.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    if !response.status().is_success() {
        return Err(StreamError::Status(response.status()));
    }
    let mut page: RemotePage = response.json().await?;
    fit(&mut page, state.store.config().max_batch_ops);
    let records = page.changes.len() as u64;
    let applied = apply_page(state, regions, &peer.name, &page).await?;
    let drained = page.next_since >= page.last_lsn;
    let parse = |t: &str| crate::clock::parse_micros(t).ok();
    let last_time = page.changes.last().and_then(|c| parse(&c.timestamp));
    let closed = page
        .closed_time
        .as_deref()
        .and_then(parse)
        .filter(|_| drained);
    state.metrics.region_applied(&peer.name, applied);
    regions.update(&peer.name, |l| {
        l.state = LinkState::Streaming;
        l.last_error = None;
        l.applied_lsn = l.applied_lsn.max(page.next_since);
        if last_time.is_some() {
            l.applied_time = last_time;
        }
        if let Some(c) = closed {
            l.closed_time = Some(c);
        }
        // The peer's clock: its closed time when drained, else the last record read.
        if let Some(t) = closed.or(last_time) {
            l.peer_clock = Some(l.peer_clock.map_or(t, |p| p.max(t)));
            l.seen_at = Some(std::time::Instant::now());
        }
        l.records_applied += records;
    });
    report_lag(state, regions, &peer.name);
    // A page of only other regions' records still moved the watermark: go on at once.
    Ok((page.next_since, drained || page.next_since <= since))
}

/// Cuts a page to the records whose writes fit in one batch here (each remote op may become a
/// version, a tombstone and a conflict, plus the watermark), always keeping the first; the rest
/// come in the next round.
fn fit(page: &mut RemotePage, max_ops: usize) {
    let mut used = 1;
    let keep = page
        .changes
        .iter()
        .enumerate()
        .take_while(|(i, c)| {
            used += 3 * c.ops.len();
            *i == 0 || used <= max_ops
        })
        .count();
    if keep < page.changes.len() {
        page.changes.truncate(keep);
        page.next_since = page.changes.last().map_or(page.next_since, |c| c.lsn);
        page.closed_time = None;
    }
}

/// Sets the lag gauge of `peer` from its link.
fn report_lag(state: &AppState, regions: &Regions, peer: &str) {
    if let Some(lag) = regions.link(peer).and_then(|l| l.lag_seconds()) {
        state.metrics.region_lag(peer, lag);
    }
}

/// Applies a page as one atomic write (retried when a local write raced it in its namespace);
/// the number of operations that changed something.
pub async fn apply_page(
    state: &AppState,
    regions: &Regions,
    peer: &str,
    page: &RemotePage,
) -> Result<u64, ApplyError> {
    let _one_at_a_time = regions.apply_lock.lock().await;
    // The receive step of the clock: everything written here from now on orders after the page.
    if let Some(max) = page
        .changes
        .iter()
        .filter_map(|c| crate::clock::parse_micros(&c.timestamp).ok())
        .max()
    {
        state.store.raise_clock(max);
    }
    let whole = plan_blocking(state, regions, peer, page, apply::Part::Whole);
    let plan = whole.await?;
    if plan.ops.is_empty() {
        return Ok(0);
    }
    let parts = match plan.namespaces.len() {
        0 | 1 => vec![apply::Part::Whole],
        n => (plan.namespaces.iter().enumerate())
            .map(|(i, ns)| apply::Part::Namespace {
                name: ns.clone(),
                last: i + 1 == n,
            })
            .collect(),
    };
    // A page in one namespace is written as planned (and planned again after a conflict).
    let mut first = (plan.namespaces.len() < 2).then_some(plan);
    let mut applied = 0;
    for part in parts {
        loop {
            let plan = match first.take() {
                Some(plan) => plan,
                None => plan_blocking(state, regions, peer, page, part.clone()).await?,
            };
            if plan.ops.is_empty() {
                break;
            }
            match write(state, plan.ops, plan.guard).await {
                Ok(()) => {
                    applied += plan.applied;
                    break;
                }
                // A local write landed in the namespace since the plan: decide again.
                Err(ApplyError::Store(StoreError::Conflict { .. })) => continue,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(applied)
}

async fn plan_blocking(
    state: &AppState,
    regions: &Regions,
    peer: &str,
    page: &RemotePage,
    part: apply::Part,
) -> Result<apply::Plan, ApplyError> {
    let store = state.store.clone();
    let (name, peer_name, page_copy) = (regions.config.name.clone(), peer.to_owned(), page.clone());
    tokio::task::spawn_blocking(move || {
        apply::plan_part(&store, &name, &peer_name, &page_copy, &part)
    })
    .await
    .map_err(|e| ApplyError::Link(format!("planning a page panicked: {e}")))?
}

async fn write(
    state: &AppState,
    ops: Vec<WriteOp>,
    guard: Option<crate::store::RangeGuard>,
) -> Result<(), ApplyError> {
    use crate::rewind::{GuardedWrite, RewindError};
    // One record holds a page of the peer's records, maybe by several authors: it is recorded
    // as a merge by nobody in particular.
    let meta = crate::store::WriteMeta::default().because(crate::store::Cause::Merge);
    let result = match (&state.replica, guard) {
        (None, Some(g)) => state
            .store
            .write_guarded_with(ops, g, meta)
            .await
            .map(|_| ()),
        (None, None) => state.store.write_with(ops, meta).await.map(|_| ()),
        (Some(r), Some(g)) => match r.write_guarded(ops, g, meta).await {
            Ok(_) => Ok(()),
            Err(RewindError::Store(e)) => Err(e),
            Err(e) => return Err(ApplyError::Link(format!("replicating the page: {e}"))),
        },
        (Some(r), None) => match r.write(ops, meta).await {
            Ok(_) => Ok(()),
            Err(e) => return Err(ApplyError::Link(format!("replicating the page: {e}"))),
        },
    };
    Ok(result?)
}

/// Writes `_koru_region/heartbeat` when this region has written nothing for a while, so its
/// feed's `closed_time` (the last record's commit time) keeps up with its clock.
async fn heartbeat(state: AppState) {
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    loop {
        tick.tick().await;
        if !leads(&state) {
            continue;
        }
        let (_, last) = state.store.last_applied();
        if crate::clock::now_micros() - last < HEARTBEAT_EVERY.as_micros() as i64 {
            continue;
        }
        let at = format!("\"{}\"", crate::clock::now_rfc3339());
        let Ok(value) = serde_json::value::RawValue::from_string(at) else {
            continue;
        };
        if let Err(e) = state
            .write(
                vec![WriteOp::put(REGION_NS, "heartbeat", value)],
                Default::default(),
            )
            .await
        {
            tracing::debug!(error = ?e, "region heartbeat not written");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_cut_to_what_one_batch_can_hold_and_resumes_after_the_last_record_kept() {
        let rec = |lsn: u64, n: usize| {
            let ops: Vec<String> = (0..n)
                .map(|i| format!(r#"{{"op":"put","namespace":"a","key":"k{i}","value":1}}"#))
                .collect();
            format!(
                r#"{{"lsn":{lsn},"timestamp":"2026-01-01T00:00:00Z","ops":[{}]}}"#,
                ops.join(",")
            )
        };
        let json = format!(
            r#"{{"changes":[{},{},{}],"next_since":9,"last_lsn":9,"closed_time":"2026-01-01T00:00:00Z"}}"#,
            rec(3, 10),
            rec(5, 10),
            rec(7, 10)
        );
        let mut page: RemotePage = serde_json::from_str(&json).unwrap();
        fit(&mut page, 70);
        assert_eq!(page.changes.len(), 2);
        assert_eq!(page.next_since, 5);
        assert!(page.closed_time.is_none());
        // One record larger than a batch still goes (and fails loudly if it cannot be written).
        fit(&mut page, 5);
        assert_eq!((page.changes.len(), page.next_since), (1, 3));
    }
}
