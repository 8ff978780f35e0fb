//! What every page shows around its content (the layout: user, organizations, navigation, flash
//! message), the signed-in user's view of the organization in the path, and pure formatting of
//! numbers, sizes and times for people.

use crate::accounts;
use crate::auth::Role;
use crate::http::principal::OrgAccess;
use crate::orgs;
use crate::state::AppState;

use super::PageError;
use super::session::{Flash, SignedIn, Visitor};

/// An organization in the header and the organization switcher.
#[derive(Debug, Clone)]
pub struct OrgNav {
    /// Its slug, as in the paths.
    pub slug: String,
    /// Its display name.
    pub name: String,
    /// Its plan.
    pub tier: &'static str,
    /// The user's role there.
    pub role: &'static str,
}

/// What every page shows around its content.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The page's title.
    pub title: String,
    /// The CSRF token of the forms (the logout button's included).
    pub csrf: String,
    /// The signed-in user's email.
    pub email: Option<String>,
    /// The organization the page is about.
    pub org: Option<OrgNav>,
    /// Every organization of the user (the switcher shows when there are several).
    pub orgs: Vec<OrgNav>,
    /// The navigation entry of this page: `clusters`, `tokens` or `plan`.
    pub section: &'static str,
    /// Whether the user may manage API tokens here (admin).
    pub can_admin: bool,
    /// A message left by the previous request.
    pub flash: Option<Flash>,
    /// Changes whenever the CSS or JavaScript does, so browsers fetch the new one.
    pub asset_version: &'static str,
    /// The organization's clusters whose storage is at its tier's ceiling (a banner warns).
    pub storage_at_ceiling: Vec<String>,
}

impl Layout {
    /// The layout of a page outside any organization (login, sign-up).
    pub fn anonymous(title: &str, visitor: &Visitor) -> Layout {
        Layout {
            title: title.to_string(),
            csrf: visitor.csrf.clone(),
            email: None,
            org: None,
            orgs: Vec::new(),
            section: "",
            can_admin: false,
            flash: visitor.flash.clone(),
            asset_version: super::assets::version(),
            storage_at_ceiling: Vec::new(),
        }
    }

    /// The layout of an error page, which knows nothing of the visitor.
    pub fn bare(title: &str) -> Layout {
        Layout {
            title: title.to_string(),
            csrf: String::new(),
            email: None,
            org: None,
            orgs: Vec::new(),
            section: "",
            can_admin: false,
            flash: None,
            asset_version: super::assets::version(),
            storage_at_ceiling: Vec::new(),
        }
    }
}

/// A signed-in user on a page of one of their organizations.
pub struct OrgContext {
    /// The organization and the user's role there.
    pub access: OrgAccess,
    /// The page's layout.
    pub layout: Layout,
    /// The user as the audit log and the data-token list name them: `user:<id>`.
    pub actor: String,
    /// The user as the data plane records the author of their writes: their email.
    pub author: String,
}

impl OrgContext {
    /// Loads the user's organizations and finds `org_ref` (id or slug) among them. An
    /// organization they do not belong to is "not found", as in the API.
    pub async fn load(
        state: &AppState,
        user: &SignedIn,
        org_ref: &str,
        title: &str,
        section: &'static str,
    ) -> Result<OrgContext, PageError> {
        let me = accounts::user(&state.db, &user.claims.sub).await?;
        let memberships = orgs::of_user(&state.db, &me.id).await?;
        // The id wins over a slug, as in the API (`orgs::find`).
        let current = memberships
            .iter()
            .find(|m| m.organization.id == org_ref)
            .or_else(|| memberships.iter().find(|m| m.organization.slug == org_ref))
            .cloned()
            .ok_or_else(|| {
                PageError::from(crate::error::Error::NotFound(format!(
                    "no organization {org_ref:?}"
                )))
            })?;
        current.organization.check_active()?;
        crate::http::principal::check_scope(&user.claims, &current.organization)?;
        // The tenant of the request, as the API's extractor records it.
        tracing::Span::current().record("org_id", current.organization.id.as_str());
        let nav = |m: &orgs::OrgWithRole| OrgNav {
            slug: m.organization.slug.clone(),
            name: m.organization.name.clone(),
            tier: m.organization.tier.as_str(),
            role: m.role.as_str(),
        };
        let layout = Layout {
            title: title.to_string(),
            csrf: user.visitor.csrf.clone(),
            email: Some(me.email.clone()),
            org: Some(nav(&current)),
            orgs: memberships.iter().map(nav).collect(),
            section,
            can_admin: current.role >= Role::Admin,
            flash: user.visitor.flash.clone(),
            asset_version: super::assets::version(),
            storage_at_ceiling: crate::storage_ceiling::of_org(&state.db, &current.organization.id)
                .await?,
        };
        Ok(OrgContext {
            access: OrgAccess {
                org: current.organization,
                role: current.role,
            },
            layout,
            actor: format!("user:{}", user.claims.sub),
            author: me.email,
        })
    }

    /// The organization's slug, for links.
    pub fn slug(&self) -> &str {
        &self.access.org.slug
    }
}

/// A message from the services as a sentence: capitalised, with a full stop.
pub fn sentence(message: &str) -> String {
    let mut chars = message.trim().chars();
    let mut out: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// An integer with thousands separators: `10,000`.
pub fn number(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A size in decimal units up to GB, as the tiers are sold: `1 GB`, `1,000 GB`, `2.5 MB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GB", 1_000_000_000), ("MB", 1_000_000), ("kB", 1_000)];
    for (unit, size) in UNITS {
        if n >= size {
            if n.is_multiple_of(size) {
                return format!("{} {unit}", number(n / size));
            }
            return format!("{}.{} {unit}", number(n / size), (n % size) * 10 / size);
        }
    }
    format!("{n} B")
}

/// A time in ms since the epoch, in UTC to the minute.
pub fn time_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// An RFC 3339 time, in UTC to the second; the text itself when it does not parse.
pub fn rfc3339(text: &str) -> String {
    koru_dataplane_api::rfc3339::parse(text)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| text.to_string())
}

/// The badge style of a cluster phase.
pub fn phase_class(phase: &str) -> &'static str {
    match phase {
        "Running" => "ok",
        "Pending" | "Provisioning" | "Restoring" => "busy",
        "Degraded" => "warn",
        "Failed" => "bad",
        // Suspended (scaled to zero) is a quiet, expected state.
        _ => "muted",
    }
}

/// Whether a phase is on its way somewhere, so the page keeps itself up to date.
pub fn phase_settling(phase: &str) -> bool {
    matches!(
        phase,
        "Pending" | "Provisioning" | "Restoring" | "Deleting" | "Degraded"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_sizes_and_times_read_as_people_write_them() {
        assert_eq!(number(0), "0");
        assert_eq!(number(100), "100");
        assert_eq!(number(10_000), "10,000");
        assert_eq!(number(1_234_567), "1,234,567");
        assert_eq!(bytes(1_000_000_000), "1 GB");
        assert_eq!(bytes(1_000_000_000_000), "1,000 GB");
        assert_eq!(bytes(2_500_000), "2.5 MB");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(time_ms(0), "1970-01-01 00:00 UTC");
        assert_eq!(
            rfc3339("2026-11-26T10:00:03.123456+01:00"),
            "2026-11-26 09:00:03 UTC"
        );
        assert_eq!(rfc3339("soon"), "soon");
    }

    #[test]
    fn service_messages_become_sentences() {
        assert_eq!(
            sentence(
                "the free tier allows 1 cluster(s) per organization, and this organization has 1"
            ),
            "The free tier allows 1 cluster(s) per organization, and this organization has 1."
        );
        assert_eq!(sentence("Done!"), "Done!");
        assert_eq!(sentence(""), "");
    }

    #[test]
    fn phases_have_badges() {
        assert_eq!(phase_class("Running"), "ok");
        assert_eq!(phase_class("Failed"), "bad");
        assert_eq!(phase_class("Pending"), "busy");
        assert!(phase_settling("Provisioning") && !phase_settling("Running"));
    }
}
