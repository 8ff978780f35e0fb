//! Sending a checked request on to a member: writes to the leader (retried on the new leader
//! while the group elects one), reads round-robin over ready members, over pooled keep-alive
//! connections; and the header rewriting every hop needs.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use koru_gateway_api::RouteState;

use crate::body::{Body, full};
use crate::error::{GatewayError, error_code};
use crate::table::{Entry, Routes};

/// The pooled HTTP client to the members.
pub type Upstream = Client<HttpConnector, Full<Bytes>>;

/// How long a write keeps looking for a leader (an election takes a second or two).
const WRITE_RETRY_BOUND: Duration = Duration::from_secs(5);
/// The pause between two tries of a write.
const WRITE_RETRY_PAUSE: Duration = Duration::from_millis(100);
/// How long a member may take to start answering.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// Headers that belong to one connection and are never forwarded (RFC 9110 §7.6.1), besides
/// those the `Connection` header names.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

/// The client to the members: keep-alive, pooled, no Nagle delay.
pub fn upstream_client() -> Upstream {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    connector.set_keepalive(Some(Duration::from_secs(30)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE)
        .pool_timer(TokioTimer::new())
        .pool_max_idle_per_host(256)
        .build(connector)
}

/// Removes the hop-by-hop headers, those the `Connection` header lists included.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::TRANSFER_ENCODING);
}

/// The headers a member receives: the client's without hop-by-hop ones and without `Host` (the
/// member's own is set), plus `X-Forwarded-For` / `-Proto` / `-Host`. A client's own
/// `X-Forwarded-*` are kept only when it is a trusted proxy; the connection's `peer` is
/// appended to `X-Forwarded-For`.
pub fn forwarded_headers(
    mut headers: HeaderMap,
    peer: IpAddr,
    peer_trusted: bool,
    proto: &str,
    host: Option<&str>,
) -> HeaderMap {
    strip_hop_by_hop(&mut headers);
    headers.remove(header::HOST);
    headers.remove(header::CONTENT_LENGTH);
    let prior_for = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .filter(|_| peer_trusted);
    let prior_proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .filter(|_| peer_trusted);
    let forwarded_for = match prior_for {
        Some(prior) => format!("{prior}, {peer}"),
        None => peer.to_string(),
    };
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        } else {
            headers.remove(name);
        }
    };
    set("x-forwarded-for", &forwarded_for);
    set("x-forwarded-proto", prior_proto.as_deref().unwrap_or(proto));
    if let Some(host) = host {
        set("x-forwarded-host", host);
    } else {
        headers.remove("x-forwarded-host");
    }
    headers
}

/// One checked request, ready to send to any member.
pub struct Outgoing {
    /// The method.
    pub method: Method,
    /// The path and query on the member.
    pub path_and_query: String,
    /// The headers to send.
    pub headers: HeaderMap,
    /// The whole body (bounded by the tier's request size).
    pub body: Bytes,
    /// Whether it writes (leader only).
    pub write: bool,
}

impl Outgoing {
    /// The request to `member`.
    fn to(&self, member: &str) -> Result<Request<Full<Bytes>>, GatewayError> {
        let mut request = Request::builder()
            .method(self.method.clone())
            .version(Version::HTTP_11)
            .uri(format!(
                "{}{}",
                member.trim_end_matches('/'),
                self.path_and_query
            ))
            .body(Full::new(self.body.clone()))
            .map_err(|e| GatewayError::Upstream(format!("bad member URL {member}: {e}")))?;
        *request.headers_mut() = self.headers.clone();
        Ok(request)
    }
}

/// What one try at a member gave.
enum Tried {
    /// An answer to pass on.
    Answer(Response<Body>),
    /// Not taken there (no connection, or no leader): another member may take it.
    Elsewhere(String),
}

/// Sends the request: a write to the leader, retried on the new leader for a short while when
/// the member is unreachable or has no leader; a read to the next ready member, the others
/// tried in turn if it is unreachable.
pub async fn forward(
    upstream: &Upstream,
    routes: &Routes,
    cluster_id: &str,
    outgoing: &Outgoing,
) -> Result<Response<Body>, GatewayError> {
    if outgoing.write {
        let deadline = Instant::now() + WRITE_RETRY_BOUND;
        let mut last = String::new();
        loop {
            let entry = routes
                .snapshot()
                .by_id(cluster_id)
                .ok_or(GatewayError::UnknownCluster)?;
            if entry.route.state != RouteState::Running {
                // Suspended or gone since the request was let through: the handler holds it.
                return Err(GatewayError::Unreachable(format!(
                    "the cluster is {:?} now ({last})",
                    entry.route.state
                )));
            }
            if let Some(member) = write_target(&entry) {
                match try_member(upstream, &member, outgoing).await? {
                    Tried::Answer(response) => return Ok(response),
                    Tried::Elsewhere(why) => last = why,
                }
            }
            if Instant::now() + WRITE_RETRY_PAUSE > deadline {
                return Err(GatewayError::Unreachable(format!(
                    "no leader took the write within {WRITE_RETRY_BOUND:?} ({last})"
                )));
            }
            routes.poll_now.notify_one();
            tokio::time::sleep(WRITE_RETRY_PAUSE).await;
        }
    }
    let entry = routes
        .snapshot()
        .by_id(cluster_id)
        .ok_or(GatewayError::UnknownCluster)?;
    let candidates = read_targets(&entry);
    let mut last = String::from("the cluster has no members");
    for member in &candidates {
        match try_member(upstream, member, outgoing).await? {
            Tried::Answer(response) => return Ok(response),
            Tried::Elsewhere(why) => last = why,
        }
    }
    routes.poll_now.notify_one();
    Err(GatewayError::Unreachable(last))
}

/// Where a write goes: the leader, else a ready member (which forwards to its leader), else the
/// first member.
fn write_target(entry: &Entry) -> Option<String> {
    let health = entry.live.health.read();
    health
        .leader
        .clone()
        .or_else(|| health.ready.first().cloned())
        .or_else(|| entry.route.members.first().cloned())
}

/// The members a read tries, in order: the ready ones from the round-robin position (every
/// member when none is known to be ready).
fn read_targets(entry: &Entry) -> Vec<String> {
    let health = entry.live.health.read();
    let pool = if health.ready.is_empty() {
        &entry.route.members
    } else {
        &health.ready
    };
    if pool.is_empty() {
        return Vec::new();
    }
    let start = entry
        .live
        .next_read
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        % pool.len();
    pool[start..]
        .iter()
        .chain(&pool[..start])
        .cloned()
        .collect()
}

/// Sends the request to one member.
async fn try_member(
    upstream: &Upstream,
    member: &str,
    outgoing: &Outgoing,
) -> Result<Tried, GatewayError> {
    let request = outgoing.to(member)?;
    let response = match tokio::time::timeout(UPSTREAM_TIMEOUT, upstream.request(request)).await {
        Err(_) => {
            return Err(GatewayError::Upstream(format!(
                "{member} did not answer within {UPSTREAM_TIMEOUT:?}"
            )));
        }
        // Only a connection that was never made is safe to retry elsewhere: a write that
        // reached a member may have been applied.
        Ok(Err(e)) if e.is_connect() => return Ok(Tried::Elsewhere(format!("{member}: {e}"))),
        Ok(Err(e)) => return Err(GatewayError::Upstream(format!("{member}: {e}"))),
        Ok(Ok(response)) => response,
    };
    let retry_status = response.status() == StatusCode::SERVICE_UNAVAILABLE
        || response.status() == StatusCode::TEMPORARY_REDIRECT;
    if outgoing.write && retry_status {
        let (parts, body) = response.into_parts();
        let bytes = body
            .collect()
            .await
            .map_err(|e| GatewayError::Upstream(format!("{member}: {e}")))?
            .to_bytes();
        if matches!(
            error_code(&bytes).as_deref(),
            Some("no_leader" | "not_leader")
        ) {
            return Ok(Tried::Elsewhere(format!(
                "{member} has no leader or does not lead"
            )));
        }
        return Ok(Tried::Answer(Response::from_parts(parts, full(bytes))));
    }
    Ok(Tried::Answer(response_out(response)))
}

/// A member's answer as the client gets it: streamed, without hop-by-hop headers.
fn response_out(response: Response<Incoming>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, body.boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_and_forwarding_headers_come() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::HOST,
            HeaderValue::from_static("orders.acme.koru.dev"),
        );
        h.insert(
            "traceparent",
            HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        );
        h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        let client: IpAddr = "203.0.113.9".parse().expect("ip");
        let out = forwarded_headers(
            h.clone(),
            client,
            false,
            "https",
            Some("orders.acme.koru.dev"),
        );
        for gone in ["connection", "x-secret-hop", "keep-alive", "host"] {
            assert!(!out.contains_key(gone), "{gone}");
        }
        assert_eq!(
            out["x-forwarded-for"], "203.0.113.9",
            "an untrusted client's header is replaced"
        );
        assert_eq!(out["x-forwarded-proto"], "https");
        assert_eq!(out["x-forwarded-host"], "orders.acme.koru.dev");
        assert!(out.contains_key("traceparent"));
        let out = forwarded_headers(h, client, true, "http", None);
        assert_eq!(out["x-forwarded-for"], "6.6.6.6, 203.0.113.9");
    }
}
