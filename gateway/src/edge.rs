//! The checks at the edge that need no I/O: the client's address, the allow list, the data token
//! (the same JWT the data plane verifies, checked here first so refused traffic never reaches a
//! member) and its revocation.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use koru_dataplane_api::auth::{Claims, audience};
use parking_lot::Mutex;

use crate::error::GatewayError;

/// How many verified tokens a cluster's verifier remembers (so a client reusing its token costs
/// one signature check, not one per request); the memory is dropped whole when full.
const VERIFIED_CACHE: usize = 4096;
/// Clock skew allowed on `exp`, as the data plane allows.
const LEEWAY_SECS: u64 = 30;

/// The client's address: the connection's peer, unless the peer is a trusted proxy, in which
/// case the right-most X-Forwarded-For entry that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for entry in header.rsplit(',') {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip.to_canonical();
                if !is_trusted(&client) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

/// The allow list of one cluster: empty allows everyone.
pub fn parse_cidrs(cidrs: &[String]) -> (Vec<IpNet>, Vec<String>) {
    let mut nets = Vec::new();
    let mut bad = Vec::new();
    for cidr in cidrs {
        match cidr
            .parse::<IpNet>()
            .or_else(|_| cidr.parse::<IpAddr>().map(IpNet::from))
        {
            Ok(net) => nets.push(net),
            Err(_) => bad.push(cidr.clone()),
        }
    }
    (nets, bad)
}

/// Whether `ip` may reach a cluster whose allow list is `nets` (`configured` says whether the
/// list had entries at all: a list whose every entry was unreadable allows nobody).
pub fn allowed(ip: IpAddr, nets: &[IpNet], configured: bool) -> bool {
    !configured || nets.iter().any(|net| net.contains(&ip.to_canonical()))
}

/// The token of an `Authorization` value, in the forms the data plane accepts
/// ([`koru_dataplane_api::auth::token_of`]).
pub fn bearer(header: Option<&str>) -> Option<Cow<'_, str>> {
    header.and_then(koru_dataplane_api::auth::token_of)
}

/// Verifies one cluster's data tokens with its public key.
pub struct TokenVerifier {
    /// The PEM this verifier was built from (rebuilt when the route's key changes).
    pub pem: String,
    key: Result<(DecodingKey, Validation), String>,
    cluster: String,
    verified: Mutex<HashMap<String, Claims>>,
}

impl TokenVerifier {
    /// A verifier for cluster `cluster` from its PEM key (Ed25519 or RSA); an unusable key
    /// refuses every token (and says why in the answer).
    pub fn new(pem: &str, cluster: &str) -> TokenVerifier {
        let key = match DecodingKey::from_ed_pem(pem.as_bytes()) {
            Ok(key) => Ok((key, Algorithm::EdDSA)),
            Err(_) => DecodingKey::from_rsa_pem(pem.as_bytes())
                .map(|key| (key, Algorithm::RS256))
                .map_err(|e| format!("the cluster's token key is unusable ({e})")),
        }
        .map(|(key, alg)| {
            let mut validation = Validation::new(alg);
            validation.set_required_spec_claims(&["exp", "sub", "aud"]);
            // Compared below, after the cluster claim, as the data plane does.
            validation.validate_aud = false;
            validation.leeway = LEEWAY_SECS;
            (key, validation)
        });
        TokenVerifier {
            pem: pem.to_string(),
            key,
            cluster: cluster.to_string(),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// Checks the `Authorization` header: a token signed by the cluster's key, for this cluster
    /// (claim and audience), unexpired, with an id that is not in `revoked`. Scopes are left to
    /// the data plane, which verifies the token again.
    pub fn check(
        &self,
        header: Option<&str>,
        revoked: &impl Fn(&str) -> bool,
        now_secs: u64,
    ) -> Result<Claims, GatewayError> {
        let token = bearer(header).ok_or_else(|| {
            GatewayError::Unauthorized(
                "missing bearer token: send Authorization: Bearer <token> (or Basic auth with the token as the password)".into(),
            )
        })?;
        let cached = self.verified.lock().get(token.as_ref()).cloned();
        let claims = match cached {
            Some(claims) if claims.exp + LEEWAY_SECS > now_secs => claims,
            _ => {
                let claims = self.verify(&token)?;
                let mut verified = self.verified.lock();
                if verified.len() >= VERIFIED_CACHE {
                    verified.clear();
                }
                verified.insert(token.into_owned(), claims.clone());
                claims
            }
        };
        if revoked(&claims.jti) {
            return Err(GatewayError::Revoked);
        }
        Ok(claims)
    }

    /// The signature and claim checks, uncached.
    fn verify(&self, token: &str) -> Result<Claims, GatewayError> {
        let (key, validation) = self
            .key
            .as_ref()
            .map_err(|e| GatewayError::Unauthorized(e.clone()))?;
        let claims = jsonwebtoken::decode::<Claims>(token, key, validation)
            .map_err(|e| GatewayError::Unauthorized(format!("invalid token: {e}")))?
            .claims;
        if claims.cluster != self.cluster {
            return Err(GatewayError::WrongCluster(claims.cluster));
        }
        if claims.aud != audience(&self.cluster) {
            return Err(GatewayError::Unauthorized(format!(
                "invalid token: the audience is {:?}, not {:?}",
                claims.aud,
                audience(&self.cluster)
            )));
        }
        if claims.jti.is_empty() {
            return Err(GatewayError::Unauthorized(
                "invalid token: it has no id (jti)".into(),
            ));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|s| s.parse().expect("cidr")).collect()
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let peer: IpAddr = "10.1.2.3".parse().expect("ip");
        let spoof = Some("1.1.1.1, 203.0.113.9");
        assert_eq!(
            client_ip(peer, spoof, &[]),
            peer,
            "untrusted peer: header ignored"
        );
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(peer, spoof, &trusted),
            "203.0.113.9".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(
            client_ip(peer, Some("203.0.113.9, 10.9.9.9"), &trusted),
            "203.0.113.9".parse::<IpAddr>().expect("ip"),
            "trusted hops are skipped"
        );
        assert_eq!(client_ip(peer, Some("garbage"), &trusted), peer);
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
        assert_eq!(
            client_ip(mapped, None, &[]),
            "192.0.2.1".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn allow_lists_match_cidrs_and_an_unreadable_list_allows_nobody() {
        let (list, bad) = parse_cidrs(&[
            "10.0.0.0/8".into(),
            "2001:db8::/32".into(),
            "203.0.113.7".into(),
        ]);
        assert!(bad.is_empty());
        for ok in ["10.9.8.7", "2001:db8::1", "203.0.113.7", "::ffff:10.0.0.1"] {
            assert!(allowed(ok.parse().expect("ip"), &list, true), "{ok}");
        }
        for no in ["11.0.0.1", "203.0.113.8", "::1"] {
            assert!(!allowed(no.parse().expect("ip"), &list, true), "{no}");
        }
        assert!(allowed("8.8.8.8".parse().expect("ip"), &[], false));
        let (list, bad) = parse_cidrs(&["nonsense".into()]);
        assert_eq!(bad.len(), 1);
        assert!(!allowed("8.8.8.8".parse().expect("ip"), &list, true));
    }

    #[test]
    fn tokens_come_as_bearer_or_basic_password() {
        assert_eq!(bearer(Some("Bearer abc")).as_deref(), Some("abc"));
        assert_eq!(bearer(Some("Basic dG9rZW46YWJj")).as_deref(), Some("abc"));
        for bad in [
            None,
            Some("Bearer "),
            Some("Basic !!!"),
            Some("Basic dG9rZW4="),
            Some("Digest x"),
        ] {
            assert_eq!(bearer(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_unusable_key_refuses_every_token() {
        let v = TokenVerifier::new("not a key", "c1");
        let none = |_: &str| false;
        assert!(
            matches!(v.check(Some("Bearer a.b.c"), &none, 0), Err(GatewayError::Unauthorized(m)) if m.contains("unusable"))
        );
        assert!(
            matches!(v.check(None, &none, 0), Err(GatewayError::Unauthorized(m)) if m.contains("missing"))
        );
    }
}
