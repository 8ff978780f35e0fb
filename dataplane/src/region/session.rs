//! Session tokens (`X-Koru-Session: <region>:<lsn>[,…]`) and nearest reads
//! (`X-Koru-Read-At`): what a read waits for before this region answers it.

use std::collections::BTreeMap;
use std::time::Duration;

use super::links::Regions;

/// The session header: each region's LSN a client has written at.
pub const SESSION_HEADER: &str = "x-koru-session";
/// The nearest-read header: an RFC 3339 moment to read exactly as of.
pub const READ_AT_HEADER: &str = "x-koru-read-at";
/// How long a read may wait for the streams, in milliseconds.
pub const MAX_WAIT_HEADER: &str = "x-koru-max-wait-ms";
/// The wait when `X-Koru-Max-Wait-Ms` is not sent.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_millis(5000);

/// A parsed session token: region → LSN.
pub type Session = BTreeMap<String, u64>;

/// Parses `a:1,b:2` (None when malformed).
pub fn parse(text: &str) -> Option<Session> {
    let mut out = Session::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (region, lsn) = part.rsplit_once(':')?;
        super::check_name(region).ok()?;
        let lsn: u64 = lsn.parse().ok()?;
        let e = out.entry(region.to_owned()).or_default();
        *e = (*e).max(lsn);
    }
    Some(out)
}

/// Formats a session token.
pub fn format(session: &Session) -> String {
    session
        .iter()
        .map(|(r, l)| format!("{r}:{l}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// What a read waits for.
#[derive(Debug, Clone, Default)]
pub struct Wait {
    /// Every peer must have reached this commit time (µs).
    pub read_at: Option<i64>,
    /// Each named origin must be applied through its LSN.
    pub session: Session,
}

impl Wait {
    /// Whether this region holds what the read needs.
    pub fn reached(&self, regions: &Regions) -> bool {
        self.read_at
            .is_none_or(|t| crate::clock::now_micros() > t && regions.reached_time(t))
            && self
                .session
                .iter()
                .all(|(origin, lsn)| regions.reached_lsn(origin, *lsn))
    }
}

/// Waits until `wait` is reached, or `max` passes (false).
pub async fn wait(regions: &Regions, wait: &Wait, max: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + max;
    let mut moved = regions.subscribe();
    loop {
        if wait.reached(regions) {
            return true;
        }
        // Links move on each page; the local clock passing `read_at` needs a tick of its own.
        let tick = tokio::time::sleep(Duration::from_millis(20));
        tokio::select! {
            _ = moved.changed() => {}
            () = tick => {}
            () = tokio::time::sleep_until(deadline) => return wait.reached(regions),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_merge_per_region_and_bad_ones_are_refused() {
        let s = parse("us-east:5, eu:3,us-east:2").unwrap();
        assert_eq!(format(&s), "eu:3,us-east:5");
        assert!(parse("eu").is_none() && parse("eu:x").is_none() && parse("EU:1").is_none());
        assert_eq!(parse("").unwrap().len(), 0);
    }
}
