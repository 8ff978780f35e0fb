//! The assertion consumer service's verification of a SAML response: structure (xml.rs), the
//! signature against the organization's IdP certificate (samael with xmlsec), then every condition
//! samael leaves to the caller or checks only when present.
//!
//! Verification is synchronous and I/O-free; the caller then consumes the request ID and records
//! the assertion ID (replay.rs) in the database.

use chrono::{DateTime, Duration, Utc};
use samael::crypto::{AllowedSignatureAlgorithm, ReduceMode};
use samael::metadata::EntityDescriptor;
use samael::schema::Assertion;
use samael::service_provider::{Error as SamlError, ServiceProvider};

use super::SpUrls;
use super::xml::{self, XmlError};
use crate::accounts::normalize_email;

/// Clock skew allowed between us and the IdP on NotBefore and NotOnOrAfter.
pub const CLOCK_SKEW_SECS: i64 = 60;
/// How long after its IssueInstant an assertion is still accepted.
pub const MAX_ISSUE_AGE_SECS: i64 = 300;
/// The only subject confirmation method of the web browser SSO profile.
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
/// The status of a successful response.
const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
/// Signature algorithms we accept: SHA-2 only, never SHA-1.
const ALGORITHMS: [AllowedSignatureAlgorithm; 6] = [
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];

/// Why a SAML response was refused; the message tells an administrator what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The XML itself was refused (DTD, malformed, wrong shape, wrapping).
    #[error("{0}")]
    Xml(#[from] XmlError),
    /// No valid signature by the organization's IdP certificate.
    #[error("signature check failed: {0}")]
    Signature(String),
    /// The assertion samael verified is not the one the response carries.
    #[error(
        "the verified assertion is not the assertion in the response (XML signature wrapping?)"
    )]
    Wrapped,
    /// The Issuer is not the configured IdP.
    #[error("the assertion was issued by {}, not by this organization's IdP", shown(.0))]
    Issuer(Option<String>),
    /// No AudienceRestriction, or one that does not name our SP.
    #[error("audience restriction: {0}")]
    Audience(String),
    /// The bearer confirmation's Recipient is not our ACS URL.
    #[error("the assertion's Recipient {} is not this organization's ACS URL", shown(.0))]
    Recipient(Option<String>),
    /// The Response's Destination is not our ACS URL.
    #[error("the response's Destination {} is not this organization's ACS URL", shown(.0))]
    Destination(Option<String>),
    /// Past NotOnOrAfter, or issued too long ago.
    #[error("the assertion has expired: {0}")]
    Expired(String),
    /// Before NotBefore.
    #[error("the assertion is not yet valid: {0}")]
    NotYetValid(String),
    /// InResponseTo missing, inconsistent, unknown, expired, used, or another organization's.
    #[error("InResponseTo: {0}; start the login again at the login URL")]
    InResponseTo(String),
    /// This assertion ID was already consumed.
    #[error("this assertion was already used; start the login again")]
    Replayed,
    /// The IdP reported a failure.
    #[error("the IdP answered with status {}", shown(.0))]
    Status(Option<String>),
    /// No usable subject (NameID or bearer confirmation).
    #[error("subject: {0}")]
    Subject(String),
}

/// An optional value of a SAML message, for error messages.
fn shown(value: &Option<String>) -> String {
    value
        .as_ref()
        .map_or_else(|| "(none)".to_string(), |v| format!("{v:?}"))
}

/// What a verified assertion tells us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    /// The assertion's ID, for the replay cache.
    pub assertion_id: String,
    /// The ID of our AuthnRequest it answers.
    pub in_response_to: String,
    /// The user's email address (the NameID), normalized.
    pub email: String,
    /// Until when the assertion would be accepted, ms since the epoch: its replay-cache lifetime.
    pub expires_at_ms: i64,
}

/// Verifies a SAML response (decoded XML) for the SP `sp` against the IdP `idp`.
pub fn verify_response(
    response_xml: &str,
    idp: &EntityDescriptor,
    sp: &SpUrls,
    now: DateTime<Utc>,
) -> Result<VerifiedAssertion, Rejection> {
    let shape = xml::scan_response(response_xml)?;
    if shape.destination.as_deref() != Some(sp.acs_url.as_str()) {
        return Err(Rejection::Destination(shape.destination));
    }
    if shape.status.as_deref() != Some(SUCCESS) {
        return Err(Rejection::Status(shape.status));
    }
    let in_response_to = match shape.confirmation_in_response_to.as_slice() {
        [] => {
            return Err(Rejection::InResponseTo(
                "the assertion answers no request (IdP-initiated login is not accepted)".into(),
            ));
        }
        [first, rest @ ..] if rest.iter().all(|r| r == first) => first.clone(),
        _ => {
            return Err(Rejection::InResponseTo(
                "the assertion's confirmations answer different requests".into(),
            ));
        }
    };
    if shape
        .in_response_to
        .as_ref()
        .is_some_and(|r| *r != in_response_to)
    {
        return Err(Rejection::InResponseTo(
            "the response and its assertion answer different requests".into(),
        ));
    }

    let provider = service_provider(idp, sp);
    // samael checks no signature at all when the metadata has no signing certificate; metadata
    // without one is refused when it is stored, and again here.
    match provider.idp_signing_certs() {
        Ok(Some(certs)) if !certs.is_empty() => {}
        _ => {
            return Err(Rejection::Signature(
                "the stored IdP metadata has no usable signing certificate".into(),
            ));
        }
    }
    let assertion = provider
        .parse_xml_response_with_mode(
            response_xml,
            Some(&[in_response_to.as_str()]),
            ReduceMode::ValidateAndMarkNoAncestors,
        )
        .map_err(from_samael)?;
    if assertion.id != shape.assertion_id {
        return Err(Rejection::Wrapped);
    }
    let expected = Expected {
        idp_entity_id: idp.entity_id.as_deref().unwrap_or_default(),
        sp,
        in_response_to: &in_response_to,
        name_id: shape.name_id.as_deref().unwrap_or_default(),
    };
    check_assertion(&assertion, &expected, now)
}

/// samael's service provider for one organization. samael's own InResponseTo check stays on: it
/// compares the signed value with the one the structural scan read, and the caller then consumes
/// that request ID in the database.
fn service_provider(idp: &EntityDescriptor, sp: &SpUrls) -> ServiceProvider {
    ServiceProvider {
        entity_id: Some(sp.entity_id.clone()),
        metadata_url: Some(sp.entity_id.clone()),
        acs_url: Some(sp.acs_url.clone()),
        slo_url: None,
        idp_metadata: idp.clone(),
        allow_idp_initiated: false,
        max_issue_delay: Duration::seconds(MAX_ISSUE_AGE_SECS),
        max_clock_skew: Duration::seconds(CLOCK_SKEW_SECS),
        allowed_signature_algorithms: Some(ALGORITHMS.to_vec()),
        ..ServiceProvider::default()
    }
}

fn from_samael(e: SamlError) -> Rejection {
    let message = e.to_string();
    match e {
        SamlError::FailedToValidateSignature => Rejection::Signature(
            "the response is not signed by this organization's IdP certificate with an accepted algorithm (SHA-256 or stronger)".into(),
        ),
        SamlError::DestinationValidationError { response_destination, .. } => Rejection::Destination(response_destination),
        SamlError::AssertionExpired { .. }
        | SamlError::ResponseExpired { .. }
        | SamlError::AssertionConditionExpired { .. }
        | SamlError::AssertionSubjectConfirmationExpired { .. } => Rejection::Expired(message),
        SamlError::AssertionConditionExpiredBefore { .. } | SamlError::AssertionSubjectConfirmationExpiredBefore { .. } => {
            Rejection::NotYetValid(message)
        }
        SamlError::AssertionIssuerMismatch { issuer, .. } | SamlError::ResponseIssuerMismatch { issuer, .. } => Rejection::Issuer(issuer),
        SamlError::AssertionConditionAudienceRestrictionFailed { .. } => Rejection::Audience(message),
        SamlError::AssertionRecipientMismatch { assertion_recipient, .. } => Rejection::Recipient(assertion_recipient),
        SamlError::AssertionInResponseToInvalid { .. } | SamlError::ResponseInResponseToInvalid { .. } => {
            Rejection::InResponseTo("it does not match the request this response claims to answer".into())
        }
        SamlError::ResponseBadStatusCode { code } => Rejection::Status(Some(code)),
        SamlError::AssertionBearerSubjectConfirmationMissing | SamlError::AssertionSubjectConfirmationMissing => {
            Rejection::Subject(message)
        }
        _ => Rejection::Signature(message),
    }
}

/// What the assertion must say.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The IdP's entity id.
    pub idp_entity_id: &'a str,
    /// Our SP's URLs.
    pub sp: &'a SpUrls,
    /// The request ID the response answers (already compared with the document).
    pub in_response_to: &'a str,
    /// The NameID text as the structural scan read it.
    pub name_id: &'a str,
}

/// Checks a signature-verified assertion: issuer, a required audience restriction naming us, the
/// validity window with [`CLOCK_SKEW_SECS`], exactly one bearer confirmation for our ACS URL and
/// the request, and an email NameID equal to the document's text. samael checks most of this too,
/// but some only when present; this is the contract, whatever samael does.
pub fn check_assertion(
    assertion: &Assertion,
    expected: &Expected<'_>,
    now: DateTime<Utc>,
) -> Result<VerifiedAssertion, Rejection> {
    let skew = Duration::seconds(CLOCK_SKEW_SECS);
    if assertion.issuer.value.as_deref() != Some(expected.idp_entity_id) {
        return Err(Rejection::Issuer(assertion.issuer.value.clone()));
    }
    if assertion.issue_instant > now + skew {
        return Err(Rejection::NotYetValid(format!(
            "issued in the future, at {}",
            assertion.issue_instant
        )));
    }
    if assertion.issue_instant + Duration::seconds(MAX_ISSUE_AGE_SECS) < now {
        return Err(Rejection::Expired(format!(
            "issued at {}, more than {MAX_ISSUE_AGE_SECS} s ago",
            assertion.issue_instant
        )));
    }
    let conditions = assertion.conditions.as_ref().ok_or_else(|| {
        Rejection::Audience("the assertion has no Conditions, so no AudienceRestriction".into())
    })?;
    let restrictions = conditions
        .audience_restrictions
        .as_deref()
        .unwrap_or_default();
    if restrictions.is_empty() {
        return Err(Rejection::Audience(
            "the assertion has no AudienceRestriction".into(),
        ));
    }
    if !restrictions
        .iter()
        .all(|r| r.audience.iter().any(|a| a == &expected.sp.entity_id))
    {
        return Err(Rejection::Audience(format!(
            "the assertion is not meant for {}",
            expected.sp.entity_id
        )));
    }
    check_window(conditions.not_before, conditions.not_on_or_after, now, skew)?;

    let subject = assertion
        .subject
        .as_ref()
        .ok_or_else(|| Rejection::Subject("the assertion has no Subject".into()))?;
    let bearers: Vec<_> = subject
        .subject_confirmations
        .iter()
        .flatten()
        .filter(|c| c.method.as_deref() == Some(BEARER))
        .collect();
    let [bearer] = bearers.as_slice() else {
        return Err(Rejection::Subject(
            "the assertion must have exactly one bearer SubjectConfirmation".into(),
        ));
    };
    let data = bearer.subject_confirmation_data.as_ref().ok_or_else(|| {
        Rejection::Subject("the bearer confirmation has no SubjectConfirmationData".into())
    })?;
    if data.recipient.as_deref() != Some(expected.sp.acs_url.as_str()) {
        return Err(Rejection::Recipient(data.recipient.clone()));
    }
    if data.in_response_to.as_deref() != Some(expected.in_response_to) {
        return Err(Rejection::InResponseTo(
            "the bearer confirmation answers another request".into(),
        ));
    }
    let confirmation_end = data
        .not_on_or_after
        .ok_or_else(|| Rejection::Subject("the bearer confirmation has no NotOnOrAfter".into()))?;
    check_window(data.not_before, Some(confirmation_end), now, skew)?;

    let name_id = subject
        .name_id
        .as_ref()
        .ok_or_else(|| Rejection::Subject("the assertion has no NameID".into()))?;
    if name_id.value.trim() != expected.name_id.trim() {
        return Err(Rejection::Subject(
            "the NameID was read differently by the signature check and the parser".into(),
        ));
    }
    let email = normalize_email(&name_id.value)
        .map_err(|_| Rejection::Subject(format!("the NameID {:?} is not an email address; configure the IdP to send the email as NameID", name_id.value)))?;
    let end = conditions
        .not_on_or_after
        .map_or(confirmation_end, |c| c.max(confirmation_end));
    Ok(VerifiedAssertion {
        assertion_id: assertion.id.clone(),
        in_response_to: expected.in_response_to.to_string(),
        email,
        expires_at_ms: (end + skew).timestamp_millis(),
    })
}

fn check_window(
    not_before: Option<DateTime<Utc>>,
    not_on_or_after: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    skew: Duration,
) -> Result<(), Rejection> {
    if let Some(nb) = not_before
        && now + skew < nb
    {
        return Err(Rejection::NotYetValid(format!("NotBefore is {nb}")));
    }
    if let Some(noa) = not_on_or_after
        && noa + skew <= now
    {
        return Err(Rejection::Expired(format!("NotOnOrAfter was {noa}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use samael::schema::{
        AudienceRestriction, Conditions, Issuer, Subject, SubjectConfirmation,
        SubjectConfirmationData, SubjectNameID,
    };

    fn sp() -> SpUrls {
        SpUrls::new("https://cloud.example", "acme")
    }

    fn assertion(now: DateTime<Utc>) -> Assertion {
        let sp = sp();
        Assertion {
            id: "_a".into(),
            issue_instant: now,
            version: "2.0".into(),
            issuer: Issuer {
                value: Some("https://idp.example".into()),
                ..Issuer::default()
            },
            signature: None,
            subject: Some(Subject {
                name_id: Some(SubjectNameID {
                    format: None,
                    value: "Ada@Example.com".into(),
                }),
                subject_confirmations: Some(vec![SubjectConfirmation {
                    method: Some(BEARER.into()),
                    name_id: None,
                    subject_confirmation_data: Some(SubjectConfirmationData {
                        not_before: None,
                        not_on_or_after: Some(now + Duration::minutes(5)),
                        recipient: Some(sp.acs_url.clone()),
                        in_response_to: Some("_req".into()),
                        address: None,
                        content: None,
                    }),
                }]),
            }),
            conditions: Some(Conditions {
                not_before: Some(now - Duration::minutes(1)),
                not_on_or_after: Some(now + Duration::minutes(10)),
                audience_restrictions: Some(vec![AudienceRestriction {
                    audience: vec![sp.entity_id.clone()],
                }]),
                one_time_use: None,
                proxy_restriction: None,
            }),
            authn_statements: None,
            attribute_statements: None,
        }
    }

    fn check(a: &Assertion, now: DateTime<Utc>) -> Result<VerifiedAssertion, Rejection> {
        let sp = sp();
        let expected = Expected {
            idp_entity_id: "https://idp.example",
            sp: &sp,
            in_response_to: "_req",
            name_id: "Ada@Example.com",
        };
        check_assertion(a, &expected, now)
    }

    fn confirmation(a: &mut Assertion) -> &mut SubjectConfirmationData {
        a.subject
            .as_mut()
            .unwrap()
            .subject_confirmations
            .as_mut()
            .unwrap()[0]
            .subject_confirmation_data
            .as_mut()
            .unwrap()
    }

    #[test]
    fn a_valid_assertion_passes_and_lives_until_its_latest_end() {
        let now = Utc::now();
        let ok = check(&assertion(now), now).unwrap();
        assert_eq!(ok.email, "ada@example.com");
        assert_eq!(
            ok.expires_at_ms,
            (now + Duration::minutes(10) + Duration::seconds(CLOCK_SKEW_SECS)).timestamp_millis()
        );
    }

    #[test]
    fn each_condition_can_fail() {
        let now = Utc::now();
        let mut a = assertion(now);
        a.conditions.as_mut().unwrap().audience_restrictions = None;
        assert!(matches!(check(&a, now), Err(Rejection::Audience(_))));
        let mut a = assertion(now);
        a.conditions = None;
        assert!(matches!(check(&a, now), Err(Rejection::Audience(_))));
        let mut a = assertion(now);
        a.conditions
            .as_mut()
            .unwrap()
            .audience_restrictions
            .as_mut()
            .unwrap()
            .push(AudienceRestriction {
                audience: vec!["other".into()],
            });
        assert!(
            matches!(check(&a, now), Err(Rejection::Audience(_))),
            "every restriction must name us"
        );
        let mut a = assertion(now);
        a.issuer.value = Some("https://evil.example".into());
        assert!(matches!(check(&a, now), Err(Rejection::Issuer(_))));
        let mut a = assertion(now);
        confirmation(&mut a).recipient = Some("https://cloud.example/saml/other/acs".into());
        assert!(matches!(check(&a, now), Err(Rejection::Recipient(_))));
        let mut a = assertion(now);
        confirmation(&mut a).in_response_to = Some("_other".into());
        assert!(matches!(check(&a, now), Err(Rejection::InResponseTo(_))));
        let mut a = assertion(now);
        confirmation(&mut a).not_on_or_after = None;
        assert!(matches!(check(&a, now), Err(Rejection::Subject(_))));
        let a = assertion(now);
        assert!(
            matches!(check(&a, now + Duration::minutes(6)), Err(Rejection::Expired(m)) if m.contains("issued at"))
        );
        assert!(
            matches!(check(&a, now - Duration::minutes(3)), Err(Rejection::NotYetValid(m)) if m.contains("future"))
        );
        let mut a = assertion(now);
        a.conditions.as_mut().unwrap().not_on_or_after = Some(now - Duration::minutes(2));
        assert!(matches!(check(&a, now), Err(Rejection::Expired(m)) if m.contains("NotOnOrAfter")));
        let mut a = assertion(now);
        confirmation(&mut a).not_on_or_after = Some(now - Duration::seconds(61));
        assert!(matches!(check(&a, now), Err(Rejection::Expired(m)) if m.contains("NotOnOrAfter")));
        let mut a = assertion(now);
        a.conditions.as_mut().unwrap().not_before = Some(now + Duration::minutes(2));
        assert!(
            matches!(check(&a, now), Err(Rejection::NotYetValid(m)) if m.contains("NotBefore"))
        );
        // Within the skew both ends still pass.
        let mut a = assertion(now);
        a.conditions.as_mut().unwrap().not_before = Some(now + Duration::seconds(30));
        assert!(check(&a, now).is_ok());
        let mut a = assertion(now);
        a.subject.as_mut().unwrap().name_id.as_mut().unwrap().value = "admin@corp.example".into();
        assert!(
            matches!(check(&a, now), Err(Rejection::Subject(_))),
            "NameID differs from the scanned text"
        );
        let mut a = assertion(now);
        let extra = a
            .subject
            .as_ref()
            .unwrap()
            .subject_confirmations
            .as_ref()
            .unwrap()[0]
            .clone();
        a.subject
            .as_mut()
            .unwrap()
            .subject_confirmations
            .as_mut()
            .unwrap()
            .push(extra);
        assert!(matches!(check(&a, now), Err(Rejection::Subject(_))));
    }
}
