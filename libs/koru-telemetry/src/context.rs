//! W3C trace context (`traceparent`, `tracestate`) across our processes: a server's request span
//! joins the caller's trace, and a proxy passes its own span on, so one trace spans gateway →
//! data plane when both export to a collector.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Reads trace headers from a header map.
struct Read<'a>(&'a HeaderMap);

impl Extractor for Read<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// Writes trace headers into a header map.
struct Write<'a>(&'a mut HeaderMap);

impl Injector for Write<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Makes `span` a child of the trace the caller's headers carry, if any.
pub fn join(span: &tracing::Span, headers: &HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Read(headers));
    // Fails only when no OpenTelemetry layer is installed (traces not exported): nothing to join.
    let _ = span.set_parent(parent);
}

/// Puts `span`'s context into outgoing headers (replacing the caller's `traceparent`) when the
/// span is exported; leaves the headers alone otherwise, so the caller's context passes through.
pub fn inject(span: &tracing::Span, headers: &mut HeaderMap) {
    TraceContextPropagator::new().inject_context(&span.context(), &mut Write(headers));
}
