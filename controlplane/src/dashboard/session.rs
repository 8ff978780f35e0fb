//! Browser sessions of the dashboard: the control plane's own session tokens carried in cookies,
//! a CSRF token checked on every POST, and one-shot flash messages.
//!
//! # Cookies
//! - `koru_session`: the access token (EdDSA JWT, 15 minutes) that the API takes as a bearer token.
//! - `koru_refresh`: the refresh token (30 days). When the access token has expired, the session
//!   middleware rotates it with [`accounts::refresh`], as an API client would, and sets both anew.
//! - `koru_csrf`: 256 random bits, set on the first page a browser sees and renewed at login and
//!   logout. Every form carries it in a hidden `csrf` field, and every POST must send both, equal.
//! - `koru_flash`: a message for the next page shown (after a redirect), cleared once shown.
//!
//! All are `HttpOnly`, `SameSite=Lax` and `Path=/`. When the public URL is https they are also
//! `Secure` and named with the `__Host-` prefix, so neither a sibling subdomain nor a network
//! attacker can plant one (that is what makes the double-submitted CSRF token sound).
//!
//! # Why this is enough against CSRF
//! A cross-site form cannot read our CSRF cookie, so it cannot put its value in the form; `Lax`
//! keeps the session cookies off cross-site POSTs anyway; and a POST whose `Origin` names another
//! host is refused before anything else. Only static assets are served outside this middleware.

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use cookie::Cookie;
use subtle::ConstantTimeEq;

use crate::accounts::{self, Tokens};
use crate::audit::AuditSlot;
use crate::auth::session::{REFRESH_TTL_SECS, SessionClaims, new_secret};
use crate::error::Error;
use crate::state::AppState;

/// The access-token cookie.
pub const SESSION: &str = "koru_session";
/// The refresh-token cookie.
pub const REFRESH: &str = "koru_refresh";
/// The CSRF-token cookie.
pub const CSRF: &str = "koru_csrf";
/// The flash-message cookie.
pub const FLASH: &str = "koru_flash";
/// The form field carrying the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

/// The largest form body accepted; every dashboard form is far smaller.
const MAX_FORM_BYTES: usize = 64 * 1024;
/// How long a flash message waits for the page that shows it.
const FLASH_TTL_SECS: i64 = 60;
/// The longest flash message kept (a cookie stays well under browsers' 4 KB).
const MAX_FLASH_CHARS: usize = 600;

/// How cookies are set: `Secure` with `__Host-` names when the public URL is https.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookiePolicy {
    /// Whether cookies are `Secure` (and `__Host-` prefixed).
    pub secure: bool,
}

impl CookiePolicy {
    /// The policy for a control plane reached at `public_url`.
    pub fn for_public_url(public_url: &str) -> CookiePolicy {
        CookiePolicy {
            secure: public_url
                .get(..8)
                .is_some_and(|s| s.eq_ignore_ascii_case("https://")),
        }
    }

    /// The name a cookie has under this policy.
    pub fn name(&self, base: &str) -> String {
        if self.secure {
            format!("__Host-{base}")
        } else {
            base.to_string()
        }
    }

    /// A cookie `base=value` living `max_age_secs`.
    pub fn cookie(&self, base: &str, value: &str, max_age_secs: i64) -> Cookie<'static> {
        Cookie::build((self.name(base), value.to_string()))
            .path("/")
            .http_only(true)
            .same_site(cookie::SameSite::Lax)
            .secure(self.secure)
            .max_age(cookie::time::Duration::seconds(max_age_secs))
            .build()
    }

    /// A cookie that removes `base` from the browser.
    pub fn removal(&self, base: &str) -> Cookie<'static> {
        let mut c = self.cookie(base, "", 0);
        c.make_removal();
        c
    }

    /// The value of cookie `base` in a request's headers.
    pub fn read(&self, headers: &HeaderMap, base: &str) -> Option<String> {
        let name = self.name(base);
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|h| h.to_str().ok())
            .flat_map(Cookie::split_parse)
            .flatten()
            .find(|c| c.name() == name)
            .map(|c| c.value().to_string())
            .filter(|v| !v.is_empty())
    }
}

/// What the session middleware learnt about the browser; in every dashboard request's extensions.
#[derive(Debug, Clone)]
pub struct Visitor {
    /// The signed-in user's session, if any.
    pub user: Option<SessionClaims>,
    /// The CSRF token forms must carry.
    pub csrf: String,
    /// A message left by the previous request, to show once.
    pub flash: Option<Flash>,
    /// The cookie policy.
    pub policy: CookiePolicy,
}

impl<S: Send + Sync> FromRequestParts<S> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Visitor>().cloned().ok_or_else(|| {
            tracing::error!("a dashboard route runs without the session middleware");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        })
    }
}

/// A signed-in visitor; anyone else is sent to the login page, and back here afterwards.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The session's claims (the user id in `sub`).
    pub claims: SessionClaims,
    /// Everything else known about the browser.
    pub visitor: Visitor,
}

impl<S: Send + Sync> FromRequestParts<S> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let visitor = Visitor::from_request_parts(parts, state).await?;
        match visitor.user.clone() {
            Some(claims) => Ok(SignedIn { claims, visitor }),
            None => {
                let back = (parts.method == Method::GET)
                    .then(|| safe_next(parts.uri.path()))
                    .flatten();
                let to = match back {
                    Some(path) if path != "/" => format!("/login?next={path}"),
                    _ => "/login".to_string(),
                };
                Err(Redirect::to(&to).into_response())
            }
        }
    }
}

/// A one-shot message for the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    /// Whether it reports a failure.
    pub error: bool,
    /// The text.
    pub text: String,
}

impl Flash {
    /// A cookie carrying `text` to the next page.
    pub fn cookie(policy: &CookiePolicy, error: bool, text: &str) -> Cookie<'static> {
        let text: String = text.chars().take(MAX_FLASH_CHARS).collect();
        let raw = format!("{}{text}", if error { 'e' } else { 'n' });
        let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        policy.cookie(FLASH, &value, FLASH_TTL_SECS)
    }

    fn decode(value: &str) -> Option<Flash> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value)
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let mut chars = raw.chars();
        let error = match chars.next()? {
            'e' => true,
            'n' => false,
            _ => return None,
        };
        Some(Flash {
            error,
            text: chars.take(MAX_FLASH_CHARS).collect(),
        })
    }
}

/// `path` if it is a local path safe to redirect to after login (no other host, no scheme, only
/// the characters our own paths use), else `None`.
pub fn safe_next(path: &str) -> Option<&str> {
    let ok = path.starts_with('/')
        && !path.starts_with("//")
        && path.len() <= 200
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.'))
        && !path.split('/').any(|s| s == "..");
    ok.then_some(path)
}

/// Whether a submitted CSRF token equals the browser's, compared in constant time.
pub fn csrf_matches(expected: &str, submitted: Option<&str>) -> bool {
    match submitted {
        Some(s) if !expected.is_empty() && s.len() == expected.len() => {
            bool::from(s.as_bytes().ct_eq(expected.as_bytes()))
        }
        _ => false,
    }
}

/// Whether a request's `Origin` (when it sends one) is the host it was sent to. Browsers send it
/// on every form POST; a different one means another site's page submitted the form.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let Some(host) = headers.get(HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

/// The value of `field` in a urlencoded form body.
pub fn form_field(body: &[u8], field: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == field)
        .map(|(_, v)| v.into_owned())
}

fn valid_csrf_cookie(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The cookies that open a session: access and refresh tokens and a fresh CSRF token.
pub fn signed_in_cookies(policy: &CookiePolicy, tokens: &Tokens) -> Vec<Cookie<'static>> {
    vec![
        policy.cookie(SESSION, &tokens.access_token, tokens.expires_in),
        policy.cookie(REFRESH, &tokens.refresh_token, REFRESH_TTL_SECS),
        policy.cookie(CSRF, &new_secret(""), REFRESH_TTL_SECS),
    ]
}

/// The cookies that end a session (and renew the CSRF token).
pub fn signed_out_cookies(policy: &CookiePolicy) -> Vec<Cookie<'static>> {
    vec![
        policy.removal(SESSION),
        policy.removal(REFRESH),
        policy.cookie(CSRF, &new_secret(""), REFRESH_TTL_SECS),
    ]
}

/// Adds `cookies` to a response, except those whose name it already sets (a handler's cookie
/// wins over the middleware's).
pub fn with_cookies(mut response: Response, cookies: Vec<Cookie<'static>>) -> Response {
    for c in cookies {
        let prefix = format!("{}=", c.name());
        let already = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.starts_with(&prefix)));
        if already {
            continue;
        }
        match HeaderValue::from_str(&c.to_string()) {
            Ok(v) => {
                response.headers_mut().append(SET_COOKIE, v);
            }
            Err(e) => tracing::error!(error = %e, cookie = c.name(), "cannot set a cookie"),
        }
    }
    response
}

/// The user of the request's session cookies, rotating an expired access token with the refresh
/// token (the new cookies go into `set`). Cookies that no longer name a session are removed.
async fn resolve(
    state: &AppState,
    headers: &HeaderMap,
    policy: &CookiePolicy,
    set: &mut Vec<Cookie<'static>>,
) -> Result<Option<SessionClaims>, Error> {
    let access = policy.read(headers, SESSION);
    let refresh = policy.read(headers, REFRESH);
    if let Some(claims) = access
        .as_deref()
        .and_then(|t| state.sessions.verify(t).ok())
        && !accounts::is_revoked(&state.db, &claims.jti).await?
    {
        // An SSO session whose organization lost SSO ends at once, as in the API.
        match &claims.org {
            Some(org) => match crate::sso::check_session_scope(&state.db, org).await {
                Ok(()) => return Ok(Some(claims)),
                Err(Error::Unauthorized(_)) => {
                    set.push(policy.removal(SESSION));
                    set.push(policy.removal(REFRESH));
                    return Ok(None);
                }
                Err(e) => return Err(e),
            },
            None => return Ok(Some(claims)),
        }
    }
    if let Some(refresh) = &refresh {
        match accounts::refresh(&state.db, &state.sessions, refresh).await {
            Ok(tokens) => {
                let claims = state.sessions.verify(&tokens.access_token)?;
                set.push(policy.cookie(SESSION, &tokens.access_token, tokens.expires_in));
                set.push(policy.cookie(REFRESH, &tokens.refresh_token, REFRESH_TTL_SECS));
                return Ok(Some(claims));
            }
            Err(Error::Unauthorized(_)) => {}
            Err(e) => return Err(e),
        }
    }
    if access.is_some() || refresh.is_some() {
        set.push(policy.removal(SESSION));
        set.push(policy.removal(REFRESH));
    }
    Ok(None)
}

/// The middleware in front of every dashboard page: CSRF check of POSTs, session, flash.
pub async fn middleware(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let policy = CookiePolicy::for_public_url(&state.public_url);
    let mut set = Vec::new();
    let (csrf, fresh_csrf) = match policy.read(req.headers(), CSRF) {
        Some(token) if valid_csrf_cookie(&token) => (token, false),
        _ => {
            let token = new_secret("");
            set.push(policy.cookie(CSRF, &token, REFRESH_TTL_SECS));
            (token, true)
        }
    };
    let (parts, body) = req.into_parts();
    let body = if parts.method == Method::POST {
        let bytes = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
            Ok(bytes) => bytes,
            Err(_) => {
                let page = super::PageError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "That form was too large to accept.",
                );
                return with_cookies(page.into_response(), set);
            }
        };
        let submitted = form_field(&bytes, CSRF_FIELD);
        if !same_origin(&parts.headers) || fresh_csrf || !csrf_matches(&csrf, submitted.as_deref())
        {
            let page = super::PageError::new(
                StatusCode::FORBIDDEN,
                "This form has expired or came from another site, so nothing was changed. Go back, reload the page and try again.",
            );
            return with_cookies(page.into_response(), set);
        }
        Body::from(bytes)
    } else {
        body
    };
    let mut req = Request::from_parts(parts, body);
    let user = match resolve(&state, req.headers(), &policy, &mut set).await {
        Ok(user) => user,
        Err(e) => return with_cookies(super::PageError::from(e).into_response(), set),
    };
    if let Some(claims) = &user {
        AuditSlot::note_actor(req.extensions(), format!("user:{}", claims.sub));
    }
    let flash = policy
        .read(req.headers(), FLASH)
        .and_then(|v| Flash::decode(&v));
    let shown = flash.is_some();
    req.extensions_mut().insert(Visitor {
        user,
        csrf,
        flash,
        policy,
    });
    let response = next.run(req).await;
    if shown && !response.status().is_redirection() {
        set.push(policy.removal(FLASH));
    }
    with_cookies(response, set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_http_only_lax_and_secure_with_host_names_on_https() {
        let http = CookiePolicy::for_public_url("http://127.0.0.1:8080");
        let c = http.cookie(SESSION, "v", 900).to_string();
        assert!(c.starts_with("koru_session=v;"), "{c}");
        for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=900"] {
            assert!(c.contains(attr), "{attr} in {c}");
        }
        assert!(!c.contains("Secure"), "{c}");
        let https = CookiePolicy::for_public_url("HTTPS://cloud.example.com");
        let c = https.cookie(CSRF, "v", 60).to_string();
        assert!(
            c.starts_with("__Host-koru_csrf=v;") && c.contains("Secure"),
            "{c}"
        );
        assert!(!c.contains("Domain"), "__Host- cookies name no domain: {c}");
        let gone = https.removal(SESSION).to_string();
        assert!(gone.contains("Max-Age=0"), "{gone}");
    }

    #[test]
    fn cookies_are_read_by_their_policy_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=1; koru_csrf=plain; __Host-koru_csrf=hosted"),
        );
        let http = CookiePolicy { secure: false };
        let https = CookiePolicy { secure: true };
        assert_eq!(http.read(&headers, CSRF).as_deref(), Some("plain"));
        assert_eq!(https.read(&headers, CSRF).as_deref(), Some("hosted"));
        assert_eq!(http.read(&headers, SESSION), None);
    }

    #[test]
    fn csrf_tokens_must_match_exactly() {
        let token = new_secret("");
        assert!(valid_csrf_cookie(&token));
        assert!(csrf_matches(&token, Some(&token)));
        assert!(!csrf_matches(&token, None));
        assert!(!csrf_matches(&token, Some("")));
        assert!(!csrf_matches(&token, Some(&new_secret(""))));
        assert!(!csrf_matches("", Some("")));
        let body = format!("name=x&csrf={token}&other=%2F");
        assert_eq!(
            form_field(body.as_bytes(), CSRF_FIELD).as_deref(),
            Some(token.as_str())
        );
        assert_eq!(
            form_field(b"other=%2F", "other").as_deref(),
            Some("/"),
            "decoded"
        );
    }

    #[test]
    fn a_post_from_another_origin_is_not_same_origin() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(
            same_origin(&headers),
            "no Origin: not a cross-site browser form"
        );
        headers.insert(ORIGIN, HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(same_origin(&headers));
        headers.insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!same_origin(&headers));
        headers.insert(ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&headers));
    }

    #[test]
    fn only_local_paths_are_redirected_to() {
        assert_eq!(
            safe_next("/orgs/me/clusters/hello"),
            Some("/orgs/me/clusters/hello")
        );
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "/a/../b",
            "relative",
            "/a?b=c",
            "",
        ] {
            assert_eq!(safe_next(bad), None, "{bad}");
        }
    }

    #[test]
    fn flash_messages_round_trip_and_garbage_is_ignored() {
        let policy = CookiePolicy { secure: false };
        let c = Flash::cookie(&policy, true, "the free tier allows 1 cluster; ünïcode");
        assert_eq!(
            Flash::decode(c.value()),
            Some(Flash {
                error: true,
                text: "the free tier allows 1 cluster; ünïcode".into()
            })
        );
        assert_eq!(Flash::decode("!!!"), None);
        assert_eq!(Flash::decode(""), None);
    }
}
