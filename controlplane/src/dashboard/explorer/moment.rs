//! Moments typed into the explorer's forms: an RFC 3339 time with any offset, or a browser's
//! `datetime-local` value (`2026-12-07T10:30`, with optional seconds and fraction, or a space
//! instead of the `T`) read as UTC, since the pages show every time in UTC.

use koru_dataplane_api::rfc3339;

/// Why a moment given in a form cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a moment: give a date and time such as 2026-12-07T10:30:00Z (UTC when no offset is given)"
)]
pub struct BadMoment(pub String);

/// The moment `text` names, in microseconds since the epoch.
pub fn parse(text: &str) -> Result<i64, BadMoment> {
    let text = text.trim();
    if let Ok(micros) = rfc3339::parse_micros(text) {
        return Ok(micros);
    }
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| chrono::NaiveDateTime::parse_from_str(text, f).ok())
    .map(|t| t.and_utc().timestamp_micros())
    .ok_or_else(|| BadMoment(text.to_string()))
}

/// The moment `text` names as the data plane writes times: RFC 3339 UTC with microseconds.
pub fn rfc3339(text: &str) -> Result<String, BadMoment> {
    parse(text).map(rfc3339::format_micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_read_as_rfc3339_or_as_the_datetime_input_in_utc() {
        let t = parse("2026-12-07T10:30:00Z").unwrap();
        assert_eq!(parse("2026-12-07T11:30:00+01:00"), Ok(t));
        assert_eq!(parse("2026-12-07T10:30"), Ok(t));
        assert_eq!(parse(" 2026-12-07 10:30:00.250 "), Ok(t + 250_000));
        assert_eq!(
            rfc3339("2026-12-07T10:30:05.5").unwrap(),
            "2026-12-07T10:30:05.500000Z"
        );
        assert_eq!(
            rfc3339("2026-12-07T00:00:00.123456Z").unwrap(),
            "2026-12-07T00:00:00.123456Z"
        );
        assert!(parse("yesterday").is_err());
        assert!(parse("").is_err());
    }
}
