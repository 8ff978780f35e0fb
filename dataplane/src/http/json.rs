//! Response bodies: timestamps as RFC 3339 and stored JSON text embedded without re-parsing.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::value::RawValue;

use super::ApiError;
use crate::store::{Fetched, VersionId};

/// Formats microseconds since the epoch as RFC 3339 UTC with microseconds.
pub fn timestamp(micros: i64) -> String {
    crate::clock::rfc3339(micros)
}

/// Parses an RFC 3339 timestamp into microseconds since the epoch.
pub fn parse_timestamp(s: &str) -> Result<i64, ApiError> {
    crate::clock::parse_micros(s).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid timestamp {s:?}: {e} (use RFC 3339, e.g. 2026-01-31T12:00:00Z)"
        ))
    })
}

/// Stored JSON text as a raw value; the text passed a parse when written and a checksum since.
pub fn raw(text: String) -> Result<Box<RawValue>, ApiError> {
    RawValue::from_string(text).map_err(|e| {
        tracing::error!(error = %e, "stored value is not valid JSON");
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "stored value could not be read",
        )
    })
}

/// A body of pre-serialized JSON.
pub struct JsonBytes(pub Vec<u8>);

impl IntoResponse for JsonBytes {
    fn into_response(self) -> Response {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.0,
        )
            .into_response()
    }
}

/// Writes a string as a JSON string literal, escaped.
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    // Serializing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Writes a version id as a JSON string, or null.
pub fn push_version(out: &mut Vec<u8>, v: Option<VersionId>) {
    match v {
        Some(v) => {
            out.push(b'"');
            out.extend_from_slice(v.to_string().as_bytes());
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// `{"value","version_id","timestamp","previous_version"}` for a live version (an
/// [`koru_dataplane_api::data::Entry`]), with `author` (when known) and `op` when `meta`; built
/// by hand because this is the hottest read path and the value needs no re-parse.
pub fn versioned(f: &Fetched, value: &str, meta: bool) -> JsonBytes {
    let mut out = Vec::with_capacity(value.len() + 128);
    out.extend_from_slice(b"{\"value\":");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b",\"version_id\":");
    push_version(&mut out, Some(f.version));
    out.extend_from_slice(b",\"timestamp\":\"");
    out.extend_from_slice(timestamp(f.timestamp_micros).as_bytes());
    out.extend_from_slice(b"\",\"previous_version\":");
    push_version(&mut out, f.previous);
    if meta {
        if let Some(author) = &f.meta.author {
            out.extend_from_slice(b",\"author\":");
            push_str(&mut out, author);
        }
        out.extend_from_slice(b",\"op\":");
        let op = super::meta::version_op(f.meta.cause, f.value.is_none());
        // Serializing a unit variant into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, &op);
    }
    out.push(b'}');
    JsonBytes(out)
}

/// `{"version_id","timestamp","previous_version"}` for a write.
pub fn written(
    version: VersionId,
    timestamp_micros: i64,
    previous: Option<VersionId>,
) -> JsonBytes {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"{\"version_id\":");
    push_version(&mut out, Some(version));
    out.extend_from_slice(b",\"timestamp\":\"");
    out.extend_from_slice(timestamp(timestamp_micros).as_bytes());
    out.extend_from_slice(b"\",\"previous_version\":");
    push_version(&mut out, previous);
    // The kdelta CLI reads `versionId`, a name koru-delta's own server never sent.
    out.extend_from_slice(b",\"versionId\":");
    push_version(&mut out, Some(version));
    out.push(b'}');
    JsonBytes(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_at_microsecond_precision() {
        let micros = 1_764_000_000_123_456;
        let text = timestamp(micros);
        assert_eq!(text, "2025-11-24T16:00:00.123456Z");
        assert_eq!(parse_timestamp(&text).unwrap(), micros);
        assert_eq!(
            parse_timestamp("2025-11-24T17:00:00.123456+01:00").unwrap(),
            micros
        );
        assert!(
            parse_timestamp("yesterday")
                .unwrap_err()
                .message
                .contains("RFC 3339")
        );
    }

    #[test]
    fn hand_built_bodies_are_valid_json() {
        let f = Fetched {
            version: VersionId { lsn: 5, op: 1 },
            timestamp_micros: 0,
            previous: None,
            value: Some("{\"a\":[1,2]}".into()),
            meta: Default::default(),
        };
        let body: serde_json::Value =
            serde_json::from_slice(&versioned(&f, "{\"a\":[1,2]}", false).0).unwrap();
        assert_eq!(body["value"]["a"][1], 2);
        assert_eq!(body["version_id"], "5.1");
        assert!(body["previous_version"].is_null());
        let w: serde_json::Value =
            serde_json::from_slice(&written(f.version, 0, Some(VersionId { lsn: 4, op: 0 })).0)
                .unwrap();
        assert_eq!(w["previous_version"], "4.0");
        assert_eq!(w["versionId"], w["version_id"]);
    }

    #[test]
    fn hand_built_entries_are_the_contract_entry_byte_for_byte() {
        use koru_dataplane_api::data::{Entry, VersionOp};
        let mut f = Fetched {
            version: VersionId { lsn: 7, op: 0 },
            timestamp_micros: 1_764_000_000_123_456,
            previous: Some(VersionId { lsn: 3, op: 2 }),
            value: Some("{\"a\":\"\\u00e9\"}".into()),
            meta: Default::default(),
        };
        let entry = |author: Option<&str>, op: Option<VersionOp>| Entry {
            value: RawValue::from_string(f.value.clone().unwrap()).unwrap(),
            version_id: "7.0".into(),
            timestamp: timestamp(f.timestamp_micros),
            previous_version: Some("3.2".into()),
            deleted: false,
            author: author.map(str::to_owned),
            op,
        };
        let value = f.value.clone().unwrap();
        let plain = serde_json::to_vec(&entry(None, None)).unwrap();
        assert_eq!(versioned(&f, &value, false).0, plain);
        let unknown = serde_json::to_vec(&entry(None, Some(VersionOp::Put))).unwrap();
        assert_eq!(versioned(&f, &value, true).0, unknown);
        f.meta = crate::store::WriteMeta::by(Some("a\"d\u{e9}".into()))
            .because(crate::store::Cause::Merge);
        let authored =
            serde_json::to_vec(&entry(Some("a\"d\u{e9}"), Some(VersionOp::Merge))).unwrap();
        assert_eq!(versioned(&f, &value, true).0, authored);
    }
}
