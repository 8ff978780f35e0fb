//! The time slider: a namespace's keys and values as they stood at a chosen moment, with what
//! changed since the previous stop highlighted (added, changed with old → new, deleted).
//!
//! The slider runs over the retained history (the data plane's first to last commit time) in a
//! fixed number of stops, or one stop per commit of the namespace when the whole log has fewer
//! records than that. Both states, at the moment and at the previous stop, are read with
//! `POST /api/v1/{ns}/query` and `"at"`: exact as of the moment, and bounded by its `limit` (the
//! NDJSON snapshot would stream the whole namespace to show its first keys).
//!
//! Moments are microseconds since the epoch; stops fall on whole milliseconds (the next one at
//! or after a commit), so the page's datetime input, which has millisecond steps, shows a stop
//! exactly and submitting it unchanged shows the same state.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use koru_dataplane_api::auth::Scope;
use koru_dataplane_api::data::{Changes, Status};
use koru_dataplane_api::rfc3339;
use serde::Deserialize;
use serde_json::{Value, json};

use super::moment::{self, BadMoment};

use crate::dashboard::session::SignedIn;
use crate::dashboard::view::Layout;
use crate::dashboard::{PageError, PageResult, render};
use crate::state::AppState;

use super::client::{DataError, DataPlane, segment};
use super::{Explorer, Nav};

/// Most stops on the slider (fewer when the history has fewer commits).
pub const STOPS: usize = 100;
/// Most keys shown (and read) per state.
pub const SHOWN_KEYS: usize = 200;
/// Longest value text shown in a cell, in characters.
const SHOWN_VALUE_CHARS: usize = 2_000;

/// This page's routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/orgs/{org}/clusters/{id}/data/ns/{ns}/slider", get(page))
}

/// The slider's query: a moment (`at`, RFC 3339 or a `datetime-local` value read as UTC) or a
/// stop's index (`stop`, the range input's value); `stop` wins when both are given.
#[derive(Debug, Default, Deserialize)]
pub struct SliderQuery {
    /// A moment.
    #[serde(default)]
    pub at: Option<String>,
    /// A stop's index.
    #[serde(default)]
    pub stop: Option<String>,
}

/// A moment as the `datetime-local` input shows it: UTC, to the millisecond.
pub fn local_input(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string())
        .unwrap_or_default()
}

/// A moment as the page shows it: UTC, to the millisecond.
pub fn shown(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
        .unwrap_or_default()
}

/// The first whole millisecond at or after `micros`.
fn ceil_ms(micros: i64) -> i64 {
    micros.div_euclid(1000) * 1000
        + if micros.rem_euclid(1000) == 0 {
            0
        } else {
            1000
        }
}

/// A stop of the slider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop {
    /// The moment it stands for: a commit, or an evenly spaced moment.
    pub from: i64,
    /// The moment the page shows for it: the first whole millisecond at or after `from`, never
    /// after now (the same state, unless another commit falls within that millisecond).
    pub at: i64,
}

/// The slider's stops over `[first, last]` (microseconds): one per commit in `commits` when
/// they are given (the whole log had at most [`STOPS`] records), else `count` evenly spaced.
/// They are sorted, their `at`s distinct (commits within one millisecond share a stop), and
/// there is at least one.
pub fn stops(first: i64, last: i64, commits: Option<&[i64]>, count: usize, now: i64) -> Vec<Stop> {
    let last = last.max(first);
    let mut moments: Vec<i64> = match commits {
        Some(c) if !c.is_empty() => c.to_vec(),
        _ => {
            let n = count.max(2) as i64 - 1;
            let span = i128::from(last - first);
            (0..=n)
                .map(|i| first + i64::try_from(span * i128::from(i) / i128::from(n)).unwrap_or(0))
                .collect()
        }
    };
    moments.sort_unstable();
    let mut out: Vec<Stop> = Vec::with_capacity(moments.len());
    for from in moments {
        let at = ceil_ms(from).min(now.max(from));
        if out.last().is_none_or(|s| s.at != at) {
            out.push(Stop { from, at });
        }
    }
    out
}

/// Where the page stands on the slider.
#[derive(Debug, PartialEq, Eq)]
pub struct Position {
    /// The moment shown.
    pub at: i64,
    /// The stop it belongs to: the last one standing for a moment at or before it (the range
    /// input's value).
    pub index: usize,
    /// The moment its changes are compared with: its stop's moment when it is past it, else the
    /// stop before; None at the first stop.
    pub previous: Option<i64>,
    /// Why the moment asked for is not the one shown (out of range).
    pub note: Option<String>,
}

/// What the page was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    /// Nothing: the latest stop.
    Latest,
    /// A stop's index.
    Stop(usize),
    /// A moment.
    At(i64),
}

/// Places `asked` on `stops` (sorted, non-empty): indexes past the end and moments before the
/// first commit (`first`) or after the last stop are clamped, with a note saying so.
pub fn position(stops: &[Stop], first: i64, asked: Asked) -> Position {
    let last_index = stops.len().saturating_sub(1);
    let last = stops.last().map_or(first, |s| s.at);
    let first_stop = stops.first().map_or(first, |s| s.at);
    let (at, note) = match asked {
        Asked::Latest => (last, None),
        Asked::Stop(i) if i > last_index => (
            last,
            Some(format!(
                "There are {} stops; showing the last one.",
                last_index + 1
            )),
        ),
        Asked::Stop(i) => (stops.get(i).map_or(last, |s| s.at), None),
        Asked::At(t) if t < first => (
            first_stop,
            Some(format!(
                "{} is before the retained history, which starts at {}; showing its first stop.",
                shown(t),
                shown(first)
            )),
        ),
        Asked::At(t) if t > last => (
            last,
            Some(format!(
                "{} is after the last change ({}); showing the latest state.",
                shown(t),
                shown(last)
            )),
        ),
        Asked::At(t) => (t, None),
    };
    let index = stops.iter().rposition(|s| s.from <= at).unwrap_or(0);
    let previous = match stops.get(index) {
        Some(s) if s.at < at => Some(s.at),
        _ => index
            .checked_sub(1)
            .and_then(|i| stops.get(i))
            .map(|s| s.at),
    };
    Position {
        at,
        index,
        previous,
        note,
    }
}

/// A namespace's keys as they stood at a moment: the first ones in key order, and whether more
/// followed.
#[derive(Debug, Clone, Default)]
pub struct NsState {
    /// Keys and values, in key order.
    pub rows: Vec<(String, Value)>,
    /// Whether the namespace held more keys than `rows`.
    pub truncated: bool,
}

/// How a key differs from the previous stop.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// As it was.
    Same,
    /// Not there at the previous stop.
    Added,
    /// There with another value (the old one).
    Changed(Value),
    /// Beyond the keys both states show, so not compared.
    Unknown,
}

/// The difference of two states, for the keys both cover.
#[derive(Debug, Clone, PartialEq)]
pub struct Diff {
    /// Each key of the current state with its change, in key order.
    pub rows: Vec<(String, Value, Change)>,
    /// Keys of the previous state gone since, with their old values, in key order.
    pub deleted: Vec<(String, Value)>,
}

/// Compares `now` with `before`. Both hold a namespace's first keys in key order; a truncated
/// state says nothing of keys after its last one, so keys past the first truncated state's last
/// key are [`Change::Unknown`] (and no deletion is claimed there).
pub fn diff(before: &NsState, now: &NsState) -> Diff {
    let bound = |s: &NsState| {
        if s.truncated {
            s.rows.last().map(|r| r.0.clone())
        } else {
            None
        }
    };
    let limit = match (bound(before), bound(now)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let covered = |key: &str| limit.as_deref().is_none_or(|l| key <= l);
    let old: std::collections::BTreeMap<&str, &Value> =
        before.rows.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let rows = now
        .rows
        .iter()
        .map(|(k, v)| {
            let change = if !covered(k) {
                Change::Unknown
            } else {
                match old.get(k.as_str()) {
                    None => Change::Added,
                    Some(o) if *o == v => Change::Same,
                    Some(o) => Change::Changed((*o).clone()),
                }
            };
            (k.clone(), v.clone(), change)
        })
        .collect();
    let current: std::collections::BTreeSet<&str> = now.rows.iter().map(|r| r.0.as_str()).collect();
    let deleted = before
        .rows
        .iter()
        .filter(|(k, _)| covered(k) && !current.contains(k.as_str()))
        .cloned()
        .collect();
    Diff { rows, deleted }
}

/// A value as a cell shows it: pretty JSON, cut when long.
pub fn value_text(value: &Value) -> String {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    if text.chars().count() > SHOWN_VALUE_CHARS {
        let mut cut: String = text.chars().take(SHOWN_VALUE_CHARS).collect();
        cut.push_str(" …");
        cut
    } else {
        text
    }
}

/// A key's row on the page.
struct KeyRow {
    key: String,
    key_href: String,
    value: String,
    /// `added`, `changed`, `same` or `unknown`.
    change: &'static str,
    old: Option<String>,
}

/// A link to a stop.
struct StopLink {
    href: String,
    label: String,
}

#[derive(Template)]
#[template(path = "explorer_slider.html")]
struct SliderPage {
    layout: Layout,
    nav: Nav,
    ns: String,
    action: String,
    keys_href: String,
    /// Why nothing can be shown (a suspended cluster, no history yet, the data plane's refusal).
    unavailable: Option<String>,
    /// A moment that could not be read, or the data plane's refusal, with its code.
    error: Option<String>,
    note: Option<String>,
    stop_count: usize,
    index: usize,
    last_index: usize,
    at_shown: String,
    at_input: String,
    at_raw: String,
    first_shown: String,
    last_shown: String,
    previous_shown: Option<String>,
    prev: Option<StopLink>,
    next: Option<StopLink>,
    rows: Vec<KeyRow>,
    deleted: Vec<KeyRow>,
    truncated: bool,
    added: usize,
    changed: usize,
    shown_keys: usize,
}

/// `GET /orgs/{org}/clusters/{id}/data/ns/{ns}/slider?at=T|stop=N`.
async fn page(
    State(state): State<AppState>,
    user: SignedIn,
    Path((org, id, ns)): Path<(String, String, String)>,
    Query(query): Query<SliderQuery>,
) -> PageResult {
    let ex = Explorer::load(&state, &user, &org, &id, &format!("{ns} over time"), "data").await?;
    let dp = ex.data(&state, Scope::Read).await;
    let Explorer { ctx, base, nav, .. } = ex;
    let mut page = SliderPage {
        action: format!("{base}/ns/{}/slider", segment(&ns)),
        keys_href: format!("{base}/ns/{}", segment(&ns)),
        ns,
        unavailable: None,
        error: None,
        note: None,
        stop_count: 0,
        index: 0,
        last_index: 0,
        at_shown: String::new(),
        at_input: String::new(),
        at_raw: String::new(),
        first_shown: String::new(),
        last_shown: String::new(),
        previous_shown: None,
        prev: None,
        next: None,
        rows: Vec::new(),
        deleted: Vec::new(),
        truncated: false,
        added: 0,
        changed: 0,
        shown_keys: SHOWN_KEYS,
        layout: ctx.layout,
        nav,
    };
    let asked = match asked(&query) {
        Ok(a) => a,
        Err(e) => {
            page.error = Some(e.to_string());
            Asked::Latest
        }
    };
    let status = if page.error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let dp = match dp {
        Ok(dp) => dp,
        Err(e) => return unavailable(page, e),
    };
    match fill(&dp, &mut page, asked).await {
        Ok(()) => Ok(render(status, &page)),
        Err(DataError::Refused {
            status,
            code,
            message,
        }) => {
            page.error = Some(format!("{code}: {message}"));
            Ok(render(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                &page,
            ))
        }
        Err(e) => unavailable(page, e),
    }
}

/// The page saying why the data cannot be read (suspended, not running, unreachable); the
/// control plane's own refusals (a role without the scope) are error pages.
fn unavailable(mut page: SliderPage, e: DataError) -> PageResult {
    match e {
        DataError::ControlPlane(e) => Err(PageError::from(e)),
        other => {
            page.unavailable = Some(other.to_string());
            Ok(render(StatusCode::SERVICE_UNAVAILABLE, &page))
        }
    }
}

/// What the query asks for; a moment or index that cannot be read is an error.
fn asked(q: &SliderQuery) -> Result<Asked, BadMoment> {
    let filled = |s: &Option<String>| {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    if let Some(stop) = filled(&q.stop) {
        return stop.parse().map(Asked::Stop).map_err(|_| BadMoment(stop));
    }
    match filled(&q.at) {
        Some(at) => moment::parse(&at).map(Asked::At),
        None => Ok(Asked::Latest),
    }
}

/// Reads the history's bounds and the two states, and fills the page with them.
async fn fill(dp: &DataPlane, page: &mut SliderPage, asked: Asked) -> Result<(), DataError> {
    let now = chrono::Utc::now().timestamp_micros();
    let status: Status = decode(dp.get("/api/v1/status").await?)?;
    let changes: Changes = decode(
        dp.get(&format!("/api/v1/changes?limit={}", STOPS + 1))
            .await?,
    )?;
    let parse = |t: &Option<String>| t.as_deref().and_then(|t| rfc3339::parse_micros(t).ok());
    let first_change = changes
        .changes
        .first()
        .and_then(|c| rfc3339::parse_micros(&c.timestamp).ok());
    let Some(first) = parse(&status.first_timestamp).or(first_change) else {
        page.unavailable = Some("Nothing has been written to this cluster yet.".into());
        return Ok(());
    };
    let last = parse(&status.last_timestamp).unwrap_or(now);
    let whole_log = changes.changes.len() <= STOPS && changes.next_since >= changes.last_lsn;
    let commits: Option<Vec<i64>> = whole_log.then(|| {
        let of_ns: Vec<i64> = changes
            .changes
            .iter()
            .filter(|c| c.ops.iter().any(|op| op.namespace == page.ns))
            .filter_map(|c| rfc3339::parse_micros(&c.timestamp).ok())
            .collect();
        if of_ns.is_empty() {
            vec![first, last]
        } else {
            of_ns
        }
    });
    let stops = stops(first, last, commits.as_deref(), STOPS, now);
    let pos = position(&stops, first, asked);
    page.note = pos.note.clone();
    page.stop_count = stops.len();
    page.index = pos.index;
    page.last_index = stops.len().saturating_sub(1);
    page.at_shown = shown(pos.at);
    page.at_input = local_input(pos.at);
    page.at_raw = rfc3339::format_micros(pos.at);
    page.first_shown = shown(first);
    page.last_shown = shown(stops.last().map_or(last, |s| s.at));
    page.previous_shown = pos.previous.map(shown);
    let link = |t: i64| StopLink {
        href: format!(
            "{}?at={}",
            page.action,
            form_urlencoded::byte_serialize(rfc3339::format_micros(t).as_bytes())
                .collect::<String>()
        ),
        label: shown(t),
    };
    page.prev = pos.previous.map(link);
    page.next = stops.get(pos.index + 1).map(|s| link(s.at));

    let now_state = state_at(dp, &page.ns, pos.at).await?;
    let before = match pos.previous {
        Some(t) => Some(state_at(dp, &page.ns, t).await?),
        None => None,
    };
    page.truncated = now_state.truncated;
    let key_href = |k: &str| {
        format!(
            "{}/key?key={}&at={}",
            page.keys_href,
            form_urlencoded::byte_serialize(k.as_bytes()).collect::<String>(),
            form_urlencoded::byte_serialize(page.at_raw.as_bytes()).collect::<String>()
        )
    };
    let row = |k: &str, v: &Value, change: &'static str, old: Option<String>| KeyRow {
        key: k.to_string(),
        key_href: key_href(k),
        value: value_text(v),
        change,
        old,
    };
    match before {
        Some(before) => {
            let d = diff(&before, &now_state);
            page.rows = d
                .rows
                .iter()
                .map(|(k, v, c)| match c {
                    Change::Same => row(k, v, "same", None),
                    Change::Added => row(k, v, "added", None),
                    Change::Changed(old) => row(k, v, "changed", Some(value_text(old))),
                    Change::Unknown => row(k, v, "unknown", None),
                })
                .collect();
            page.deleted = d
                .deleted
                .iter()
                .map(|(k, v)| row(k, v, "deleted", None))
                .collect();
        }
        None => {
            page.rows = now_state
                .rows
                .iter()
                .map(|(k, v)| row(k, v, "same", None))
                .collect();
        }
    }
    page.added = page.rows.iter().filter(|r| r.change == "added").count();
    page.changed = page.rows.iter().filter(|r| r.change == "changed").count();
    Ok(())
}

/// The namespace's first [`SHOWN_KEYS`] keys as they stood at `at`.
async fn state_at(dp: &DataPlane, ns: &str, at: i64) -> Result<NsState, DataError> {
    let body = json!({"at": rfc3339::format_micros(at), "limit": SHOWN_KEYS});
    let answer = dp
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/{}/query", segment(ns)),
            &[],
            Some(&body),
        )
        .await?
        .body;
    #[derive(Deserialize)]
    struct Row {
        key: String,
        value: Value,
    }
    #[derive(Deserialize)]
    struct Answer {
        results: Vec<Row>,
        total: usize,
    }
    let answer: Answer = decode(answer)?;
    Ok(NsState {
        truncated: answer.total > answer.results.len(),
        rows: answer
            .results
            .into_iter()
            .map(|r| (r.key, r.value))
            .collect(),
    })
}

/// A data-plane answer read as `T`; one it does not match is an unavailable cluster (a data
/// plane of another version), logged.
fn decode<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, DataError> {
    serde_json::from_value(body).map_err(|e| {
        tracing::warn!(error = %e, "unexpected answer from a data plane in the explorer");
        DataError::Unavailable(
            "The cluster answered in a way this page does not understand.".into(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    #[test]
    fn moments_read_as_rfc3339_or_as_the_datetime_input_in_utc() {
        let t = moment::parse("2026-12-07T10:30:00Z").unwrap();
        assert_eq!(moment::parse("2026-12-07T11:30:00+01:00"), Ok(t));
        assert_eq!(moment::parse("2026-12-07T10:30"), Ok(t));
        assert_eq!(moment::parse(" 2026-12-07T10:30:00.000 "), Ok(t));
        assert_eq!(moment::parse("2026-12-07T10:30:00.250"), Ok(t + 250_000));
        assert!(moment::parse("yesterday").is_err());
        assert!(moment::parse("").is_err());
        assert_eq!(local_input(t + 250_123), "2026-12-07T10:30:00.250");
        assert_eq!(moment::parse(&local_input(t + 250_000)), Ok(t + 250_000));
    }

    fn at(stops: &[Stop]) -> Vec<i64> {
        stops.iter().map(|s| s.at).collect()
    }

    #[test]
    fn stops_are_one_per_commit_or_evenly_spread_on_whole_milliseconds() {
        let commits = [10 * S + 1, 10 * S + 1_500, 12 * S];
        let by_commit = stops(10 * S, 12 * S, Some(&commits), STOPS, 20 * S);
        assert_eq!(
            at(&by_commit),
            vec![10 * S + 1_000, 10 * S + 2_000, 12 * S],
            "each commit's stop shows it"
        );
        assert_eq!(by_commit[1].from, 10 * S + 1_500);
        let even = stops(0, 99 * S, None, STOPS, 200 * S);
        assert_eq!(even.len(), 100);
        assert_eq!((even[0].at, even[1].at, even[99].at), (0, S, 99 * S));
        assert_eq!(
            at(&stops(5 * S, 5 * S, None, STOPS, 9 * S)),
            vec![5 * S],
            "one moment"
        );
        assert_eq!(
            at(&stops(5 * S, 5 * S + 10, None, STOPS, 5 * S + 10)),
            vec![5 * S, 5 * S + 10],
            "never after now"
        );
        let close = [1_000_002, 1_000_001];
        assert_eq!(
            stops(1_000_001, 1_000_002, Some(&close), STOPS, 9 * S),
            vec![Stop {
                from: 1_000_001,
                at: 1_001_000
            }],
            "one millisecond, one stop"
        );
    }

    #[test]
    fn a_moment_is_placed_between_stops_and_clamped_to_the_history() {
        let stops: Vec<Stop> = [10 * S, 20 * S, 30 * S]
            .into_iter()
            .map(|t| Stop { from: t, at: t })
            .collect();
        let p = position(&stops, 10 * S, Asked::Latest);
        assert_eq!(
            (p.at, p.index, p.previous, p.note),
            (30 * S, 2, Some(20 * S), None)
        );
        let p = position(&stops, 10 * S, Asked::Stop(1));
        assert_eq!((p.at, p.previous), (20 * S, Some(10 * S)));
        let p = position(&stops, 10 * S, Asked::Stop(0));
        assert_eq!(
            (p.at, p.previous),
            (10 * S, None),
            "the first stop has no previous"
        );
        let p = position(&stops, 10 * S, Asked::At(25 * S));
        assert_eq!((p.at, p.index, p.previous), (25 * S, 1, Some(20 * S)));
        let p = position(&stops, 10 * S, Asked::At(S));
        assert_eq!(p.at, 10 * S);
        assert!(p.note.unwrap().contains("before the retained history"));
        let p = position(&stops, 10 * S, Asked::At(99 * S));
        assert_eq!(p.at, 30 * S);
        assert!(p.note.unwrap().contains("after the last change"));
        let p = position(&stops, 10 * S, Asked::Stop(7));
        assert_eq!(p.index, 2);
        assert!(p.note.is_some());
        let p = position(&stops, 9 * S, Asked::At(9 * S + 5));
        assert_eq!((p.at, p.index, p.previous), (9 * S + 5, 0, None));
        // A commit's own moment belongs to its stop, shown a little later.
        let commit = [
            Stop {
                from: S + 1,
                at: S + 1_000,
            },
            Stop {
                from: 2 * S + 1,
                at: 2 * S + 1_000,
            },
        ];
        let p = position(&commit, S + 1, Asked::At(2 * S + 1));
        assert_eq!((p.index, p.previous), (1, Some(S + 1_000)));
    }

    fn state(rows: &[(&str, Value)], truncated: bool) -> NsState {
        NsState {
            rows: rows
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            truncated,
        }
    }

    #[test]
    fn two_states_differ_by_added_changed_and_deleted_keys() {
        let before = state(&[("a", json!(1)), ("b", json!(2)), ("c", json!(3))], false);
        let now = state(&[("a", json!(1)), ("b", json!(20)), ("d", json!(4))], false);
        let d = diff(&before, &now);
        assert_eq!(
            d.rows,
            vec![
                ("a".into(), json!(1), Change::Same),
                ("b".into(), json!(20), Change::Changed(json!(2))),
                ("d".into(), json!(4), Change::Added),
            ]
        );
        assert_eq!(d.deleted, vec![("c".into(), json!(3))]);
    }

    #[test]
    fn keys_past_a_truncated_state_are_not_compared() {
        // Before: only a and b shown of more; now: a, c, e (all). c might have been there.
        let before = state(&[("a", json!(1)), ("b", json!(2))], true);
        let now = state(&[("a", json!(1)), ("c", json!(3)), ("e", json!(5))], false);
        let d = diff(&before, &now);
        assert_eq!(d.rows[0].2, Change::Same);
        assert_eq!(d.rows[1].2, Change::Unknown);
        assert_eq!(d.rows[2].2, Change::Unknown);
        assert_eq!(d.deleted, vec![("b".into(), json!(2))], "b is within both");
        let now = state(&[("a", json!(1))], true);
        let before = state(&[("a", json!(1)), ("b", json!(2))], false);
        assert!(
            diff(&before, &now).deleted.is_empty(),
            "b may be past now's page"
        );
    }

    #[test]
    fn long_values_are_cut() {
        let long = Value::String("x".repeat(5_000));
        assert!(value_text(&long).ends_with(" …"));
        assert_eq!(value_text(&json!({"a": 1})), "{\n  \"a\": 1\n}");
    }
}
