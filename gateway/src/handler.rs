//! One public request from start to end: find the cluster, run the edge checks in order (allow
//! list, forbidden routes, size, token, revocation, rate), hold it while the cluster wakes,
//! forward it, and record it (metrics, activity, access log).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, HOST, HeaderValue};
use hyper::{Request, Response};
use koru_gateway_api::SLOW_REQUEST_MS;
use tracing::Instrument;

use crate::Gateway;
use crate::body::Body;
use crate::edge::{allowed, client_ip};
use crate::error::GatewayError;
use crate::metrics::{ClusterLabel, CodeLabels, ReasonLabels};
use crate::proxy::{Outgoing, forward, forwarded_headers};
use crate::routing::{is_write, never_forwarded, resolve};
use crate::table::Entry;

/// The request id header, taken from the client when it sends a sane one.
const REQUEST_ID: &str = "x-request-id";

/// Answers one public request (never fails: every error is an answer).
pub async fn handle(
    gateway: Arc<Gateway>,
    request: Request<Incoming>,
    peer: SocketAddr,
    tls: bool,
) -> Response<Body> {
    let start = Instant::now();
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map_or_else(new_request_id, str::to_string);
    let peer_trusted = gateway
        .config
        .trusted_proxies
        .iter()
        .any(|net| net.contains(&peer.ip().to_canonical()));
    let client = client_ip(
        peer.ip(),
        request
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok()),
        &gateway.config.trusted_proxies,
    );
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let span = tracing::info_span!(
        "gateway_request",
        otel.kind = "server",
        otel.name = %format!("{method} gateway"),
        request_id = %request_id,
        cluster = tracing::field::Empty,
    );
    koru_telemetry::context::join(&span, request.headers());
    let (cluster, result) = async {
        let found = find(&gateway, &request).await;
        let cluster = found.as_ref().ok().map(|(e, _)| e.route.id.clone());
        if let Some(id) = &cluster {
            tracing::Span::current().record("cluster", id.as_str());
        }
        let result = match found {
            Ok((entry, path_and_query)) => {
                let proto = if tls { "https" } else { "http" };
                serve(
                    &gateway,
                    entry,
                    request,
                    path_and_query,
                    client,
                    peer.ip().to_canonical(),
                    peer_trusted,
                    proto,
                    &request_id,
                )
                .await
            }
            Err(e) => Err(e),
        };
        (cluster, result)
    }
    .instrument(span.clone())
    .await;
    let mut response = match result {
        Ok(response) => response,
        Err(e) => {
            if let (Some(id), Some(reason)) = (&cluster, e.refusal_reason()) {
                gateway
                    .metrics
                    .refused
                    .get_or_create(&ReasonLabels {
                        cluster: id.clone(),
                        reason,
                    })
                    .inc();
            }
            e.into_response()
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    let elapsed = start.elapsed();
    let status = response.status().as_u16();
    if let Some(id) = &cluster {
        gateway
            .metrics
            .requests
            .get_or_create(&CodeLabels {
                cluster: id.clone(),
                code: status,
            })
            .inc();
        gateway
            .metrics
            .duration
            .get_or_create(&ClusterLabel {
                cluster: id.clone(),
            })
            .observe(elapsed.as_secs_f64());
        if let Some(entry) = gateway.routes.snapshot().by_id(id) {
            entry.live.activity.record(
                status,
                elapsed.as_millis() as u64 > SLOW_REQUEST_MS,
                status == 429,
            );
        }
    }
    span.in_scope(|| {
        tracing::info!(
            target: "koru_gateway::access",
            cluster = cluster.as_deref().unwrap_or(""),
            %method,
            path = %path,
            status,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            client_ip = %client,
            request_id = %request_id,
            "request"
        );
    });
    response
}

/// A request id unique across replicas and restarts: a random per-process prefix and a counter
/// (no random draw per request).
fn new_request_id() -> String {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..16].to_string());
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{n:x}")
}

/// The cluster a request is for and the path to forward, or 404 (a name the table lacks is
/// looked up again in the next table, which may hold a cluster created since the last sync).
async fn find(
    gateway: &Gateway,
    request: &Request<Incoming>,
) -> Result<(Arc<Entry>, String), GatewayError> {
    let asked = Instant::now();
    let host = request
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()));
    let path_and_query = request.uri().path_and_query().map_or("/", |p| p.as_str());
    if !gateway.routes.loaded() {
        return Err(GatewayError::NotReady);
    }
    let resolved = resolve(host, gateway.config.domain.as_deref(), path_and_query)
        .ok_or(GatewayError::UnknownCluster)?;
    let lookup = || {
        gateway
            .routes
            .snapshot()
            .by_name(&resolved.org, &resolved.cluster)
    };
    let entry = match lookup() {
        Some(entry) => entry,
        None if crate::hold::next_table(gateway, asked).await => {
            lookup().ok_or(GatewayError::UnknownCluster)?
        }
        None => return Err(GatewayError::UnknownCluster),
    };
    Ok((entry, resolved.path_and_query))
}

/// The checks, the hold and the forwarding, for a request whose cluster is known.
#[allow(clippy::too_many_arguments)] // one request's facts, gathered by `handle`
async fn serve(
    gateway: &Gateway,
    entry: Arc<Entry>,
    request: Request<Incoming>,
    path_and_query: String,
    client: std::net::IpAddr,
    peer: std::net::IpAddr,
    peer_trusted: bool,
    proto: &str,
    request_id: &str,
) -> Result<Response<Body>, GatewayError> {
    let route = &entry.route;
    if !allowed(client, &entry.allow, !route.allowed_cidrs.is_empty()) {
        return Err(GatewayError::AddressNotAllowed(client.to_string()));
    }
    if never_forwarded(&path_and_query) {
        return Err(GatewayError::ForbiddenRoute);
    }
    let limit = route.max_request_bytes;
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if limit > 0 && declared.is_some_and(|n| n > limit) {
        return Err(GatewayError::TooLarge(limit));
    }
    let verifier = entry.live.verifier.read().clone();
    if let Some(verifier) = verifier {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        verifier.check(
            request
                .headers()
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
            &|jti| entry.revoked.contains(jti),
            now,
        )?;
    }
    entry
        .live
        .limiter
        .check()
        .map_err(GatewayError::RateLimited)?;
    let write = is_write(request.method(), &path_and_query);
    let (parts, body) = request.into_parts();
    let body = read_body(body, limit).await?;
    let host = parts
        .headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()));
    let mut headers = forwarded_headers(parts.headers, peer, peer_trusted, proto, host.as_deref());
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID, v);
    }
    koru_telemetry::context::inject(&tracing::Span::current(), &mut headers);
    let outgoing = Outgoing {
        method: parts.method,
        path_and_query,
        headers,
        body,
        write,
    };
    let id = &entry.route.id;
    let deadline = Instant::now() + gateway.config.wake_deadline;
    let mut changes = gateway.routes.subscribe();
    loop {
        changes.borrow_and_update();
        crate::hold::until_serving(gateway, id).await?;
        match forward(&gateway.upstream, &gateway.routes, id, &outgoing).await {
            Err(GatewayError::Unreachable(why)) => {
                // Reaching no member is what a cluster suspended or moved since the last sync
                // looks like: with a fresher table or health the request is held or sent again.
                if !crate::hold::fresher_view(gateway, &mut changes, deadline).await {
                    return Err(GatewayError::Unreachable(why));
                }
            }
            answer => return answer,
        }
    }
}

/// The whole body, refused with 413 past `limit` bytes (0: no limit) however it is sent.
async fn read_body(body: Incoming, limit: u64) -> Result<Bytes, GatewayError> {
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    if limit == 0 {
        return body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| GatewayError::BadBody(e.to_string()));
    }
    let limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(GatewayError::TooLarge(limit)),
        Err(e) => Err(GatewayError::BadBody(e.to_string())),
    }
}
