//! Device authorization (RFC 8628 style) for terminals: `koru login --sso` asks for a code pair,
//! a person signed in to the dashboard (by password or SSO) approves the short user code, and
//! the terminal, polling with the long device code, receives a session with the approving
//! session's scope.
//!
//! Invariants:
//! - Only SHA-256 hashes of both codes are stored; the device code has 256 random bits.
//! - A user code is 8 letters from an alphabet without vowels or look-alikes (20^8 ≈ 2^34),
//!   lives 10 minutes, is decided once (pending → approved or denied), and its tokens are handed
//!   out once (approved → used, by a conditional update only one poll can win).
//! - Guessing user codes is bounded by [`DeviceLimiter`] (per person and per address, every
//!   look-up counts), on top of the short lifetime.
//! - Polling faster than the code's interval answers `slow_down` and lengthens the interval by
//!   5 s, recorded in the database so every replica agrees.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, Row};
use utoipa::ToSchema;

use crate::accounts::{self, Tokens};
use crate::auth::session::{SessionClaims, Sessions, new_secret, secret_hash};
use crate::db::{new_id, now_ms};
use crate::error::{Error, GrantError, Result};

/// How long a code pair lives.
pub const CODE_TTL_SECS: i64 = 10 * 60;
/// The polling interval a terminal starts with.
pub const POLL_INTERVAL_SECS: i64 = 5;
/// What `slow_down` adds to the interval.
pub const SLOW_DOWN_STEP_SECS: i64 = 5;
/// The letters of user codes: consonants without look-alikes, so codes spell no words and read
/// back unambiguously.
pub const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Letters in a user code (shown as two groups of four).
pub const USER_CODE_LEN: usize = 8;
/// The longest client name kept.
const MAX_CLIENT_NAME: usize = 64;

/// `POST /api/v1/device/code`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct CodeRequest {
    /// What the terminal calls itself, shown on the approval page (e.g. `koru CLI on laptop`).
    #[serde(default)]
    pub client_name: Option<String>,
    /// The organization (slug) whose single sign-on the person should sign in through: the
    /// complete verification URI then starts that SSO login.
    #[serde(default)]
    pub organization: Option<String>,
}

/// What `POST /api/v1/device/code` answers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CodeResponse {
    /// The secret the terminal polls with; never shown to the person.
    pub device_code: String,
    /// The short code the person checks and approves, `XXXX-XXXX`.
    pub user_code: String,
    /// The page where the person enters the user code.
    pub verification_uri: String,
    /// A link that opens the approval of this code directly (through SSO when asked).
    pub verification_uri_complete: String,
    /// Seconds to wait between polls.
    pub interval: i64,
    /// Seconds until both codes expire.
    pub expires_in: i64,
}

/// `POST /api/v1/device/token`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// The device code from `POST /api/v1/device/code`.
    pub device_code: String,
}

/// A pending request as the approval page shows it.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The user code, formatted.
    pub user_code: String,
    /// What the terminal called itself.
    pub client_name: String,
    /// The organization it asked to sign in through, if any.
    pub organization: Option<String>,
    /// The address it asked from, if known.
    pub client_ip: Option<String>,
    /// When it asked, ms since the epoch.
    pub created_at: i64,
}

/// A person's decision on a user code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The terminal gets a session.
    Approve,
    /// The terminal is told `access_denied`.
    Deny,
}

/// A new user code: [`USER_CODE_LEN`] letters of [`USER_CODE_ALPHABET`], uniformly drawn.
pub fn new_user_code() -> String {
    let alphabet = USER_CODE_ALPHABET.len() as u8;
    // 20 divides 240, so rejecting bytes of 240 and above keeps every letter equally likely.
    let limit = 240u8;
    let mut out = String::with_capacity(USER_CODE_LEN);
    while out.len() < USER_CODE_LEN {
        let mut bytes = [0u8; 16];
        rand::fill(&mut bytes);
        for b in bytes {
            if b < limit && out.len() < USER_CODE_LEN {
                out.push(char::from(USER_CODE_ALPHABET[usize::from(b % alphabet)]));
            }
        }
    }
    out
}

/// `ABCDEFGH` as people read it: `ABCD-EFGH`.
pub fn format_user_code(code: &str) -> String {
    match (code.get(..4), code.get(4..)) {
        (Some(a), Some(b)) if !b.is_empty() => format!("{a}-{b}"),
        _ => code.to_string(),
    }
}

/// A typed user code in its canonical form (upper case, no dashes or spaces), or `None` when it
/// cannot be one.
pub fn normalize_user_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let valid =
        code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b));
    valid.then_some(code)
}

/// An organization hint, checked like the dashboard's SSO start (slug characters only).
fn check_organization(org: &str) -> Result<String> {
    let slug = org.trim().to_lowercase();
    let valid = (1..=64).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(slug)
    } else {
        Err(Error::BadRequest(
            "organization must be an organization's short name (letters, digits, dashes)".into(),
        ))
    }
}

/// Starts a device authorization: records the hashes of a new code pair.
pub async fn start(
    db: &AnyPool,
    public_url: &str,
    req: &CodeRequest,
    client_ip: Option<IpAddr>,
) -> Result<CodeResponse> {
    let organization = req
        .organization
        .as_deref()
        .map(check_organization)
        .transpose()?;
    let client_name: String = req
        .client_name
        .as_deref()
        .unwrap_or("a terminal")
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_CLIENT_NAME)
        .collect();
    let now = now_ms();
    // Expired rows are only kept until the next start; their codes can never work again.
    sqlx::query("DELETE FROM device_codes WHERE expires_at <= $1")
        .bind(now - CODE_TTL_SECS * 1000)
        .execute(db)
        .await?;
    let device_code = new_secret("kd_");
    // A user-code collision with a live row is rare (2^-34 per pair); draw again when it happens.
    for _ in 0..5 {
        let user_code = new_user_code();
        let inserted = sqlx::query(
            "INSERT INTO device_codes (id, device_code_hash, user_code_hash, client_name, \
             organization, client_ip, status, interval_secs, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9)",
        )
        .bind(new_id())
        .bind(secret_hash(&device_code))
        .bind(secret_hash(&user_code))
        .bind(&client_name)
        .bind(organization.as_deref())
        .bind(client_ip.map(|ip| ip.to_string()))
        .bind(POLL_INTERVAL_SECS)
        .bind(now)
        .bind(now + CODE_TTL_SECS * 1000)
        .execute(db)
        .await;
        match inserted {
            Ok(_) => {
                let base = public_url.trim_end_matches('/');
                let shown = format_user_code(&user_code);
                let complete = match &organization {
                    Some(org) => format!("{base}/login/sso?org={org}&next=/device/{shown}"),
                    None => format!("{base}/device/{shown}"),
                };
                return Ok(CodeResponse {
                    device_code,
                    user_code: shown,
                    verification_uri: format!("{base}/device"),
                    verification_uri_complete: complete,
                    interval: POLL_INTERVAL_SECS,
                    expires_in: CODE_TTL_SECS,
                });
            }
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Internal("could not draw an unused user code".into()))
}

/// The pending, unexpired request of a typed user code, for the approval page.
pub async fn pending(db: &AnyPool, typed: &str) -> Result<Pending> {
    let not_valid = || {
        Error::NotFound(
            "this code is not valid: it may be mistyped, expired or already used".into(),
        )
    };
    let code = normalize_user_code(typed).ok_or_else(not_valid)?;
    let row = sqlx::query(
        "SELECT client_name, organization, client_ip, created_at FROM device_codes \
         WHERE user_code_hash = $1 AND status = 'pending' AND expires_at > $2",
    )
    .bind(secret_hash(&code))
    .bind(now_ms())
    .fetch_optional(db)
    .await?
    .ok_or_else(not_valid)?;
    Ok(Pending {
        user_code: format_user_code(&code),
        client_name: row.try_get("client_name")?,
        organization: row.try_get("organization")?,
        client_ip: row.try_get("client_ip")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Records `approver`'s decision on a typed user code; only a pending, unexpired code can be
/// decided, once.
pub async fn decide(
    db: &AnyPool,
    typed: &str,
    approver: &SessionClaims,
    decision: Decision,
) -> Result<()> {
    let code = normalize_user_code(typed).ok_or_else(|| {
        Error::NotFound(
            "this code is not valid: it may be mistyped, expired or already used".into(),
        )
    })?;
    let status = match decision {
        Decision::Approve => "approved",
        Decision::Deny => "denied",
    };
    let now = now_ms();
    let updated = sqlx::query(
        "UPDATE device_codes SET status = $1, user_id = $2, session_org = $3, decided_at = $4 \
         WHERE user_code_hash = $5 AND status = 'pending' AND expires_at > $4",
    )
    .bind(status)
    .bind(&approver.sub)
    .bind(approver.org.as_deref())
    .bind(now)
    .bind(secret_hash(&code))
    .execute(db)
    .await?;
    if updated.rows_affected() == 1 {
        Ok(())
    } else {
        Err(Error::NotFound(
            "this code is not valid: it may be mistyped, expired or already used".into(),
        ))
    }
}

/// One poll of the terminal: the session once approved (exactly once), else why not yet.
/// Returns the user id with the tokens, for the audit log.
pub async fn poll(
    db: &AnyPool,
    sessions: &Sessions,
    device_code: &str,
) -> Result<(String, Tokens)> {
    let row = sqlx::query(
        "SELECT id, status, user_id, session_org, interval_secs, last_polled_at, expires_at \
         FROM device_codes WHERE device_code_hash = $1",
    )
    .bind(secret_hash(device_code))
    .fetch_optional(db)
    .await?
    .ok_or(Error::Grant(GrantError::InvalidGrant))?;
    let id: String = row.try_get("id")?;
    let status: String = row.try_get("status")?;
    let interval: i64 = row.try_get("interval_secs")?;
    let last: Option<i64> = row.try_get("last_polled_at")?;
    let expires_at: i64 = row.try_get("expires_at")?;
    let now = now_ms();
    if status == "used" {
        return Err(Error::Grant(GrantError::InvalidGrant));
    }
    if expires_at <= now {
        return Err(Error::Grant(GrantError::ExpiredToken));
    }
    // Only a poll at least an interval after the last one counts; of two racing polls, one wins.
    let polled = sqlx::query(
        "UPDATE device_codes SET last_polled_at = $1 WHERE id = $2 \
         AND (last_polled_at IS NULL OR last_polled_at <= $3)",
    )
    .bind(now)
    .bind(&id)
    .bind(now - interval * 1000)
    .execute(db)
    .await?;
    if last.is_some() && polled.rows_affected() != 1 {
        let slower = interval + SLOW_DOWN_STEP_SECS;
        sqlx::query(
            "UPDATE device_codes SET interval_secs = $1, last_polled_at = $2 WHERE id = $3",
        )
        .bind(slower)
        .bind(now)
        .bind(&id)
        .execute(db)
        .await?;
        return Err(Error::Grant(GrantError::SlowDown(slower)));
    }
    match status.as_str() {
        "pending" => Err(Error::Grant(GrantError::AuthorizationPending)),
        "denied" => Err(Error::Grant(GrantError::AccessDenied)),
        "approved" => {
            let used = sqlx::query(
                "UPDATE device_codes SET status = 'used' WHERE id = $1 AND status = 'approved'",
            )
            .bind(&id)
            .execute(db)
            .await?;
            if used.rows_affected() != 1 {
                return Err(Error::Grant(GrantError::InvalidGrant));
            }
            let user_id: String = row
                .try_get::<Option<String>, _>("user_id")?
                .ok_or_else(|| Error::Internal("an approved device code names no user".into()))?;
            let org: Option<String> = row.try_get("session_org")?;
            let tokens =
                accounts::issue_device_session(db, sessions, &user_id, org.as_deref()).await?;
            Ok((user_id, tokens))
        }
        other => Err(Error::Internal(format!(
            "device code in unknown state {other:?}"
        ))),
    }
}

/// Look-ups of user codes allowed per person: a burst, then one more per this period.
pub const USER_CODE_TRIES_BURST: u32 = 10;
/// The period that gives a person one more user-code look-up.
pub const USER_CODE_TRY_PERIOD: Duration = Duration::from_secs(60);
/// Code pairs a client address may ask for per minute (each writes a row).
pub const CODES_PER_IP_PER_MINUTE: u32 = 20;
/// Polls a client address may make per minute, whatever the device codes (a poll is a database
/// read and an audit event; a terminal polls about 12 times a minute, so this leaves room for
/// ten behind one address).
pub const POLLS_PER_IP_PER_MINUTE: u32 = 120;

/// Rate limits of the device flow: user-code look-ups (brute force) per person and per address,
/// and code requests per address. In memory, per replica: with N replicas an attacker gets N
/// times the tries, still far from the 2^34 codes within a code's 10 minutes.
pub struct DeviceLimiter {
    lookups_by_user: DefaultKeyedRateLimiter<String>,
    lookups_by_ip: DefaultKeyedRateLimiter<IpAddr>,
    codes_by_ip: DefaultKeyedRateLimiter<IpAddr>,
    polls_by_ip: DefaultKeyedRateLimiter<IpAddr>,
}

impl std::fmt::Debug for DeviceLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceLimiter")
            .field("users", &self.lookups_by_user.len())
            .finish()
    }
}

impl Default for DeviceLimiter {
    fn default() -> Self {
        let burst = NonZeroU32::new(USER_CODE_TRIES_BURST).unwrap_or(NonZeroU32::MIN);
        let per_user = Quota::with_period(USER_CODE_TRY_PERIOD)
            .unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN))
            .allow_burst(burst);
        let per_ip = Quota::per_minute(burst.saturating_mul(NonZeroU32::MIN.saturating_add(2)));
        let codes =
            Quota::per_minute(NonZeroU32::new(CODES_PER_IP_PER_MINUTE).unwrap_or(NonZeroU32::MIN));
        let polls =
            Quota::per_minute(NonZeroU32::new(POLLS_PER_IP_PER_MINUTE).unwrap_or(NonZeroU32::MIN));
        DeviceLimiter {
            lookups_by_user: RateLimiter::keyed(per_user),
            lookups_by_ip: RateLimiter::keyed(per_ip),
            codes_by_ip: RateLimiter::keyed(codes),
            polls_by_ip: RateLimiter::keyed(polls),
        }
    }
}

fn wait(n: governor::NotUntil<governor::clock::QuantaInstant>) -> u64 {
    n.wait_time_from(DefaultClock::default().now())
        .as_secs()
        .max(1)
}

impl DeviceLimiter {
    /// Takes one user-code look-up (showing or deciding a code) by `user_id` from `ip`, or says
    /// how many seconds to wait.
    pub fn check_lookup(&self, user_id: &str, ip: Option<IpAddr>) -> Result<(), u64> {
        if self.lookups_by_user.len() >= crate::sso::limiter::MAX_KEYS {
            self.lookups_by_user.retain_recent();
            self.lookups_by_ip.retain_recent();
        }
        if let Some(ip) = ip {
            self.lookups_by_ip.check_key(&ip).map_err(wait)?;
        }
        self.lookups_by_user
            .check_key(&user_id.to_string())
            .map_err(wait)
    }

    /// Takes one code request from `ip`, or says how many seconds to wait.
    pub fn check_code(&self, ip: Option<IpAddr>) -> Result<(), u64> {
        let Some(ip) = ip else { return Ok(()) };
        if self.codes_by_ip.len() >= crate::sso::limiter::MAX_KEYS {
            self.codes_by_ip.retain_recent();
        }
        self.codes_by_ip.check_key(&ip).map_err(wait)
    }

    /// Takes one poll from `ip`, or says how many seconds to wait.
    pub fn check_poll(&self, ip: Option<IpAddr>) -> Result<(), u64> {
        let Some(ip) = ip else { return Ok(()) };
        if self.polls_by_ip.len() >= crate::sso::limiter::MAX_KEYS {
            self.polls_by_ip.retain_recent();
        }
        self.polls_by_ip.check_key(&ip).map_err(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_use_the_alphabet_and_normalize() {
        for _ in 0..200 {
            let code = new_user_code();
            assert_eq!(code.len(), USER_CODE_LEN);
            assert!(
                code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)),
                "{code}"
            );
            let shown = format_user_code(&code);
            assert_eq!(shown.len(), 9);
            assert_eq!(normalize_user_code(&shown).as_deref(), Some(code.as_str()));
            assert_eq!(
                normalize_user_code(&shown.to_lowercase()).as_deref(),
                Some(code.as_str())
            );
        }
        for bad in [
            "",
            "BCDF-GHJ",
            "BCDF-GHJKL",
            "ABCD-EFGH",
            "BCDF-GHJ0",
            "BCDF_GHJK",
        ] {
            assert_eq!(normalize_user_code(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_lookup_limit_holds_after_its_burst() {
        let limiter = DeviceLimiter::default();
        for _ in 0..USER_CODE_TRIES_BURST {
            assert!(limiter.check_lookup("u1", None).is_ok());
        }
        assert!(limiter.check_lookup("u1", None).is_err());
        assert!(limiter.check_lookup("u2", None).is_ok(), "per person");
        let ip = Some(IpAddr::from([192, 0, 2, 1]));
        for _ in 0..POLLS_PER_IP_PER_MINUTE {
            assert!(limiter.check_poll(ip).is_ok());
        }
        assert!(limiter.check_poll(ip).is_err());
        assert!(
            limiter
                .check_poll(Some(IpAddr::from([192, 0, 2, 2])))
                .is_ok()
        );
    }
}
