//! TLS on the public listener with HTTP/2 (ALPN) and HTTP/1.1, the certificate swapped on disk
//! and picked up without a restart; and HTTP/2 without TLS (prior knowledge).

use std::path::Path;

use koru_testkit::ProcessSpec;

use crate::support::{Gateway, echo_member, gateway_binary, route, tls_provider, write_routes};

/// A self-signed certificate for `localhost`: (certificate PEM, key PEM).
fn certificate() -> (String, String) {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    (cert.pem(), signing_key.serialize_pem())
}

/// Writes a certificate pair as a Secret update would: each file replaced whole.
fn install(dir: &Path, (cert, key): &(String, String)) {
    for (name, text) in [("tls.key", key), ("tls.crt", cert)] {
        let tmp = dir.join(format!("{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
}

/// A client trusting only `cert`.
fn client(cert: &str, http1: bool) -> reqwest::Client {
    tls_provider();
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert.as_bytes()).unwrap()]);
    if http1 {
        builder = builder.http1_only();
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn tls_serves_http2_and_http1_and_reloads_a_swapped_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (member, _) = echo_member().await;
    let routes = dir.path().join("routes.json");
    write_routes(&routes, vec![route("secure", &[&member])]);
    let first = certificate();
    install(dir.path(), &first);
    let spec = ProcessSpec::new(gateway_binary(), koru_gateway::READY_LINE)
        .clear_koru_env()
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--routes-file")
        .arg(&routes)
        .arg("--tls-cert")
        .arg(dir.path().join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.path().join("tls.key"));
    let gw = Gateway::from_spec(spec);
    assert!(gw.url.starts_with("https://"), "{}", gw.url);
    let url = format!(
        "{}/c/acme/secure/api/v1/status",
        gw.url.replace("127.0.0.1", "localhost")
    );

    let h2 = client(&first.0, false).get(&url).send().await.unwrap();
    assert_eq!(h2.status(), 200);
    assert_eq!(h2.version(), reqwest::Version::HTTP_2);
    let h1 = client(&first.0, true).get(&url).send().await.unwrap();
    assert_eq!(h1.status(), 200);
    assert_eq!(h1.version(), reqwest::Version::HTTP_11);

    let second = certificate();
    install(dir.path(), &second);
    koru_testkit::eventually_async(15, "the new certificate is served", || async {
        client(&second.0, false)
            .get(&url)
            .send()
            .await
            .ok()
            .filter(|r| r.status() == 200)
    })
    .await;
    assert!(
        client(&first.0, false).get(&url).send().await.is_err(),
        "the old certificate is no longer served"
    );
    // A broken pair leaves the current certificate in use.
    std::fs::write(dir.path().join("tls.crt"), "not a certificate").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let still = client(&second.0, false).get(&url).send().await.unwrap();
    assert_eq!(still.status(), 200);
}

#[tokio::test]
async fn cleartext_http2_with_prior_knowledge_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let (member, _) = echo_member().await;
    let routes = dir.path().join("routes.json");
    write_routes(&routes, vec![route("plain", &[&member])]);
    let gw = Gateway::start(&routes, &[]);
    tls_provider();
    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let answer = h2c
        .get(format!("{}/api/v1/status", gw.cluster("plain")))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.version(), reqwest::Version::HTTP_2);
}
