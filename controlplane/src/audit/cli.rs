//! `koru-controlplane audit ...`: verify the chain in a database, or an exported organization
//! log offline, and say where it first breaks.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;
use sqlx::any::AnyPoolOptions;

use super::digest::TrustedKeys;
use super::export;
use super::verify::{self, Scope, Verification};

/// The audit subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verifies the chain in the database (the global one, or one organization's) and its
    /// signed digests; exits 0 when intact, 1 at a broken link, 2 when it cannot check.
    Verify {
        /// `postgres://...` or `sqlite://<path>`; read only, never migrated.
        #[arg(long, env = "KORU_DATABASE_URL")]
        database_url: String,
        /// Verify this organization's chain (id or slug) instead of the global one.
        #[arg(long)]
        org: Option<String>,
        /// A key the digests must be signed with (SPKI public or PKCS#8 private PEM; repeat for
        /// earlier keys). Without one, digests are matched to the chain but signatures unchecked.
        #[arg(long = "public-key")]
        public_keys: Vec<PathBuf>,
    },
    /// Verifies an organization's JSON-lines export offline, without our database.
    VerifyExport {
        /// The export file.
        file: PathBuf,
        /// The control plane's audit public key (`GET /api/v1/audit/public-key`), pinned; without
        /// it the key inside the export is used, which proves only self-consistency.
        #[arg(long = "public-key")]
        public_keys: Vec<PathBuf>,
    },
}

/// Why a check could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Connecting to or reading the database failed.
    #[error("database: {0}")]
    Database(String),
    /// A file could not be read.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// No organization of that id or slug.
    #[error("no organization {0:?}")]
    NoOrg(String),
    /// The export could not be parsed.
    #[error("the export: {0}")]
    Export(#[from] export::ExportError),
    /// Writing the report failed.
    #[error("writing the report: {0}")]
    Output(#[from] std::io::Error),
}

fn read(path: &PathBuf) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| CliError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

fn trusted_keys(paths: &[PathBuf]) -> Result<Option<TrustedKeys>, CliError> {
    if paths.is_empty() {
        return Ok(None);
    }
    let keys = paths
        .iter()
        .map(|p| {
            TrustedKeys::parse_pem(&read(p)?).map_err(|reason| CliError::File {
                path: p.display().to_string(),
                reason,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(TrustedKeys::new(keys)))
}

/// Writes the verdict on `v`: `chain intact: ...` or the first broken link. Returns whether
/// the chain is intact.
pub fn report(v: &Verification, out: &mut impl Write) -> std::io::Result<bool> {
    match &v.broken {
        Some(broken) => {
            writeln!(out, "{broken}")?;
            writeln!(out, "({} events before it are intact)", v.events)?;
        }
        None => {
            let head = v.head.as_ref().map(|h| h.hash.as_str()).unwrap_or("none");
            writeln!(out, "chain intact: {} events, head {head}", v.events)?;
            let signatures = if v.signatures_checked {
                "signatures verified"
            } else {
                "signatures NOT checked: pass --public-key"
            };
            writeln!(
                out,
                "digests: {} matched ({signatures}); {} newest events not yet covered by a digest",
                v.digests_checked, v.unsigned_events
            )?;
        }
    }
    Ok(v.intact)
}

/// Runs an audit command, writing its report to `out`; `Ok(true)` when the chain is intact.
pub async fn run(command: AuditCommand, out: &mut impl Write) -> Result<bool, CliError> {
    match command {
        AuditCommand::Verify {
            database_url,
            org,
            public_keys,
        } => {
            let keys = trusted_keys(&public_keys)?;
            sqlx::any::install_default_drivers();
            let db = AnyPoolOptions::new()
                .max_connections(1)
                .connect(&database_url)
                .await
                .map_err(|e| CliError::Database(e.to_string()))?;
            let scope = match org {
                Some(reference) => {
                    let found = crate::orgs::find(&db, &reference)
                        .await
                        .map_err(|e| CliError::Database(e.to_string()))?;
                    Scope::Org(found.ok_or(CliError::NoOrg(reference))?.id)
                }
                None => Scope::Global,
            };
            let verification = verify::verify(&db, &scope, keys)
                .await
                .map_err(|e| CliError::Database(e.to_string()))?;
            db.close().await;
            Ok(report(&verification, out)?)
        }
        AuditCommand::VerifyExport { file, public_keys } => {
            let keys = trusted_keys(&public_keys)?;
            let checked = export::verify_export(&read(&file)?, keys)?;
            if !checked.key_pinned {
                writeln!(
                    out,
                    "warning: no --public-key given; signatures checked with the key inside the export, which proves only that the export is self-consistent"
                )?;
            }
            writeln!(out, "organization {}", checked.org_id)?;
            Ok(report(&checked.verification, out)?)
        }
    }
}
