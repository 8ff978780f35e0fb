//! Which cluster a request is for (by host name or path prefix), which member routes are never
//! forwarded, and which requests are writes: pure functions of the request line.

use hyper::Method;

/// The path prefix of path routing: `/c/<org_slug>/<cluster>/...`.
pub const PATH_PREFIX: &str = "/c/";

/// The first path segments the gateway never forwards: the member routes (`/raft/*`), the
/// operator's administrative routes (`/admin/*`) and the members' own metrics.
pub const NEVER_FORWARDED: [&str; 3] = ["raft", "admin", "metrics"];

/// The cluster a request names and the path to forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The organization's slug.
    pub org: String,
    /// The cluster's name.
    pub cluster: String,
    /// Path and query to send to the member (the path prefix stripped).
    pub path_and_query: String,
}

/// Resolves a request: the path prefix `/c/<org>/<cluster>` wins (and is stripped); otherwise,
/// with a routing `domain`, a host `<cluster>.<org>.<domain>` names the cluster.
pub fn resolve(host: Option<&str>, domain: Option<&str>, path_and_query: &str) -> Option<Resolved> {
    if let Some(rest) = path_and_query.strip_prefix(PATH_PREFIX) {
        let (org, rest) = rest.split_once('/').unwrap_or((rest, ""));
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (cluster, tail) = rest.split_at(end);
        let (org, cluster) = (org.trim(), cluster.trim());
        if org.is_empty() || cluster.is_empty() || org.contains('?') {
            return None;
        }
        let path_and_query = if tail.starts_with('/') {
            tail.to_string()
        } else {
            format!("/{tail}")
        };
        return Some(Resolved {
            org: org.to_ascii_lowercase(),
            cluster: cluster.to_ascii_lowercase(),
            path_and_query,
        });
    }
    let domain = domain?;
    let host = host?.trim().trim_end_matches('.').to_ascii_lowercase();
    let host = strip_port(&host);
    let labels = host.strip_suffix(domain)?.strip_suffix('.')?;
    let (cluster, org) = labels.split_once('.')?;
    if cluster.is_empty() || org.is_empty() || org.contains('.') {
        return None;
    }
    Some(Resolved {
        org: org.to_string(),
        cluster: cluster.to_string(),
        path_and_query: if path_and_query.is_empty() {
            "/".into()
        } else {
            path_and_query.to_string()
        },
    })
}

/// A host header without its port (`[::1]:80` keeps its brackets).
fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => host,
    }
}

/// Whether a path reaches a route the gateway never forwards. The path is percent-decoded and
/// its empty and dot segments dropped first, so `//raft`, `/./admin` or `/%72aft` do not slip by.
pub fn never_forwarded(path_and_query: &str) -> bool {
    let path = path_and_query
        .split_once('?')
        .map_or(path_and_query, |(p, _)| p);
    let decoded = percent_decode(path);
    let first = decoded
        .split('/')
        .find(|s| !s.is_empty() && *s != "." && *s != "..");
    first.is_some_and(|s| {
        NEVER_FORWARDED
            .iter()
            .any(|never| s.eq_ignore_ascii_case(never))
    })
}

/// `%XX` sequences decoded (repeatedly, so double encoding is seen through); invalid ones kept.
fn percent_decode(path: &str) -> String {
    let mut current = path.to_string();
    for _ in 0..3 {
        let bytes = current.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%'
                && i + 2 < bytes.len()
                && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
            {
                out.push(h * 16 + l);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        let next = String::from_utf8_lossy(&out).into_owned();
        if next == current {
            break;
        }
        current = next;
    }
    current
}

/// The value of one hexadecimal digit.
fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The POSTs that only read (the data plane's read-scope POST routes).
fn is_read_post(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    matches!(segments[..], ["", "api", "v1", "batch", "get"])
        || matches!(segments[..], ["", "api", "v1", ns, "query"] if ns != "batch" && ns != "views")
}

/// Whether a request writes (goes to the leader): every method but GET/HEAD/OPTIONS, except the
/// read-only POSTs (`/api/v1/batch/get`, `/api/v1/<namespace>/query`).
pub fn is_write(method: &Method, path_and_query: &str) -> bool {
    if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
        return false;
    }
    let path = path_and_query
        .split_once('?')
        .map_or(path_and_query, |(p, _)| p);
    !(method == Method::POST && is_read_post(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(org: &str, cluster: &str, path: &str) -> Option<Resolved> {
        Some(Resolved {
            org: org.into(),
            cluster: cluster.into(),
            path_and_query: path.into(),
        })
    }

    #[test]
    fn the_path_prefix_names_the_cluster_and_is_stripped() {
        assert_eq!(
            resolve(None, None, "/c/acme/orders/api/v1/ns/k?x=1"),
            r("acme", "orders", "/api/v1/ns/k?x=1")
        );
        assert_eq!(
            resolve(None, None, "/c/acme/orders"),
            r("acme", "orders", "/")
        );
        assert_eq!(
            resolve(None, None, "/c/acme/orders?x=1"),
            r("acme", "orders", "/?x=1")
        );
        assert_eq!(
            resolve(
                Some("orders.acme.koru.dev"),
                Some("koru.dev"),
                "/c/other/c2/x"
            ),
            r("other", "c2", "/x")
        );
        assert_eq!(resolve(None, None, "/c/acme"), None);
        assert_eq!(resolve(None, None, "/c//x/y"), None);
        assert_eq!(resolve(None, None, "/api/v1/ns/k"), None);
    }

    #[test]
    fn the_host_names_the_cluster_under_the_domain() {
        let d = Some("koru.dev");
        assert_eq!(
            resolve(Some("orders.acme.koru.dev"), d, "/api/v1/status"),
            r("acme", "orders", "/api/v1/status")
        );
        assert_eq!(
            resolve(Some("Orders.ACME.koru.dev:8443"), d, "/"),
            r("acme", "orders", "/")
        );
        assert_eq!(
            resolve(Some("orders.acme.koru.dev"), None, "/"),
            None,
            "no domain, no host routing"
        );
        assert_eq!(resolve(Some("acme.koru.dev"), d, "/"), None);
        assert_eq!(resolve(Some("a.b.acme.koru.dev"), d, "/"), None);
        assert_eq!(resolve(Some("orders.acme.evilkoru.dev"), d, "/"), None);
        assert_eq!(resolve(None, d, "/"), None);
    }

    #[test]
    fn member_and_admin_routes_are_never_forwarded_however_spelt() {
        for path in [
            "/raft/append",
            "/admin/backups",
            "//raft/status",
            "/./admin/rewind",
            "/%72aft/vote",
            "/%2572aft/vote",
            "/RAFT/x",
            "/metrics",
            "/admin?x",
        ] {
            assert!(never_forwarded(path), "{path}");
        }
        for path in [
            "/api/v1/raft/admin",
            "/healthz",
            "/api/v1/status",
            "/rafting",
        ] {
            assert!(!never_forwarded(path), "{path}");
        }
    }

    #[test]
    fn writes_are_everything_but_reads_and_read_posts() {
        assert!(!is_write(&Method::GET, "/api/v1/ns/k"));
        assert!(is_write(&Method::PUT, "/api/v1/ns/k"));
        assert!(is_write(&Method::DELETE, "/api/v1/ns/k"));
        assert!(is_write(&Method::POST, "/api/v1/batch"));
        assert!(!is_write(&Method::POST, "/api/v1/batch/get"));
        assert!(!is_write(&Method::POST, "/api/v1/users/query?x"));
        assert!(is_write(&Method::POST, "/api/v1/views"));
        assert!(is_write(&Method::POST, "/api/v1/views/v/refresh"));
    }
}
