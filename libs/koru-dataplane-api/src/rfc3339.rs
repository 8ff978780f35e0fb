//! RFC 3339 times as every part of KoruDelta writes and reads them: UTC, `Z`, and microseconds
//! for the data plane's commit times (`2026-11-26T05:00:00.000001Z`).
//!
//! One helper on chrono, instead of a copy per crate, so a time the data plane writes compares
//! equal, as text, to the same time formatted by the operator or the control plane.

use chrono::{DateTime, SecondsFormat, Utc};

/// Microseconds since the epoch as RFC 3339 UTC with six fractional digits; a value outside the
/// representable range (never a real commit time) is written as the epoch.
pub fn format_micros(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// [`format_micros`] of a commit time, None for 0 or less: an empty log has no commit time.
pub fn format_commit_micros(micros: i64) -> Option<String> {
    (micros > 0).then(|| format_micros(micros))
}

/// Milliseconds since the epoch as RFC 3339 UTC with only the fractional digits that are not
/// zero (`2023-11-14T22:13:20.123Z`, `1970-01-01T00:00:00Z`); None outside the representable
/// range.
pub fn format_millis(ms: i64) -> Option<String> {
    let t = DateTime::from_timestamp_millis(ms)?;
    let text = t.to_rfc3339_opts(SecondsFormat::Millis, true);
    // `.120Z` is written `.12Z`, and `.000Z` not at all: the shortest exact form.
    let (stamp, _z) = text.split_at(text.len() - 1);
    let stamp = stamp.trim_end_matches('0').trim_end_matches('.');
    Some(format!("{stamp}Z"))
}

/// Parses an RFC 3339 time (any offset) into microseconds since the epoch.
pub fn parse_micros(text: &str) -> Result<i64, ParseError> {
    parse(text).map(|t| t.timestamp_micros())
}

/// Parses an RFC 3339 time (any offset) into a UTC time.
pub fn parse(text: &str) -> Result<DateTime<Utc>, ParseError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| ParseError(e.to_string()))
}

/// Why a text is not an RFC 3339 time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_times_are_written_with_microseconds_in_utc() {
        assert_eq!(format_micros(1_000_001), "1970-01-01T00:00:01.000001Z");
        assert_eq!(
            format_micros(1_764_133_200_000_000),
            "2025-11-26T05:00:00.000000Z"
        );
        assert_eq!(format_micros(i64::MAX), "1970-01-01T00:00:00.000000Z");
        assert_eq!(format_commit_micros(0), None);
        assert_eq!(
            format_commit_micros(1_000_000).as_deref(),
            Some("1970-01-01T00:00:01.000000Z")
        );
    }

    #[test]
    fn milliseconds_are_written_in_their_shortest_exact_form() {
        assert_eq!(format_millis(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            format_millis(1_700_000_000_123).as_deref(),
            Some("2023-11-14T22:13:20.123Z")
        );
        assert_eq!(
            format_millis(1_700_000_000_120).as_deref(),
            Some("2023-11-14T22:13:20.12Z")
        );
        assert_eq!(format_millis(i64::MAX), None);
    }

    #[test]
    fn any_offset_parses_to_the_same_instant() {
        assert_eq!(
            parse_micros("2026-11-26T10:00:03.123456+01:00").unwrap(),
            parse_micros("2026-11-26T09:00:03.123456Z").unwrap()
        );
        assert_eq!(
            parse_micros(&format_micros(1_764_133_200_000_001)).unwrap(),
            1_764_133_200_000_001
        );
        assert!(parse_micros("soon").is_err());
    }
}
