//! HTTP helpers of the SAML tests: an enterprise organization with SSO, our SP's login redirect
//! decoded as an IdP would read it, and posts to the ACS.

use std::io::Read;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{AssertionSpec, Idp, encode};
use crate::common::Api;

/// The test IdP's entity id.
pub const IDP_ENTITY: &str = "https://idp.test/metadata";

/// Sends a request; returns status, headers and body (JSON when it parses, else a string). Every
/// error must be our JSON error body.
pub async fn send(api: &Api, req: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let what = format!("{} {}", req.method(), req.uri().path());
    let response = koru_controlplane::http::app(api.state.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    if status.is_client_error() || status.is_server_error() {
        assert!(
            body["error"]["code"].is_string() && body["error"]["message"].is_string(),
            "[{}] {what}: error body is not {{\"error\":{{\"code\",\"message\"}}}}: {body}",
            api.backend
        );
    }
    (status, headers, body)
}

/// Percent-encodes a form value.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Decodes a percent-encoded query value.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// One enterprise organization with SSO through a test IdP.
pub struct Org {
    /// Its owner's session token.
    pub owner: String,
    /// Its id.
    pub id: String,
    /// Its slug, in the SAML URLs.
    pub slug: String,
    /// Our SP entity id for it.
    pub entity_id: String,
    /// Our ACS URL for it.
    pub acs_url: String,
}

/// Signs up `email` with organization `name` and moves it to the enterprise tier (an operator's
/// decision; there is no API for it).
pub async fn enterprise_org(api: &Api, email: &str, name: &str) -> Org {
    let (owner, id, _) = api.signup(email, name).await;
    sqlx::query("UPDATE organizations SET tier = 'enterprise' WHERE id = $1")
        .bind(&id)
        .execute(&api.state.db)
        .await
        .unwrap();
    let (_, org) = api
        .call("GET", &format!("/api/v1/orgs/{id}"), Some(&owner), None)
        .await;
    let slug = org["slug"].as_str().unwrap().to_string();
    Org {
        owner,
        id,
        entity_id: format!("http://127.0.0.1:8080/saml/{slug}/metadata"),
        acs_url: format!("http://127.0.0.1:8080/saml/{slug}/acs"),
        slug,
    }
}

/// Configures SSO of `org` with `metadata` as its owner.
pub async fn configure(
    api: &Api,
    org: &Org,
    metadata: &str,
    default_role: &str,
    sso_required: bool,
) -> (StatusCode, Value) {
    api.call(
        "PUT",
        &format!("/api/v1/orgs/{}/sso", org.id),
        Some(&org.owner),
        Some(json!({"idp_metadata_xml": metadata, "default_role": default_role, "sso_required": sso_required})),
    )
    .await
}

/// Marks `domain` verified for `org` (as staff would), so its IdP may sign in addresses there.
pub async fn verify_domain(api: &Api, org: &Org, domain: &str) {
    koru_controlplane::sso::domains::verify_by_staff(&api.state.db, &org.id, domain, "tests")
        .await
        .unwrap();
}

/// Starts a login at our SP; returns the AuthnRequest ID the IdP would answer, after checking the
/// redirect.
pub async fn start_login(api: &Api, org: &Org, idp: &Idp) -> String {
    let b = api.backend;
    let req = Request::get(format!("/saml/{}/login?relay_state=%2Fclusters", org.slug))
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = send(api, req).await;
    assert_eq!(status, StatusCode::FOUND, "[{b}] {body}");
    let location = headers["location"].to_str().unwrap();
    let (base, query) = location.split_once('?').unwrap();
    assert_eq!(base, idp.sso_url, "[{b}]");
    let params: Vec<(&str, String)> = query
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k, percent_decode(v))
        })
        .collect();
    assert_eq!(
        params.iter().find(|(k, _)| *k == "RelayState").unwrap().1,
        "/clusters"
    );
    let xml = authn_request_xml(location);
    assert!(
        xml.contains(&format!("AssertionConsumerServiceURL=\"{}\"", org.acs_url)),
        "[{b}] {xml}"
    );
    assert!(
        xml.contains(&format!("Destination=\"{}\"", idp.sso_url)),
        "[{b}] {xml}"
    );
    assert!(
        xml.contains(&org.entity_id),
        "[{b}] the Issuer is our entity id: {xml}"
    );
    let id = id_of(&xml);
    assert!(
        id.len() >= 33 && id[1..].chars().all(|c| c.is_ascii_hexdigit()),
        "[{b}] at least 128 random bits: {id}"
    );
    id
}

/// The AuthnRequest (XML) in a redirect URL to the IdP, decoded as the IdP reads it.
pub fn authn_request_xml(url: &str) -> String {
    let query = url.split_once('?').unwrap().1;
    let saml_request = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("SAMLRequest="))
        .unwrap();
    let deflated = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        percent_decode(saml_request),
    )
    .unwrap();
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(deflated.as_slice())
        .read_to_string(&mut xml)
        .unwrap();
    xml
}

/// The AuthnRequest ID in a redirect URL to the IdP.
pub fn request_id(url: &str) -> String {
    id_of(&authn_request_xml(url))
}

/// The ID attribute of an AuthnRequest.
fn id_of(xml: &str) -> String {
    xml.split(" ID=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string()
}

/// Posts a response (XML) to `slug`'s ACS.
pub async fn post_acs(api: &Api, slug: &str, response_xml: &str) -> (StatusCode, Value) {
    let body = format!(
        "SAMLResponse={}&RelayState=%2Fignored",
        percent_encode(&encode(response_xml))
    );
    let req = Request::post(format!("/saml/{slug}/acs"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap();
    let (status, _, body) = send(api, req).await;
    (status, body)
}

/// A valid assertion of `email` for `org`, answering a fresh login.
pub async fn valid_assertion(api: &Api, org: &Org, idp: &Idp, email: &str) -> AssertionSpec {
    let request_id = start_login(api, org, idp).await;
    idp.assertion_for(&org.entity_id, &org.acs_url, &request_id, email)
}

/// The message of an error body.
pub fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}
