//! The data plane's clock and its time formats: commit times are microseconds since the Unix
//! epoch, written as RFC 3339 UTC with microseconds through the API crate's one helper, so the
//! operator and the control plane format the same instant as the same text.

// web-time: std's clock on native; in the browser, JS `Date.now()` (std's panics there).
use web_time::{SystemTime, UNIX_EPOCH};

pub use koru_dataplane_api::rfc3339::{ParseError, format_commit_micros, parse_micros};

/// Microseconds since the Unix epoch (0 if the system clock is before it).
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Microseconds since the epoch as RFC 3339 UTC with microseconds, as the API writes times.
pub fn rfc3339(micros: i64) -> String {
    koru_dataplane_api::rfc3339::format_micros(micros)
}

/// Now, as [`rfc3339`] writes it.
pub fn now_rfc3339() -> String {
    rfc3339(now_micros())
}
