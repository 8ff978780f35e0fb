//! The tenant extractor carries the organization in the request's tracing span: `org_id` is
//! recorded once the path's organization is resolved for the caller, and never for a caller
//! it was refused to.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use common::{Api, backends};
use tracing::field::{Field, Visit};
use tracing::span::{Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Collects every value recorded into a span field named `org_id`.
#[derive(Clone, Default)]
struct OrgIds(Arc<Mutex<Vec<String>>>);

impl OrgIds {
    fn seen(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl<S: tracing::Subscriber> Layer<S> for OrgIds {
    fn on_record(&self, _: &Id, values: &Record<'_>, _: Context<'_, S>) {
        struct Collect<'a>(&'a Mutex<Vec<String>>);
        impl Visit for Collect<'_> {
            fn record_str(&mut self, field: &Field, value: &str) {
                if field.name() == "org_id" {
                    self.0.lock().unwrap().push(value.to_string());
                }
            }
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                if field.name() == "org_id" {
                    self.0.lock().unwrap().push(format!("{value:?}"));
                }
            }
        }
        values.record(&mut Collect(&self.0));
    }
}

#[tokio::test]
async fn the_request_span_carries_the_organization_the_caller_may_use() {
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let seen = OrgIds::default();
        // The test's runtime runs every request on this thread, so a thread-local subscriber sees them.
        let _guard =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(seen.clone()));
        let (token, org_id, _) = api.signup("ada@example.com", "acme").await;
        let (outsider, _, _) = api.signup("bob@example.com", "bobco").await;

        let (status, _) = api
            .call("GET", "/api/v1/orgs/acme/members", Some(&token), None)
            .await;
        assert_eq!(status, StatusCode::OK, "[{}]", backend.name);
        assert_eq!(seen.seen(), vec![org_id.clone()], "[{}]", backend.name);

        let (status, _) = api
            .call("GET", "/api/v1/orgs/acme", Some(&outsider), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "[{}]", backend.name);
        let (status, _) = api.call("GET", "/api/v1/orgs/acme", None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "[{}]", backend.name);
        assert_eq!(
            seen.seen(),
            vec![org_id.clone()],
            "[{}] a refused request names no organization in its span",
            backend.name
        );
    }
}
