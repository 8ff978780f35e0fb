//! SAML 2.0 single sign-on for enterprise organizations: each organization's IdP configuration
//! (from its metadata), SP-initiated login, the assertion consumer service and just-in-time
//! membership.
//!
//! samael (with xmlsec) verifies signatures and some conditions; what it leaves to the caller, or
//! checks only when present, is decided here:
//! - IdP metadata without a signing certificate is refused when stored (samael would otherwise
//!   check no signature at all), as are DTDs, non-https SSO URLs (http only on loopback) and
//!   certificates that are not X.509. Only the enterprise tier may configure SSO.
//! - Signed assertion or signed response: either is enough, neither is refused. Signatures are
//!   checked against the stored certificates only (never a KeyInfo), SHA-256 or stronger.
//! - Wrapping: the response must have exactly one Assertion, a direct child of the Response; each
//!   signature must be an enveloped signature of the Response or the Assertion with one Reference
//!   to that element's ID and only canonicalization transforms; IDs are unique; and the assertion
//!   samael returns from the verified content must have the scanned assertion's ID (xml.rs).
//! - Comments, processing instructions, DTDs and non-predefined entities are refused anywhere in a
//!   response, so a comment cannot truncate a NameID; the NameID must also equal the scanned text.
//! - An AudienceRestriction is required and every one must name our entity id; Recipient and
//!   Destination must be our ACS URL; NotBefore and NotOnOrAfter hold with 60 s of skew, and an
//!   assertion issued more than 5 minutes ago is refused.
//! - InResponseTo is required (no IdP-initiated login) and must name an outstanding AuthnRequest
//!   of this organization, which it uses up; request IDs carry 160 random bits and expire after
//!   10 minutes. Assertion IDs are kept in the database until the assertion expires (replay.rs).
//! - Everything is per organization: its own entity id and ACS URL (from the slug), its own
//!   requests, its own replay cache.
//! - Who may sign in (member.rs): an account in one of the organization's verified domains
//!   (domains.rs: proved with a DNS TXT record or by staff; created just in time when missing),
//!   or an account its owner linked to the IdP while signed in. Nothing else, so an IdP can
//!   neither take over nor pre-claim addresses its organization does not own.
//! - The session an SSO login opens is scoped to the organization (the `org` claim, kept by every
//!   refresh); other organizations refuse it, and it ends when the organization loses SSO.
//! - Only owners configure SSO; new members are `member` unless the owner names another role
//!   (never owner). SSO works only while the organization is on a tier with SSO.
//! - Login CSRF: `/saml/{org}/login` gives the browser a cookie with a hash of the request ID,
//!   and a browser login at the ACS (one that gets session cookies) must bring it back.

pub mod acs;
pub mod domains;
pub mod limiter;
pub mod member;
pub mod replay;
pub mod sp;
pub mod xml;

use std::str::FromStr;

use base64::Engine;
use samael::metadata::{EntityDescriptor, HTTP_REDIRECT_BINDING};
use samael::service_provider::ServiceProvider;
use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, Row};
use utoipa::ToSchema;

use crate::accounts::{self, Tokens, User};
use crate::auth::Role;
use crate::auth::session::Sessions;
use crate::db::now_ms;
use crate::error::Error;
use crate::orgs::{self, Organization};
use crate::tiers;
use acs::Rejection;
use xml::XmlError;

/// The largest IdP metadata document we store.
pub const MAX_METADATA_BYTES: usize = 512 * 1024;
/// The largest SAML response we look at (base64-decoded).
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// The longest RelayState (the SAML bindings allow 80 bytes).
pub const MAX_RELAY_STATE_BYTES: usize = 80;

/// Why an SSO operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    /// The organization does not exist or has no SSO configuration.
    #[error("SAML single sign-on is not configured for organization {0:?}")]
    NotConfigured(String),
    /// The organization's tier does not include SSO.
    #[error("SAML single sign-on is part of the enterprise tier; organization {slug} is on {tier}")]
    TierWithoutSso {
        /// The organization.
        slug: String,
        /// Its tier.
        tier: &'static str,
    },
    /// The IdP metadata cannot be used.
    #[error("invalid IdP metadata: {0}")]
    Metadata(String),
    /// The IdP metadata has no certificate to check signatures with.
    #[error(
        "the IdP metadata has no signing certificate (a KeyDescriptor with use=\"signing\" or no use, with an X509Certificate); without one no signature could be checked"
    )]
    NoSigningCertificate,
    /// Some other setting or parameter is invalid.
    #[error("{0}")]
    Invalid(String),
    /// A SAML response was refused.
    #[error("SAML response rejected: {0}")]
    Rejected(#[from] Rejection),
    /// The assertion names an identity this organization's IdP may not sign in.
    #[error("{0}")]
    NotAllowed(String),
    /// Only an owner may do this.
    #[error("only an owner of the organization may configure single sign-on and its domains")]
    OwnerOnly,
    /// A browser login came without the cookie its login start set.
    #[error(
        "this browser did not start this login (its SAML login cookie is missing or belongs to another login); start again at /saml/{0}/login"
    )]
    NotThisBrowser(String),
    /// The organization has not added this domain.
    #[error("the organization has no domain {0}; add it first")]
    UnknownDomain(String),
    /// Another organization verified the domain.
    #[error("{0} is verified by another organization")]
    DomainTaken(String),
    /// The TXT record was not found.
    #[error(
        "no TXT record {name} with the value {value} was found ({found} other TXT values there); create it and try again (DNS changes may take a while to show)"
    )]
    DomainUnproven {
        /// The record's name.
        name: String,
        /// Its expected value.
        value: String,
        /// How many other TXT values were there.
        found: usize,
    },
    /// The DNS lookup failed.
    #[error("DNS: {0}")]
    Dns(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A service this one builds on failed (organizations, accounts).
    #[error(transparent)]
    Core(#[from] Error),
    /// Something else broke inside.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<XmlError> for SsoError {
    fn from(e: XmlError) -> Self {
        SsoError::Rejected(Rejection::Xml(e))
    }
}

impl From<SsoError> for Error {
    fn from(e: SsoError) -> Self {
        let message = e.to_string();
        match e {
            SsoError::NotConfigured(_) => Error::NotFound(message),
            SsoError::TierWithoutSso { .. } => Error::PaymentRequired(message),
            SsoError::Metadata(_) | SsoError::NoSigningCertificate | SsoError::Invalid(_) => {
                Error::BadRequest(message)
            }
            SsoError::Rejected(Rejection::Xml(XmlError::Dtd | XmlError::Malformed(_))) => {
                Error::BadRequest(message)
            }
            SsoError::Rejected(_) => Error::Unauthorized(message),
            SsoError::NotAllowed(_) | SsoError::OwnerOnly => Error::Forbidden(message),
            SsoError::NotThisBrowser(_) => Error::Unauthorized(message),
            SsoError::UnknownDomain(_) => Error::NotFound(message),
            SsoError::DomainTaken(_) => Error::Conflict(message),
            SsoError::DomainUnproven { .. } => Error::BadRequest(message),
            SsoError::Dns(_) => Error::Unavailable(message),
            SsoError::Database(e) => Error::Database(e),
            SsoError::Core(e) => e,
            SsoError::Internal(e) => Error::Internal(e),
        }
    }
}

/// Our SP's URLs for one organization, all under the public URL and the organization's slug.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SpUrls {
    /// The SP entity id, which is also the metadata URL.
    pub entity_id: String,
    /// The assertion consumer service (HTTP-POST binding).
    pub acs_url: String,
    /// Where users start an SSO login.
    pub login_url: String,
}

impl SpUrls {
    /// The URLs of organization `slug` under `public_url`.
    pub fn new(public_url: &str, slug: &str) -> SpUrls {
        let base = format!("{}/saml/{slug}", public_url.trim_end_matches('/'));
        SpUrls {
            entity_id: format!("{base}/metadata"),
            acs_url: format!("{base}/acs"),
            login_url: format!("{base}/login"),
        }
    }
}

/// A signing certificate of the IdP, as shown to administrators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CertificateInfo {
    /// SHA-256 of the DER certificate, hex.
    pub sha256_fingerprint: String,
    /// End of validity, as OpenSSL prints it.
    pub not_after: String,
}

/// An IdP as its metadata describes it, checked.
#[derive(Debug, Clone)]
pub struct IdpMetadata {
    /// The parsed metadata, as samael uses it.
    pub descriptor: EntityDescriptor,
    /// The IdP's entity id.
    pub entity_id: String,
    /// Its SingleSignOnService for the HTTP-Redirect binding.
    pub sso_url: String,
    /// Its signing certificates.
    pub certificates: Vec<CertificateInfo>,
}

/// Parses and checks IdP metadata: no DTD, one EntityDescriptor with an entity id, an
/// IDPSSODescriptor with an HTTP-Redirect SingleSignOnService at an https URL (http only to
/// loopback), and at least one signing certificate that is a valid X.509 certificate.
pub fn parse_idp_metadata(metadata_xml: &str) -> Result<IdpMetadata, SsoError> {
    if metadata_xml.len() > MAX_METADATA_BYTES {
        return Err(SsoError::Metadata(format!(
            "larger than {MAX_METADATA_BYTES} bytes"
        )));
    }
    xml::reject_dtd(metadata_xml).map_err(|e| SsoError::Metadata(e.to_string()))?;
    let descriptor = EntityDescriptor::from_str(metadata_xml)
        .map_err(|e| SsoError::Metadata(format!("not a SAML EntityDescriptor: {e}")))?;
    let entity_id = descriptor
        .entity_id
        .clone()
        .filter(|id| !id.trim().is_empty())
        .ok_or_else(|| SsoError::Metadata("the EntityDescriptor has no entityID".into()))?;
    let idps = descriptor
        .idp_sso_descriptors
        .as_deref()
        .unwrap_or_default();
    if idps.is_empty() {
        return Err(SsoError::Metadata(
            "no IDPSSODescriptor: this is not an identity provider's metadata".into(),
        ));
    }
    let sso_url = idps
        .iter()
        .flat_map(|d| &d.single_sign_on_services)
        .find(|s| s.binding == HTTP_REDIRECT_BINDING)
        .map(|s| s.location.clone())
        .ok_or_else(|| {
            SsoError::Metadata("no SingleSignOnService with the HTTP-Redirect binding".into())
        })?;
    check_sso_url(&sso_url)?;
    // Exactly the certificates samael will verify signatures with.
    let provider = ServiceProvider {
        idp_metadata: descriptor.clone(),
        ..ServiceProvider::default()
    };
    let certs = provider
        .idp_signing_certs()
        .map_err(|e| SsoError::Metadata(format!("a signing certificate is not base64: {e}")))?
        .unwrap_or_default();
    if certs.is_empty() {
        return Err(SsoError::NoSigningCertificate);
    }
    let certificates = certs
        .iter()
        .map(|der| {
            let cert = openssl::x509::X509::from_der(der.der_data()).map_err(|_| {
                SsoError::Metadata("a signing certificate is not an X.509 certificate".into())
            })?;
            let digest = cert
                .digest(openssl::hash::MessageDigest::sha256())
                .map_err(|e| SsoError::Internal(format!("hashing a certificate: {e}")))?;
            Ok(CertificateInfo {
                sha256_fingerprint: hex::encode(digest),
                not_after: cert.not_after().to_string(),
            })
        })
        .collect::<Result<Vec<_>, SsoError>>()?;
    Ok(IdpMetadata {
        descriptor,
        entity_id,
        sso_url,
        certificates,
    })
}

fn check_sso_url(url: &str) -> Result<(), SsoError> {
    let loopback = ["http://localhost", "http://127.0.0.1", "http://[::1]"];
    let ok = url.starts_with("https://")
        || loopback.iter().any(|prefix| {
            url.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
        });
    if ok && !url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Ok(())
    } else {
        Err(SsoError::Metadata(format!(
            "the SingleSignOnService location {url:?} must be an https URL (http only on loopback)"
        )))
    }
}

/// `PUT /api/v1/orgs/{org}/sso`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct SsoSettings {
    /// The IdP's SAML metadata XML (EntityDescriptor with an IDPSSODescriptor and a signing certificate).
    pub idp_metadata_xml: String,
    /// The role of members created at their first SSO login: viewer, member (when omitted) or
    /// admin; never owner.
    #[serde(default = "member_role")]
    pub default_role: Role,
    /// Whether members must log in with SSO (password login is refused).
    #[serde(default)]
    pub sso_required: bool,
}

fn member_role() -> Role {
    Role::Member
}

/// An organization's SSO configuration as administrators see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SsoConfig {
    /// The IdP's entity id.
    pub idp_entity_id: String,
    /// Where AuthnRequests go (HTTP-Redirect).
    pub idp_sso_url: String,
    /// The IdP's signing certificates.
    pub idp_certificates: Vec<CertificateInfo>,
    /// The role of members created at their first SSO login.
    pub default_role: Role,
    /// Whether members must log in with SSO.
    pub sso_required: bool,
    /// Our SP's URLs, for the IdP's configuration.
    pub sp: SpUrls,
    /// Last change, ms since the epoch.
    pub updated_at: i64,
}

/// An organization's stored SSO configuration.
#[derive(Debug, Clone)]
pub struct StoredConfig {
    /// The IdP metadata as uploaded.
    pub idp_metadata_xml: String,
    /// The role of members created at their first SSO login.
    pub default_role: Role,
    /// Last change, ms since the epoch.
    pub updated_at: i64,
}

/// The stored SSO configuration of `org_id`, if any.
pub async fn load(db: &AnyPool, org_id: &str) -> Result<Option<StoredConfig>, SsoError> {
    let row = sqlx::query(
        "SELECT idp_metadata_xml, default_role, updated_at FROM sso_configs WHERE org_id = $1",
    )
    .bind(org_id)
    .fetch_optional(db)
    .await?;
    row.map(|row| {
        let role: String = row.try_get("default_role")?;
        Ok(StoredConfig {
            idp_metadata_xml: row.try_get("idp_metadata_xml")?,
            default_role: Role::parse(&role)
                .ok_or_else(|| SsoError::Internal(format!("unknown role {role:?} stored")))?,
            updated_at: row.try_get("updated_at")?,
        })
    })
    .transpose()
}

fn view(
    org: &Organization,
    stored: &StoredConfig,
    public_url: &str,
) -> Result<SsoConfig, SsoError> {
    let idp = parse_idp_metadata(&stored.idp_metadata_xml)?;
    Ok(SsoConfig {
        idp_entity_id: idp.entity_id,
        idp_sso_url: idp.sso_url,
        idp_certificates: idp.certificates,
        default_role: stored.default_role,
        sso_required: org.sso_required,
        sp: SpUrls::new(public_url, &org.slug),
        updated_at: stored.updated_at,
    })
}

/// The SSO configuration of `org`.
pub async fn config(
    db: &AnyPool,
    org: &Organization,
    public_url: &str,
) -> Result<SsoConfig, SsoError> {
    let stored = load(db, &org.id)
        .await?
        .ok_or_else(|| SsoError::NotConfigured(org.slug.clone()))?;
    view(org, &stored, public_url)
}

/// Configures SSO for `org` (enterprise only) on behalf of a caller with role `actor`, who must
/// be an owner; new members are never made owners.
pub async fn configure(
    db: &AnyPool,
    org: &Organization,
    actor: Role,
    settings: &SsoSettings,
    public_url: &str,
) -> Result<SsoConfig, SsoError> {
    if actor != Role::Owner {
        return Err(SsoError::OwnerOnly);
    }
    check_tier(org)?;
    if settings.default_role == Role::Owner {
        return Err(SsoError::Invalid(
            "default_role owner is not allowed: new SSO members may be viewer, member or admin"
                .into(),
        ));
    }
    let idp = parse_idp_metadata(&settings.idp_metadata_xml)?;
    let now = now_ms();
    let mut tx = db.begin().await?;
    let updated = sqlx::query(
        "UPDATE sso_configs SET idp_entity_id = $1, idp_sso_url = $2, idp_metadata_xml = $3, default_role = $4, updated_at = $5 \
         WHERE org_id = $6",
    )
    .bind(&idp.entity_id)
    .bind(&idp.sso_url)
    .bind(&settings.idp_metadata_xml)
    .bind(settings.default_role.as_str())
    .bind(now)
    .bind(&org.id)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        sqlx::query(
            "INSERT INTO sso_configs (org_id, idp_entity_id, idp_sso_url, idp_metadata_xml, default_role, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(&org.id)
        .bind(&idp.entity_id)
        .bind(&idp.sso_url)
        .bind(&settings.idp_metadata_xml)
        .bind(settings.default_role.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("UPDATE organizations SET sso_required = $1 WHERE id = $2")
        .bind(i64::from(settings.sso_required))
        .bind(&org.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(SsoConfig {
        idp_entity_id: idp.entity_id,
        idp_sso_url: idp.sso_url,
        idp_certificates: idp.certificates,
        default_role: settings.default_role,
        sso_required: settings.sso_required,
        sp: SpUrls::new(public_url, &org.slug),
        updated_at: now,
    })
}

fn check_tier(org: &Organization) -> Result<(), SsoError> {
    if tiers::tier(org.tier).sso {
        Ok(())
    } else {
        Err(SsoError::TierWithoutSso {
            slug: org.slug.clone(),
            tier: org.tier.as_str(),
        })
    }
}

/// An organization with SSO configured, resolved from a `/saml/{org}` path without any caller.
pub async fn configured_org(
    db: &AnyPool,
    org_ref: &str,
) -> Result<(Organization, StoredConfig), SsoError> {
    let not_configured = || SsoError::NotConfigured(org_ref.to_string());
    let org = orgs::find(db, org_ref).await?.ok_or_else(not_configured)?;
    let stored = load(db, &org.id).await?.ok_or_else(not_configured)?;
    Ok((org, stored))
}

/// Checks that a session scoped by SSO to organization `org_id` still may be used: the
/// organization exists, is on a tier with SSO and has SSO configured. Otherwise 401, so the
/// session ends at once when the organization leaves the enterprise tier.
pub async fn check_session_scope(db: &AnyPool, org_id: &str) -> Result<(), Error> {
    let ended = |why: &str| {
        Error::Unauthorized(format!(
            "this session was opened by single sign-on of an organization that {why}; log in again"
        ))
    };
    let Some(org) = orgs::find(db, org_id).await? else {
        return Err(ended("no longer exists"));
    };
    if !tiers::tier(org.tier).sso {
        return Err(ended(&format!(
            "is no longer on a tier with single sign-on ({} is on {})",
            org.slug,
            org.tier.as_str()
        )));
    }
    if load(db, &org.id).await.map_err(Error::from)?.is_none() {
        return Err(ended("no longer has single sign-on configured"));
    }
    Ok(())
}

/// The hash of an AuthnRequest ID that the login's browser keeps in a cookie (hex SHA-256).
pub fn request_binding(request_id: &str) -> String {
    crate::auth::session::secret_hash(request_id)
}

/// Checks a RelayState: a path on this site (so it cannot redirect elsewhere), at most 80 bytes.
pub fn check_relay_state(relay_state: &str) -> Result<(), SsoError> {
    let local = relay_state.starts_with('/')
        && !relay_state.starts_with("//")
        && !relay_state.contains('\\');
    if local
        && relay_state.len() <= MAX_RELAY_STATE_BYTES
        && !relay_state.chars().any(char::is_control)
    {
        Ok(())
    } else {
        Err(SsoError::Invalid(format!(
            "relay_state must be a path on this site starting with a single '/', at most {MAX_RELAY_STATE_BYTES} bytes"
        )))
    }
}

/// How a login starts.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoginStart<'a> {
    /// Where to go afterwards: a path on this site.
    pub relay_state: Option<&'a str>,
    /// The signed-in user who links their account to the IdP with this login.
    pub link_user_id: Option<&'a str>,
}

/// A started login: where the browser goes, and the value of its binding cookie.
#[derive(Debug, Clone)]
pub struct StartedLogin {
    /// The IdP URL with the AuthnRequest.
    pub redirect_url: String,
    /// [`request_binding`] of the request, for the browser's cookie.
    pub binding: String,
    /// The organization.
    pub org: Organization,
}

/// Starts an SP-initiated login: checks `limit` (the rate limits, given the organization), then
/// records a fresh AuthnRequest and returns the IdP URL to redirect to.
pub async fn start_login(
    db: &AnyPool,
    public_url: &str,
    org_ref: &str,
    start: LoginStart<'_>,
    limit: impl FnOnce(&Organization) -> Result<(), Error>,
) -> Result<StartedLogin, SsoError> {
    let (org, stored) = configured_org(db, org_ref).await?;
    check_tier(&org)?;
    if let Some(relay) = start.relay_state {
        check_relay_state(relay)?;
    }
    limit(&org)?;
    let idp = parse_idp_metadata(&stored.idp_metadata_xml)?;
    let sp = SpUrls::new(public_url, &org.slug);
    let request_id = sp::new_request_id();
    replay::remember_request(
        db,
        &org.id,
        &request_id,
        start.relay_state,
        start.link_user_id,
    )
    .await?;
    Ok(StartedLogin {
        redirect_url: sp::authn_redirect(&sp, &idp.sso_url, &request_id, start.relay_state)?,
        binding: request_binding(&request_id),
        org,
    })
}

/// A completed SSO login.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SsoLogin {
    /// The user.
    pub user: User,
    /// Whether the user or their membership was created by this login.
    pub created: bool,
    /// Whether this login linked the user's account to the IdP (the link flow).
    pub linked: bool,
    /// The organization's id; the session works in this organization only (its `org` claim).
    pub organization_id: String,
    /// The RelayState the login was started with, if any.
    pub relay_state: Option<String>,
    /// Session tokens.
    #[serde(flatten)]
    pub tokens: Tokens,
}

/// Decodes the base64 `SAMLResponse` form field.
pub fn decode_response(saml_response: &str) -> Result<String, SsoError> {
    let compact: String = saml_response
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    if compact.len() > MAX_RESPONSE_BYTES * 4 / 3 + 4 {
        return Err(SsoError::Invalid(format!(
            "SAMLResponse is larger than {MAX_RESPONSE_BYTES} bytes"
        )));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| SsoError::Invalid("SAMLResponse is not base64".into()))?;
    String::from_utf8(bytes).map_err(|_| SsoError::Invalid("SAMLResponse is not UTF-8 XML".into()))
}

/// Who posts to the ACS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcsCaller<'a> {
    /// A browser, which gets the session in cookies: it must bring the binding cookie of the
    /// login it started (`None` when it has none).
    Browser(Option<&'a str>),
    /// Another client, which gets the tokens in the body and no cookies.
    Api,
}

/// The assertion consumer service: verifies the response, uses up its request and assertion IDs,
/// finds the account the rules allow (member.rs), and opens a session scoped to the
/// organization. On refusal by the rules the asserted email is returned with the error.
pub async fn complete_login(
    db: &AnyPool,
    sessions: &Sessions,
    public_url: &str,
    org_ref: &str,
    saml_response: &str,
    caller: AcsCaller<'_>,
) -> Result<SsoLogin, (SsoError, Option<String>)> {
    let (org, stored) = configured_org(db, org_ref).await.map_err(|e| (e, None))?;
    check_tier(&org).map_err(|e| (e, None))?;
    let response_xml = decode_response(saml_response).map_err(|e| (e, None))?;
    let idp = parse_idp_metadata(&stored.idp_metadata_xml).map_err(|e| (e, None))?;
    let sp = SpUrls::new(public_url, &org.slug);
    let verified = acs::verify_response(&response_xml, &idp.descriptor, &sp, chrono::Utc::now())
        .map_err(|e| (e.into(), None))?;
    if let AcsCaller::Browser(cookie) = caller {
        let expected = request_binding(&verified.in_response_to);
        let same = cookie.is_some_and(|c| {
            bool::from(subtle::ConstantTimeEq::ct_eq(
                c.as_bytes(),
                expected.as_bytes(),
            ))
        });
        if !same {
            return Err((SsoError::NotThisBrowser(org.slug.clone()), None));
        }
    }
    let email = verified.email.clone();
    finish_login(db, sessions, &org, &stored, verified)
        .await
        .map_err(|e| (e, Some(email)))
}

async fn finish_login(
    db: &AnyPool,
    sessions: &Sessions,
    org: &Organization,
    stored: &StoredConfig,
    verified: acs::VerifiedAssertion,
) -> Result<SsoLogin, SsoError> {
    let mut tx = db.begin().await?;
    replay::consume_assertion(
        &mut tx,
        &org.id,
        &verified.assertion_id,
        verified.expires_at_ms,
    )
    .await?;
    let request = replay::consume_request(&mut tx, &org.id, &verified.in_response_to).await?;
    let found = member::member_for(
        &mut tx,
        org,
        &verified.email,
        stored.default_role,
        request.link_user_id.as_deref(),
    )
    .await;
    let (user, found) = match found {
        Ok(found) => found,
        Err(e) => {
            // The request and assertion stay used up: a refused assertion is not tried again.
            tx.commit().await?;
            tracing::warn!(org = %org.slug, asserted = %verified.email, error = %e, "SAML login refused");
            return Err(e);
        }
    };
    tx.commit().await?;
    tracing::info!(org = %org.slug, user = %user.id, ?found, "SAML login");
    let tokens = accounts::issue_sso_session(db, sessions, &user.id, &org.id).await?;
    Ok(SsoLogin {
        user,
        created: found.created(),
        linked: found == member::Found::LinkedNow,
        organization_id: org.id.clone(),
        relay_state: request.relay_state,
        tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_state_must_be_a_local_path() {
        assert!(check_relay_state("/dashboard?x=1").is_ok());
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil",
            "dashboard",
            &format!("/{}", "a".repeat(80)),
        ] {
            assert!(check_relay_state(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sso_urls_must_be_https_or_loopback() {
        assert!(check_sso_url("https://idp.example/sso").is_ok());
        assert!(check_sso_url("http://localhost:8081/realms/x").is_ok());
        for bad in [
            "http://idp.example/sso",
            "javascript:alert(1)",
            "http://localhost.evil.example/",
            "https://idp.example/ x",
        ] {
            assert!(check_sso_url(bad).is_err(), "{bad}");
        }
    }
}
