//! The KoruDelta Cloud control-plane API as the provider uses it: the requests and answers it
//! needs, errors carrying the API's own message, and waiting on asynchronous operations.

use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// How long one HTTP call may take: taking a base backup waits up to 150 s on the data plane.
const CALL_TIMEOUT: Duration = Duration::from_secs(180);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The first pause between two polls of an operation; it doubles up to [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_millis(250);
/// The longest pause between two polls.
const POLL_MAX: Duration = Duration::from_secs(2);
/// Items per page when listing (the API's maximum).
const PAGE_LIMIT: u32 = 500;

/// Why a call to the API failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The API answered with an error body `{"error": {"code", "message"}}`.
    #[error("{message} (HTTP {status}, {code})")]
    Api {
        /// HTTP status.
        status: u16,
        /// The API's stable error code.
        code: String,
        /// The API's message, meant for people.
        message: String,
    },
    /// The API could not be reached, or the connection broke.
    #[error("could not reach the KoruDelta Cloud API at {url}: {detail}")]
    Transport {
        /// The URL called.
        url: String,
        /// What went wrong, with its causes.
        detail: String,
    },
    /// The API answered something this provider does not understand.
    #[error("unexpected answer from {url}: {detail}")]
    Decode {
        /// The URL called.
        url: String,
        /// What could not be read.
        detail: String,
    },
    /// An asynchronous operation ended in failure.
    #[error("operation {id} failed: {message}")]
    OperationFailed {
        /// The operation.
        id: String,
        /// Why, as the API says.
        message: String,
    },
    /// Waiting ran out of time.
    #[error("gave up after {}s waiting for {what}", waited.as_secs())]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        waited: Duration,
    },
}

impl ApiError {
    /// The HTTP status of an error the API answered with.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the object does not exist (or is another tenant's).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

/// A tier and its limits (`GET /api/v1/tiers`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Tier {
    /// Its name.
    pub name: String,
    /// Storage quota of one cluster, bytes.
    pub max_storage_bytes: u64,
    /// Operations per second of one cluster.
    pub max_ops_per_sec: u64,
    /// Clusters an organization on this plan may have.
    pub max_clusters: u32,
    /// Replicas one cluster may have.
    pub max_replicas: u32,
    /// Days backups are kept.
    pub backup_retention_days: u32,
    /// Whether SAML single sign-on is available.
    pub sso: bool,
}

/// A cluster as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Cluster {
    /// Cluster id.
    pub id: String,
    /// Owning organization id.
    pub org_id: String,
    /// Name, unique in the organization.
    pub name: String,
    /// Tier name.
    pub tier: String,
    /// Region label.
    pub region: String,
    /// Replicas.
    pub replicas: u32,
    /// Data-plane version.
    pub version: String,
    /// Pending, Provisioning, Running, Degraded, Failed or Deleting.
    pub phase: String,
    /// Where the data plane is reached, once known.
    pub endpoint: Option<String>,
    /// Why it is not running, when it is not.
    pub message: Option<String>,
    /// Storage quota, bytes (the tier's).
    pub max_storage_bytes: u64,
    /// Operations per second (the tier's).
    pub max_ops_per_sec: u64,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// CIDRs allowed to reach it through the gateway; empty allows everyone.
    #[serde(default)]
    pub allowed_cidrs: Vec<String>,
    /// A global database's regions in order; empty for a single-region cluster.
    #[serde(default)]
    pub regions: Vec<ClusterRegion>,
}

/// One region of a global database.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClusterRegion {
    /// The region's name.
    pub name: String,
    /// Where its data plane is reached, once known.
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// An asynchronous operation on a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Operation {
    /// Operation id.
    pub id: String,
    /// The cluster it acts on.
    pub cluster_id: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// Why it failed.
    pub error: Option<String>,
}

/// A cluster with the operation changing it.
#[derive(Debug, Clone, Deserialize)]
pub struct ClusterWithOperation {
    /// The cluster as recorded.
    pub cluster: Cluster,
    /// The operation started.
    pub operation: Operation,
}

/// `POST /api/v1/orgs/{org}/clusters`.
#[derive(Debug, Clone, Serialize)]
pub struct CreateCluster {
    /// Name.
    pub name: String,
    /// Tier; the organization's when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Region; `local` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Replicas; 1 when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Allow list; everyone when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_cidrs: Option<Vec<String>>,
    /// A global database's regions; a single-region cluster when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regions: Option<Vec<String>>,
}

/// `PATCH /api/v1/orgs/{org}/clusters/{id}`: what changes in place.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UpdateCluster {
    /// New tier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// New replica count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// New allow list (replacing the old one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_cidrs: Option<Vec<String>>,
}

impl UpdateCluster {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.tier.is_none() && self.replicas.is_none() && self.allowed_cidrs.is_none()
    }
}

/// An API token as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiToken {
    /// Token id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: String,
    /// The first characters of the secret.
    pub prefix: String,
    /// Expiry, ms since the epoch.
    pub expires_at: Option<i64>,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// The secret: only in the answer that creates the token.
    #[serde(default)]
    pub token: Option<String>,
}

/// `POST /api/v1/orgs/{org}/tokens`.
#[derive(Debug, Clone, Serialize)]
pub struct CreateToken {
    /// Name.
    pub name: String,
    /// Role.
    pub role: String,
    /// Days until it expires; never when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
}

/// One base backup of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Backup {
    /// Backup id.
    pub id: String,
    /// When it was taken (RFC 3339).
    pub created: String,
    /// First LSN covered.
    pub first_lsn: u64,
    /// Last LSN covered.
    pub last_lsn: u64,
    /// Commit time of the first record covered (RFC 3339).
    #[serde(default)]
    pub first_time: Option<String>,
    /// Commit time of the last record covered (RFC 3339).
    #[serde(default)]
    pub last_time: Option<String>,
}

/// An organization the caller belongs to (`GET /api/v1/me`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Organization {
    /// Organization id.
    pub id: String,
    /// Its slug, usable instead of the id.
    pub slug: String,
}

#[derive(Deserialize)]
struct Me {
    organizations: Vec<Organization>,
}

#[derive(Deserialize)]
struct Page<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct BackupList {
    backups: Vec<Backup>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

/// A client of one control plane, authenticated with one token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// Never shows the token.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl Client {
    /// A client of the control plane at `endpoint` (e.g. `https://api.example.com`).
    pub fn new(endpoint: &str, token: &str) -> Result<Client, ApiError> {
        // reqwest's TLS needs a process-wide rustls provider: ring, as in the rest of the
        // workspace. Installing fails harmlessly when one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!(
                "terraform-provider-koru/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| ApiError::Transport {
                url: endpoint.to_string(),
                detail: chain(&e),
            })?;
        Ok(Client {
            http,
            base: endpoint.trim_end_matches('/').to_string(),
            token: token.to_string(),
        })
    }

    /// The organizations of the user whose session token this client holds. An API token is
    /// refused (403): it cannot say which organization it belongs to.
    pub async fn my_organizations(&self) -> Result<Vec<Organization>, ApiError> {
        let me: Me = self.call(Method::GET, "/api/v1/me", None::<&()>).await?;
        Ok(me.organizations)
    }

    /// The tiers and their limits.
    pub async fn tiers(&self) -> Result<Vec<Tier>, ApiError> {
        self.call(Method::GET, "/api/v1/tiers", None::<&()>).await
    }

    /// A cluster by id or name.
    pub async fn cluster(&self, org: &str, id: &str) -> Result<Cluster, ApiError> {
        let path = format!("/api/v1/orgs/{org}/clusters/{id}");
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// Starts creating a cluster. `idempotency_key` makes a retried request return the first
    /// one's cluster instead of creating a second.
    pub async fn create_cluster(
        &self,
        org: &str,
        request: &CreateCluster,
        idempotency_key: &str,
    ) -> Result<ClusterWithOperation, ApiError> {
        let url = format!("{}/api/v1/orgs/{org}/clusters", self.base);
        let builder = self
            .http
            .post(&url)
            .header("idempotency-key", idempotency_key)
            .json(request);
        self.send(builder, &url).await
    }

    /// Starts changing a cluster's tier or replicas; while another operation runs on it (423),
    /// waits for it until `deadline`.
    pub async fn update_cluster(
        &self,
        org: &str,
        id: &str,
        request: &UpdateCluster,
        deadline: Instant,
    ) -> Result<ClusterWithOperation, ApiError> {
        let path = format!("/api/v1/orgs/{org}/clusters/{id}");
        self.retry_while_locked(deadline, || self.call(Method::PATCH, &path, Some(request)))
            .await
    }

    /// Starts deleting a cluster, waiting for a running operation on it as
    /// [`Client::update_cluster`] does.
    pub async fn delete_cluster(
        &self,
        org: &str,
        id: &str,
        deadline: Instant,
    ) -> Result<Operation, ApiError> {
        let path = format!("/api/v1/orgs/{org}/clusters/{id}");
        self.retry_while_locked(deadline, || self.call(Method::DELETE, &path, None::<&()>))
            .await
    }

    /// Polls an operation until it has finished or `deadline` passes; a failed operation is an
    /// error carrying its reason.
    pub async fn wait_operation(&self, id: &str, deadline: Instant) -> Result<Operation, ApiError> {
        let path = format!("/api/v1/operations/{id}");
        let started = Instant::now();
        let mut pause = POLL_FIRST;
        loop {
            let op: Operation = self.call(Method::GET, &path, None::<&()>).await?;
            match op.status.as_str() {
                "succeeded" => return Ok(op),
                "failed" => {
                    return Err(ApiError::OperationFailed {
                        id: op.id,
                        message: op.error.unwrap_or_else(|| "no reason given".into()),
                    });
                }
                _ => {}
            }
            if Instant::now() + pause > deadline {
                return Err(ApiError::Timeout {
                    what: format!("operation {id} on cluster {}", op.cluster_id),
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(POLL_MAX);
        }
    }

    /// Creates an API token; the answer holds its secret.
    pub async fn create_token(
        &self,
        org: &str,
        request: &CreateToken,
    ) -> Result<ApiToken, ApiError> {
        let path = format!("/api/v1/orgs/{org}/tokens");
        self.call(Method::POST, &path, Some(request)).await
    }

    /// An API token by id (without its secret), found by listing the organization's tokens.
    pub async fn token(&self, org: &str, id: &str) -> Result<Option<ApiToken>, ApiError> {
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/orgs/{org}/tokens?limit={PAGE_LIMIT}");
            if let Some(c) = &cursor {
                path.push_str("&cursor=");
                path.push_str(c);
            }
            let page: Page<ApiToken> = self.call(Method::GET, &path, None::<&()>).await?;
            if let Some(found) = page.items.into_iter().find(|t| t.id == id) {
                return Ok(Some(found));
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(None),
            }
        }
    }

    /// Revokes an API token.
    pub async fn revoke_token(&self, org: &str, id: &str) -> Result<(), ApiError> {
        let url = format!("{}/api/v1/orgs/{org}/tokens/{id}", self.base);
        let response = self.execute(self.http.delete(&url), &url).await?;
        check(response, &url).await.map(drop)
    }

    /// Takes a base backup of a Running cluster now.
    pub async fn create_backup(&self, org: &str, cluster: &str) -> Result<Backup, ApiError> {
        let path = format!("/api/v1/orgs/{org}/clusters/{cluster}/backups");
        self.call(Method::POST, &path, None::<&()>).await
    }

    /// A Running cluster's base backups, oldest first.
    pub async fn backups(&self, org: &str, cluster: &str) -> Result<Vec<Backup>, ApiError> {
        let path = format!("/api/v1/orgs/{org}/clusters/{cluster}/backups");
        let list: BackupList = self.call(Method::GET, &path, None::<&()>).await?;
        Ok(list.backups)
    }

    /// Repeats `call` while the API answers 423 (another operation runs on the cluster).
    async fn retry_while_locked<T, F, Fut>(&self, deadline: Instant, call: F) -> Result<T, ApiError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let started = Instant::now();
        loop {
            match call().await {
                Err(e) if e.status() == Some(StatusCode::LOCKED.as_u16()) => {
                    if Instant::now() + POLL_MAX > deadline {
                        return Err(ApiError::Timeout {
                            what: format!("another operation to finish ({e})"),
                            waited: started.elapsed(),
                        });
                    }
                    tokio::time::sleep(POLL_MAX).await;
                }
                other => return other,
            }
        }
    }

    /// One JSON call to `path`, with an optional JSON body.
    async fn call<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ApiError> {
        let url = format!("{}{path}", self.base);
        let mut builder = self.http.request(method, &url);
        if let Some(body) = body {
            builder = builder.json(body);
        }
        self.send(builder, &url).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        builder: RequestBuilder,
        url: &str,
    ) -> Result<T, ApiError> {
        let response = check(self.execute(builder, url).await?, url).await?;
        let bytes = response.bytes().await.map_err(|e| ApiError::Transport {
            url: url.to_string(),
            detail: chain(&e),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| ApiError::Decode {
            url: url.to_string(),
            detail: e.to_string(),
        })
    }

    async fn execute(
        &self,
        builder: RequestBuilder,
        url: &str,
    ) -> Result<reqwest::Response, ApiError> {
        builder
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| ApiError::Transport {
                url: url.to_string(),
                detail: chain(&e),
            })
    }
}

/// The response if it is a success, else the API's error.
async fn check(response: reqwest::Response, url: &str) -> Result<reqwest::Response, ApiError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    Err(match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => ApiError::Api {
            status: status.as_u16(),
            code: body.error.code,
            message: body.error.message,
        },
        // Not our API (a proxy, a wrong endpoint): say what answered.
        Err(_) => ApiError::Api {
            status: status.as_u16(),
            code: "unknown".into(),
            message: format!(
                "{url} answered {status} without an API error body: {:?}",
                text.chars().take(200).collect::<String>()
            ),
        },
    })
}

/// An error with its causes, which reqwest keeps in its source chain.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let client = Client::new("http://127.0.0.1:1/", "koru_secret").unwrap();
        let shown = format!("{client:?}");
        assert!(
            shown.contains("http://127.0.0.1:1") && !shown.contains("koru_secret"),
            "{shown}"
        );
    }

    #[test]
    fn api_errors_carry_the_api_message() {
        let e = ApiError::Api {
            status: 402,
            code: "upgrade_required".into(),
            message: "a pro cluster needs the pro plan".into(),
        };
        assert_eq!(
            e.to_string(),
            "a pro cluster needs the pro plan (HTTP 402, upgrade_required)"
        );
        assert!(!e.is_not_found() && e.status() == Some(402));
    }
}
