//! The backup store: one object-store handle (local directory or S3-compatible bucket) plus the key
//! prefix every archive object lives under.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};

use super::BackupError;

/// Default region when `AWS_REGION` is unset (S3-compatible servers mostly ignore it).
pub const DEFAULT_S3_REGION: &str = "us-east-1";

/// Retries inside one S3 request (dropped connection, 5xx): a few quick ones, no more. The archiver
/// retries failed uploads itself with its own backoff and reports every failure in `/readyz` and
/// `koru_archive_errors_total`; object_store's default (10 retries over up to 3 minutes) would hide
/// a store outage for about a minute.
fn s3_retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(10),
    }
}

pub use koru_dataplane_api::backup::BackupUrl;

/// A handle on the backup store; clones share the connection pool.
#[derive(Debug, Clone)]
pub struct BackupStore {
    inner: Arc<dyn ObjectStore>,
    prefix: String,
    url: BackupUrl,
}

impl BackupStore {
    /// Opens the store at `url`; a local directory is created when `create` is set (the server)
    /// and must exist otherwise (a restore from a mistyped path must not find an empty archive).
    pub fn open(url: &BackupUrl, create: bool) -> Result<BackupStore, BackupError> {
        let (inner, prefix): (Arc<dyn ObjectStore>, String) = match url {
            BackupUrl::File(path) => {
                if create {
                    // A store that is down at start-up is retried like any other outage.
                    if let Err(e) = std::fs::create_dir_all(path) {
                        tracing::warn!(path = %path.display(), error = %e, "cannot create the backup store directory yet");
                    }
                } else if !path.is_dir() {
                    return Err(BackupError::InvalidUrl {
                        url: url.to_string(),
                        reason: "the directory does not exist".into(),
                    });
                }
                // Rooted at `/` with the directory as key prefix, so a store directory that is
                // missing or unreachable is an error per request rather than at start-up.
                let prefix = path.to_string_lossy().trim_matches('/').to_string();
                (Arc::new(LocalFileSystem::new()), prefix)
            }
            BackupUrl::S3 { bucket, prefix } => (Arc::new(s3(url, bucket)?), prefix.clone()),
        };
        Ok(BackupStore {
            inner,
            prefix,
            url: url.clone(),
        })
    }

    /// The URL the store was opened from.
    pub fn url(&self) -> &BackupUrl {
        &self.url
    }

    /// The full name of an object, for messages: `<store url>/<key>`.
    pub fn describe(&self, key: &str) -> String {
        format!("{}/{key}", self.url.to_string().trim_end_matches('/'))
    }

    fn path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    fn store_err(&self, key: &str) -> impl FnOnce(object_store::Error) -> BackupError {
        let key = self.describe(key);
        move |source| match source {
            object_store::Error::NotFound { .. } => BackupError::Missing { key },
            source => BackupError::Store { key, source },
        }
    }

    /// Writes an object whole (both backends make it appear atomically).
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), BackupError> {
        self.inner
            .put(&self.path(key), PutPayload::from_bytes(bytes))
            .await
            .map_err(self.store_err(key))?;
        Ok(())
    }

    /// Reads an object whole; a missing one is [`BackupError::Missing`] naming it.
    pub async fn get(&self, key: &str) -> Result<Bytes, BackupError> {
        let result = self
            .inner
            .get(&self.path(key))
            .await
            .map_err(self.store_err(key))?;
        result.bytes().await.map_err(self.store_err(key))
    }

    /// Deletes an object; one that is already gone is not an error (retention may be redone).
    pub async fn delete(&self, key: &str) -> Result<(), BackupError> {
        match self.inner.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(BackupError::Store {
                key: self.describe(key),
                source,
            }),
        }
    }

    /// Reads an object, or None when it does not exist.
    pub async fn get_opt(&self, key: &str) -> Result<Option<Bytes>, BackupError> {
        match self.get(key).await {
            Ok(b) => Ok(Some(b)),
            Err(BackupError::Missing { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Keys (relative to the prefix) of every object under `dir`, sorted.
    pub async fn list(&self, dir: &str) -> Result<Vec<String>, BackupError> {
        let base = self.path(dir);
        let metas: Vec<_> = self
            .inner
            .list(Some(&base))
            .try_collect()
            .await
            .map_err(|source| BackupError::Store {
                key: self.describe(dir),
                source,
            })?;
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut keys: Vec<String> = metas
            .into_iter()
            .filter_map(|m| m.location.as_ref().strip_prefix(&strip).map(str::to_string))
            .collect();
        keys.sort();
        Ok(keys)
    }
}

/// Whether a plain-http S3 endpoint may be used: on loopback (a test server), or when the operator
/// of the deployment said so with `AWS_ALLOW_HTTP=true` (an object store inside the same cluster
/// network, such as MinIO without TLS); elsewhere credentials would cross the network unencrypted
/// without anyone having chosen it.
fn plain_http_allowed(endpoint: &url::Url, allow_http: Option<&str>) -> bool {
    let loopback = match endpoint.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    loopback || allow_http.is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Builds the S3 client from `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` and `AWS_ALLOW_HTTP` (see [`plain_http_allowed`]).
fn s3(url: &BackupUrl, bucket: &str) -> Result<object_store::aws::AmazonS3, BackupError> {
    // reqwest is built without a provider of its own; ring is the workspace's (main installs it
    // too, this covers library users such as tests).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(env("AWS_REGION").unwrap_or_else(|| DEFAULT_S3_REGION.to_string()))
        .with_retry(s3_retry());
    if let Some(endpoint) = env("AWS_ENDPOINT_URL") {
        let parsed = url::Url::parse(&endpoint).map_err(|e| BackupError::InvalidUrl {
            url: endpoint.clone(),
            reason: format!("AWS_ENDPOINT_URL: {e}"),
        })?;
        let allow_http = plain_http_allowed(&parsed, env("AWS_ALLOW_HTTP").as_deref());
        if parsed.scheme() == "http" && !allow_http {
            return Err(BackupError::InvalidUrl {
                url: endpoint,
                reason: "AWS_ENDPOINT_URL: plain http is only allowed on loopback, or with AWS_ALLOW_HTTP=true".into(),
            });
        }
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(allow_http)
            .with_virtual_hosted_style_request(false);
    }
    if let Some(key) = env("AWS_ACCESS_KEY_ID") {
        builder = builder.with_access_key_id(key);
    }
    if let Some(secret) = env("AWS_SECRET_ACCESS_KEY") {
        builder = builder.with_secret_access_key(secret);
    }
    if let Some(token) = env("AWS_SESSION_TOKEN") {
        builder = builder.with_token(token);
    }
    builder.build().map_err(|source| BackupError::Store {
        key: url.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_needs_loopback_or_an_explicit_allow() {
        let url = |s: &str| url::Url::parse(s).unwrap();
        assert!(plain_http_allowed(&url("http://127.0.0.1:9000"), None));
        assert!(plain_http_allowed(&url("http://[::1]:9000"), None));
        assert!(plain_http_allowed(&url("http://localhost:9000"), None));
        assert!(!plain_http_allowed(
            &url("http://minio.storage.svc:9000"),
            None
        ));
        assert!(!plain_http_allowed(
            &url("http://10.0.0.5:9000"),
            Some("false")
        ));
        assert!(!plain_http_allowed(
            &url("http://10.0.0.5:9000"),
            Some("yes")
        ));
        assert!(plain_http_allowed(
            &url("http://minio.storage.svc:9000"),
            Some("true")
        ));
        assert!(plain_http_allowed(
            &url("http://10.0.0.5:9000"),
            Some("TRUE")
        ));
    }

    #[test]
    fn builds_an_s3_store_without_network() {
        let url: BackupUrl = "s3://bucket/prefix".parse().unwrap();
        let store = BackupStore::open(&url, true).unwrap();
        assert_eq!(store.describe("wal/x"), "s3://bucket/prefix/wal/x");
    }

    #[tokio::test]
    async fn file_store_round_trips_and_names_missing_objects() {
        let dir = tempfile::tempdir().unwrap();
        let url = BackupUrl::File(dir.path().join("store"));
        assert!(BackupStore::open(&url, false).is_err());
        assert!(BackupStore::open(&BackupUrl::File(dir.path().join("f/x")), true).is_ok());
        let store = BackupStore::open(&url, true).unwrap();
        store.put("wal/a", Bytes::from_static(b"x")).await.unwrap();
        assert_eq!(store.get("wal/a").await.unwrap(), Bytes::from_static(b"x"));
        assert_eq!(store.list("wal").await.unwrap(), ["wal/a"]);
        let missing = store.get("wal/b").await.unwrap_err();
        assert!(matches!(missing, BackupError::Missing { .. }));
        assert!(missing.to_string().contains("wal/b"));
        assert_eq!(store.get_opt("wal/b").await.unwrap(), None);
    }
}
