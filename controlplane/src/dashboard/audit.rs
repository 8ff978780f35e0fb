//! The organization's audit log (admin): newest first, filtered by who, what, outcome and
//! period, paged by the chain's sequence numbers, with a check of the hash chain on demand.

use std::collections::HashMap;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::session::SignedIn;
use super::view::{self, Layout, OrgContext};
use super::{PageError, PageResult, render};
use crate::audit::store::{self, Direction};
use crate::audit::verify::{Scope, verify};
use crate::audit::{Filter, OrgEvent};
use crate::auth::Role;
use crate::error::Error;
use crate::orgs;
use crate::state::AppState;

/// Events on one page.
const PAGE: u32 = 50;
/// The periods offered, as (value, label, hours).
const PERIODS: [(&str, &str, i64); 5] = [
    ("", "any time", 0),
    ("1h", "last hour", 1),
    ("24h", "last 24 hours", 24),
    ("7d", "last 7 days", 7 * 24),
    ("30d", "last 30 days", 30 * 24),
];

/// The filters, as the page's GET form sends them.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    period: String,
    /// The seq below which the page starts (older events).
    #[serde(default)]
    before: Option<i64>,
    /// Whether to check the chain.
    #[serde(default)]
    verify: Option<String>,
}

impl AuditQuery {
    fn filter(&self, now: i64) -> Filter {
        let text = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        let hours = PERIODS
            .iter()
            .find(|(value, _, _)| *value == self.period)
            .map_or(0, |p| p.2);
        Filter {
            actor: text(&self.actor),
            action: text(&self.action),
            outcome: text(&self.outcome),
            since: (hours > 0).then(|| now - hours * 3600 * 1000),
            until: None,
        }
    }

    /// The query string of these filters, for the link to older events.
    fn older(&self, before: i64) -> String {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("actor", &self.actor)
            .append_pair("action", &self.action)
            .append_pair("outcome", &self.outcome)
            .append_pair("period", &self.period)
            .append_pair("before", &before.to_string())
            .finish()
    }
}

/// An event in the list.
struct EventRow {
    seq: i64,
    time: String,
    actor: String,
    action: String,
    target: String,
    ok: bool,
    outcome: String,
    source_ip: String,
    request_id: String,
}

/// A member in the actor filter.
struct ActorOption {
    value: String,
    label: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    base: String,
    events: Vec<EventRow>,
    actors: Vec<ActorOption>,
    periods: Vec<(&'static str, &'static str)>,
    query: AuditQuery,
    older: Option<String>,
    verification: Option<(bool, String)>,
    error: Option<String>,
}

/// `GET /orgs/{org}/audit`.
pub async fn list(
    State(state): State<AppState>,
    user: SignedIn,
    Path(org): Path<String>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> PageResult {
    let ctx = OrgContext::load(&state, &user, &org, "Audit log", "audit").await?;
    ctx.access.require(Role::Admin)?;
    let query = query
        .map(|Query(q)| q)
        .map_err(|e| PageError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let org_id = ctx.access.org.id.clone();
    let members = orgs::members(&state.db, &org_id, &None, 500).await?;
    let emails: HashMap<String, String> = members
        .iter()
        .map(|m| (format!("user:{}", m.user_id), m.email.clone()))
        .collect();
    let filter = query.filter(crate::db::now_ms());
    let (mut events, error) = match filter.validate() {
        Ok(()) => (
            store::org_events(
                &state.db,
                &org_id,
                &filter,
                query.before,
                Direction::Older,
                PAGE + 1,
            )
            .await?,
            None,
        ),
        Err(e) => (Vec::new(), Some(view::sentence(&e.to_string()))),
    };
    let more = events.len() > PAGE as usize;
    events.truncate(PAGE as usize);
    let older = match events.last() {
        Some(last) if more => Some(format!("?{}", query.older(last.seq))),
        _ => None,
    };
    let verification = match query.verify.as_deref() {
        Some(_) => Some(check(&state, &org_id).await?),
        None => None,
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = AuditPage {
        base: format!("/orgs/{}/audit", ctx.slug()),
        events: events.iter().map(|e| row(e, &emails)).collect(),
        actors: members
            .iter()
            .map(|m| ActorOption {
                value: format!("user:{}", m.user_id),
                label: m.email.clone(),
            })
            .collect(),
        periods: PERIODS.iter().map(|(v, l, _)| (*v, *l)).collect(),
        query,
        older,
        verification,
        error,
        layout: ctx.layout,
    };
    Ok(render(status, &page))
}

fn row(e: &OrgEvent, emails: &HashMap<String, String>) -> EventRow {
    let r = &e.record;
    let actor = match &r.actor {
        Some(a) => emails.get(a).cloned().unwrap_or_else(|| a.clone()),
        None => "anonymous".into(),
    };
    EventRow {
        seq: e.seq,
        time: chrono::DateTime::from_timestamp_millis(r.time)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default(),
        actor,
        action: r.action.clone(),
        target: r.target.clone(),
        ok: r.outcome == "success",
        outcome: r.outcome.clone(),
        source_ip: r.source_ip.clone().unwrap_or_default(),
        request_id: r.request_id.clone(),
    }
}

/// Walks the organization's chain: whether it is intact, in words.
async fn check(state: &AppState, org_id: &str) -> Result<(bool, String), PageError> {
    let v = verify(&state.db, &Scope::Org(org_id.to_string()), None)
        .await
        .map_err(|e: Error| PageError::from(e))?;
    Ok(match &v.broken {
        None => (
            true,
            format!(
                "The chain is intact: {} event{} linked by their hashes{}, {} signed digest{} matched.",
                v.events,
                if v.events == 1 { "" } else { "s" },
                v.head
                    .as_ref()
                    .map(|h| format!(" up to #{}", h.seq))
                    .unwrap_or_default(),
                v.digests_checked,
                if v.digests_checked == 1 { "" } else { "s" },
            ),
        ),
        Some(broken) => (false, format!("The chain is BROKEN: {broken}.")),
    })
}
