//! The control plane's side of the gateway (`koru-gateway`): the internal sync and wake calls of
//! the `koru-gateway-api` contract, the rate shares between gateway replicas, and the endpoints
//! users are shown when clusters are reached through a gateway.
//!
//! The gateway authenticates with a shared secret (bearer), compared in constant time; without a
//! configured secret the internal API answers 404 as if it did not exist.

pub mod child;
pub mod reports;
pub mod routes;
pub mod shares;

use koru_gateway_api::{RouteTable, SyncRequest};

use crate::db::now_ms;
use crate::error::{Error, Result};
use crate::state::AppState;

/// The longest gateway id accepted (a pod name is at most 253 characters).
pub const MAX_GATEWAY_ID: usize = 253;

/// How users reach clusters through the gateway, if one is in front of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Routing {
    /// No gateway: clusters are shown at their data planes' own endpoints.
    #[default]
    Direct,
    /// By path prefix: `<base>/c/<org>/<cluster>` (`dev`, `serve --gateway-url`).
    Path(String),
    /// By host name: `https://<cluster>.<org>.<domain>` (`serve --gateway-domain`).
    Host(String),
}

impl Routing {
    /// Where users reach cluster `name` of organization `org_slug`, whose data plane is at
    /// `direct` (none until it has been provisioned: then none either way).
    pub fn endpoint(&self, org_slug: &str, name: &str, direct: Option<&str>) -> Option<String> {
        let direct = direct?;
        Some(match self {
            Routing::Direct => direct.to_string(),
            Routing::Path(base) => format!("{}/c/{org_slug}/{name}", base.trim_end_matches('/')),
            Routing::Host(domain) => format!("https://{name}.{org_slug}.{domain}"),
        })
    }
}

/// The gateway settings of a control plane.
#[derive(Debug, Clone, Default)]
pub struct GatewayConfig {
    /// The shared secret the gateway presents; `None`: the internal API is off.
    pub secret: Option<String>,
    /// How clusters are shown to users.
    pub routing: Routing,
}

/// Checks the gateway's bearer against the configured secret, in constant time. No secret
/// configured, or a wrong one, is "not found" or "unauthorized" respectively.
pub fn authorize(config: &GatewayConfig, authorization: Option<&str>) -> Result<()> {
    use subtle::ConstantTimeEq;
    let Some(secret) = config.secret.as_deref().filter(|s| !s.is_empty()) else {
        return Err(Error::NotFound("no such route".into()));
    };
    let presented = authorization
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("");
    // ct_eq compares lengths first (that leaks only the length, which is not secret).
    if bool::from(presented.as_bytes().ct_eq(secret.as_bytes())) {
        Ok(())
    } else {
        Err(Error::Unauthorized(
            "the gateway secret is missing or wrong".into(),
        ))
    }
}

/// One sync: records the replica's report and answers the route table with its shares.
pub async fn sync(state: &AppState, req: &SyncRequest) -> Result<RouteTable> {
    let id = req.gateway_id.as_str();
    if id.is_empty()
        || id.len() > MAX_GATEWAY_ID
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
    {
        return Err(Error::BadRequest(format!(
            "gateway_id must be 1 to {MAX_GATEWAY_ID} letters, digits and -_.:"
        )));
    }
    let now = now_ms();
    reports::record(&state.db, id, &req.activity, now).await?;
    routes::table(state, id, now).await
}

/// Reads the gateway secret from `path`, generating a random one there (mode 0600) when missing
/// (dev only).
pub fn load_or_generate_secret(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(secret.as_bytes())?;
    file.sync_all()?;
    Ok(secret)
}

/// Reads the gateway secret from a file (`serve --gateway-secret-file`).
pub fn read_secret(path: &std::path::Path) -> std::io::Result<String> {
    let s = std::fs::read_to_string(path)?;
    let s = s.trim();
    if s.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the file is empty",
        ));
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_the_routing() {
        let direct = Some("http://127.0.0.1:40001");
        assert_eq!(
            Routing::Direct
                .endpoint("acme", "orders", direct)
                .as_deref(),
            direct
        );
        assert_eq!(
            Routing::Path("http://127.0.0.1:8081/".into())
                .endpoint("acme", "orders", direct)
                .as_deref(),
            Some("http://127.0.0.1:8081/c/acme/orders")
        );
        assert_eq!(
            Routing::Host("db.example.com".into())
                .endpoint("acme", "orders", direct)
                .as_deref(),
            Some("https://orders.acme.db.example.com")
        );
        assert_eq!(
            Routing::Path("http://g".into()).endpoint("acme", "orders", None),
            None
        );
    }

    #[test]
    fn the_secret_is_required_and_compared_whole() {
        let off = GatewayConfig::default();
        assert!(matches!(
            authorize(&off, Some("Bearer x")),
            Err(Error::NotFound(_))
        ));
        let on = GatewayConfig {
            secret: Some("s3cret".into()),
            routing: Routing::Direct,
        };
        assert!(authorize(&on, Some("Bearer s3cret")).is_ok());
        for bad in [
            None,
            Some(""),
            Some("Bearer "),
            Some("Bearer s3cre"),
            Some("Bearer s3cret2"),
            Some("s3cret"),
            Some("Basic s3cret"),
        ] {
            assert!(
                matches!(authorize(&on, bad), Err(Error::Unauthorized(_))),
                "{bad:?}"
            );
        }
    }
}
