//! A test SAML identity provider: a throwaway ECDSA P-256 key with a self-signed certificate
//! (rcgen), IdP metadata, and responses and assertions signed with xmlsec through samael, as a
//! real IdP signs them (enveloped signatures, exclusive canonicalization, SHA-256). Its builders
//! make the valid case; tests then break one thing at a time.

// Each test binary compiles this module on its own and uses only some of it.
#![allow(dead_code)]

pub mod harness;

use base64::Engine;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use samael::crypto::{Crypto, CryptoProvider};

/// The protocol and assertion namespaces the builders declare.
const NS: &str = r#"xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion""#;

/// An identity provider with its own signing key.
pub struct Idp {
    /// Its entity id.
    pub entity_id: String,
    /// Its SingleSignOnService (HTTP-Redirect); never contacted.
    pub sso_url: String,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

/// What an assertion says; [`Idp::assertion_for`] fills in the valid values.
#[derive(Debug, Clone)]
pub struct AssertionSpec {
    /// Assertion ID.
    pub id: String,
    /// Issuer.
    pub issuer: String,
    /// NameID content, raw XML (so tests can inject markup).
    pub name_id: String,
    /// The AudienceRestriction's Audience; None leaves the restriction out.
    pub audience: Option<String>,
    /// SubjectConfirmationData Recipient.
    pub recipient: String,
    /// SubjectConfirmationData InResponseTo.
    pub in_response_to: String,
    /// IssueInstant.
    pub issue_instant: DateTime<Utc>,
    /// Conditions NotBefore.
    pub not_before: DateTime<Utc>,
    /// Conditions and SubjectConfirmationData NotOnOrAfter.
    pub not_on_or_after: DateTime<Utc>,
}

/// What the response around the assertion says.
#[derive(Debug, Clone)]
pub struct ResponseSpec {
    /// Response ID.
    pub id: String,
    /// Destination.
    pub destination: String,
    /// InResponseTo.
    pub in_response_to: String,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A fresh XML ID.
pub fn new_id() -> String {
    format!("_{}", uuid::Uuid::new_v4().simple())
}

fn strip_declaration(xml: &str) -> &str {
    match xml.trim_start().strip_prefix("<?xml") {
        Some(rest) => rest
            .split_once("?>")
            .map_or(xml, |(_, body)| body.trim_start()),
        None => xml,
    }
}

impl Idp {
    /// A new IdP with a fresh key and certificate.
    pub fn new(entity_id: &str) -> Idp {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["idp.test".to_string()])
                .expect("generating the IdP certificate");
        Idp {
            entity_id: entity_id.to_string(),
            sso_url: "https://idp.test/sso".to_string(),
            cert_der: cert.der().to_vec(),
            key_der: signing_key.serialize_der(),
        }
    }

    /// The certificate, base64 DER as in metadata and KeyInfo.
    pub fn cert_b64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.cert_der)
    }

    fn metadata_with(&self, key_descriptors: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity}">
  <md:IDPSSODescriptor WantAuthnRequestsSigned="false" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    {key_descriptors}
    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{sso}"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{sso}"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"#,
            entity = self.entity_id,
            sso = self.sso_url,
        )
    }

    /// The IdP's metadata, with its signing certificate.
    pub fn metadata(&self) -> String {
        self.metadata_with(&format!(
            r#"<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#,
            self.cert_b64()
        ))
    }

    /// Metadata without a signing certificate (only an encryption one).
    pub fn metadata_without_signing_certificate(&self) -> String {
        self.metadata_with(&format!(
            r#"<md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#,
            self.cert_b64()
        ))
    }

    /// A valid assertion of `email` answering `request_id`, for the SP with entity id
    /// `sp_entity_id` and ACS URL `acs_url`.
    pub fn assertion_for(
        &self,
        sp_entity_id: &str,
        acs_url: &str,
        request_id: &str,
        email: &str,
    ) -> AssertionSpec {
        let now = Utc::now();
        AssertionSpec {
            id: new_id(),
            issuer: self.entity_id.clone(),
            name_id: email.to_string(),
            audience: Some(sp_entity_id.to_string()),
            recipient: acs_url.to_string(),
            in_response_to: request_id.to_string(),
            issue_instant: now,
            not_before: now - Duration::seconds(30),
            not_on_or_after: now + Duration::minutes(5),
        }
    }

    /// The assertion's XML, unsigned; with `signature_template`, ready for [`Idp::sign`].
    pub fn assertion_xml(&self, a: &AssertionSpec, signature_template: bool) -> String {
        let audience = a.audience.as_ref().map_or(String::new(), |aud| {
            format!("<saml:AudienceRestriction><saml:Audience>{aud}</saml:Audience></saml:AudienceRestriction>")
        });
        let signature = if signature_template {
            self.signature_template(&a.id)
        } else {
            String::new()
        };
        format!(
            r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:xs="http://www.w3.org/2001/XMLSchema" ID="{id}" Version="2.0" IssueInstant="{issued}"><saml:Issuer>{issuer}</saml:Issuer>{signature}<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">{name_id}</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData InResponseTo="{irt}" NotOnOrAfter="{noa}" Recipient="{recipient}"/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{nb}" NotOnOrAfter="{noa}">{audience}</saml:Conditions><saml:AuthnStatement AuthnInstant="{issued}" SessionIndex="{id}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement></saml:Assertion>"#,
            id = a.id,
            issued = time(a.issue_instant),
            issuer = a.issuer,
            name_id = a.name_id,
            irt = a.in_response_to,
            noa = time(a.not_on_or_after),
            nb = time(a.not_before),
            recipient = a.recipient,
        )
    }

    /// The assertion, signed with this IdP's key (no XML declaration, ready to embed).
    pub fn signed_assertion(&self, a: &AssertionSpec) -> String {
        self.sign(&self.assertion_xml(a, true))
    }

    /// A response around `assertion_xml` (inserted verbatim); signed over the whole response
    /// when `sign` is true.
    pub fn response_xml(&self, r: &ResponseSpec, assertion_xml: &str, sign: bool) -> String {
        let signature = if sign {
            self.signature_template(&r.id)
        } else {
            String::new()
        };
        let xml = format!(
            r#"<samlp:Response {NS} ID="{id}" Version="2.0" IssueInstant="{now}" Destination="{dest}" InResponseTo="{irt}"><saml:Issuer>{issuer}</saml:Issuer>{signature}<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>{assertion_xml}</samlp:Response>"#,
            id = r.id,
            now = time(Utc::now()),
            dest = r.destination,
            irt = r.in_response_to,
            issuer = self.entity_id,
        );
        if sign { self.sign(&xml) } else { xml }
    }

    /// The usual response: the assertion signed, the response around it unsigned.
    pub fn response_with_signed_assertion(&self, a: &AssertionSpec, destination: &str) -> String {
        let r = ResponseSpec {
            id: new_id(),
            destination: destination.to_string(),
            in_response_to: a.in_response_to.clone(),
        };
        self.response_xml(&r, &self.signed_assertion(a), false)
    }

    /// Signs the first signature template of `xml` (an enveloped signature of its parent).
    pub fn sign(&self, xml: &str) -> String {
        let signed = Crypto::sign_xml(xml, &self.key_der).expect("signing with xmlsec");
        strip_declaration(&signed).to_string()
    }

    fn signature_template(&self, id: &str) -> String {
        format!(
            r##"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"/><ds:Reference URI="#{id}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>"##,
            self.cert_b64()
        )
    }
}

/// Base64 of a response, as the browser posts it.
pub fn encode(xml: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(xml)
}
