//! Verified email domains: an organization proves it owns a domain (a DNS TXT record, or staff)
//! before its IdP may assert identities in it. A domain is verified for at most one organization.
//!
//! The proof: a TXT record at `_koru-challenge.<domain>` whose value is
//! `koru-verification=<token>`, the token being 128 random bits given out when the domain was
//! added. The lookup goes to the configured resolver (`--dns-resolver`) or the system's.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, Row};
use utoipa::ToSchema;

use super::SsoError;
use crate::audit::chain::Record;
use crate::db::{new_id, now_ms};
use crate::orgs::{self, Organization};

/// The label under the domain where the TXT record goes.
pub const CHALLENGE_LABEL: &str = "_koru-challenge";
/// What the TXT record's value starts with.
pub const VALUE_PREFIX: &str = "koru-verification=";
/// How many domains one organization may add.
pub const MAX_DOMAINS_PER_ORG: i64 = 50;
/// How long one DNS lookup may take.
const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// An email domain of an organization, as owners see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Domain {
    /// The domain, lower-case (e.g. `corp.example`).
    pub domain: String,
    /// Whether the organization proved it owns it.
    pub verified: bool,
    /// When it was verified, ms since the epoch.
    pub verified_at: Option<i64>,
    /// `dns` or `staff:<name>`.
    pub verified_by: Option<String>,
    /// The name of the TXT record to create.
    pub txt_name: String,
    /// The value of the TXT record.
    pub txt_value: String,
    /// When it was added, ms since the epoch.
    pub created_at: i64,
}

/// `POST /api/v1/orgs/{org}/sso/domains`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct AddDomain {
    /// The email domain, e.g. `corp.example`.
    pub domain: String,
}

/// Where TXT lookups go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DnsConfig {
    /// A resolver's address (`127.0.0.1:5353`); `None`: the system's (`/etc/resolv.conf`).
    pub resolver: Option<SocketAddr>,
}

impl DnsConfig {
    /// The TXT strings at `name` (each record's strings joined, as RFC 7208 reads them). No
    /// such name, or no TXT there, is an empty list.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, SsoError> {
        use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
        use hickory_resolver::net::runtime::TokioRuntimeProvider;
        use hickory_resolver::proto::rr::RData;
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let failed =
            |e: &dyn std::fmt::Display| SsoError::Dns(format!("looking up TXT {name}: {e}"));
        let mut builder = match self.resolver {
            Some(addr) => {
                let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                for connection in &mut server.connections {
                    connection.port = addr.port();
                }
                hickory_resolver::Resolver::builder_with_config(
                    ResolverConfig::from_parts(None, Vec::new(), vec![server]),
                    TokioRuntimeProvider::default(),
                )
            }
            None => hickory_resolver::Resolver::builder_tokio().map_err(|e| failed(&e))?,
        };
        let mut options = ResolverOpts::default();
        options.timeout = LOOKUP_TIMEOUT;
        options.attempts = 1;
        // A record just created must be seen now, not after a cached "no such name" expires.
        options.cache_size = 0;
        *builder.options_mut() = options;
        let resolver = builder.build().map_err(|e| failed(&e))?;
        match resolver.txt_lookup(fqdn.as_str()).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(txt) => Some(
                        txt.txt_data
                            .iter()
                            .map(|part| String::from_utf8_lossy(part).into_owned())
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect()),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
            Err(e) => Err(failed(&e)),
        }
    }
}

/// Normalizes and checks a domain name: lower-case ASCII labels of letters, digits and hyphens,
/// at least two labels, at most 253 characters.
pub fn normalize_domain(domain: &str) -> Result<String, SsoError> {
    let d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let labels_ok = d.split('.').all(|l| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    if d.len() <= 253 && d.contains('.') && labels_ok {
        Ok(d)
    } else {
        Err(SsoError::Invalid(format!(
            "{domain:?} is not a domain name (e.g. corp.example; internationalized names in their xn-- form)"
        )))
    }
}

/// The domain of an email address (already normalized by the caller).
pub fn email_domain(email: &str) -> Option<&str> {
    email.rsplit_once('@').map(|(_, d)| d)
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<Domain, SsoError> {
    let domain: String = row.try_get("domain")?;
    let token: String = row.try_get("token")?;
    let verified_at: Option<i64> = row.try_get("verified_at")?;
    Ok(Domain {
        txt_name: format!("{CHALLENGE_LABEL}.{domain}"),
        txt_value: format!("{VALUE_PREFIX}{token}"),
        domain,
        verified: verified_at.is_some(),
        verified_at,
        verified_by: row.try_get("verified_by")?,
        created_at: row.try_get("created_at")?,
    })
}

const COLUMNS: &str = "domain, token, verified_at, verified_by, created_at";

/// The domains of `org_id`, by name.
pub async fn list(db: &AnyPool, org_id: &str) -> Result<Vec<Domain>, SsoError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM sso_domains WHERE org_id = $1 ORDER BY domain"
    )))
    .bind(org_id)
    .fetch_all(db)
    .await?;
    rows.iter().map(from_row).collect()
}

async fn get(db: &AnyPool, org_id: &str, domain: &str) -> Result<Domain, SsoError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM sso_domains WHERE org_id = $1 AND domain = $2"
    )))
    .bind(org_id)
    .bind(domain)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| SsoError::UnknownDomain(domain.to_string()))?;
    from_row(&row)
}

/// Adds `domain` to `org_id`, unverified, with a fresh token (adding it again is a no-op that
/// returns it as it is).
pub async fn add(db: &AnyPool, org_id: &str, domain: &str) -> Result<Domain, SsoError> {
    let domain = normalize_domain(domain)?;
    if let Ok(existing) = get(db, org_id, &domain).await {
        return Ok(existing);
    }
    let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM sso_domains WHERE org_id = $1")
        .bind(org_id)
        .fetch_one(db)
        .await?
        .try_get("n")?;
    if count >= MAX_DOMAINS_PER_ORG {
        return Err(SsoError::Invalid(format!(
            "an organization may have at most {MAX_DOMAINS_PER_ORG} domains; remove one first"
        )));
    }
    let token = crate::auth::session::new_secret("")
        .chars()
        .take(32)
        .collect::<String>();
    sqlx::query(
        "INSERT INTO sso_domains (org_id, domain, token, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(org_id)
    .bind(&domain)
    .bind(&token)
    .bind(now_ms())
    .execute(db)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            SsoError::Invalid(format!("{domain} was just added; list the domains"))
        }
        _ => SsoError::Database(e),
    })?;
    get(db, org_id, &domain).await
}

/// Removes `domain` from `org_id`; its IdP may no longer assert identities there.
pub async fn remove(db: &AnyPool, org_id: &str, domain: &str) -> Result<(), SsoError> {
    let domain = normalize_domain(domain)?;
    let deleted = sqlx::query("DELETE FROM sso_domains WHERE org_id = $1 AND domain = $2")
        .bind(org_id)
        .bind(&domain)
        .execute(db)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(SsoError::UnknownDomain(domain));
    }
    Ok(())
}

/// Marks `domain` of `org_id` verified by `by`; refused when another organization verified it.
async fn mark_verified(
    db: &AnyPool,
    org_id: &str,
    domain: &str,
    by: &str,
) -> Result<Domain, SsoError> {
    let other = sqlx::query(
        "SELECT org_id FROM sso_domains WHERE domain = $1 AND org_id <> $2 AND verified_at IS NOT NULL",
    )
    .bind(domain)
    .bind(org_id)
    .fetch_optional(db)
    .await?;
    if other.is_some() {
        return Err(SsoError::DomainTaken(domain.to_string()));
    }
    // The unique index on verified domains settles a race between two organizations.
    sqlx::query(
        "UPDATE sso_domains SET verified_at = $1, verified_by = $2 WHERE org_id = $3 AND domain = $4 AND verified_at IS NULL",
    )
    .bind(now_ms())
    .bind(by)
    .bind(org_id)
    .bind(domain)
    .execute(db)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            SsoError::DomainTaken(domain.to_string())
        }
        _ => SsoError::Database(e),
    })?;
    get(db, org_id, domain).await
}

/// Checks the TXT record of `domain` (added to `org_id` before) and marks it verified when it
/// carries the domain's value.
pub async fn verify_by_dns(
    db: &AnyPool,
    dns: &DnsConfig,
    org_id: &str,
    domain: &str,
) -> Result<Domain, SsoError> {
    let domain = normalize_domain(domain)?;
    let current = get(db, org_id, &domain).await?;
    if current.verified {
        return Ok(current);
    }
    let found = dns.txt(&current.txt_name).await?;
    if !found.iter().any(|v| v.trim() == current.txt_value) {
        return Err(SsoError::DomainUnproven {
            name: current.txt_name,
            value: current.txt_value,
            found: found.len(),
        });
    }
    mark_verified(db, org_id, &domain, "dns").await
}

/// Staff marks `domain` verified for organization `org_ref` (id or slug), adding it when
/// missing, e.g. after checking ownership out of band; `staff` names who did, and the audit
/// log records it as `staff:<staff>`. Refused when another organization verified the domain.
pub async fn verify_by_staff(
    db: &AnyPool,
    org_ref: &str,
    domain: &str,
    staff: &str,
) -> Result<Domain, SsoError> {
    let org = orgs::find(db, org_ref)
        .await?
        .ok_or_else(|| SsoError::NotConfigured(org_ref.to_string()))?;
    let domain = normalize_domain(domain)?;
    let actor = format!("staff:{staff}");
    let result = async {
        add(db, &org.id, &domain).await?;
        mark_verified(db, &org.id, &domain, &actor).await
    }
    .await;
    let record = Record {
        id: new_id(),
        time: now_ms(),
        actor: Some(actor),
        org_id: Some(org.id.clone()),
        source_ip: None,
        action: "admin verify-domain".into(),
        target: domain,
        outcome: if result.is_ok() {
            "success".into()
        } else {
            "failure:staff".into()
        },
        request_id: new_id(),
    };
    crate::audit::store::append(db, &record).await?;
    result
}

/// Whether `email`'s domain is verified for `org`.
pub async fn is_verified_for(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    org: &Organization,
    email: &str,
) -> Result<bool, SsoError> {
    let Some(domain) = email_domain(email) else {
        return Ok(false);
    };
    Ok(sqlx::query(
        "SELECT domain FROM sso_domains WHERE org_id = $1 AND domain = $2 AND verified_at IS NOT NULL",
    )
    .bind(&org.id)
    .bind(domain)
    .fetch_optional(&mut **tx)
    .await?
    .is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_normalized_and_checked() {
        assert_eq!(normalize_domain(" Corp.Example. ").unwrap(), "corp.example");
        for bad in [
            "",
            "corp",
            "-a.example",
            "a_b.example",
            "a..example",
            "ünï.example",
        ] {
            assert!(normalize_domain(bad).is_err(), "{bad:?}");
        }
        assert_eq!(email_domain("ada@corp.example"), Some("corp.example"));
    }
}
