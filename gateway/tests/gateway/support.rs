//! Starting gateways and data planes, writing routes files, signing tokens.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use koru_dataplane_api::auth::{Claims, Scope, audience};
use koru_gateway_api::{ClusterRoute, RouteState, RouteTable};
use koru_testkit::{Process, ProcessSpec};

/// The organization every test cluster belongs to.
pub const ORG: &str = "acme";

/// The gateway binary, built once per test process.
pub fn gateway_binary() -> PathBuf {
    koru_testkit::binary("koru-gateway", "koru-gateway")
}

/// Installs the TLS provider reqwest needs (none is compiled in under the workspace's features).
pub fn tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A plain HTTP client (no redirects followed: a 307 from a follower must show).
pub fn http() -> reqwest::Client {
    tls_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A running gateway.
pub struct Gateway {
    /// Its public base URL.
    pub url: String,
    /// Its admin base URL.
    pub admin: String,
    /// The process.
    pub process: Process,
}

impl Gateway {
    /// Starts `koru-gateway --routes-file <routes> <args>` on free loopback ports.
    pub fn start(routes: &Path, args: &[&str]) -> Gateway {
        let spec = ProcessSpec::new(gateway_binary(), koru_gateway::READY_LINE)
            .clear_koru_env()
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .arg("--routes-file")
            .arg(routes)
            .args(["--log-format", "json", "--log-filter", "info"])
            .args(args);
        Gateway::from_spec(spec)
    }

    /// Starts a gateway from a full spec.
    pub fn from_spec(spec: ProcessSpec) -> Gateway {
        let process = Process::start(spec);
        let admin = process
            .stdout()
            .lines()
            .find_map(|l| l.strip_prefix(koru_gateway::ADMIN_LINE).map(str::to_string))
            .expect("the admin line");
        Gateway {
            url: process.url().to_string(),
            admin,
            process,
        }
    }

    /// The base URL of cluster `name` by path prefix.
    pub fn cluster(&self, name: &str) -> String {
        format!("{}/c/{ORG}/{name}", self.url)
    }

    /// The admin `/metrics` text.
    pub async fn metrics(&self) -> String {
        http()
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// A route for cluster `name` (id `c-<name>`) with no limits, no key, running on `members`.
pub fn route(name: &str, members: &[&str]) -> ClusterRoute {
    ClusterRoute {
        id: format!("c-{name}"),
        name: name.into(),
        org_slug: ORG.into(),
        state: RouteState::Running,
        members: members.iter().map(|m| m.to_string()).collect(),
        token_public_key_pem: String::new(),
        revoked_token_ids: vec![],
        allowed_cidrs: vec![],
        max_ops_per_sec: 0,
        max_request_bytes: 0,
        ops_share: 1.0,
    }
}

/// Writes a routes file atomically (the gateway never reads half of it).
pub fn write_routes(path: &Path, clusters: Vec<ClusterRoute>) {
    let table = RouteTable {
        clusters,
        live_gateways: 1,
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&table).unwrap()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A signing key pair: the PEM public key routes carry, and the signer tests mint tokens with.
pub struct Keys {
    /// PEM public key.
    pub public_pem: String,
    signer: EncodingKey,
}

impl Keys {
    /// The key pair of seed `seed`.
    pub fn new(seed: u8) -> Keys {
        let signing = SigningKey::from_bytes(&[seed; 32]);
        Keys {
            public_pem: signing
                .verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap(),
            signer: EncodingKey::from_ed_pem(
                signing.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
            )
            .unwrap(),
        }
    }

    /// A token for `cluster` with id `jti`, expiring `ttl` seconds from now (negative: expired).
    pub fn token(&self, cluster: &str, jti: &str, ttl: i64) -> String {
        self.token_with(cluster, &audience(cluster), jti, ttl)
    }

    /// A token naming `cluster` with audience `aud`.
    pub fn token_with(&self, cluster: &str, aud: &str, jti: &str, ttl: i64) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let claims = Claims {
            sub: "tester".into(),
            cluster: cluster.into(),
            scope: Scope::Write,
            exp: (now + ttl) as u64,
            iat: now as u64,
            aud: aud.into(),
            jti: jti.into(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.signer).unwrap()
    }
}

/// The JSON error code of an answer.
pub async fn error_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_string(),
    )
}

/// A free loopback port below the ephemeral range (see dataplane/tests/common/cluster.rs).
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let base = std::process::id() % 10_000;
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let port = 20_000 + ((base * 7 + n) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// What an echo member received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Method, path and query.
    pub line: String,
    /// Headers, lower-case names.
    pub headers: Vec<(String, String)>,
}

impl Received {
    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A member that answers every request with 200 and records what it received (ready at
/// `/readyz` like a single data plane), for checks of the headers a member gets.
pub async fn echo_member() -> (String, Arc<parking_lot::Mutex<Vec<Received>>>) {
    use axum::extract::Request;
    let seen: Arc<parking_lot::Mutex<Vec<Received>>> = Arc::default();
    let log = Arc::clone(&seen);
    let app = axum::Router::new()
        .route(
            "/readyz",
            axum::routing::get(|| async { axum::Json(serde_json::json!({"status": "ready"})) }),
        )
        .fallback(move |request: Request| {
            let log = Arc::clone(&log);
            async move {
                log.lock().push(Received {
                    line: format!(
                        "{} {}",
                        request.method(),
                        request.uri().path_and_query().map_or("", |p| p.as_str())
                    ),
                    headers: request
                        .headers()
                        .iter()
                        .map(|(n, v)| {
                            (n.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                        })
                        .collect(),
                });
                axum::Json(serde_json::json!({"echo": true}))
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}
