//! Strict structural checks of SAML XML before and around samael: no DTDs or entities, and a
//! SAML response shaped exactly as the SAML signature profile allows, so the assertion we consume
//! is the one whose signature was verified.
//!
//! libxml2 (inside xmlsec, which verifies signatures) and quick-xml (which samael deserializes
//! with) are different parsers, and libxml2 runs in recovery mode. Everything one of them might read
//! differently from the other is refused here: DTDs, non-predefined entities, comments, processing
//! instructions, encodings other than UTF-8, duplicate IDs, and any assertion or signature outside
//! the one place it may stand.

use std::collections::HashSet;

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

/// The SAML 2.0 protocol namespace.
pub const PROTOCOL_NS: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
/// The SAML 2.0 assertion namespace.
pub const ASSERTION_NS: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
/// The XML signature namespace.
pub const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";

/// The transforms a SAML signature may use (saml-core 5.4.4): enveloped signature and
/// canonicalization. XPath and XSLT transforms, which can hide parts of the signed element, are not.
const ALLOWED_TRANSFORMS: [&str; 6] = [
    "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
    "http://www.w3.org/2001/10/xml-exc-c14n#",
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
    "http://www.w3.org/2006/12/xml-c14n11",
];

/// Why a piece of SAML XML was refused before any signature was looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// A document type declaration or entity declaration.
    #[error("SAML XML must not contain a DTD or entity declarations")]
    Dtd,
    /// Not well-formed, or a construct we do not accept.
    #[error("malformed SAML XML: {0}")]
    Malformed(String),
    /// Well-formed, but not a SAML response of the shape the signature profile allows.
    #[error("{0}")]
    Structure(String),
}

/// Refuses any document with a DTD or an entity declaration, before it reaches a parser: DTDs are
/// never part of SAML, and entities are the way to XXE and billion-laughs attacks.
pub fn reject_dtd(xml: &str) -> Result<(), XmlError> {
    let upper = xml.to_ascii_uppercase();
    if upper.contains("<!DOCTYPE")
        || upper.contains("<!ENTITY")
        || upper.contains("<!ELEMENT")
        || upper.contains("<!ATTLIST")
    {
        return Err(XmlError::Dtd);
    }
    Ok(())
}

/// What the structural scan read from a SAML response; samael's verified result must agree with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseShape {
    /// The Response's ID.
    pub response_id: String,
    /// The Response's Destination attribute.
    pub destination: Option<String>,
    /// The Response's InResponseTo attribute.
    pub in_response_to: Option<String>,
    /// The top-level StatusCode's Value.
    pub status: Option<String>,
    /// The one assertion's ID.
    pub assertion_id: String,
    /// The text of the assertion's Subject/NameID, exactly as in the document.
    pub name_id: Option<String>,
    /// InResponseTo of each SubjectConfirmationData of the assertion's Subject.
    pub confirmation_in_response_to: Vec<String>,
    /// Whether the Response carries an enveloped signature over itself.
    pub response_signed: bool,
    /// Whether the Assertion carries an enveloped signature over itself.
    pub assertion_signed: bool,
}

/// Where the scan is, by element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Response,
    Status,
    StatusCode,
    Assertion,
    Subject,
    NameId,
    SubjectConfirmation,
    Signature { of_response: bool },
    SignedInfo { of_response: bool },
    Reference { of_response: bool },
    Other,
}

/// One signature's references, to be checked against the element it sits in.
#[derive(Debug, Default)]
struct SignatureRefs {
    of_response: bool,
    uris: Vec<String>,
}

fn is(ns: &ResolveResult<'_>, local: &[u8], want_ns: &str, want_local: &str) -> bool {
    matches!(ns, ResolveResult::Bound(b) if b.as_ref() == want_ns.as_bytes())
        && local == want_local.as_bytes()
}

fn malformed(e: impl std::fmt::Display) -> XmlError {
    XmlError::Malformed(e.to_string())
}

fn structure(message: &str) -> XmlError {
    XmlError::Structure(message.to_string())
}

/// The attributes of an element, unescaped, rejecting duplicates; records `ID` values in `ids`.
fn attributes(
    start: &BytesStart<'_>,
    ids: &mut HashSet<String>,
) -> Result<Vec<(String, String)>, XmlError> {
    let mut out = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(malformed)?;
        let key = String::from_utf8(attribute.key.as_ref().to_vec()).map_err(malformed)?;
        let value = attribute
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(malformed)?
            .into_owned();
        if key == "ID" && !ids.insert(value.clone()) {
            return Err(structure(
                "the response contains two elements with the same ID",
            ));
        }
        out.push((key, value));
    }
    Ok(out)
}

fn attribute<'a>(attributes: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Scans a SAML response and returns its shape, or says why it is not acceptable: exactly one
/// assertion, a direct child of the Response; no encrypted assertions; signatures only as enveloped
/// signatures of the Response or of the Assertion, each with exactly one Reference to its parent's
/// ID and only canonicalization transforms; at least one of the two signed; no comments, PIs, DTDs
/// or non-predefined entities; no markup inside the NameID.
pub fn scan_response(xml: &str) -> Result<ResponseShape, XmlError> {
    reject_dtd(xml)?;
    let mut reader = NsReader::from_str(xml);
    let mut shape = ResponseShape::default();
    let mut ids = HashSet::new();
    let mut stack: Vec<Place> = Vec::new();
    let mut root_done = false;
    let mut assertions = 0usize;
    let mut signatures: Vec<SignatureRefs> = Vec::new();
    let mut name_id = String::new();
    loop {
        let (ns, event) = reader.read_resolved_event().map_err(malformed)?;
        let (start, empty) = match event {
            Event::Start(s) => (s, false),
            Event::Empty(s) => (s, true),
            Event::End(_) => {
                if stack.pop() == Some(Place::NameId) {
                    shape.name_id = Some(std::mem::take(&mut name_id));
                }
                if stack.is_empty() {
                    root_done = true;
                }
                continue;
            }
            Event::Text(text) => {
                let text = text.decode().map_err(malformed)?;
                if stack.last() == Some(&Place::NameId) {
                    name_id.push_str(&text);
                } else if (stack.is_empty()) && !text.trim().is_empty() {
                    return Err(malformed("text outside the root element"));
                }
                continue;
            }
            Event::CData(data) => {
                if stack.last() == Some(&Place::NameId) {
                    name_id.push_str(&data.decode().map_err(malformed)?);
                }
                continue;
            }
            Event::GeneralRef(reference) => {
                let resolved = if reference.is_char_ref() {
                    reference.resolve_char_ref().map_err(malformed)?
                } else {
                    match reference.as_ref() {
                        b"amp" => Some('&'),
                        b"lt" => Some('<'),
                        b"gt" => Some('>'),
                        b"quot" => Some('"'),
                        b"apos" => Some('\''),
                        _ => None,
                    }
                };
                let c = resolved.ok_or_else(|| {
                    malformed("entity references other than the predefined ones are not accepted")
                })?;
                if stack.last() == Some(&Place::NameId) {
                    name_id.push(c);
                }
                continue;
            }
            Event::Comment(_) => {
                return Err(structure(
                    "comments are not accepted in SAML responses (they can truncate a NameID)",
                ));
            }
            Event::PI(_) => {
                return Err(structure(
                    "processing instructions are not accepted in SAML responses",
                ));
            }
            Event::DocType(_) => return Err(XmlError::Dtd),
            Event::Decl(decl) => {
                if !stack.is_empty() || root_done {
                    return Err(malformed("misplaced XML declaration"));
                }
                if decl.version().map_err(malformed)?.as_ref() != b"1.0" {
                    return Err(malformed("only XML 1.0 is accepted"));
                }
                if let Some(encoding) = decl.encoding() {
                    let encoding = encoding.map_err(malformed)?;
                    if !encoding.eq_ignore_ascii_case(b"utf-8") {
                        return Err(malformed("only UTF-8 SAML responses are accepted"));
                    }
                }
                continue;
            }
            Event::Eof => break,
        };
        if root_done {
            return Err(malformed("content after the root element"));
        }
        let local = start.local_name();
        let local = local.as_ref();
        let attrs = attributes(&start, &mut ids)?;
        let parent = stack.last().copied();
        let place = match parent {
            None => {
                if !is(&ns, local, PROTOCOL_NS, "Response") {
                    return Err(structure("the document is not a SAML protocol Response"));
                }
                shape.response_id = attribute(&attrs, "ID")
                    .ok_or_else(|| structure("the Response has no ID"))?
                    .to_string();
                shape.destination = attribute(&attrs, "Destination").map(str::to_string);
                shape.in_response_to = attribute(&attrs, "InResponseTo").map(str::to_string);
                Place::Response
            }
            _ if local == b"EncryptedAssertion" => {
                return Err(structure(
                    "encrypted assertions are not supported; configure the IdP to sign, not encrypt",
                ));
            }
            _ if local == b"Assertion" => {
                assertions += 1;
                if assertions > 1 {
                    return Err(structure("the response contains more than one Assertion"));
                }
                if parent != Some(Place::Response) || !is(&ns, local, ASSERTION_NS, "Assertion") {
                    return Err(structure(
                        "the Assertion must be a direct child of the Response",
                    ));
                }
                shape.assertion_id = attribute(&attrs, "ID")
                    .ok_or_else(|| structure("the Assertion has no ID"))?
                    .to_string();
                Place::Assertion
            }
            _ if local == b"Signature" => {
                let of_response = match parent {
                    Some(Place::Response) => true,
                    Some(Place::Assertion) => false,
                    _ => {
                        return Err(structure(
                            "a Signature may only sign the Response or the Assertion it is in",
                        ));
                    }
                };
                if !is(&ns, local, DSIG_NS, "Signature") {
                    return Err(structure(
                        "a Signature element outside the XML signature namespace",
                    ));
                }
                if of_response && shape.response_signed || !of_response && shape.assertion_signed {
                    return Err(structure("an element carries more than one Signature"));
                }
                if of_response {
                    shape.response_signed = true;
                } else {
                    shape.assertion_signed = true;
                }
                signatures.push(SignatureRefs {
                    of_response,
                    uris: Vec::new(),
                });
                Place::Signature { of_response }
            }
            Some(Place::Response) if is(&ns, local, PROTOCOL_NS, "Status") => Place::Status,
            Some(Place::Status) if is(&ns, local, PROTOCOL_NS, "StatusCode") => {
                shape.status = attribute(&attrs, "Value").map(str::to_string);
                Place::StatusCode
            }
            Some(Place::Assertion) if is(&ns, local, ASSERTION_NS, "Subject") => Place::Subject,
            Some(Place::Subject) if is(&ns, local, ASSERTION_NS, "NameID") => {
                if shape.name_id.is_some() {
                    return Err(structure("the Subject has more than one NameID"));
                }
                Place::NameId
            }
            Some(Place::NameId) => {
                return Err(structure("the NameID must be plain text, without markup"));
            }
            Some(Place::Subject) if is(&ns, local, ASSERTION_NS, "SubjectConfirmation") => {
                Place::SubjectConfirmation
            }
            Some(Place::SubjectConfirmation)
                if is(&ns, local, ASSERTION_NS, "SubjectConfirmationData") =>
            {
                if let Some(irt) = attribute(&attrs, "InResponseTo") {
                    shape.confirmation_in_response_to.push(irt.to_string());
                }
                Place::Other
            }
            Some(Place::Signature { of_response }) if is(&ns, local, DSIG_NS, "SignedInfo") => {
                Place::SignedInfo { of_response }
            }
            Some(Place::SignedInfo { of_response }) if is(&ns, local, DSIG_NS, "Reference") => {
                let uri = attribute(&attrs, "URI").unwrap_or_default().to_string();
                if let Some(refs) = signatures.last_mut() {
                    refs.uris.push(uri);
                }
                Place::Reference { of_response }
            }
            Some(_) if local == b"Transform" => {
                if !matches!(
                    stack.get(stack.len().wrapping_sub(2)),
                    Some(Place::Reference { .. })
                ) || !is(&ns, local, DSIG_NS, "Transform")
                {
                    return Err(structure("a Transform outside a signature Reference"));
                }
                let algorithm = attribute(&attrs, "Algorithm").unwrap_or_default();
                if !ALLOWED_TRANSFORMS.contains(&algorithm) {
                    return Err(XmlError::Structure(format!(
                        "the signature transform {algorithm:?} is not accepted"
                    )));
                }
                Place::Other
            }
            Some(_) => Place::Other,
        };
        if !empty {
            stack.push(place);
        } else if place == Place::NameId {
            shape.name_id = Some(String::new());
        }
        if stack.is_empty() {
            root_done = true;
        }
    }
    if !root_done {
        return Err(malformed("the document ends inside an element"));
    }
    if assertions == 0 {
        return Err(structure("the response contains no Assertion"));
    }
    for refs in &signatures {
        let want = if refs.of_response {
            &shape.response_id
        } else {
            &shape.assertion_id
        };
        if refs.uris.len() != 1 || refs.uris[0] != format!("#{want}") {
            return Err(structure(
                "each Signature must have exactly one Reference, to the ID of the element it signs",
            ));
        }
    }
    if !shape.response_signed && !shape.assertion_signed {
        return Err(structure(
            "neither the Response nor the Assertion is signed",
        ));
    }
    Ok(shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r##"<?xml version="1.0" encoding="UTF-8"?>
<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="r1" Destination="https://sp/acs" InResponseTo="_req">
  <saml:Issuer>idp</saml:Issuer>
  <samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>
  <saml:Assertion ID="a1">
    <saml:Issuer>idp</saml:Issuer>
    <ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:Reference URI="#a1"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/></ds:Transforms></ds:Reference></ds:SignedInfo></ds:Signature>
    <saml:Subject><saml:NameID>ada&amp;co@example.com</saml:NameID>
      <saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData InResponseTo="_req"/></saml:SubjectConfirmation>
    </saml:Subject>
  </saml:Assertion>
</samlp:Response>"##;

    #[test]
    fn a_well_formed_response_is_read() {
        let shape = scan_response(OK).unwrap();
        assert_eq!(shape.response_id, "r1");
        assert_eq!(shape.assertion_id, "a1");
        assert_eq!(shape.destination.as_deref(), Some("https://sp/acs"));
        assert_eq!(shape.name_id.as_deref(), Some("ada&co@example.com"));
        assert_eq!(shape.confirmation_in_response_to, vec!["_req".to_string()]);
        assert_eq!(
            shape.status.as_deref(),
            Some("urn:oasis:names:tc:SAML:2.0:status:Success")
        );
        assert!(shape.assertion_signed && !shape.response_signed);
    }

    #[test]
    fn dangerous_constructs_are_refused() {
        let dtd = OK.replace(
            "<samlp:Response",
            "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><samlp:Response",
        );
        assert_eq!(scan_response(&dtd), Err(XmlError::Dtd));
        assert_eq!(reject_dtd("<!doctype x>"), Err(XmlError::Dtd));
        let comment = OK.replace(
            "ada&amp;co@example.com",
            "admin@corp.example<!---->.evil.example",
        );
        assert!(
            matches!(scan_response(&comment), Err(XmlError::Structure(m)) if m.contains("comments"))
        );
        let markup = OK.replace(
            "ada&amp;co@example.com",
            "admin@corp.example<x/>.evil.example",
        );
        assert!(
            matches!(scan_response(&markup), Err(XmlError::Structure(m)) if m.contains("plain text"))
        );
        let entity = OK.replace("&amp;", "&custom;");
        assert!(matches!(
            scan_response(&entity),
            Err(XmlError::Malformed(_))
        ));
        let pi = OK.replace(
            "<saml:Issuer>idp</saml:Issuer>\n  <samlp:Status>",
            "<?evil x?><samlp:Status>",
        );
        assert!(scan_response(&pi).is_err());
        let utf16 = OK.replace("encoding=\"UTF-8\"", "encoding=\"UTF-16\"");
        assert!(scan_response(&utf16).is_err());
    }

    #[test]
    fn wrapping_shapes_are_refused() {
        let forged = "<saml:Assertion ID=\"evil\"><saml:Issuer>idp</saml:Issuer></saml:Assertion>";
        let two = OK.replace(
            "  <saml:Assertion ID=\"a1\">",
            &format!("{forged}<saml:Assertion ID=\"a1\">"),
        );
        assert!(
            matches!(scan_response(&two), Err(XmlError::Structure(m)) if m.contains("more than one"))
        );
        let nested = OK.replace(
            "<saml:Issuer>idp</saml:Issuer>\n  <samlp:Status>",
            "<samlp:Extensions><saml:Assertion ID=\"x\"/></samlp:Extensions><samlp:Status>",
        );
        assert!(scan_response(&nested).is_err());
        let dup = OK.replace("ID=\"r1\"", "ID=\"a1\"");
        assert!(
            matches!(scan_response(&dup), Err(XmlError::Structure(m)) if m.contains("same ID"))
        );
        let wrong_ref = OK.replace("URI=\"#a1\"", "URI=\"#r1\"");
        assert!(
            matches!(scan_response(&wrong_ref), Err(XmlError::Structure(m)) if m.contains("Reference"))
        );
        let xpath = OK.replace("xmldsig#enveloped-signature", "xmldsig-filter2");
        assert!(
            matches!(scan_response(&xpath), Err(XmlError::Structure(m)) if m.contains("transform"))
        );
        let (before, rest) = OK.split_once("<ds:Signature").unwrap();
        let unsigned = format!("{before}{}", rest.split_once("</ds:Signature>").unwrap().1);
        assert!(
            matches!(scan_response(&unsigned), Err(XmlError::Structure(m)) if m.contains("neither"))
        );
        let encrypted = OK.replace("saml:Assertion", "saml:EncryptedAssertion");
        assert!(scan_response(&encrypted).is_err());
        assert!(
            scan_response(
                "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"x\">"
            )
            .is_err()
        );
    }
}
