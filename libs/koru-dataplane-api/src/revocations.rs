//! The revocation list the control plane serves for each cluster: a JWT signed with the cluster's
//! token key whose claims name the revoked, unexpired token ids (the poller and the check stay in
//! the data plane).

use serde::{Deserialize, Serialize};

/// The audience (`aud`) of cluster `cluster_id`'s revocation list: never a token's audience, so a
/// list can never be presented as a token, nor a token as a list.
pub fn audience(cluster_id: &str) -> String {
    format!("koru-revocations:{cluster_id}")
}

/// The claims of a revocation list (a JWT signed with the cluster's token key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationList {
    /// [`audience`] of the cluster.
    pub aud: String,
    /// When the control plane made the list, seconds since the epoch; lists only move forward.
    pub iat: u64,
    /// When the list stops being accepted, seconds since the epoch.
    pub exp: u64,
    /// The revoked tokens that have not expired yet.
    pub revoked: Vec<RevokedToken>,
}

/// One revoked token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedToken {
    /// The token's id (`jti`).
    pub jti: String,
    /// The token's expiry; after it the token is refused anyway and leaves the list.
    pub exp: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_round_trips_and_never_shares_a_tokens_audience() {
        let json =
            r#"{"aud":"koru-revocations:c1","iat":5,"exp":65,"revoked":[{"jti":"t1","exp":99}]}"#;
        let list: RevocationList = serde_json::from_str(json).unwrap();
        assert_eq!(list.revoked[0].jti, "t1");
        assert_eq!(serde_json::to_string(&list).unwrap(), json);
        assert_ne!(audience("c1"), crate::auth::audience("c1"));
    }
}
