//! Routing by host and by path to a real data plane, what a member receives, the routes never
//! forwarded, metrics and the access log.

use koru_testkit::DataPlane;
use serde_json::json;

use crate::support::{Gateway, echo_member, error_code, http, route, write_routes};

#[tokio::test]
async fn requests_reach_the_cluster_by_path_prefix_and_by_host_name() {
    let dir = tempfile::tempdir().unwrap();
    let member = DataPlane::start(&dir.path().join("orders"), &[]);
    let routes = dir.path().join("routes.json");
    write_routes(
        &routes,
        vec![route("orders", &[&member.url]), route("billing", &[])],
    );
    let gw = Gateway::start(&routes, &["--domain", "koru.test"]);
    let http = http();

    let put = http
        .put(format!("{}/api/v1/users/alice", gw.cluster("orders")))
        .json(&json!({"value": {"name": "Alice"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200, "{}", put.text().await.unwrap());
    // The same key read straight from the member: the prefix was stripped.
    let direct: serde_json::Value = http
        .get(format!("{}/api/v1/users/alice", member.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(direct["value"]["name"], "Alice", "{direct}");

    let by_host: serde_json::Value = http
        .get(format!("{}/api/v1/users/alice", gw.url))
        .header("host", "orders.acme.koru.test")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_host["value"]["name"], "Alice", "{by_host}");

    for (host, path) in [
        ("nothing.acme.koru.test", "/api/v1/status"),
        ("orders.acme.other.test", "/api/v1/status"),
        ("127.0.0.1", "/c/acme/nothing/api/v1/status"),
        ("127.0.0.1", "/c/other/orders/api/v1/status"),
        ("127.0.0.1", "/api/v1/status"),
    ] {
        let answer = http
            .get(format!("{}{path}", gw.url))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(answer).await,
            (404, "cluster_not_found".into()),
            "{host} {path}"
        );
    }

    let status = http
        .get(format!("{}/api/v1/status", gw.cluster("orders")))
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), 200);
    assert!(status.headers().contains_key("x-request-id"));

    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"koru_gateway_requests_total{cluster="c-orders",code="200"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("koru_gateway_request_duration_seconds_count{cluster=\"c-orders\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("koru_gateway_sync_age_seconds"),
        "{metrics}"
    );
    let ready = http
        .get(format!("{}/readyz", gw.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let public_metrics = http
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        public_metrics.status(),
        404,
        "metrics are never on the public port"
    );

    // The gateway logs a request once its answer is sent, and the harness reads the child's
    // output on a thread of its own: the line can come a moment after the answer.
    let access = koru_testkit::eventually_async(10, "the access log line", || async {
        gw.process
            .stderr()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|l| l["fields"]["path"] == "/c/acme/orders/api/v1/status")
    })
    .await;
    let fields = &access["fields"];
    assert_eq!(fields["cluster"], "c-orders");
    assert_eq!(fields["status"], 200);
    assert_eq!(fields["method"], "GET");
    assert_eq!(fields["client_ip"], "127.0.0.1");
    assert!(
        fields["duration_ms"].is_number() && fields["request_id"].is_string(),
        "{access}"
    );
}

#[tokio::test]
async fn member_and_admin_routes_are_never_forwarded() {
    let dir = tempfile::tempdir().unwrap();
    let (member, seen) = echo_member().await;
    let routes = dir.path().join("routes.json");
    write_routes(&routes, vec![route("orders", &[&member])]);
    let gw = Gateway::start(&routes, &[]);
    let http = http();
    for path in [
        "/raft/status",
        "/raft/append",
        "/admin/backups",
        "/admin/rewind",
        "//raft/vote",
        "/%72aft/status",
        "/%2561dmin/backups",
        "/./admin/members",
        "/metrics",
    ] {
        let answer = http
            .post(format!("{}{path}", gw.cluster("orders")))
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(answer).await,
            (404, "not_found".into()),
            "{path}"
        );
    }
    assert!(
        seen.lock().is_empty(),
        "nothing reached the member: {:?}",
        seen.lock()
    );
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(
            r#"koru_gateway_refused_total{cluster="c-orders",reason="forbidden_route"} 9"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_member_gets_forwarding_headers_and_the_trace_but_no_hop_by_hop_headers() {
    let dir = tempfile::tempdir().unwrap();
    let (member, seen) = echo_member().await;
    let routes = dir.path().join("routes.json");
    write_routes(&routes, vec![route("orders", &[&member])]);
    let gw = Gateway::start(&routes, &[]);
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let answer = http()
        .get(format!("{}/api/v1/ns/k?at=1", gw.cluster("orders")))
        .header("traceparent", traceparent)
        .header("tracestate", "vendor=1")
        .header("x-koru-max-staleness-ms", "500")
        .header("x-forwarded-for", "6.6.6.6")
        .header("connection", "x-private-hop")
        .header("x-private-hop", "secret")
        .header("x-request-id", "req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["x-request-id"], "req-42");
    let got = seen.lock().last().cloned().expect("the member got it");
    assert_eq!(got.line, "GET /api/v1/ns/k?at=1");
    assert_eq!(
        got.header("traceparent"),
        Some(traceparent),
        "passed through: {got:?}"
    );
    assert_eq!(got.header("tracestate"), Some("vendor=1"));
    assert_eq!(got.header("x-koru-max-staleness-ms"), Some("500"));
    assert_eq!(
        got.header("x-forwarded-for"),
        Some("127.0.0.1"),
        "a client's own is not trusted"
    );
    assert_eq!(got.header("x-forwarded-proto"), Some("http"));
    assert_eq!(got.header("x-request-id"), Some("req-42"));
    assert_eq!(got.header("x-private-hop"), None);
    assert!(
        got.header("host").is_some_and(|h| member.ends_with(h)),
        "{got:?}"
    );
}
