//! The middleware that gives every request an id and appends an audit event for every routed
//! state-changing request, and the [`AuditSlot`] through which extractors and handlers tell it
//! who acted.

use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Extensions, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::chain::Record;
use super::store;
use crate::db::{new_id, now_ms};
use crate::state::AppState;

/// The header carrying the request id, in and out.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// The longest client-chosen request id kept; longer ones are replaced.
pub const MAX_REQUEST_ID_LEN: usize = 128;
/// The longest attempted email address recorded as an actor.
const MAX_EMAIL_LEN: usize = 254;

/// What extractors and handlers learn about a request that the middleware cannot see: who
/// acted, and the organization (the one the tenant extractor resolved from the path's `{org}`,
/// or the one acted on when the path names none). Shared by clones.
#[derive(Debug, Clone, Default)]
pub struct AuditSlot(Arc<Mutex<Slot>>);

/// The contents of an [`AuditSlot`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The actor, e.g. `user:<id>`.
    pub actor: Option<String>,
    /// The organization acted on.
    pub org_id: Option<String>,
}

/// The facts, and whether the tenant extractor has looked up the path's organization (so the
/// middleware need not, even when it names none).
#[derive(Debug, Default)]
struct Slot {
    facts: Facts,
    path_org_looked_up: bool,
}

impl AuditSlot {
    fn update(&self, f: impl FnOnce(&mut Slot)) {
        // A panic elsewhere while holding this lock cannot leave the facts half-written.
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// What has been reported so far.
    pub fn facts(&self) -> Facts {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .facts
            .clone()
    }

    /// Whether the tenant extractor looked up the path's organization.
    fn path_org_looked_up(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .path_org_looked_up
    }

    /// Reports the actor to the request's slot, if the request is audited (a no-op otherwise).
    pub fn note_actor(extensions: &Extensions, actor: impl Into<String>) {
        if let Some(slot) = extensions.get::<AuditSlot>() {
            let actor = actor.into();
            slot.update(|s| s.facts.actor = Some(actor));
        }
    }

    /// Reports the organization a request acted on when its path does not name it.
    pub fn note_org(extensions: &Extensions, org_id: impl Into<String>) {
        if let Some(slot) = extensions.get::<AuditSlot>() {
            let org_id = org_id.into();
            slot.update(|s| s.facts.org_id = Some(org_id));
        }
    }

    /// Reports what the path's `{org}` names (`None`: no organization), as the tenant
    /// extractor found it before checking the caller's access.
    pub fn note_path_org(extensions: &Extensions, org_id: Option<String>) {
        if let Some(slot) = extensions.get::<AuditSlot>() {
            slot.update(|s| {
                s.path_org_looked_up = true;
                if org_id.is_some() {
                    s.facts.org_id = org_id;
                }
            });
        }
    }
}

/// The id of the current request, in its extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The client's `x-request-id` when it is 1 to 128 of `[A-Za-z0-9._:-]`, else a new uuid.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= MAX_REQUEST_ID_LEN
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(new_id)
}

/// Whether requests with `method` change state and are audited.
pub fn is_mutating(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// The outcome of a response: `success` for 2xx and 3xx, else `failure:<status>`.
pub fn outcome(status: StatusCode) -> String {
    if status.is_success() || status.is_redirection() {
        "success".into()
    } else {
        format!("failure:{}", status.as_u16())
    }
}

/// The segment of `path` where the route `template` has `{org}`.
pub fn org_segment<'a>(template: &str, path: &'a str) -> Option<&'a str> {
    let index = template.split('/').position(|s| s == "{org}")?;
    path.split('/').nth(index).filter(|s| !s.is_empty())
}

/// The actor of a sign-up or login attempt: `email:` and the address as typed, trimmed,
/// lower-cased and cut to 254 characters.
pub fn attempted_email(email: &str) -> String {
    let email: String = email
        .trim()
        .to_lowercase()
        .chars()
        .take(MAX_EMAIL_LEN)
        .collect();
    format!("email:{email}")
}

/// Gives the request an id (echoed in `x-request-id`) and, for a routed state-changing request,
/// appends its audit event after the handler.
pub async fn record(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let request_id = request_id(req.headers());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    // `org_id` is recorded by the tenant extractor once it has resolved the path's organization.
    let span =
        tracing::info_span!("request", request_id = %request_id, org_id = tracing::field::Empty);
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let audited = match template {
        // Unrouted requests reach no handler and change nothing.
        Some(template) if is_mutating(req.method()) => Some(template),
        _ => None,
    };
    let Some(template) = audited else {
        let mut response = next.run(req).instrument(span).await;
        set_request_id(&mut response, &request_id);
        return response;
    };
    let slot = AuditSlot::default();
    req.extensions_mut().insert(slot.clone());
    let action = format!("{} {template}", req.method());
    let target = req.uri().path().to_string();
    let source_ip = crate::http::client_ip(req.extensions()).map(|ip| ip.to_string());
    let mut response = next.run(req).instrument(span.clone()).await;
    // A gateway's sync, about once a second per replica, changes no tenant's state (it reads the
    // route table and reports traffic): only refused ones, attempts on the internal API, are kept.
    if template == koru_gateway_api::SYNC_PATH && response.status().is_success() {
        set_request_id(&mut response, &request_id);
        return response;
    }
    let facts = slot.facts();
    let org_id = match facts.org_id {
        Some(org_id) => Some(org_id),
        // The tenant extractor did not run (a route without it, or a request refused before
        // it, such as a 401): look the path's organization up here. Organizations are never
        // deleted or renamed over HTTP, so after the handler it names the same one as before.
        None if !slot.path_org_looked_up() => match org_segment(&template, &target) {
            Some(reference) => match crate::orgs::find(&state.db, reference).await {
                Ok(org) => org.map(|o| o.id),
                Err(e) => {
                    tracing::warn!(parent: &span, error = %e, "cannot resolve the organization of an audited request");
                    None
                }
            },
            None => None,
        },
        None => None,
    };
    let record = Record {
        id: new_id(),
        time: now_ms(),
        actor: facts.actor,
        org_id,
        source_ip,
        action,
        target,
        outcome: outcome(response.status()),
        request_id: request_id.clone(),
    };
    // Its own task, so a client that hangs up does not cancel the append of a finished change.
    let db = state.db.clone();
    let appended = tokio::spawn(async move { store::append(&db, &record).await.map(|_| ()) }).await;
    let failure = match appended {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(e) => Some(format!("the append task failed: {e}")),
    };
    if let Some(error) = failure {
        store::count_append_failure();
        tracing::error!(parent: &span, %error, "AUDIT EVENT LOST: cannot append the audit event of a finished request");
    }
    set_request_id(&mut response, &request_id);
    response
}

fn set_request_id(response: &mut Response, request_id: &str) {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_org_segment_follows_the_template() {
        assert_eq!(
            org_segment(
                "/api/v1/orgs/{org}/tokens/{id}",
                "/api/v1/orgs/acme/tokens/t1"
            ),
            Some("acme")
        );
        assert_eq!(
            org_segment("/api/v1/orgs/{org}", "/api/v1/orgs/o-1"),
            Some("o-1")
        );
        assert_eq!(org_segment("/api/v1/login", "/api/v1/login"), None);
    }

    #[test]
    fn request_ids_are_kept_only_when_sane() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static("abc-123.x:y_z"));
        assert_eq!(request_id(&headers), "abc-123.x:y_z");
        for bad in ["", "has space", "semi;colon"] {
            headers.insert(REQUEST_ID_HEADER, HeaderValue::from_str(bad).unwrap());
            let id = request_id(&headers);
            assert_ne!(id, bad);
            assert_eq!(id.len(), 36, "a fresh uuid");
        }
        headers.insert(
            REQUEST_ID_HEADER,
            HeaderValue::from_str(&"a".repeat(129)).unwrap(),
        );
        assert_eq!(request_id(&headers).len(), 36);
    }

    #[test]
    fn outcomes_and_methods() {
        assert_eq!(outcome(StatusCode::CREATED), "success");
        assert_eq!(outcome(StatusCode::SEE_OTHER), "success");
        assert_eq!(outcome(StatusCode::UNAUTHORIZED), "failure:401");
        assert!(
            is_mutating(&Method::DELETE)
                && !is_mutating(&Method::GET)
                && !is_mutating(&Method::HEAD)
        );
        assert_eq!(
            attempted_email("  Ada@Example.COM "),
            "email:ada@example.com"
        );
        assert_eq!(
            attempted_email(&"x".repeat(400)).len(),
            "email:".len() + 254
        );
    }

    #[test]
    fn a_slot_is_shared_by_its_clones_and_absent_slots_are_ignored() {
        let slot = AuditSlot::default();
        let mut extensions = Extensions::new();
        AuditSlot::note_actor(&extensions, "user:nobody");
        extensions.insert(slot.clone());
        AuditSlot::note_actor(&extensions, "user:u1");
        AuditSlot::note_org(&extensions, "o1");
        assert_eq!(
            slot.facts(),
            Facts {
                actor: Some("user:u1".into()),
                org_id: Some("o1".into())
            }
        );
    }

    #[test]
    fn the_tenant_extractors_lookup_spares_the_middleware_its_own() {
        let slot = AuditSlot::default();
        let mut extensions = Extensions::new();
        extensions.insert(slot.clone());
        assert!(!slot.path_org_looked_up());
        AuditSlot::note_path_org(&extensions, None);
        assert!(
            slot.path_org_looked_up(),
            "an unknown organization was looked up too"
        );
        assert_eq!(slot.facts().org_id, None);
        AuditSlot::note_path_org(&extensions, Some("o1".into()));
        assert_eq!(slot.facts().org_id.as_deref(), Some("o1"));
    }
}
