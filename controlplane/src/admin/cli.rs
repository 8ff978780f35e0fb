//! `koru-controlplane admin ...`: the staff tools, run against the control plane's database
//! (the same `KORU_DATABASE_URL` as `serve`, migrated like at start-up).

use std::io::Write;

use clap::{Args, Subcommand};

use super::{Change, OrgSummary};
use crate::error::Error;
use crate::tiers::{CustomLimits, TierName};

/// The database and the staff member acting, shared by every admin subcommand.
#[derive(Debug, Args)]
pub struct Staff {
    /// `postgres://...` or `sqlite://<path>`: the control plane's database.
    #[arg(long, env = "KORU_DATABASE_URL")]
    pub database_url: String,
    /// Who is acting, recorded in the audit log as `staff:<name>` (letters, digits, `._@-`).
    #[arg(long, env = "KORU_STAFF")]
    pub staff: String,
}

/// The admin subcommands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Lists every organization: id, slug, tier, custom limits, suspension, members, clusters.
    ListOrgs {
        /// Where and who.
        #[command(flatten)]
        staff: Staff,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Moves an organization to a tier (free, pro or enterprise); its clusters must fit.
    SetTier {
        /// Where and who.
        #[command(flatten)]
        staff: Staff,
        /// The organization's id or slug.
        org: String,
        /// free, pro or enterprise.
        #[arg(value_parser = parse_tier)]
        tier: TierName,
    },
    /// Sets an enterprise organization's custom limits; each one given replaces the enterprise
    /// tier's, the others keep it. Replaces all earlier custom limits; none given clears them.
    SetLimits {
        /// Where and who.
        #[command(flatten)]
        staff: Staff,
        /// The organization's id or slug.
        org: String,
        /// Clusters the organization may have.
        #[arg(long)]
        max_clusters: Option<u32>,
        /// Replicas one cluster may have (1 to 7).
        #[arg(long)]
        max_replicas: Option<u32>,
        /// Storage quota of one cluster, bytes.
        #[arg(long)]
        max_storage_bytes: Option<u64>,
        /// Operations per second of one cluster.
        #[arg(long)]
        max_ops_per_sec: Option<u64>,
        /// Days backups are kept.
        #[arg(long)]
        backup_retention_days: Option<u32>,
    },
    /// Suspends an organization: its members' requests are refused (403
    /// `organization_suspended`), no cluster is created or changed; running clusters keep running.
    Suspend {
        /// Where and who.
        #[command(flatten)]
        staff: Staff,
        /// The organization's id or slug.
        org: String,
        /// Why, shown to its members and recorded in the audit log.
        #[arg(long)]
        reason: String,
    },
    /// Lifts an organization's suspension.
    Unsuspend {
        /// Where and who.
        #[command(flatten)]
        staff: Staff,
        /// The organization's id or slug.
        org: String,
    },
    /// Marks an email domain verified for an organization (adding it when missing), after staff
    /// checked its ownership out of band; refused when another organization verified it.
    VerifyDomain {
        /// Where and who.
        #[command(flatten)]
        staff: Staff,
        /// The organization's id or slug.
        org: String,
        /// The email domain, e.g. `corp.example`.
        domain: String,
    },
}

fn parse_tier(s: &str) -> Result<TierName, String> {
    TierName::parse(s).ok_or_else(|| format!("{s:?} is not a tier: free, pro or enterprise"))
}

/// Why an admin command did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The database could not be opened or migrated.
    #[error("{0}")]
    Database(#[from] crate::db::DbError),
    /// The change was refused or failed; the message says why.
    #[error("{0}")]
    Refused(#[from] Error),
    /// Writing the output failed.
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
}

fn line(o: &OrgSummary) -> String {
    let org = &o.organization;
    let limits = if org.custom_limits.is_empty() {
        "-".to_string()
    } else {
        serde_json::to_string(&org.custom_limits).unwrap_or_default()
    };
    let status = match &org.suspension {
        Some(s) => format!("suspended ({})", s.reason),
        None => "active".into(),
    };
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{limits}\t{status}",
        org.id,
        org.slug,
        org.tier.as_str(),
        o.members,
        o.clusters,
        org.name
    )
}

/// Runs an admin command against the database, writing what it did to `out`.
pub async fn run(command: AdminCommand, out: &mut impl Write) -> Result<(), AdminError> {
    let (staff, org, change) = match command {
        AdminCommand::ListOrgs { staff, json } => {
            super::staff_actor(&staff.staff)?;
            let db = crate::db::connect(&staff.database_url).await?;
            let orgs = super::list_orgs(&db).await;
            db.close().await;
            let orgs = orgs?;
            if !json {
                writeln!(
                    out,
                    "ID\tSLUG\tTIER\tMEMBERS\tCLUSTERS\tNAME\tLIMITS\tSTATUS"
                )?;
            }
            for o in &orgs {
                if json {
                    let text = serde_json::to_string(o)
                        .map_err(|e| Error::Internal(format!("serializing: {e}")))?;
                    writeln!(out, "{text}")?;
                } else {
                    writeln!(out, "{}", line(o))?;
                }
            }
            return Ok(());
        }
        AdminCommand::SetTier { staff, org, tier } => (staff, org, Change::SetTier(tier)),
        AdminCommand::SetLimits {
            staff,
            org,
            max_clusters,
            max_replicas,
            max_storage_bytes,
            max_ops_per_sec,
            backup_retention_days,
        } => (
            staff,
            org,
            Change::SetLimits(CustomLimits {
                max_storage_bytes,
                max_ops_per_sec,
                max_clusters,
                max_replicas,
                backup_retention_days,
            }),
        ),
        AdminCommand::Suspend { staff, org, reason } => (staff, org, Change::Suspend(reason)),
        AdminCommand::Unsuspend { staff, org } => (staff, org, Change::Unsuspend),
        AdminCommand::VerifyDomain { staff, org, domain } => {
            // Audited by `verify_by_staff` itself, like the API's own verification.
            let actor = super::staff_actor(&staff.staff)?;
            let db = crate::db::connect(&staff.database_url).await?;
            let done = crate::sso::domains::verify_by_staff(&db, &org, &domain, &staff.staff).await;
            db.close().await;
            let domain = done.map_err(Error::from)?;
            writeln!(
                out,
                "admin verify-domain: {} verified for {org}; recorded in the audit log as {actor}",
                domain.domain
            )?;
            return Ok(());
        }
    };
    let actor = super::staff_actor(&staff.staff)?;
    let db = crate::db::connect(&staff.database_url).await?;
    let done = super::apply(&db, &actor, &org, &change).await;
    db.close().await;
    let org = done?;
    writeln!(
        out,
        "{}: {} ({}) done; recorded in the audit log as {actor}",
        change.action(),
        org.slug,
        org.id
    )?;
    Ok(())
}
