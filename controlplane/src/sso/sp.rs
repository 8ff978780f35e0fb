//! Our side as a SAML service provider: its metadata document, and SP-initiated AuthnRequests
//! sent with the HTTP-Redirect binding.

use chrono::Utc;
use samael::metadata::{EntityDescriptor, HTTP_POST_BINDING, IndexedEndpoint, SpSsoDescriptor};
use samael::schema::{AuthnRequest, Issuer, NameIdPolicy};
use samael::traits::ToXml;

use super::{SpUrls, SsoError};

/// The NameID format we ask for: the user's email address.
pub const EMAIL_NAME_ID: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
/// Random bits in an AuthnRequest ID (SAML requires at least 128).
pub const REQUEST_ID_BITS: usize = 160;

/// The SP metadata document an organization's IdP administrator imports.
pub fn metadata_xml(sp: &SpUrls) -> Result<String, SsoError> {
    let descriptor = EntityDescriptor {
        entity_id: Some(sp.entity_id.clone()),
        sp_sso_descriptors: Some(vec![SpSsoDescriptor {
            protocol_support_enumeration: Some("urn:oasis:names:tc:SAML:2.0:protocol".into()),
            authn_requests_signed: Some(false),
            want_assertions_signed: Some(true),
            name_id_formats: Some(vec![EMAIL_NAME_ID.into()]),
            assertion_consumer_services: vec![IndexedEndpoint {
                binding: HTTP_POST_BINDING.into(),
                location: sp.acs_url.clone(),
                response_location: None,
                index: 0,
                is_default: Some(true),
            }],
            ..SpSsoDescriptor::default()
        }]),
        ..EntityDescriptor::default()
    };
    descriptor
        .to_string()
        .map_err(|e| SsoError::Internal(format!("writing SP metadata: {e}")))
}

/// A fresh AuthnRequest ID: an underscore (IDs are XML names) and [`REQUEST_ID_BITS`] random bits.
pub fn new_request_id() -> String {
    let mut bytes = [0u8; REQUEST_ID_BITS / 8];
    rand::fill(&mut bytes);
    format!("_{}", hex::encode(bytes))
}

/// An AuthnRequest with ID `request_id` to the IdP at `idp_sso_url`, as the redirect URL to send
/// the browser to.
pub fn authn_redirect(
    sp: &SpUrls,
    idp_sso_url: &str,
    request_id: &str,
    relay_state: Option<&str>,
) -> Result<String, SsoError> {
    let request = AuthnRequest {
        id: request_id.to_string(),
        version: "2.0".into(),
        issue_instant: Utc::now(),
        destination: Some(idp_sso_url.to_string()),
        issuer: Some(Issuer {
            value: Some(sp.entity_id.clone()),
            ..Issuer::default()
        }),
        name_id_policy: Some(NameIdPolicy {
            format: Some(EMAIL_NAME_ID.into()),
            sp_name_qualifier: None,
            allow_create: Some(true),
        }),
        assertion_consumer_service_url: Some(sp.acs_url.clone()),
        protocol_binding: Some(HTTP_POST_BINDING.into()),
        ..AuthnRequest::default()
    };
    let url = request
        .redirect(relay_state.unwrap_or_default())
        .map_err(|e| SsoError::Internal(format!("encoding the AuthnRequest: {e}")))?
        .ok_or_else(|| SsoError::Internal("the AuthnRequest has no destination".into()))?;
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_long_random_xml_names() {
        let a = new_request_id();
        assert_eq!(a.len(), 1 + REQUEST_ID_BITS / 4);
        assert!(a.starts_with('_'));
        assert_ne!(a, new_request_id());
    }

    #[test]
    fn metadata_names_our_entity_and_acs() {
        let sp = SpUrls::new("https://cloud.example/", "acme");
        let xml = metadata_xml(&sp).unwrap();
        assert!(
            xml.contains("entityID=\"https://cloud.example/saml/acme/metadata\""),
            "{xml}"
        );
        assert!(
            xml.contains("Location=\"https://cloud.example/saml/acme/acs\""),
            "{xml}"
        );
        assert!(xml.contains("WantAssertionsSigned=\"true\""), "{xml}");
    }
}
