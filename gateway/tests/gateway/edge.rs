//! Every refusal at the edge, each with its attack: allow list (and a spoofed X-Forwarded-For),
//! request size (declared and streamed), tokens (none, forged, other cluster, expired, wrong
//! audience, revoked), and the rate limit.

use std::io::{Read, Write};
use std::time::Duration;

use koru_testkit::DataPlane;

use crate::support::{Gateway, Keys, echo_member, error_code, http, route, write_routes};

#[tokio::test]
async fn the_allow_list_checks_the_socket_address_unless_a_trusted_proxy_forwards() {
    let dir = tempfile::tempdir().unwrap();
    let (member, seen) = echo_member().await;
    let routes = dir.path().join("routes.json");
    let mut closed = route("closed", &[&member]);
    closed.allowed_cidrs = vec!["10.0.0.0/8".into()];
    let mut open = route("open", &[&member]);
    open.allowed_cidrs = vec!["127.0.0.0/8".into(), "2001:db8::/32".into()];
    write_routes(&routes, vec![closed, open]);
    let gw = Gateway::start(&routes, &[]);
    let http = http();

    let refused = http
        .get(format!("{}/api/v1/status", gw.cluster("closed")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(refused).await,
        (403, "address_not_allowed".into())
    );
    // The attack: claim an allowed address in X-Forwarded-For. The peer is no trusted proxy.
    let spoofed = http
        .get(format!("{}/api/v1/status", gw.cluster("closed")))
        .header("x-forwarded-for", "10.1.2.3")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(spoofed).await,
        (403, "address_not_allowed".into())
    );
    assert!(seen.lock().is_empty());
    let allowed = http
        .get(format!("{}/api/v1/status", gw.cluster("open")))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);

    // Behind a trusted proxy (here: loopback), its X-Forwarded-For names the client.
    let behind = Gateway::start(&routes, &["--trusted-proxy", "127.0.0.1/32"]);
    let via_proxy = http
        .get(format!("{}/api/v1/status", behind.cluster("closed")))
        .header("x-forwarded-for", "10.1.2.3")
        .send()
        .await
        .unwrap();
    assert_eq!(via_proxy.status(), 200);
    assert_eq!(
        seen.lock().last().unwrap().header("x-forwarded-for"),
        Some("10.1.2.3, 127.0.0.1")
    );
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"koru_gateway_refused_total{cluster="c-closed",reason="allow_list"} 2"#),
        "{metrics}"
    );
}

/// Sends a raw HTTP/1.1 request and returns the status line.
fn raw(url: &str, request: &[u8]) -> String {
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut answer = vec![0u8; 4096];
    let n = stream.read(&mut answer).unwrap();
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn bodies_over_the_tiers_size_are_refused_whether_declared_or_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let (member, seen) = echo_member().await;
    let routes = dir.path().join("routes.json");
    let mut small = route("small", &[&member]);
    small.max_request_bytes = 100;
    write_routes(&routes, vec![small]);
    let gw = Gateway::start(&routes, &[]);
    let http = http();
    let url = format!("{}/api/v1/ns/k", gw.cluster("small"));

    let fits = http.put(&url).body(vec![b'x'; 100]).send().await.unwrap();
    assert_eq!(fits.status(), 200);
    let declared = http.put(&url).body(vec![b'x'; 101]).send().await.unwrap();
    assert_eq!(
        error_code(declared).await,
        (413, "payload_too_large".into())
    );
    // The attack: no Content-Length, a chunked body that goes on past the limit.
    let gw_url = gw.url.clone();
    let status = tokio::task::spawn_blocking(move || {
        let mut request = b"PUT /c/acme/small/api/v1/ns/k HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ncontent-type: application/json\r\n\r\n".to_vec();
        for _ in 0..5 {
            request.extend_from_slice(b"32\r\n");
            request.extend_from_slice(&[b'x'; 50]);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
        raw(&gw_url, &request)
    })
    .await
    .unwrap();
    assert!(status.contains("413"), "{status}");
    assert_eq!(
        seen.lock().len(),
        1,
        "only the request that fits reached the member"
    );
}

#[tokio::test]
async fn tokens_are_verified_at_the_edge_and_revoked_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::new(7);
    let key_file = dir.path().join("public.pem");
    std::fs::write(&key_file, &keys.public_pem).unwrap();
    // The member checks tokens too (the same key): what passes the edge, passes there.
    let member = DataPlane::start(
        &dir.path().join("data"),
        &[
            "--auth-public-key",
            key_file.to_str().unwrap(),
            "--cluster-id",
            "c-orders",
        ],
    );
    let routes = dir.path().join("routes.json");
    let mut orders = route("orders", &[&member.url]);
    orders.token_public_key_pem = keys.public_pem.clone();
    orders.revoked_token_ids = vec!["stolen".into()];
    write_routes(&routes, vec![orders]);
    let gw = Gateway::start(&routes, &[]);
    let http = http();
    let url = format!("{}/api/v1/users/a", gw.cluster("orders"));
    let put = |auth: Option<String>| {
        let mut request = http.put(&url).json(&serde_json::json!({"value": 1}));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        request.send()
    };

    let good = keys.token("c-orders", "t1", 600);
    let ok = put(Some(format!("Bearer {good}"))).await.unwrap();
    assert_eq!(ok.status(), 200, "{}", ok.text().await.unwrap());
    // Basic auth with the token as password, as kdelta sends it.
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("token:{good}"));
    assert_eq!(
        put(Some(format!("Basic {basic}"))).await.unwrap().status(),
        200
    );

    let forged = Keys::new(8).token("c-orders", "t2", 600);
    let cases = [
        (None, 401, "unauthorized"),
        (Some("Bearer not.a.jwt".to_string()), 401, "unauthorized"),
        (Some(format!("Bearer {forged}")), 401, "unauthorized"),
        (
            Some(format!("Bearer {}", keys.token("c-other", "t3", 600))),
            403,
            "wrong_cluster",
        ),
        (
            Some(format!("Bearer {}", keys.token("c-orders", "t4", -3600))),
            401,
            "unauthorized",
        ),
        (
            Some(format!(
                "Bearer {}",
                keys.token_with("c-orders", "koru-dataplane:c-other", "t5", 600)
            )),
            401,
            "unauthorized",
        ),
        (
            Some(format!("Bearer {}", keys.token("c-orders", "stolen", 600))),
            401,
            "token_revoked",
        ),
    ];
    for (auth, status, code) in cases {
        let answer = put(auth.clone()).await.unwrap();
        assert_eq!(error_code(answer).await, (status, code.into()), "{auth:?}");
    }
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"koru_gateway_refused_total{cluster="c-orders",reason="token"} 6"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"koru_gateway_refused_total{cluster="c-orders",reason="revoked"} 1"#),
        "{metrics}"
    );

    // Revoking a token already used (and cached as verified) takes effect with the next table.
    let mut orders = route("orders", &[&member.url]);
    orders.token_public_key_pem = keys.public_pem.clone();
    orders.revoked_token_ids = vec!["stolen".into(), "t1".into()];
    write_routes(&routes, vec![orders]);
    koru_testkit::eventually_async(10, "t1 is revoked", || async {
        (put(Some(format!("Bearer {good}"))).await.unwrap().status() == 401).then_some(())
    })
    .await;
}

#[tokio::test]
async fn past_its_share_of_the_rate_a_replica_answers_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let (member, _) = echo_member().await;
    let routes = dir.path().join("routes.json");
    let mut limited = route("limited", &[&member]);
    // The tier allows 10 ops/s; this replica's share is half of it.
    limited.max_ops_per_sec = 10;
    limited.ops_share = 0.5;
    write_routes(&routes, vec![limited]);
    let gw = Gateway::start(&routes, &[]);
    let http = http();
    let mut passed = 0;
    let mut throttled = None;
    for _ in 0..12 {
        let answer = http
            .get(format!("{}/api/v1/status", gw.cluster("limited")))
            .send()
            .await
            .unwrap();
        match answer.status().as_u16() {
            200 => passed += 1,
            429 => throttled = Some(answer),
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        (5..=6).contains(&passed),
        "a burst of about one second at 5 ops/s, got {passed}"
    );
    let throttled = throttled.expect("some were throttled");
    assert_eq!(throttled.headers()["retry-after"], "1");
    assert_eq!(error_code(throttled).await, (429, "rate_limited".into()));
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"koru_gateway_requests_total{cluster="c-limited",code="429"}"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"reason="rate_limit""#), "{metrics}");
}
