//! Data-plane tokens as they cross the wire: the JWT claims the control plane signs and the data
//! plane checks (the checking itself, with jsonwebtoken, stays in the data plane).

use std::borrow::Cow;
use std::fmt;

use base64::Engine;

use serde::{Deserialize, Serialize};

/// What a token allows, each scope including the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read keys, history, queries, views, status.
    Read,
    /// Everything `read` allows plus puts, deletes, batches and view changes.
    Write,
    /// Everything, including administrative endpoints.
    Admin,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        })
    }
}

/// Longest lifetime (`exp - iat`) of an admin-scope token, in seconds: an admin token that leaks
/// is useful for an hour at most, and the data plane refuses longer-lived ones whoever signed them.
pub const MAX_ADMIN_TTL_SECS: u64 = 3600;

/// The audience (`aud`) a data-plane token for cluster `cluster_id` carries, so a token signed for
/// any other purpose (or another cluster) by the same key is never taken for one.
pub fn audience(cluster_id: &str) -> String {
    format!("koru-dataplane:{cluster_id}")
}

/// Claims of a data-plane token, shared with the control plane that issues them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Who the token was issued to (user or API token id).
    pub sub: String,
    /// The cluster the token is valid for.
    pub cluster: String,
    /// The granted scope.
    pub scope: Scope,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issue time, seconds since the Unix epoch.
    #[serde(default)]
    pub iat: u64,
    /// The audience, [`audience`] of the cluster: required.
    pub aud: String,
    /// The token's id, by which the control plane revokes it: required.
    pub jti: String,
}

/// The token an `Authorization` header value carries: `Bearer <token>`, or `Basic` auth whose
/// password is the token (the user name is ignored), so clients that only take a URL can send
/// `http://token:<token>@host` (the published `kdelta` CLI among them). None when there is none.
/// The data plane and the gateway read tokens with it, so both accept the same forms.
pub fn token_of(header: &str) -> Option<Cow<'_, str>> {
    let token = if let Some(t) = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
    {
        Cow::Borrowed(t.trim())
    } else {
        let encoded = header
            .strip_prefix("Basic ")
            .or_else(|| header.strip_prefix("basic "))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())?;
        let (_, password) = decoded.split_once(':')?;
        Cow::Owned(password.trim().to_string())
    };
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_read_and_write_as_the_control_plane_signs_them() {
        let json = r#"{"sub":"user:u1","cluster":"c1","scope":"write","exp":20,"iat":10,"aud":"koru-dataplane:c1","jti":"t1"}"#;
        let claims: Claims = serde_json::from_str(json).unwrap();
        assert_eq!(claims.scope, Scope::Write);
        assert_eq!(claims.aud, audience("c1"));
        assert_eq!(serde_json::to_string(&claims).unwrap(), json);
        let no_iat: Claims = serde_json::from_str(
            r#"{"sub":"s","cluster":"c1","scope":"admin","exp":1,"aud":"a","jti":"j"}"#,
        )
        .unwrap();
        assert_eq!(no_iat.iat, 0);
    }

    #[test]
    fn scopes_order_and_print_as_their_names() {
        assert!(Scope::Read < Scope::Write && Scope::Write < Scope::Admin);
        assert_eq!(Scope::Admin.to_string(), "admin");
        assert_eq!(serde_json::to_string(&Scope::Read).unwrap(), r#""read""#);
    }
}
