//! The clusters' pages (GET, rendering templates): the list with status badges, the create form
//! with the plan's limits and remaining quota, and a cluster's page with its connection snippet,
//! data-plane tokens, backups with the recoverable window, usage charts, and the restore, settings
//! and delete forms. The POST handlers ([`super::actions`], [`super::changes`]) render these
//! pages again with what they brought.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use koru_dataplane_api::auth::Scope;

use crate::auth::Role;
use crate::backups;
use crate::clusters::{self, Cluster, DEFAULT_REGION};
use crate::dashboard::chart::Chart;
use crate::dashboard::connect;
use crate::dashboard::session::SignedIn;
use crate::dashboard::view::{self, Layout, OrgContext};
use crate::dashboard::{PageError, PageResult, render};
use crate::data_tokens::{self, DataToken, DataTokenRequest};
use crate::error::Error;
use crate::operations;
use crate::state::AppState;
use crate::tiers::{self, TierName};
use crate::usage;

use super::{ClusterForm, RestoreForm, SettingsForm, cluster_href};

/// Lifetime of the read token on a cluster's page, as in the API's cluster detail.
const PAGE_TOKEN_TTL_SECS: u64 = 15 * 60;
/// How long a cluster's page waits for its data plane's backup listing.
const BACKUP_LIST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How far back the usage charts reach.
const USAGE_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// A cluster in the list.
struct ClusterRow {
    name: String,
    href: String,
    phase: String,
    badge: &'static str,
    tier: &'static str,
    region: String,
    replicas: u32,
    endpoint: Option<String>,
    created: String,
}

fn row(slug: &str, c: &Cluster) -> ClusterRow {
    ClusterRow {
        name: c.name.clone(),
        href: cluster_href(slug, c),
        phase: c.phase.clone(),
        badge: view::phase_class(&c.phase),
        tier: c.tier.as_str(),
        region: c.region.clone(),
        replicas: c.replicas,
        endpoint: c.endpoint.clone(),
        created: view::time_ms(c.created_at),
    }
}

/// How many clusters the organization's plan allows and how many it has.
struct Quota {
    plan: &'static str,
    used: u32,
    max: u32,
    remaining: u32,
}

fn quota(plan: TierName, used: usize) -> Quota {
    let max = tiers::tier(plan).max_clusters;
    let used = u32::try_from(used).unwrap_or(u32::MAX);
    Quota {
        plan: plan.as_str(),
        used,
        max,
        remaining: max.saturating_sub(used),
    }
}

#[derive(Template)]
#[template(path = "clusters.html")]
struct ListPage {
    layout: Layout,
    new_href: String,
    clusters: Vec<ClusterRow>,
    quota: Quota,
    can_create: bool,
    live: String,
}

/// `GET /orgs/{org}/clusters`.
pub async fn list(
    State(state): State<AppState>,
    user: SignedIn,
    Path(org): Path<String>,
) -> PageResult {
    let ctx = OrgContext::load(&state, &user, &org, "Clusters", "clusters").await?;
    let all = clusters::list(&state.db, &ctx.access.org.id).await?;
    let live = if all.iter().any(|c| view::phase_settling(&c.phase)) {
        all.iter()
            .map(|c| format!("{}={}", c.id, c.phase))
            .collect::<Vec<_>>()
            .join(",")
    } else {
        String::new()
    };
    let page = ListPage {
        new_href: format!("/orgs/{}/clusters/new", ctx.slug()),
        clusters: all
            .iter()
            .map(|c| {
                let mut r = row(ctx.slug(), c);
                r.endpoint =
                    state
                        .gateway
                        .routing
                        .endpoint(ctx.slug(), &c.name, c.endpoint.as_deref());
                r
            })
            .collect(),
        quota: quota(ctx.access.org.tier, all.len()),
        can_create: ctx.access.role >= Role::Member,
        live,
        layout: ctx.layout,
    };
    Ok(render(StatusCode::OK, &page))
}

/// A tier in the create and settings forms.
struct TierOption {
    name: &'static str,
    storage: String,
    ops: String,
    max_replicas: u32,
    retention: u32,
    allowed: bool,
}

#[derive(Template)]
#[template(path = "cluster_new.html")]
struct NewPage {
    layout: Layout,
    action: String,
    plan_href: String,
    tiers: Vec<TierOption>,
    quota: Quota,
    form: ClusterForm,
    error: Option<String>,
    is_owner: bool,
    /// The region catalogue, when the plan allows global databases.
    regions: Option<String>,
}

pub(super) async fn new_page(
    state: &AppState,
    ctx: OrgContext,
    form: ClusterForm,
    status: StatusCode,
    error: Option<String>,
) -> PageResult {
    let used = clusters::list(&state.db, &ctx.access.org.id).await?.len();
    let plan = ctx.access.org.tier;
    let page = NewPage {
        action: format!("/orgs/{}/clusters", ctx.slug()),
        plan_href: format!("/orgs/{}/plan", ctx.slug()),
        tiers: tier_options(plan),
        quota: quota(plan, used),
        form,
        error,
        is_owner: ctx.access.role >= Role::Owner,
        regions: (tiers::tier(plan).max_regions > 1).then(|| crate::regions::CATALOGUE.join(", ")),
        layout: ctx.layout,
    };
    Ok(render(status, &page))
}

/// Every tier with its limits, and whether an organization on `plan` may use it.
fn tier_options(plan: TierName) -> Vec<TierOption> {
    tiers::TIERS
        .iter()
        .map(|t| TierOption {
            name: t.name.as_str(),
            storage: view::bytes(t.max_storage_bytes),
            ops: view::number(t.max_ops_per_sec),
            max_replicas: t.max_replicas,
            retention: t.backup_retention_days,
            allowed: crate::tiers::check_tier(plan, t.name).is_ok(),
        })
        .collect()
}

/// `GET /orgs/{org}/clusters/new`.
pub async fn new(
    State(state): State<AppState>,
    user: SignedIn,
    Path(org): Path<String>,
) -> PageResult {
    let ctx = OrgContext::load(&state, &user, &org, "New cluster", "clusters").await?;
    let form = ClusterForm {
        name: String::new(),
        tier: ctx.access.org.tier.as_str().to_string(),
        region: DEFAULT_REGION.to_string(),
        regions: String::new(),
        replicas: 1,
        idempotency_key: crate::db::new_id(),
    };
    new_page(&state, ctx, form, StatusCode::OK, None).await
}

/// How to reach a cluster, with a token.
struct Connection {
    scope: String,
    expires: String,
    snippet: String,
    kdelta: String,
}

/// A backup in the list.
struct BackupRow {
    id: String,
    created: String,
    span: String,
    lsns: String,
}

/// One SLO window on a cluster's page.
struct SloRow {
    window: String,
    requests: String,
    availability: String,
    availability_met: bool,
    latency: String,
    latency_met: bool,
}

fn slo_rows(slo: &crate::lifecycle::slo::ClusterSlo) -> Vec<SloRow> {
    let pct =
        |v: Option<f64>| v.map_or("no requests".to_string(), |v| format!("{:.3} %", v * 100.0));
    slo.windows
        .iter()
        .map(|w| SloRow {
            window: if w.window == "24h" {
                "Last 24 hours".into()
            } else {
                "Last 30 days".into()
            },
            requests: view::number(w.requests),
            availability: pct(w.availability),
            availability_met: w.availability_met,
            latency: pct(w.latency),
            latency_met: w.latency_met,
        })
        .collect()
}

/// What the page says about backups.
struct Backups {
    /// Why they are not listed, when they are not.
    note: Option<String>,
    rows: Vec<BackupRow>,
    earliest: Option<String>,
    latest: Option<String>,
    /// The latest restorable moment as RFC 3339, the restore form's default.
    latest_raw: String,
    drill: Option<String>,
}

#[derive(Template)]
#[template(path = "cluster.html")]
struct DetailPage {
    layout: Layout,
    href: String,
    cluster: Cluster,
    badge: &'static str,
    settling: bool,
    /// The kind of the operation running on the cluster, if any; the page follows it.
    operation: Option<&'static str>,
    storage: String,
    ops: String,
    created: String,
    restored_from: Option<String>,
    connection: Option<Connection>,
    issued: bool,
    scopes: Vec<&'static str>,
    token_error: Option<String>,
    backups: Backups,
    can_write: bool,
    restore: RestoreForm,
    restore_error: Option<String>,
    /// Operations per second and stored bytes over the last day, as SVG.
    usage_charts: Option<(String, String)>,
    /// Availability and latency against their targets, per window.
    slo: Vec<SloRow>,
    /// Whether the cluster is suspended or on its way there.
    suspended: bool,
    /// The tiers the settings form offers, with their limits.
    tiers: Vec<TierOption>,
    plan: &'static str,
    is_owner: bool,
    settings: SettingsForm,
    settings_error: Option<String>,
    /// Whether the user may delete the cluster (admin).
    can_delete: bool,
    delete_error: Option<String>,
}

/// What a POST on a cluster's page brings to it.
#[derive(Default)]
pub(super) struct Outcome {
    pub(super) issued: Option<DataToken>,
    pub(super) token_error: Option<String>,
    pub(super) restore: Option<RestoreForm>,
    pub(super) restore_error: Option<String>,
    /// The settings form as submitted, and why it was refused.
    pub(super) settings: Option<SettingsForm>,
    pub(super) settings_error: Option<String>,
    /// Why the deletion was refused.
    pub(super) delete_error: Option<String>,
}

impl Outcome {
    /// The settings form, refused with `error`.
    pub(super) fn settings_refused(form: SettingsForm, error: String) -> Outcome {
        Outcome {
            settings: Some(form),
            settings_error: Some(error),
            ..Outcome::default()
        }
    }

    /// The deletion, refused with `error`.
    pub(super) fn delete_refused(error: String) -> Outcome {
        Outcome {
            delete_error: Some(error),
            ..Outcome::default()
        }
    }
}

/// A cluster's page, with what a POST on it brought.
pub(super) async fn detail_page(
    state: &AppState,
    ctx: OrgContext,
    cluster: Cluster,
    status: StatusCode,
    outcome: Outcome,
) -> PageResult {
    let org = &ctx.access.org;
    let limits = org.limits(cluster.tier);
    let issued = outcome.issued.is_some();
    // Clients go where the API says: through the gateway when there is one.
    let shown =
        state
            .gateway
            .routing
            .endpoint(&org.slug, &cluster.name, cluster.endpoint.as_deref());
    let connection = match &shown {
        Some(endpoint) => {
            let token = match outcome.issued {
                Some(t) => t,
                None => issue(state, &ctx, &cluster, Scope::Read, PAGE_TOKEN_TTL_SECS).await?,
            };
            let expires = i64::try_from(token.expires_at).unwrap_or(0) * 1000;
            Some(Connection {
                snippet: connect::snippet(endpoint, &token.token, token.scope),
                kdelta: connect::kdelta_snippet(endpoint),
                scope: token.scope.to_string(),
                expires: view::time_ms(expires),
            })
        }
        None => None,
    };
    let operation = operations::running_on(&state.db, &cluster.id)
        .await?
        .map(|op| op.kind.as_str());
    let backups = backups_of(state, &cluster).await;
    let usage_charts = usage_charts(state, &cluster).await?;
    let slo = slo_rows(
        &crate::lifecycle::slo::of_cluster(&state.db, &cluster.id, crate::db::now_ms()).await?,
    );
    let mut cluster = cluster;
    cluster.endpoint = shown;
    crate::regions::refresh_links(state, &mut cluster).await;
    let restored_from = match &cluster.restored_from {
        Some(r) => Some(
            match clusters::get(&state.db, &org.id, &r.cluster_id).await {
                Ok(source) => source.name,
                Err(_) => format!("a deleted cluster ({})", r.cluster_id),
            },
        ),
        None => None,
    };
    let restore = outcome.restore.unwrap_or_else(|| RestoreForm {
        name: restore_name(&cluster.name),
        target_time: backups.latest_raw.clone(),
        backup_id: String::new(),
        idempotency_key: crate::db::new_id(),
    });
    let scopes = [Scope::Read, Scope::Write, Scope::Admin]
        .into_iter()
        .filter(|s| *s <= data_tokens::max_scope(ctx.access.role))
        .map(|s| match s {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        })
        .collect();
    let page = DetailPage {
        href: cluster_href(&org.slug, &cluster),
        badge: view::phase_class(&cluster.phase),
        settling: view::phase_settling(&cluster.phase) || operation.is_some(),
        operation,
        storage: view::bytes(limits.max_storage_bytes),
        ops: view::number(limits.max_ops_per_sec),
        created: view::time_ms(cluster.created_at),
        restored_from,
        connection,
        issued,
        scopes,
        token_error: outcome.token_error,
        backups,
        can_write: ctx.access.role >= Role::Member,
        restore,
        restore_error: outcome.restore_error,
        usage_charts,
        slo,
        suspended: cluster.suspended || cluster.phase == "Suspended",
        tiers: tier_options(org.tier),
        plan: org.tier.as_str(),
        is_owner: ctx.access.role >= Role::Owner,
        settings: outcome
            .settings
            .unwrap_or_else(|| SettingsForm::of(&cluster)),
        settings_error: outcome.settings_error,
        can_delete: ctx.access.role >= Role::Admin,
        delete_error: outcome.delete_error,
        cluster,
        layout: ctx.layout,
    };
    Ok(render(status, &page))
}

/// The cluster's usage over the last day against its tier's limits, when sampled at all.
async fn usage_charts(
    state: &AppState,
    cluster: &Cluster,
) -> Result<Option<(String, String)>, Error> {
    let since = crate::db::now_ms() - USAGE_WINDOW_MS;
    let Some(usage) = usage::of_org(&state.db, &cluster.org_id, since)
        .await?
        .into_iter()
        .find(|u| u.cluster_id == cluster.id)
    else {
        return Ok(None);
    };
    let ops: Vec<(i64, f64)> = usage.points.iter().map(|p| (p.at, p.ops_per_sec)).collect();
    let stored: Vec<(i64, f64)> = usage
        .points
        .iter()
        .map(|p| (p.at, p.stored_bytes as f64))
        .collect();
    let per_sec = |v: f64| {
        if v >= 10.0 || v == 0.0 {
            format!("{}/s", view::number(v.round() as u64))
        } else {
            format!("{v:.1}/s")
        }
    };
    let size = |v: f64| view::bytes(v.max(0.0).round() as u64);
    let ops = Chart {
        title: "Operations per second",
        points: &ops,
        limit: usage.max_ops_per_sec as f64,
        format: &per_sec,
    }
    .svg("usage-ops");
    let stored = Chart {
        title: "Stored data",
        points: &stored,
        limit: usage.max_storage_bytes as f64,
        format: &size,
    }
    .svg("usage-storage");
    Ok(ops.zip(stored))
}

/// A default name for a restored copy of `name`, within the 40 characters of cluster names.
fn restore_name(name: &str) -> String {
    let base: String = name.chars().take(32).collect();
    format!("{}-restore", base.trim_end_matches('-'))
}

/// A data-plane token for `cluster` issued to the page's user.
pub(super) async fn issue(
    state: &AppState,
    ctx: &OrgContext,
    cluster: &Cluster,
    scope: Scope,
    ttl_secs: u64,
) -> Result<DataToken, Error> {
    data_tokens::store::issue(
        state,
        cluster,
        &ctx.actor,
        &ctx.author,
        ctx.access.role,
        &DataTokenRequest {
            scope,
            ttl_secs: Some(ttl_secs),
        },
    )
    .await
}

async fn backups_of(state: &AppState, cluster: &Cluster) -> Backups {
    let mut out = Backups {
        note: None,
        rows: Vec::new(),
        earliest: None,
        latest: None,
        latest_raw: String::new(),
        drill: None,
    };
    if cluster.suspended || cluster.phase == "Suspended" {
        out.note = Some(
            "The cluster is suspended: nothing has been written since, so its recovery point is \
             unchanged. Resume it to list its backups, take one or run a drill."
                .into(),
        );
        return out;
    }
    if cluster.phase != "Running" {
        out.note = Some("Backups are listed here once the cluster is running.".into());
        return out;
    }
    // The page must not wait on a slow data plane for as long as the API may (a base backup).
    let listed = tokio::time::timeout(BACKUP_LIST_TIMEOUT, backups::list(state, cluster))
        .await
        .unwrap_or_else(|_| {
            Err(Error::Unavailable(format!(
                "cluster {} did not answer within {} s",
                cluster.name,
                BACKUP_LIST_TIMEOUT.as_secs()
            )))
        });
    match listed {
        Ok(listed) => {
            out.rows = listed
                .backups
                .iter()
                .rev()
                .map(|b| BackupRow {
                    id: b.id.clone(),
                    created: view::rfc3339(&b.created),
                    span: match (&b.first_time, &b.last_time) {
                        (Some(first), Some(last)) => {
                            format!("{} to {}", view::rfc3339(first), view::rfc3339(last))
                        }
                        _ => "no writes yet".into(),
                    },
                    lsns: format!("{}–{}", b.first_lsn, b.last_lsn),
                })
                .collect();
            out.earliest = listed.window.earliest.as_deref().map(view::rfc3339);
            out.latest = listed.window.latest.as_deref().map(view::rfc3339);
            out.latest_raw = listed.window.latest.unwrap_or_default();
            out.drill = listed.verification.map(|v| {
                format!(
                    "Last restore drill, {}: {}",
                    view::rfc3339(&v.at),
                    if v.ok {
                        "passed".to_string()
                    } else {
                        format!("FAILED: {}", v.message)
                    }
                )
            });
        }
        Err(e) => {
            if matches!(e, Error::Database(_) | Error::Internal(_)) {
                tracing::warn!(cluster = %cluster.id, error = %e, "listing backups for the dashboard");
            }
            out.note = Some(format!(
                "Backups cannot be listed right now: {}",
                PageError::from(e).message()
            ));
        }
    }
    out
}

/// `GET /orgs/{org}/clusters/{id}`.
pub async fn detail(
    State(state): State<AppState>,
    user: SignedIn,
    Path((org, id)): Path<(String, String)>,
) -> PageResult {
    let ctx = OrgContext::load(&state, &user, &org, &id, "clusters").await?;
    let cluster = clusters::get(&state.db, &ctx.access.org.id, &id).await?;
    detail_page(&state, ctx, cluster, StatusCode::OK, Outcome::default()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_and_restore_names_stay_in_bounds() {
        let q = quota(TierName::Free, 1);
        assert_eq!((q.used, q.max, q.remaining), (1, 1, 0));
        assert_eq!(quota(TierName::Free, 3).remaining, 0);
        assert_eq!(restore_name("orders"), "orders-restore");
        let long = restore_name(&"a".repeat(40));
        assert!(clusters::check_name(&long).is_ok(), "{long}");
    }
}
