//! Rewind: a key, a key prefix or a whole namespace put back to a moment, from a reviewed dry
//! run (admin).
//!
//! `POST …/rewind/plan` asks the data plane for the dry run (`POST /admin/rewind`,
//! `dry_run: true`) and shows its exact list of changes with the plan's digest ([`digest`]).
//! `POST …/rewind/apply` carries back the reviewed `planned_lsn` and digest: it plans again
//! with `if_unchanged_since: planned_lsn` (the data plane refuses if the range was written
//! since), checks the digest of that plan against the confirmed one (so a tampered form applies
//! nothing), then applies with the same guard, so exactly the reviewed changes are written. The
//! rewind is recorded in the audit log as [`AUDIT_ACTION`] with its parameters and digest.
//!
//! The data plane rewinds prefixes; one key is rewound as the prefix equal to it, refused when
//! the plan would also change other keys starting with it (say `order:1` and `order:10`).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{Extensions, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Form, Router};
use koru_dataplane_api::auth::Scope;
use koru_dataplane_api::data::{
    Namespaces, RewindAction, RewindChange, RewindOutcome, RewindRequest,
};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::client::{DataError, DataPlane};
use super::{Explorer, Nav};
use crate::audit::Record;
use crate::audit::middleware::RequestId;
use crate::auth::Role;
use crate::dashboard::session::{Flash, SignedIn, with_cookies};
use crate::dashboard::view::{self, Layout};
use crate::dashboard::{PageResult, render};
use crate::db::{new_id, now_ms};
use crate::state::AppState;

/// The audit log's action for an applied rewind.
pub const AUDIT_ACTION: &str = "cluster.data.rewind";
/// Most characters of a value shown in the plan (longer ones end with an ellipsis).
const VALUE_CHARS: usize = 400;
/// Most other keys named when a key's rewind would touch them.
const OTHER_KEYS_NAMED: usize = 5;

/// This page's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/orgs/{org}/clusters/{id}/data/rewind", get(form_page))
        .route("/orgs/{org}/clusters/{id}/data/rewind/plan", post(plan))
        .route("/orgs/{org}/clusters/{id}/data/rewind/apply", post(apply))
}

/// The rewind form (the page's query, the dry run's and the confirmation's fields).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RewindForm {
    /// The namespace.
    #[serde(default)]
    ns: String,
    /// One key (exclusive with `prefix`).
    #[serde(default)]
    key: String,
    /// A key prefix; with `key` empty too, the whole namespace.
    #[serde(default)]
    prefix: String,
    /// The moment.
    #[serde(default)]
    as_of: String,
    /// The reviewed plan's LSN (confirmation only).
    #[serde(default)]
    planned_lsn: String,
    /// The reviewed plan's digest (confirmation only).
    #[serde(default)]
    digest: String,
}

/// Why a rewind was not planned or applied; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum RewindFailure {
    /// The form cannot be a rewind.
    #[error("{0}")]
    Input(String),
    /// A key's rewind would change other keys starting with it.
    #[error(
        "Rewinding the key {key:?} would also change {count} other key(s) starting with it ({named}), since a rewind covers a key prefix; nothing was planned. To rewind them together, use the prefix {key:?} and review every change."
    )]
    OtherKeys {
        /// The key chosen.
        key: String,
        /// How many others.
        count: usize,
        /// Some of them.
        named: String,
    },
    /// The confirmed digest is not the digest of the plan.
    #[error(
        "The confirmed plan does not match the dry run (its digest differs), so nothing was rewound. Run the dry run again."
    )]
    Tampered,
    /// The range was written after the reviewed dry run.
    #[error("The data changed since your dry run; review again. Nothing was rewound.")]
    Conflict,
    /// The data plane refused or could not be asked.
    #[error(transparent)]
    Data(#[from] DataError),
}

impl RewindFailure {
    /// The status of the page showing it.
    fn status(&self) -> StatusCode {
        match self {
            RewindFailure::Input(_) | RewindFailure::OtherKeys { .. } | RewindFailure::Tampered => {
                StatusCode::BAD_REQUEST
            }
            RewindFailure::Conflict => StatusCode::CONFLICT,
            RewindFailure::Data(DataError::Refused { status, .. }) => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            RewindFailure::Data(DataError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            RewindFailure::Data(DataError::ControlPlane(e)) => e.status_and_code().0,
        }
    }
}

/// What is rewound: one key, or every key starting with a prefix ("" for all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Exactly this key.
    Key(String),
    /// Every key starting with it.
    Prefix(String),
}

impl Target {
    /// The target a form names: a key or a prefix, never both.
    pub fn of(key: &str, prefix: &str) -> Result<Target, RewindFailure> {
        match (key.is_empty(), prefix.is_empty()) {
            (false, false) => Err(RewindFailure::Input(
                "Give one key or a prefix, not both.".into(),
            )),
            (false, true) => Ok(Target::Key(key.to_string())),
            (true, _) => Ok(Target::Prefix(prefix.to_string())),
        }
    }

    /// The prefix the data plane is asked to rewind.
    pub fn prefix(&self) -> &str {
        match self {
            Target::Key(k) | Target::Prefix(k) => k,
        }
    }

    /// How a page names it.
    fn describe(&self) -> String {
        match self {
            Target::Key(k) => format!("the key {k}"),
            Target::Prefix(p) if p.is_empty() => "every key".into(),
            Target::Prefix(p) => format!("keys starting with {p}"),
        }
    }

    /// A key's plan must change no other key; a prefix's may change any of its range.
    pub fn check(
        &self,
        changes: &[RewindChange],
        change_count: usize,
    ) -> Result<(), RewindFailure> {
        let Target::Key(key) = self else {
            return Ok(());
        };
        let others: Vec<&str> = changes
            .iter()
            .map(|c| c.key.as_str())
            .filter(|k| k != key)
            .collect();
        let listed_mine = changes.len() - others.len();
        let count = change_count.saturating_sub(listed_mine);
        if count == 0 {
            return Ok(());
        }
        Err(RewindFailure::OtherKeys {
            key: key.clone(),
            count,
            named: others
                .iter()
                .take(OTHER_KEYS_NAMED)
                .map(|k| format!("{k:?}"))
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

/// The moment as sent to the data plane: RFC 3339 UTC with microseconds when it can be read
/// ([`super::moment`]); anything else as typed, so the data plane says what is wrong with it.
pub fn moment(input: &str) -> String {
    super::moment::rfc3339(input).unwrap_or_else(|_| input.to_string())
}

/// The canonical plan a digest covers, serialized as compact JSON in this field order; values
/// are the exact stored texts.
#[derive(Serialize)]
struct CanonicalPlan<'a> {
    namespace: &'a str,
    prefix: &'a str,
    as_of: &'a str,
    planned_lsn: u64,
    change_count: usize,
    changes: &'a [RewindChange],
}

/// The plan's digest: lower-case hex SHA-256 of the canonical JSON of `outcome` (namespace,
/// prefix, as_of, planned_lsn, change_count, changes), with `planned_lsn` the reviewed one.
pub fn digest(outcome: &RewindOutcome, planned_lsn: u64) -> String {
    let canonical = CanonicalPlan {
        namespace: &outcome.namespace,
        prefix: &outcome.prefix,
        as_of: &outcome.as_of,
        planned_lsn,
        change_count: outcome.change_count,
        changes: &outcome.changes,
    };
    // Serializing plain strings, numbers and already-valid JSON texts cannot fail.
    let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

/// What an applied rewind leaves in the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The namespace.
    pub namespace: String,
    /// What was rewound.
    pub target: Target,
    /// The moment.
    pub as_of: String,
    /// The reviewed plan's LSN.
    pub planned_lsn: u64,
    /// The record holding the rewind (None when nothing differed).
    pub applied_lsn: Option<u64>,
    /// How many keys changed.
    pub change_count: usize,
    /// The plan's digest.
    pub digest: String,
}

/// The audit event's target: the cluster's data path with the rewind's parameters as a query
/// (the audit record has no other field for them, and none of them is a secret).
pub fn audit_target(org_id: &str, cluster_id: &str, a: &Applied) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("namespace", &a.namespace);
    match &a.target {
        Target::Key(k) => q.append_pair("key", k),
        Target::Prefix(p) => q.append_pair("prefix", p),
    };
    q.append_pair("as_of", &a.as_of);
    q.append_pair("planned_lsn", &a.planned_lsn.to_string());
    q.append_pair(
        "applied_lsn",
        &a.applied_lsn
            .map_or_else(|| "none".into(), |l| l.to_string()),
    );
    q.append_pair("change_count", &a.change_count.to_string());
    q.append_pair("digest", &a.digest);
    format!(
        "/api/v1/orgs/{org_id}/clusters/{cluster_id}/data/rewind?{}",
        q.finish()
    )
}

/// A change as the plan lists it.
struct ChangeView {
    key: String,
    key_href: String,
    action: &'static str,
    from: String,
    to: String,
}

/// A dry run as the page shows it.
struct PlanView {
    namespace: String,
    key: String,
    prefix: String,
    scope: String,
    as_of: String,
    as_of_shown: String,
    planned_lsn: u64,
    digest: String,
    change_count: usize,
    truncated: bool,
    unchanged: usize,
    changes: Vec<ChangeView>,
}

#[derive(Template)]
#[template(path = "explorer_rewind.html")]
struct RewindPage {
    layout: Layout,
    nav: Nav,
    form: RewindForm,
    namespaces: Vec<String>,
    error: Option<String>,
    plan: Option<PlanView>,
}

/// A stored value for the plan: its text, cut at [`VALUE_CHARS`]; absent as a dash.
fn value_text(value: Option<&serde_json::value::RawValue>) -> String {
    let Some(v) = value else {
        return "—".into();
    };
    let text = v.get();
    let mut out: String = text.chars().take(VALUE_CHARS).collect();
    if text.chars().nth(VALUE_CHARS).is_some() {
        out.push('…');
    }
    out
}

fn plan_view(base: &str, target: &Target, outcome: &RewindOutcome) -> PlanView {
    let ns_href = format!("{base}/ns/{}", super::client::segment(&outcome.namespace));
    PlanView {
        namespace: outcome.namespace.clone(),
        key: match target {
            Target::Key(k) => k.clone(),
            Target::Prefix(_) => String::new(),
        },
        prefix: match target {
            Target::Key(_) => String::new(),
            Target::Prefix(p) => p.clone(),
        },
        scope: target.describe(),
        as_of: outcome.as_of.clone(),
        as_of_shown: view::rfc3339(&outcome.as_of),
        planned_lsn: outcome.planned_lsn,
        digest: digest(outcome, outcome.planned_lsn),
        change_count: outcome.change_count,
        truncated: outcome.truncated,
        unchanged: outcome.unchanged,
        changes: outcome
            .changes
            .iter()
            .map(|c| ChangeView {
                key_href: key_href(&ns_href, &c.key),
                key: c.key.clone(),
                action: match c.action {
                    RewindAction::Restore => "restore",
                    RewindAction::Delete => "delete",
                    RewindAction::Recreate => "recreate",
                },
                from: value_text(c.from.as_deref()),
                to: value_text(c.to.as_deref()),
            })
            .collect(),
    }
}

/// A key's page under the namespace page `ns_href`.
fn key_href(ns_href: &str, key: &str) -> String {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("key", key)
        .finish();
    format!("{ns_href}/key?{q}")
}

/// Loads the page for an admin (others: 403, another organization's cluster: 404).
async fn load(
    state: &AppState,
    user: &SignedIn,
    org: &str,
    id: &str,
) -> Result<Explorer, crate::dashboard::PageError> {
    let ex = Explorer::load(state, user, org, id, "Rewind", "rewind").await?;
    ex.ctx.access.require(Role::Admin)?;
    Ok(ex)
}

/// Renders the page with what there is.
async fn show(
    state: &AppState,
    ex: Explorer,
    dp: Option<&DataPlane>,
    form: RewindForm,
    status: StatusCode,
    error: Option<String>,
    plan: Option<PlanView>,
) -> PageResult {
    let namespaces = match dp {
        Some(dp) => namespaces(dp).await,
        None => match ex.data(state, Scope::Read).await {
            Ok(dp) => namespaces(&dp).await,
            Err(_) => Vec::new(),
        },
    };
    let page = RewindPage {
        layout: ex.ctx.layout,
        nav: ex.nav,
        form,
        namespaces,
        error,
        plan,
    };
    Ok(render(status, &page))
}

/// The cluster's namespaces for the form's suggestions; none when it cannot say.
async fn namespaces(dp: &DataPlane) -> Vec<String> {
    match dp.get("/api/v1/namespaces").await {
        Ok(body) => serde_json::from_value::<Namespaces>(body)
            .map(|n| n.namespaces)
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// `GET /orgs/{org}/clusters/{id}/data/rewind?ns=&key=&prefix=&as_of=`: the form (admin).
async fn form_page(
    State(state): State<AppState>,
    user: SignedIn,
    Path((org, id)): Path<(String, String)>,
    Query(form): Query<RewindForm>,
) -> PageResult {
    let ex = load(&state, &user, &org, &id).await?;
    show(&state, ex, None, form, StatusCode::OK, None, None).await
}

/// `POST /admin/rewind` with `dry_run` and the guard.
async fn rewind(
    dp: &DataPlane,
    ns: &str,
    target: &Target,
    as_of: &str,
    dry_run: bool,
    if_unchanged_since: Option<u64>,
) -> Result<RewindOutcome, RewindFailure> {
    let request = RewindRequest {
        namespace: ns.to_string(),
        prefix: Some(target.prefix().to_string()),
        as_of: as_of.to_string(),
        dry_run,
        if_unchanged_since,
    };
    let body = serde_json::to_value(&request)
        .map_err(|e| RewindFailure::Input(format!("the request cannot be written: {e}")))?;
    let answer = dp
        .call(Method::POST, "/admin/rewind", &[], Some(&body))
        .await
        .map_err(|e| match e.code() {
            Some("rewind_conflict") => RewindFailure::Conflict,
            _ => RewindFailure::Data(e),
        })?;
    serde_json::from_value(answer.body).map_err(|e| {
        tracing::warn!(error = %e, "a data plane answered a rewind the explorer cannot read");
        RewindFailure::Data(DataError::Unavailable(
            "The cluster answered something unexpected; try again.".into(),
        ))
    })
}

/// The dry run of a form: its target and the data plane's plan, checked for a key's rewind.
async fn dry_run(
    dp: &DataPlane,
    form: &RewindForm,
) -> Result<(Target, RewindOutcome), RewindFailure> {
    let target = Target::of(&form.key, &form.prefix)?;
    let outcome = rewind(
        dp,
        form.ns.trim(),
        &target,
        &moment(&form.as_of),
        true,
        None,
    )
    .await?;
    target.check(&outcome.changes, outcome.change_count)?;
    Ok((target, outcome))
}

/// `POST /orgs/{org}/clusters/{id}/data/rewind/plan`: the dry run and its list of changes.
async fn plan(
    State(state): State<AppState>,
    user: SignedIn,
    Path((org, id)): Path<(String, String)>,
    Form(mut form): Form<RewindForm>,
) -> PageResult {
    let ex = load(&state, &user, &org, &id).await?;
    let dp = match ex.data(&state, Scope::Admin).await {
        Ok(dp) => dp,
        Err(DataError::ControlPlane(e)) => return Err(e.into()),
        Err(e) => {
            let f = RewindFailure::Data(e);
            return show(
                &state,
                ex,
                None,
                form,
                f.status(),
                Some(view::sentence(&f.to_string())),
                None,
            )
            .await;
        }
    };
    match dry_run(&dp, &form).await {
        Ok((target, outcome)) => {
            form.as_of = outcome.as_of.clone();
            let listed = plan_view(&ex.base, &target, &outcome);
            show(
                &state,
                ex,
                Some(&dp),
                form,
                StatusCode::OK,
                None,
                Some(listed),
            )
            .await
        }
        Err(RewindFailure::Data(DataError::ControlPlane(e))) => Err(e.into()),
        Err(f) => {
            let status = f.status();
            show(
                &state,
                ex,
                Some(&dp),
                form,
                status,
                Some(view::sentence(&f.to_string())),
                None,
            )
            .await
        }
    }
}

/// Applies the reviewed plan the form confirms: plans again under its guard, checks the digest,
/// applies under the same guard.
async fn apply_reviewed(dp: &DataPlane, form: &RewindForm) -> Result<Applied, RewindFailure> {
    let planned_lsn: u64 = form.planned_lsn.trim().parse().map_err(|_| {
        RewindFailure::Input("The confirmation names no dry run; run the dry run first.".into())
    })?;
    let target = Target::of(&form.key, &form.prefix)?;
    let ns = form.ns.trim();
    let as_of = moment(&form.as_of);
    let again = rewind(dp, ns, &target, &as_of, true, Some(planned_lsn)).await?;
    let digest = digest(&again, planned_lsn);
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        digest.as_bytes(),
        form.digest.trim().as_bytes(),
    )) {
        return Err(RewindFailure::Tampered);
    }
    target.check(&again.changes, again.change_count)?;
    let done = rewind(dp, ns, &target, &as_of, false, Some(planned_lsn)).await?;
    Ok(Applied {
        namespace: done.namespace,
        target,
        as_of: done.as_of,
        planned_lsn,
        applied_lsn: done.applied_lsn,
        change_count: done.change_count,
        digest,
    })
}

/// `POST /orgs/{org}/clusters/{id}/data/rewind/apply`: applies the confirmed plan, records it
/// in the audit log and goes to the key or namespace with a flash.
async fn apply(
    State(state): State<AppState>,
    user: SignedIn,
    Path((org, id)): Path<(String, String)>,
    extensions: Extensions,
    Form(form): Form<RewindForm>,
) -> PageResult {
    let ex = load(&state, &user, &org, &id).await?;
    let outcome = match ex.data(&state, Scope::Admin).await {
        Ok(dp) => apply_reviewed(&dp, &form).await,
        Err(e) => Err(RewindFailure::Data(e)),
    };
    let applied = match outcome {
        Ok(applied) => applied,
        Err(RewindFailure::Data(DataError::ControlPlane(e))) => return Err(e.into()),
        Err(f) => {
            let status = f.status();
            return show(
                &state,
                ex,
                None,
                form,
                status,
                Some(view::sentence(&f.to_string())),
                None,
            )
            .await;
        }
    };
    let record = Record {
        id: new_id(),
        time: now_ms(),
        actor: Some(ex.ctx.actor.clone()),
        org_id: Some(ex.ctx.access.org.id.clone()),
        source_ip: crate::http::client_ip(&extensions).map(|ip| ip.to_string()),
        action: AUDIT_ACTION.into(),
        target: audit_target(&ex.ctx.access.org.id, &ex.cluster.id, &applied),
        outcome: "success".into(),
        // The request's own event (the audit middleware's) carries the same id.
        request_id: extensions
            .get::<RequestId>()
            .map_or_else(new_id, |RequestId(id)| id.clone()),
    };
    if let Err(e) = crate::audit::store::append(&state.db, &record).await {
        // The rewind is written already: say so loudly, as the audit middleware does.
        crate::audit::store::count_append_failure();
        tracing::error!(error = %e, "AUDIT EVENT LOST: cannot append the audit event of an applied rewind");
    }
    let ns_href = format!(
        "{}/ns/{}",
        ex.base,
        super::client::segment(&applied.namespace)
    );
    let (to, what) = match &applied.target {
        Target::Key(k) => (key_href(&ns_href, k), format!("The key {k}")),
        Target::Prefix(p) if p.is_empty() => (ns_href, format!("Namespace {}", applied.namespace)),
        Target::Prefix(p) => (
            ns_href,
            format!("Keys starting with {p} in {}", applied.namespace),
        ),
    };
    let text = match applied.applied_lsn {
        Some(lsn) => format!(
            "{what} went back to {} ({} change(s), LSN {lsn}, plan digest {}).",
            view::rfc3339(&applied.as_of),
            applied.change_count,
            &applied.digest[..applied.digest.len().min(12)]
        ),
        None => format!(
            "{what} already held what it held at {}; nothing was written.",
            view::rfc3339(&applied.as_of)
        ),
    };
    let flash = Flash::cookie(&user.visitor.policy, false, &text);
    Ok(with_cookies(Redirect::to(&to).into_response(), vec![flash]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(json: &str) -> RewindOutcome {
        serde_json::from_str(json).unwrap()
    }

    const PLAN: &str = r#"{"namespace":"app","prefix":"order:1","as_of":"2026-12-07T00:00:00.000000Z",
        "dry_run":true,"planned_lsn":12,"changes":[{"key":"order:1","action":"restore","from":{"n": 2},"to":{"n":1}}],
        "change_count":1,"truncated":false,"unchanged":0,"applied_lsn":null,"applied_at":null}"#;

    #[test]
    fn the_digest_covers_the_plan_and_the_reviewed_lsn() {
        let a = outcome(PLAN);
        let d = digest(&a, 12);
        assert_eq!(d.len(), 64);
        assert_eq!(d, digest(&a, 12), "deterministic");
        assert_ne!(d, digest(&a, 13), "the LSN is covered");
        let spaced = outcome(&PLAN.replace(r#"{"n": 2}"#, r#"{"n":2}"#));
        assert_ne!(d, digest(&spaced, 12), "values as exact text");
        let mut other = outcome(PLAN);
        other.as_of = "2026-12-07T00:00:01.000000Z".into();
        assert_ne!(d, digest(&other, 12));
        let mut other = outcome(PLAN);
        other.changes[0].action = RewindAction::Recreate;
        assert_ne!(d, digest(&other, 12));
        // A newer plan of an unchanged range differs only in its planned_lsn, which the
        // reviewed one replaces.
        let mut later = outcome(PLAN);
        later.planned_lsn = 40;
        assert_eq!(d, digest(&later, 12));
    }

    #[test]
    fn a_keys_rewind_touches_no_other_key() {
        let a = outcome(PLAN);
        let key = Target::Key("order:1".into());
        assert!(key.check(&a.changes, a.change_count).is_ok());
        let wide = outcome(&PLAN.replace(r#""change_count":1"#, r#""change_count":3"#));
        let mut wide = wide;
        wide.changes.push(RewindChange {
            key: "order:10".into(),
            action: RewindAction::Delete,
            from: None,
            to: None,
        });
        let refused = key.check(&wide.changes, wide.change_count);
        assert!(
            matches!(&refused, Err(RewindFailure::OtherKeys { count: 2, named, .. }) if named == "\"order:10\""),
            "{refused:?}"
        );
        assert!(
            Target::Prefix("order:1".into())
                .check(&wide.changes, wide.change_count)
                .is_ok()
        );
    }

    #[test]
    fn targets_are_a_key_or_a_prefix() {
        assert_eq!(Target::of("k", "").unwrap(), Target::Key("k".into()));
        assert_eq!(Target::of("", "p").unwrap(), Target::Prefix("p".into()));
        assert_eq!(Target::of("", "").unwrap(), Target::Prefix(String::new()));
        assert!(matches!(Target::of("k", "p"), Err(RewindFailure::Input(_))));
    }

    #[test]
    fn moments_are_canonical_utc_and_garbage_goes_through() {
        assert_eq!(
            moment(" 2026-12-07T01:00:00+01:00 "),
            "2026-12-07T00:00:00.000000Z"
        );
        assert_eq!(
            moment("2026-12-07T00:00:00.123456Z"),
            "2026-12-07T00:00:00.123456Z"
        );
        assert_eq!(moment("2026-12-07T10:30"), "2026-12-07T10:30:00.000000Z");
        assert_eq!(
            moment("2026-12-07T10:30:05.5"),
            "2026-12-07T10:30:05.500000Z"
        );
        assert_eq!(moment("yesterday"), "yesterday");
        assert_eq!(moment(""), "");
    }

    #[test]
    fn the_audit_target_names_every_parameter() {
        let a = Applied {
            namespace: "app".into(),
            target: Target::Key("order 1&x".into()),
            as_of: "2026-12-07T00:00:00.000000Z".into(),
            planned_lsn: 12,
            applied_lsn: Some(13),
            change_count: 1,
            digest: "ab".repeat(32),
        };
        assert_eq!(
            audit_target("o1", "c1", &a),
            format!(
                "/api/v1/orgs/o1/clusters/c1/data/rewind?namespace=app&key=order+1%26x&as_of=2026-12-07T00%3A00%3A00.000000Z&planned_lsn=12&applied_lsn=13&change_count=1&digest={}",
                "ab".repeat(32)
            )
        );
    }

    #[test]
    fn long_values_are_cut() {
        let long =
            serde_json::value::RawValue::from_string(format!("\"{}\"", "x".repeat(500))).unwrap();
        let shown = value_text(Some(&*long));
        assert_eq!(shown.chars().count(), VALUE_CHARS + 1);
        assert_eq!(value_text(None), "—");
    }
}
