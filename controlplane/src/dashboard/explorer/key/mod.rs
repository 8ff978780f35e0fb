//! A key's page: its current value as formatted JSON, its history as a timeline (newest first,
//! with time, author, version id and operation), a JSON-aware diff of any two versions, the key
//! read as of any moment, and (members) the edit and delete forms, which write with
//! `If-Match` on the version shown so two people editing never overwrite each other silently
//! ([`edit`]).

mod edit;
mod format;

use std::collections::VecDeque;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use koru_dataplane_api::auth::Scope;
use koru_dataplane_api::data::{Entry, History, VersionOp};
use serde::Deserialize;

use crate::auth::Role;
use crate::dashboard::session::SignedIn;
use crate::dashboard::view::{self, Layout};
use crate::dashboard::{PageError, PageResult, render};
use crate::state::AppState;

use super::client::{DataError, DataPlane, segment};
use super::keys::{connect, inline, ns_href, query, read};
use super::{Explorer, Nav, author_label};

/// Versions asked for per history page while walking a key's history.
const HISTORY_PAGE: usize = 1000;
/// History pages walked at most for one page view (the newest versions are at the end).
const HISTORY_PAGES: usize = 50;
/// Versions the timeline shows at once.
const TIMELINE: usize = 50;

/// This page's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/orgs/{org}/clusters/{id}/data/ns/{ns}/key",
            get(page).post(edit::submit),
        )
        .route("/orgs/{org}/clusters/{id}/data/key", post(edit::create))
}

/// The key page's query string; empty fields count as absent.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct KeyQuery {
    #[serde(default)]
    key: String,
    /// Read the key as of this moment (RFC 3339 or a `datetime-local` value, UTC).
    #[serde(default)]
    at: String,
    /// Diff these two versions.
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    /// Show the timeline's versions before this one (older pages).
    #[serde(default)]
    before: String,
}

/// The data plane's path of a key.
fn key_path(ns: &str, key: &str) -> String {
    format!("/api/v1/{}/{}", segment(ns), segment(key))
}

/// A version as the page shows it.
struct Shown {
    id: String,
    when: String,
    timestamp: String,
    author: String,
    op: &'static str,
    /// The whole value laid out (current value, as-of, conflict) or a one-line preview
    /// (timeline).
    text: String,
    deleted: bool,
}

impl Shown {
    fn of(e: &Entry, whole: bool) -> Shown {
        let op = match e.op {
            Some(VersionOp::Put) => "put",
            Some(VersionOp::Delete) => "delete",
            Some(VersionOp::Rewind) => "rewind",
            Some(VersionOp::Merge) => "merge",
            // A data plane that records no operations: what the version itself says.
            None if e.deleted => "delete",
            None => "put",
        };
        let text = if e.deleted {
            "(deleted)".into()
        } else if whole {
            format::pretty(e.value.get())
        } else {
            serde_json::from_str(e.value.get())
                .map(|v| format::preview(&v))
                .unwrap_or_default()
        };
        Shown {
            id: e.version_id.clone(),
            when: view::rfc3339(&e.timestamp),
            timestamp: e.timestamp.clone(),
            author: author_label(e.author.as_deref()),
            op,
            text,
            deleted: e.deleted,
        }
    }
}

/// A timeline entry: the version and its links.
struct TimelineRow {
    v: Shown,
    /// The diff with the version it superseded.
    diff_href: Option<String>,
    /// The key read as of this version.
    at_href: String,
}

/// The as-of section.
struct AsOf {
    /// The moment as RFC 3339 (empty when it could not be read).
    at: String,
    /// The moment for people.
    when: String,
    found: Option<Shown>,
    note: Option<String>,
}

/// The diff section.
struct DiffView {
    from: Shown,
    to: Shown,
    lines: Vec<format::DiffLine>,
}

/// The other version met by a refused write.
struct Conflict {
    theirs: Option<Shown>,
}

/// What a POST brings to the page it renders again.
#[derive(Default)]
pub(super) struct Outcome {
    /// The value as submitted.
    value: Option<String>,
    /// Why nothing was written.
    error: Option<String>,
    /// The write met another version (412).
    conflict: bool,
}

#[derive(Template)]
#[template(path = "explorer_key.html")]
struct KeyPage {
    layout: Layout,
    nav: Nav,
    ns: String,
    key: String,
    ns_href: String,
    /// The key page without query (GET forms add `key`; the edit forms post here).
    action: String,
    current: Option<Shown>,
    /// The newest version, which the edit form's `If-Match` names (a delete version too).
    latest: Option<String>,
    timeline: Vec<TimelineRow>,
    total: usize,
    older_href: Option<String>,
    newest_href: Option<String>,
    history_note: Option<String>,
    as_of: Option<AsOf>,
    at_input: String,
    diff: Option<DiffView>,
    diff_error: Option<String>,
    compare_from: String,
    compare_to: String,
    error: Option<String>,
    can_write: bool,
    edit_value: String,
    edit_error: Option<String>,
    conflict: Option<Conflict>,
}

/// `GET …/data/ns/{ns}/key?key=K[&at=T][&from=V&to=V][&before=V]`.
async fn page(
    State(state): State<AppState>,
    user: SignedIn,
    Path((org, id, ns)): Path<(String, String, String)>,
    Query(q): Query<KeyQuery>,
) -> PageResult {
    let ex = Explorer::load(&state, &user, &org, &id, &q.key, "data").await?;
    if q.key.is_empty() {
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            "Name the key to show: ?key=…",
        ));
    }
    let dp = connect(&state, &ex, Scope::Read).await?;
    key_page(ex, &dp, &ns, &q, StatusCode::OK, Outcome::default()).await
}

/// A key's versions from walking its history, oldest first.
struct Walk {
    /// The versions the timeline shows: the newest ones, or those before `before`.
    window: VecDeque<Entry>,
    /// Whether older versions precede the window.
    more_before: bool,
    /// Every version walked.
    total: usize,
    /// Whether the walk stopped before the end (a very long history).
    cut: bool,
    /// The newest version.
    latest: Option<String>,
    /// The versions asked for by id (the diff's two).
    picked: Vec<Entry>,
}

/// Walks the key's history page by page (the data plane pages it oldest first), keeping the
/// [`TIMELINE`] newest versions before `before` and the versions named in `pick`.
async fn walk(
    dp: &DataPlane,
    ns: &str,
    key: &str,
    before: &str,
    pick: &[&str],
) -> Result<Walk, DataError> {
    let mut out = Walk {
        window: VecDeque::new(),
        more_before: false,
        total: 0,
        cut: false,
        latest: None,
        picked: Vec::new(),
    };
    let mut stopped = false;
    let mut cursor = String::new();
    // History entries need not name the version they superseded: it is the one before.
    let mut previous: Option<String> = None;
    for _ in 0..HISTORY_PAGES {
        let path = format!(
            "{}/history{}",
            key_path(ns, key),
            query(&[
                ("meta", "true"),
                ("limit", &HISTORY_PAGE.to_string()),
                ("cursor", &cursor),
            ])
        );
        let page: History = read(dp, &path).await?;
        for mut e in page.versions {
            if e.previous_version.is_none() {
                e.previous_version = previous.take();
            }
            previous = Some(e.version_id.clone());
            out.total += 1;
            out.latest = Some(e.version_id.clone());
            if pick.contains(&e.version_id.as_str()) {
                out.picked.push(e.clone());
            }
            if stopped || e.version_id == before {
                stopped = true;
                continue;
            }
            out.window.push_back(e);
            if out.window.len() > TIMELINE {
                out.window.pop_front();
                out.more_before = true;
            }
        }
        match page.next_cursor {
            Some(next) => cursor = next,
            None => return Ok(out),
        }
    }
    out.cut = true;
    Ok(out)
}

/// A key's current version; None when it never existed or its latest version is a delete.
async fn current(dp: &DataPlane, ns: &str, key: &str) -> Result<Option<Entry>, DataError> {
    match read::<Entry>(dp, &format!("{}?meta=true", key_path(ns, key))).await {
        Ok(e) => Ok(Some(e)),
        Err(DataError::Refused { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The key page with what a POST brought, answered with `status`.
pub(super) async fn key_page(
    ex: Explorer,
    dp: &DataPlane,
    ns: &str,
    q: &KeyQuery,
    status: StatusCode,
    outcome: Outcome,
) -> PageResult {
    let key = q.key.as_str();
    let ns_href = ns_href(&ex.base, ns);
    let action = format!("{ns_href}/key");
    let href = |extra: &[(&str, &str)]| {
        let mut pairs = vec![("key", key)];
        pairs.extend_from_slice(extra);
        format!("{action}{}", query(&pairs))
    };
    let mut status = status;
    let mut error = None;
    let current = match current(dp, ns, key).await {
        Ok(c) => c,
        Err(e) => {
            let (s, message) = inline(e)?;
            if status.is_success() {
                status = s;
            }
            error = Some(message);
            None
        }
    };
    let picks = [q.from.as_str(), q.to.as_str()];
    let walked = if error.is_none() {
        match walk(dp, ns, key, &q.before, &picks).await {
            Ok(w) => Some(w),
            Err(e) => {
                let (s, message) = inline(e)?;
                if status.is_success() {
                    status = s;
                }
                error = Some(message);
                None
            }
        }
    } else {
        None
    };
    let (timeline, total, older_href, history_note, latest, picked) = match walked {
        Some(w) => {
            let older_href = (w.more_before)
                .then(|| w.window.front().map(|e| href(&[("before", &e.version_id)])))
                .flatten();
            let note = w.cut.then(|| {
                format!(
                    "This key has more than {} versions; the page walked the first {} of them.",
                    view::number((HISTORY_PAGE * HISTORY_PAGES) as u64),
                    view::number(w.total as u64)
                )
            });
            let rows = w
                .window
                .iter()
                .rev()
                .map(|e| TimelineRow {
                    diff_href: e
                        .previous_version
                        .as_deref()
                        .map(|p| href(&[("from", p), ("to", &e.version_id)])),
                    at_href: href(&[("at", &e.timestamp)]),
                    v: Shown::of(e, false),
                })
                .collect::<Vec<_>>();
            (rows, w.total, older_href, note, w.latest, w.picked)
        }
        None => (Vec::new(), 0, None, None, None, Vec::new()),
    };
    let (diff, diff_error) = diff_of(q, &picked);
    let as_of = if q.at.is_empty() || error.is_some() {
        None
    } else {
        Some(as_of(dp, ns, key, &q.at).await?)
    };
    let conflict = if outcome.conflict {
        Some(Conflict {
            theirs: current.as_ref().map(|e| Shown::of(e, true)),
        })
    } else {
        None
    };
    let edit_value = outcome.value.unwrap_or_else(|| {
        current
            .as_ref()
            .map(|e| format::pretty(e.value.get()))
            .unwrap_or_else(|| "{}".into())
    });
    let compare_to = if q.to.is_empty() {
        timeline.first().map(|r| r.v.id.clone()).unwrap_or_default()
    } else {
        q.to.clone()
    };
    let compare_from = if q.from.is_empty() {
        timeline.get(1).map(|r| r.v.id.clone()).unwrap_or_default()
    } else {
        q.from.clone()
    };
    let page = KeyPage {
        ns: ns.to_string(),
        key: key.to_string(),
        newest_href: (!q.before.is_empty()).then(|| href(&[])),
        ns_href,
        action,
        current: current.as_ref().map(|e| Shown::of(e, true)),
        latest,
        timeline,
        total,
        older_href,
        history_note,
        at_input: as_of
            .as_ref()
            .map(|a| format::local_input(&a.at))
            .unwrap_or_default(),
        as_of,
        diff,
        diff_error,
        compare_from,
        compare_to,
        error,
        can_write: ex.ctx.access.role >= Role::Member,
        edit_value,
        edit_error: outcome.error,
        conflict,
        nav: ex.nav,
        layout: ex.ctx.layout,
    };
    Ok(render(status, &page))
}

/// The diff of the versions `from` and `to` named in the query, or why there is none.
fn diff_of(q: &KeyQuery, picked: &[Entry]) -> (Option<DiffView>, Option<String>) {
    if q.from.is_empty() || q.to.is_empty() {
        return (None, None);
    }
    let find = |id: &str| picked.iter().find(|e| e.version_id == id);
    let (Some(from), Some(to)) = (find(&q.from), find(&q.to)) else {
        return (
            None,
            Some(format!(
                "This key has no version {} to compare.",
                if find(&q.from).is_none() {
                    &q.from
                } else {
                    &q.to
                }
            )),
        );
    };
    let value = |e: &Entry| -> serde_json::Value {
        if e.deleted {
            serde_json::Value::Null
        } else {
            serde_json::from_str(e.value.get()).unwrap_or_default()
        }
    };
    let lines = format::diff(&value(from), &value(to));
    (
        Some(DiffView {
            from: Shown::of(from, false),
            to: Shown::of(to, false),
            lines,
        }),
        None,
    )
}

/// The key read as of the moment `at` (as typed).
async fn as_of(dp: &DataPlane, ns: &str, key: &str, at: &str) -> Result<AsOf, PageError> {
    let at = match super::moment::rfc3339(at) {
        Ok(t) => t,
        Err(e) => {
            return Ok(AsOf {
                at: String::new(),
                when: String::new(),
                found: None,
                note: Some(view::sentence(&e.to_string())),
            });
        }
    };
    let path = format!("{}/at/{}?meta=true", key_path(ns, key), segment(&at));
    let (found, note) = match read::<Entry>(dp, &path).await {
        Ok(e) => (Some(Shown::of(&e, true)), None),
        Err(DataError::Refused { status: 404, .. }) => (
            None,
            Some("The key did not exist at that moment, or had been deleted.".to_string()),
        ),
        Err(e) => (None, Some(inline(e)?.1)),
    };
    Ok(AsOf {
        when: view::rfc3339(&at),
        at,
        found,
        note,
    })
}
