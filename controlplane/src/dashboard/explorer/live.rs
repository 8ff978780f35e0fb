//! Live changes: the latest records of a cluster's change feed, newest first and filterable by
//! namespace, and the feed tailing in the page as server-sent events.
//!
//! The page works without JavaScript (the latest changes and a refresh link). With it,
//! `app.js` opens an `EventSource` on `…/live/events`, which polls the data plane's
//! `GET /api/v1/changes` and sends each record as an event whose data is the table rows,
//! rendered and escaped here by the same template as the page, so no value ever reaches the
//! page as markup. The stream's data token lives 60 s; before it runs out the stream checks the
//! session again (not expired, not logged out, still a member) and mints a new one, or ends.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use koru_dataplane_api::auth::Scope;
use koru_dataplane_api::data::{Cause, Change, ChangeKind, Changes, Status};
use serde::Deserialize;

use super::client::{DataError, DataPlane};
use super::{Explorer, Nav, author_label};
use crate::dashboard::session::SignedIn;
use crate::dashboard::view::{self, Layout};
use crate::dashboard::{PageError, PageResult, render};
use crate::state::AppState;

/// How many rows the page shows.
const PAGE_ROWS: usize = 50;
/// How many records back the page looks for changes of a filtered namespace.
const LOOKBACK: u64 = 1000;
/// Most change-feed pages one page view reads (a page can stop early on its byte budget).
const MAX_PAGES: usize = 4;
/// How often the stream asks the data plane for new records.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How often an idle stream sends a comment, so proxies keep it open and a gone client is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long before its token expires the stream checks the session and mints a new one.
const REMINT_MARGIN_SECS: u64 = 15;
/// Most records the stream asks for at once.
const STREAM_BATCH: usize = 100;
/// Most characters of a value shown in a row.
const EXCERPT_CHARS: usize = 120;

/// This page's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/orgs/{org}/clusters/{id}/data/live", get(page))
        .route("/orgs/{org}/clusters/{id}/data/live/events", get(events))
}

/// The query of both routes.
#[derive(Debug, Default, Deserialize)]
pub struct LiveQuery {
    /// Only changes of this namespace; empty for all.
    #[serde(default)]
    ns: String,
    /// The stream starts after this LSN (the page's newest); a reconnecting `EventSource`'s
    /// `Last-Event-ID` wins over it.
    #[serde(default)]
    since: Option<u64>,
}

/// One operation of a change, as a row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The record's LSN.
    pub lsn: u64,
    /// Its commit time as the data plane wrote it.
    pub timestamp: String,
    /// Its commit time for people.
    pub time: String,
    /// Who wrote it ([`author_label`]).
    pub author: String,
    /// Why: write, rewind or merge (empty when the data plane does not say).
    pub cause: &'static str,
    /// The namespace.
    pub namespace: String,
    /// Its page.
    pub ns_href: String,
    /// The key.
    pub key: String,
    /// Its page.
    pub key_href: String,
    /// `put` or `delete`.
    pub op: &'static str,
    /// The start of the value's JSON text, on one line.
    pub excerpt: String,
}

/// The rows of the table (also each event's data).
#[derive(Template)]
#[template(path = "explorer_live_rows.html")]
struct RowsFragment<'a> {
    rows: &'a [Row],
}

#[derive(Template)]
#[template(path = "explorer_live.html")]
struct LivePage {
    layout: Layout,
    nav: Nav,
    ns: String,
    rows: Vec<Row>,
    shown: usize,
    events_href: String,
    refresh_href: String,
    error: Option<String>,
}

/// `GET /orgs/{org}/clusters/{id}/data/live?ns=`: the latest changes (viewer).
async fn page(
    State(state): State<AppState>,
    user: SignedIn,
    Path((org, id)): Path<(String, String)>,
    Query(q): Query<LiveQuery>,
) -> PageResult {
    let ex = Explorer::load(&state, &user, &org, &id, "Live changes", "live").await?;
    let ns = q.ns.trim().to_string();
    let latest = match ex.data(&state, Scope::Read).await {
        Ok(dp) => latest(&dp, &ex.base, &ns).await,
        Err(e) => Err(e),
    };
    let (status, rows, last_lsn, error) = match latest {
        Ok((rows, last_lsn)) => (StatusCode::OK, rows, last_lsn, None),
        Err(DataError::ControlPlane(e)) => return Err(e.into()),
        Err(e) => (
            data_status(&e),
            Vec::new(),
            0,
            Some(view::sentence(&e.to_string())),
        ),
    };
    let filter = query_string(&[("ns", &ns)]);
    let page = LivePage {
        events_href: format!(
            "{}/live/events?{}",
            ex.base,
            query_string(&[("ns", &ns), ("since", &last_lsn.to_string())])
        ),
        refresh_href: format!("{}/live{filter}", ex.base),
        shown: rows.len(),
        rows,
        ns,
        error,
        nav: ex.nav,
        layout: ex.ctx.layout,
    };
    Ok(render(status, &page))
}

/// The status a page answers for a data-plane failure: the data plane's own for a refusal
/// (a bad namespace is its 400), 503 when it cannot be asked.
fn data_status(e: &DataError) -> StatusCode {
    match e {
        DataError::Refused { status, .. } => {
            StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
        }
        DataError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        DataError::ControlPlane(e) => e.status_and_code().0,
    }
}

/// `?a=1&b=2` of the non-empty pairs (empty when none).
fn query_string(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        s.append_pair(k, v);
    }
    let s = s.finish();
    if s.is_empty() { s } else { format!("?{s}") }
}

/// The newest [`PAGE_ROWS`] rows of namespace `ns` (all when empty), newest first, and the
/// last LSN the data plane had applied.
async fn latest(dp: &DataPlane, base: &str, ns: &str) -> Result<(Vec<Row>, u64), DataError> {
    let status: Status = decode(dp.get("/api/v1/status").await?)?;
    let last_lsn = status.last_lsn;
    let window = if ns.is_empty() {
        PAGE_ROWS as u64
    } else {
        LOOKBACK
    };
    let mut since = last_lsn.saturating_sub(window);
    let mut rows = Vec::new();
    for _ in 0..MAX_PAGES {
        if since >= last_lsn {
            break;
        }
        let page: Changes = decode(
            dp.get(&format!(
                "/api/v1/changes?since={since}&limit={window}&meta=true"
            ))
            .await?,
        )?;
        for change in &page.changes {
            rows.extend(rows_of(change, ns, base));
        }
        if page.next_since <= since {
            break;
        }
        since = page.next_since;
    }
    rows.reverse();
    rows.truncate(PAGE_ROWS);
    Ok((rows, last_lsn))
}

/// A data-plane body as the contract's type; a body that does not fit is a cluster problem.
fn decode<T: serde::de::DeserializeOwned>(body: serde_json::Value) -> Result<T, DataError> {
    serde_json::from_value(body).map_err(|e| {
        tracing::warn!(error = %e, "a data plane answered a body the explorer cannot read");
        DataError::Unavailable("The cluster answered something unexpected; try again.".into())
    })
}

/// The rows of one record: its operations on namespace `ns` (every user namespace when empty),
/// in order. The data plane's own namespaces (`_koru…`) are never shown.
pub fn rows_of(change: &Change, ns: &str, base: &str) -> Vec<Row> {
    change
        .ops
        .iter()
        .filter(|op| !op.namespace.starts_with("_koru"))
        .filter(|op| ns.is_empty() || op.namespace == ns)
        .map(|op| {
            let ns_href = format!("{base}/ns/{}", super::client::segment(&op.namespace));
            Row {
                lsn: change.lsn,
                timestamp: change.timestamp.clone(),
                time: view::rfc3339(&change.timestamp),
                author: author_label(change.author.as_deref()),
                cause: match change.cause {
                    Some(Cause::Write) => "write",
                    Some(Cause::Rewind) => "rewind",
                    Some(Cause::Merge) => "merge",
                    None => "",
                },
                namespace: op.namespace.clone(),
                key_href: format!("{ns_href}/key{}", query_string(&[("key", &op.key)])),
                ns_href,
                key: op.key.clone(),
                op: match op.op {
                    ChangeKind::Put => "put",
                    ChangeKind::Delete => "delete",
                },
                excerpt: op
                    .value
                    .as_ref()
                    .map(|v| excerpt(v.get()))
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// The start of a JSON text on one line: control characters (newlines of pretty JSON) become
/// spaces, and past [`EXCERPT_CHARS`] it ends with an ellipsis.
pub fn excerpt(json: &str) -> String {
    let mut out: String = json
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if json.chars().nth(EXCERPT_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// The data of one event: `rows` rendered (escaped) as table rows on one line, since an
/// event's data may not hold a carriage return and each newline would start a `data:` field.
pub fn event_data(rows: &[Row]) -> Result<String, askama::Error> {
    Ok(RowsFragment { rows }.render()?.replace(['\r', '\n'], ""))
}

/// Whether a token expiring at `expires_at` must be replaced at `now` (seconds).
pub fn needs_remint(expires_at: u64, now: u64) -> bool {
    now + REMINT_MARGIN_SECS >= expires_at
}

/// `GET /orgs/{org}/clusters/{id}/data/live/events?ns=&since=`: the change feed after `since`
/// (or `Last-Event-ID`) as server-sent events, one `change` event per record with rows to show.
async fn events(
    State(state): State<AppState>,
    user: SignedIn,
    Path((org, id)): Path<(String, String)>,
    Query(q): Query<LiveQuery>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let ex = Explorer::load(&state, &user, &org, &id, "Live changes", "live").await?;
    let dp = match ex.data(&state, Scope::Read).await {
        Ok(dp) => dp,
        Err(DataError::ControlPlane(e)) => return Err(e.into()),
        Err(e) => {
            return Err(PageError::new(
                data_status(&e),
                view::sentence(&e.to_string()),
            ));
        }
    };
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let since = match resume.or(q.since) {
        Some(since) => since,
        None => match dp.get("/api/v1/status").await.and_then(decode::<Status>) {
            Ok(status) => status.last_lsn,
            Err(e) => {
                return Err(PageError::new(
                    data_status(&e),
                    view::sentence(&e.to_string()),
                ));
            }
        },
    };
    let tail = Tail {
        state,
        user,
        org,
        cluster: id,
        ns: q.ns.trim().to_string(),
        base: ex.base,
        dp,
        since,
        pending: VecDeque::new(),
        polled: false,
    };
    let stream = futures_util::stream::unfold(tail, next_event);
    let sse = Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE));
    let mut response = sse.into_response();
    // Proxies in front of us must pass events on as they come.
    response.headers_mut().insert(
        "x-accel-buffering",
        axum::http::HeaderValue::from_static("no"),
    );
    Ok(response)
}

/// A stream following the change feed for one page.
struct Tail {
    state: AppState,
    user: SignedIn,
    org: String,
    cluster: String,
    ns: String,
    base: String,
    dp: DataPlane,
    since: u64,
    pending: VecDeque<Event>,
    polled: bool,
}

/// Why a stream ended on its own.
#[derive(Debug, thiserror::Error)]
enum Ended {
    /// The session expired, was logged out, or lost the organization or cluster.
    #[error("the session is no longer valid: {0}")]
    Session(String),
    /// The data plane refused the stream's token.
    #[error("the data plane refused the stream: {0}")]
    Refused(String),
}

/// The next event of a stream, polling the data plane until there is one; None ends it.
async fn next_event(mut t: Tail) -> Option<(Result<Event, Infallible>, Tail)> {
    loop {
        if let Some(event) = t.pending.pop_front() {
            return Some((Ok(event), t));
        }
        if t.polled {
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        t.polled = true;
        if let Err(why) = t.poll().await {
            tracing::info!(reason = %why, cluster = %t.cluster, "a live change stream ended");
            return None;
        }
    }
}

impl Tail {
    /// Renews the token when due, then reads the records after `since` into `pending`. An
    /// unreachable data plane is retried on the next poll.
    async fn poll(&mut self) -> Result<(), Ended> {
        if needs_remint(self.dp.expires_at(), now_secs()) {
            self.dp = self.remint().await?;
        }
        let path = format!(
            "/api/v1/changes?since={}&limit={STREAM_BATCH}&meta=true",
            self.since
        );
        let page: Changes = match self.dp.get(&path).await.and_then(decode) {
            Ok(page) => page,
            Err(DataError::Refused {
                status, message, ..
            }) if status == 401 || status == 403 => {
                return Err(Ended::Refused(message));
            }
            Err(e) => {
                tracing::debug!(error = %e, "the live change stream could not poll; retrying");
                return Ok(());
            }
        };
        for change in &page.changes {
            let rows = rows_of(change, &self.ns, &self.base);
            if rows.is_empty() {
                continue;
            }
            match event_data(&rows) {
                Ok(data) => self.pending.push_back(
                    Event::default()
                        .event("change")
                        .id(change.lsn.to_string())
                        .data(data),
                ),
                Err(e) => tracing::error!(error = %e, "rendering a live change"),
            }
        }
        self.since = self.since.max(page.next_since);
        Ok(())
    }

    /// Checks the session as a new page would (not expired, not logged out, still a member
    /// allowed to read the cluster) and mints a new token.
    async fn remint(&self) -> Result<DataPlane, Ended> {
        let claims = &self.user.claims;
        if i64::try_from(now_secs()).unwrap_or(i64::MAX) >= claims.exp {
            // The browser's EventSource reconnects, and the session middleware renews the
            // access token from the refresh cookie as for any page.
            return Err(Ended::Session("the access token expired".into()));
        }
        match crate::accounts::is_revoked(&self.state.db, &claims.jti).await {
            Ok(false) => {}
            Ok(true) => return Err(Ended::Session("logged out".into())),
            Err(e) => return Err(Ended::Session(e.to_string())),
        }
        let ex = Explorer::load(
            &self.state,
            &self.user,
            &self.org,
            &self.cluster,
            "Live changes",
            "live",
        )
        .await
        .map_err(|e| Ended::Session(e.message().to_string()))?;
        ex.data(&self.state, Scope::Read)
            .await
            .map_err(|e| Ended::Session(e.to_string()))
    }
}

/// Seconds since the epoch.
fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(json: &str) -> Change {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn values_never_become_markup_and_events_stay_on_one_line() {
        let c = change(
            r#"{"lsn":7,"timestamp":"2026-12-07T00:00:01.000000Z","author":"ada@example.com","cause":"write",
               "ops":[{"op":"put","namespace":"app","key":"<b>k</b>","version_id":"7.0",
                       "value":{"html":"<script>alert(1)</script>",
                                "x":"line"}}]}"#,
        );
        let rows = rows_of(&c, "", "/orgs/o/clusters/c/data");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].author, "ada@example.com");
        assert_eq!(rows[0].cause, "write");
        assert_eq!(
            rows[0].key_href,
            "/orgs/o/clusters/c/data/ns/app/key?key=%3Cb%3Ek%3C%2Fb%3E"
        );
        let data = event_data(&rows).unwrap();
        assert!(!data.contains('\n') && !data.contains('\r'), "{data}");
        assert!(!data.contains("<script>"), "{data}");
        assert!(!data.contains("<b>k"), "{data}");
        assert!(data.contains("&#60;script&#62;"), "{data}");
        assert!(
            data.starts_with("<tr class=\"live-row\" data-lsn=\"7\">"),
            "{data}"
        );
    }

    #[test]
    fn rows_follow_the_namespace_filter_and_hide_internal_namespaces() {
        let c = change(
            r#"{"lsn":9,"timestamp":"2026-12-07T00:00:01.000000Z",
               "ops":[{"op":"put","namespace":"a","key":"k1","version_id":"9.0","value":1},
                      {"op":"delete","namespace":"b","key":"k2","version_id":"9.1"},
                      {"op":"put","namespace":"_koru_region","key":"heartbeat","version_id":"9.2","value":2}]}"#,
        );
        let all = rows_of(&c, "", "");
        assert_eq!(
            all.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
            ["k1", "k2"]
        );
        assert_eq!(all[0].author, "unknown", "no meta: the author is unknown");
        assert_eq!(all[0].cause, "");
        assert_eq!(all[1].op, "delete");
        assert_eq!(all[1].excerpt, "");
        let b = rows_of(&c, "b", "");
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].key, "k2");
        assert!(rows_of(&c, "zz", "").is_empty());
    }

    #[test]
    fn excerpts_are_one_line_and_bounded() {
        assert_eq!(excerpt("{\n  \"a\": 1\n}"), "{   \"a\": 1 }");
        let long = format!("\"{}\"", "x".repeat(300));
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), EXCERPT_CHARS + 1);
        assert!(e.ends_with('…'));
        assert_eq!(excerpt("1"), "1");
    }

    #[test]
    fn tokens_are_renewed_before_they_expire() {
        assert!(!needs_remint(1_000, 900));
        assert!(needs_remint(1_000, 1_000 - REMINT_MARGIN_SECS));
        assert!(needs_remint(1_000, 2_000));
    }

    #[test]
    fn query_strings_leave_out_empty_fields() {
        assert_eq!(query_string(&[("ns", "")]), "");
        assert_eq!(
            query_string(&[("ns", "a b"), ("since", "3")]),
            "?ns=a+b&since=3"
        );
    }
}
