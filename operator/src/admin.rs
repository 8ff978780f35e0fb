//! A cluster's data-plane admin API as the operator uses it: where to reach it, the admin token
//! in the `<cluster>-admin` Secret, and the calls (`POST`/`GET /admin/backups`, `GET /readyz`,
//! `GET /admin/v1/regions`, the member routes) with what their answers mean (base backups, the
//! archived span, the last restore drill, the peer regions' streams).
//!
//! The answers are read with the data plane's own wire types (`koru-dataplane-api`).

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use koru_dataplane_api::ErrorBody;
use koru_dataplane_api::backup::ManifestSummary;
use koru_dataplane_api::rfc3339;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use rand::{RngExt, rng};

use crate::desired::{ADMIN_TOKEN_KEY, DesiredError, HTTP_PORT, admin_secret, admin_secret_name};
use koru_crd::{ADMIN_ENDPOINT_ANNOTATION, KoruCluster};

/// Random bytes in a new admin token (written as hex, twice as many characters).
pub const TOKEN_BYTES: usize = 32;
/// How long connecting to a data plane may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a base backup may take: the data plane waits up to 120 s for its archive.
const BACKUP_TIMEOUT: Duration = Duration::from_secs(150);
/// How long the reads of the recoverable window may take.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a membership change may take (new members catch up first).
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(60);

/// One member of a Raft group as `/raft/status` reports it.
pub use koru_dataplane_api::raft::MemberStatus as GroupMember;
/// A member's view of its Raft group (`/raft/status`).
pub use koru_dataplane_api::raft::ReplicaStatus as GroupView;

/// Reads a `/raft/status` answer.
pub fn parse_group(body: &[u8]) -> Result<GroupView, CallError> {
    serde_json::from_slice(body)
        .map_err(|e| CallError::Permanent(format!("unreadable /raft/status answer: {e}")))
}

/// The base URL of a cluster's admin API: the `koru.dev/admin-endpoint` annotation when set,
/// else its client Service. None without a name or namespace.
pub fn endpoint(kc: &KoruCluster) -> Option<String> {
    if let Some(url) = kc.annotations().get(ADMIN_ENDPOINT_ANNOTATION) {
        let url = url.trim().trim_end_matches('/');
        if !url.is_empty() {
            return Some(url.to_string());
        }
    }
    let name = kc.metadata.name.as_ref()?;
    let ns = kc.metadata.namespace.as_ref()?;
    Some(format!("http://{name}.{ns}.svc:{HTTP_PORT}"))
}

/// A new admin token: [`TOKEN_BYTES`] random bytes from the thread's CSPRNG, in hex.
pub fn new_token() -> String {
    let bytes: [u8; TOKEN_BYTES] = rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why the admin Secret could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The Secret could not be built.
    #[error(transparent)]
    Desired(#[from] DesiredError),
    /// The API server refused a request.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A Secret of that name exists but holds no token.
    #[error(
        "Secret {0} exists without a `token` key; add one (at least 32 characters) or delete the Secret so the operator creates it"
    )]
    NoToken(String),
}

/// Creates the cluster's admin Secret with a new random token unless it exists; an existing one
/// (made earlier, or by hand) is used as it is and never rewritten.
pub async fn ensure_secret(client: &Client, kc: &KoruCluster) -> Result<(), SecretError> {
    let ns = kc.namespace().ok_or(DesiredError::Missing("namespace"))?;
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    let name = admin_secret_name(&kc.name_any());
    if let Some(existing) = secrets.get_opt(&name).await? {
        return match secret_token(&existing) {
            Some(_) => Ok(()),
            None => Err(SecretError::NoToken(name)),
        };
    }
    let secret = admin_secret(kc, &new_token())?;
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            tracing::info!(secret = %name, "created the cluster's admin token");
            Ok(())
        }
        // Created meanwhile (another reconcile, or by hand): that one stands.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The token of a cluster's admin Secret; None while it does not exist or holds no token.
pub async fn token(
    client: &Client,
    ns: &str,
    cluster: &str,
) -> Result<Option<String>, kube::Error> {
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    Ok(secrets
        .get_opt(&admin_secret_name(cluster))
        .await?
        .as_ref()
        .and_then(secret_token))
}

/// The `token` of a Secret, as the data plane reads its file: surrounding whitespace trimmed.
pub(crate) fn secret_token(secret: &Secret) -> Option<String> {
    let from_data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(ADMIN_TOKEN_KEY))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned());
    let from_string_data = || {
        secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(ADMIN_TOKEN_KEY).cloned())
    };
    from_data
        .or_else(from_string_data)
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// Why a call to a data plane failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Worth retrying: unreachable, timed out, busy or failing inside (5xx, 408, 429).
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help: the request was refused (other 4xx) or the answer is unreadable.
    #[error("{0}")]
    Permanent(String),
}

/// What an unsuccessful HTTP status means, with the data plane's error message when it sent one.
pub fn classify(status: u16, body: &str) -> CallError {
    let detail = match ErrorBody::parse(body.as_bytes()) {
        Some(b) => format!("{} ({}): {}", status, b.error.code, b.error.message),
        None => format!("{status}: {}", body.chars().take(200).collect::<String>()),
    };
    let message = format!("the data plane answered {detail}");
    if status >= 500 || status == 408 || status == 429 {
        CallError::Transient(message)
    } else {
        CallError::Permanent(message)
    }
}

/// A base backup just taken, from the manifest `POST /admin/backups` answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenBackup {
    /// Backup id.
    pub id: String,
    /// First LSN covered.
    pub first_lsn: u64,
    /// Last LSN covered.
    pub last_lsn: u64,
    /// Commit time of the first write covered (RFC 3339, as `GET /admin/backups` lists it).
    pub first_time: Option<String>,
    /// Commit time of the last write covered.
    pub last_time: Option<String>,
}

/// Reads a manifest into a [`TakenBackup`].
pub fn parse_manifest(body: &[u8]) -> Result<TakenBackup, CallError> {
    let m: ManifestSummary = serde_json::from_slice(body).map_err(|e| {
        CallError::Permanent(format!(
            "the data plane's backup manifest is unreadable: {e}"
        ))
    })?;
    Ok(TakenBackup {
        id: m.id,
        first_lsn: m.first_lsn,
        last_lsn: m.last_lsn,
        first_time: rfc3339::format_commit_micros(m.first_time_micros),
        last_time: rfc3339::format_commit_micros(m.last_time_micros),
    })
}

/// A `GET /admin/backups` answer (the data plane's [`BackupList`](koru_dataplane_api::backup::BackupList)).
pub use koru_dataplane_api::backup::BackupList as Listing;
/// A restore drill's outcome (the data plane's [`Verification`](koru_dataplane_api::backup::Verification)).
pub use koru_dataplane_api::backup::Verification as Drill;
pub use koru_dataplane_api::backup::{ArchivedSpan, ListedBackup};

/// Reads a `GET /admin/backups` answer.
pub fn parse_list(body: &[u8]) -> Result<Listing, CallError> {
    serde_json::from_slice::<Listing>(body).map_err(|e| {
        CallError::Permanent(format!("the data plane's backup list is unreadable: {e}"))
    })
}

/// The archive lag (seconds of writes not yet archived) in a `/readyz` answer; None when the
/// data plane does not archive or does not report it.
pub fn parse_archive_lag(body: &[u8]) -> Option<f64> {
    let ready: koru_dataplane_api::Readiness = serde_json::from_slice(body).ok()?;
    ready.archive.map(|a| a.lag_seconds)
}

/// A `GET /admin/v1/regions` answer (the data plane's [`RegionStatus`](koru_dataplane_api::region::RegionStatus)).
pub use koru_dataplane_api::region::RegionStatus;

/// Reads a `GET /admin/v1/regions` answer.
pub fn parse_regions(body: &[u8]) -> Result<RegionStatus, CallError> {
    serde_json::from_slice(body).map_err(|e| {
        CallError::Permanent(format!("the data plane's region status is unreadable: {e}"))
    })
}

/// An HTTP client for the admin APIs of every cluster.
#[derive(Clone)]
pub struct AdminClient {
    http: reqwest::Client,
}

impl AdminClient {
    /// A client with a short connect timeout and no proxy: data planes are reached directly.
    pub fn new() -> Result<AdminClient, reqwest::Error> {
        // reqwest is built with rustls and no default provider; main installs ring, and so do
        // the tests that build this client without it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .no_proxy()
            .build()?;
        Ok(AdminClient { http })
    }

    /// `POST /admin/backups`: takes a base backup now.
    pub async fn take_backup(&self, endpoint: &str, token: &str) -> Result<TakenBackup, CallError> {
        let request = self
            .http
            .post(format!("{endpoint}/admin/backups"))
            .bearer_auth(token)
            .timeout(BACKUP_TIMEOUT);
        parse_manifest(&send(request, endpoint).await?)
    }

    /// `GET /admin/backups`: the base backups, oldest first, and the archived span.
    pub async fn list_backups(&self, endpoint: &str, token: &str) -> Result<Listing, CallError> {
        let request = self
            .http
            .get(format!("{endpoint}/admin/backups"))
            .bearer_auth(token)
            .timeout(READ_TIMEOUT);
        parse_list(&send(request, endpoint).await?)
    }

    /// `GET /admin/members`: the cluster's Raft group as its leader sees it (`GET /raft/status`,
    /// the answering member's view, from data planes older than the peer listener).
    pub async fn raft_status(&self, endpoint: &str, token: &str) -> Result<GroupView, CallError> {
        let request = |path: &str| {
            self.http
                .get(format!("{endpoint}{path}"))
                .bearer_auth(token)
                .timeout(READ_TIMEOUT)
        };
        let body = send_or_legacy(request, "/admin/members", "/raft/status", endpoint).await?;
        parse_group(&body)
    }

    /// `POST /admin/members/step-down`: the leader hands leadership to its most caught-up
    /// follower; answers with the leader's view once another member leads.
    pub async fn step_down(&self, endpoint: &str, token: &str) -> Result<GroupView, CallError> {
        let request = |path: &str| {
            self.http
                .post(format!("{endpoint}{path}"))
                .bearer_auth(token)
                .timeout(MEMBERSHIP_TIMEOUT)
        };
        let body = send_or_legacy(
            request,
            "/admin/members/step-down",
            "/raft/step-down",
            endpoint,
        )
        .await?;
        parse_group(&body)
    }

    /// `POST /admin/members`: makes `voters` the group's voting members (new ones join as
    /// learners and catch up first); answers once the change is committed.
    pub async fn set_voters(
        &self,
        endpoint: &str,
        token: &str,
        voters: &[u64],
    ) -> Result<GroupView, CallError> {
        let request = |path: &str| {
            self.http
                .post(format!("{endpoint}{path}"))
                .bearer_auth(token)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(serde_json::json!({ "voters": voters }).to_string())
                .timeout(MEMBERSHIP_TIMEOUT)
        };
        let body = send_or_legacy(request, "/admin/members", "/raft/membership", endpoint).await?;
        parse_group(&body)
    }

    /// `GET /admin/v1/regions`: this region's name and the stream from each peer region.
    pub async fn regions(&self, endpoint: &str, token: &str) -> Result<RegionStatus, CallError> {
        let request = self
            .http
            .get(format!("{endpoint}/admin/v1/regions"))
            .bearer_auth(token)
            .timeout(READ_TIMEOUT);
        parse_regions(&send(request, endpoint).await?)
    }

    /// `GET /metrics` of one member (no token needed): the text the autoscalers read.
    pub async fn metrics(&self, endpoint: &str) -> Result<String, CallError> {
        let request = self
            .http
            .get(format!("{endpoint}/metrics"))
            .timeout(READ_TIMEOUT);
        let body = send(request, endpoint).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// The archive lag from `GET /readyz` (which needs no token and answers 503 with the same
    /// body while the store is read-only).
    pub async fn archive_lag(&self, endpoint: &str) -> Result<Option<f64>, CallError> {
        let response = self
            .http
            .get(format!("{endpoint}/readyz"))
            .timeout(READ_TIMEOUT)
            .send()
            .await
            .map_err(|e| unreachable(endpoint, &e))?;
        let body = response
            .bytes()
            .await
            .map_err(|e| unreachable(endpoint, &e))?;
        Ok(parse_archive_lag(&body))
    }
}

/// Sends the request for `path`, and for `legacy` instead when the data plane does not know
/// `path` (404: a data plane older than its peer listener, which served the member routes on its
/// API port).
async fn send_or_legacy(
    request: impl Fn(&str) -> reqwest::RequestBuilder,
    path: &str,
    legacy: &str,
    endpoint: &str,
) -> Result<Vec<u8>, CallError> {
    let response = request(path)
        .send()
        .await
        .map_err(|e| unreachable(endpoint, &e))?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return send(request(legacy), endpoint).await;
    }
    answer(response, endpoint).await
}

/// Sends a request; the body of a successful answer, or what the failure means.
async fn send(request: reqwest::RequestBuilder, endpoint: &str) -> Result<Vec<u8>, CallError> {
    let response = request
        .send()
        .await
        .map_err(|e| unreachable(endpoint, &e))?;
    answer(response, endpoint).await
}

/// The body of a successful answer, or what the failure means.
async fn answer(response: reqwest::Response, endpoint: &str) -> Result<Vec<u8>, CallError> {
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| unreachable(endpoint, &e))?;
    if status.is_success() {
        Ok(body.to_vec())
    } else {
        Err(classify(status.as_u16(), &String::from_utf8_lossy(&body)))
    }
}

/// A failure to connect or to read an answer: transient, named with its innermost cause
/// ("Connection refused", "dns error"), which reqwest's own message hides.
fn unreachable(endpoint: &str, e: &reqwest::Error) -> CallError {
    let mut cause = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    let what = if e.is_timeout() {
        "timed out"
    } else {
        "cannot be reached"
    };
    CallError::Transient(format!("the data plane at {endpoint} {what}: {cause}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use koru_crd::{KoruClusterSpec, Storage};

    fn cluster() -> KoruCluster {
        let mut kc = KoruCluster::new(
            "orders",
            KoruClusterSpec {
                version: "0.1.0".into(),
                image: None,
                replicas: 1,
                resources: None,
                storage: Storage {
                    size: "1Gi".into(),
                    storage_class_name: None,
                    reclaim_policy: None,
                    autoscale: None,
                },
                durability: None,
                limits: None,
                auth: None,
                backup: None,
                bootstrap: None,
                paused: false,
                suspended: false,
                region: None,
            },
        );
        kc.metadata.namespace = Some("team-a".into());
        kc
    }

    #[test]
    fn the_endpoint_is_the_client_service_unless_annotated() {
        let mut kc = cluster();
        assert_eq!(
            endpoint(&kc).as_deref(),
            Some("http://orders.team-a.svc:7878")
        );
        kc.annotations_mut().insert(
            ADMIN_ENDPOINT_ANNOTATION.into(),
            " http://127.0.0.1:4242/ ".into(),
        );
        assert_eq!(endpoint(&kc).as_deref(), Some("http://127.0.0.1:4242"));
        kc.annotations_mut()
            .insert(ADMIN_ENDPOINT_ANNOTATION.into(), "".into());
        assert_eq!(
            endpoint(&kc).as_deref(),
            Some("http://orders.team-a.svc:7878"),
            "an empty annotation is no annotation"
        );
    }

    #[test]
    fn tokens_are_long_random_hex() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 2 * TOKEN_BYTES);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn a_secrets_token_is_read_like_the_data_plane_reads_the_file() {
        let mut secret = Secret::default();
        assert_eq!(secret_token(&secret), None);
        secret.string_data = Some([("token".to_string(), "abc\n".to_string())].into());
        assert_eq!(secret_token(&secret).as_deref(), Some("abc"));
        secret.data = Some(
            [(
                "token".to_string(),
                k8s_openapi::ByteString(b" def\n".to_vec()),
            )]
            .into(),
        );
        assert_eq!(secret_token(&secret).as_deref(), Some("def"));
        secret.data = Some([("other".to_string(), k8s_openapi::ByteString(b"x".to_vec()))].into());
        secret.string_data = None;
        assert_eq!(secret_token(&secret), None);
    }

    #[test]
    fn server_errors_and_overload_are_retried_refusals_are_not() {
        let body = r#"{"error":{"code":"backup_unavailable","message":"the backup store failed"}}"#;
        assert_eq!(
            classify(503, body),
            CallError::Transient(
                "the data plane answered 503 (backup_unavailable): the backup store failed".into()
            )
        );
        for status in [500, 502, 504, 408, 429] {
            assert!(
                matches!(classify(status, ""), CallError::Transient(_)),
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 409] {
            assert!(
                matches!(classify(status, "nope"), CallError::Permanent(_)),
                "{status}"
            );
        }
        let conflict = classify(
            409,
            r#"{"error":{"code":"backups_not_configured","message":"archiving is not configured"}}"#,
        );
        assert!(
            conflict.to_string().contains("backups_not_configured"),
            "{conflict}"
        );
    }

    #[test]
    fn manifests_and_lists_are_read_as_the_data_plane_writes_them() {
        let manifest = br#"{"format_version":1,"id":"b1","created":"2026-11-26T00:00:00Z",
            "first_lsn":1,"last_lsn":3,"first_time_micros":1000001,"last_time_micros":1764133200000000,
            "segments":[]}"#;
        assert_eq!(
            parse_manifest(manifest).unwrap(),
            TakenBackup {
                id: "b1".into(),
                first_lsn: 1,
                last_lsn: 3,
                first_time: Some("1970-01-01T00:00:01.000001Z".into()),
                last_time: Some("2025-11-26T05:00:00.000000Z".into()),
            }
        );
        let empty =
            br#"{"id":"b0","first_lsn":0,"last_lsn":0,"first_time_micros":0,"last_time_micros":0}"#;
        assert_eq!(parse_manifest(empty).unwrap().first_time, None);
        assert!(matches!(
            parse_manifest(b"<html>"),
            Err(CallError::Permanent(_))
        ));

        let list = br#"{"backups":[{"id":"b0","created":"c","first_lsn":0,"last_lsn":0,
            "first_time":null,"last_time":null,"segments":0},
            {"id":"b1","created":"c","first_lsn":1,"last_lsn":3,
            "first_time":"2026-11-26T01:00:00.000000Z","last_time":"2026-11-26T02:00:00.000000Z",
            "segments":1}],"archive":null}"#;
        let listed = parse_list(list).unwrap();
        assert_eq!((listed.backups.len(), listed.archive), (2, None));
        assert_eq!(listed.backups[0].first_time, None);
        assert_eq!(
            listed.backups[1].last_time.as_deref(),
            Some("2026-11-26T02:00:00.000000Z")
        );
        let with_archive = br#"{"backups":[],"archive":{"first_lsn":1,"last_lsn":9,
            "first_time":"2026-11-26T01:00:00.000000Z","last_time":"2026-11-26T04:00:00.000000Z",
            "segments":2},"verification":null}"#;
        let with_archive = parse_list(with_archive).unwrap();
        assert_eq!(
            with_archive.archive,
            Some(ArchivedSpan {
                first_lsn: 1,
                last_lsn: 9,
                first_time: "2026-11-26T01:00:00.000000Z".into(),
                last_time: "2026-11-26T04:00:00.000000Z".into(),
                segments: 2,
            })
        );
        assert_eq!(with_archive.verification, None);
        let drilled = br#"{"backups":[],"archive":null,"verification":{
            "at":"2026-11-26T05:00:00.000001Z","backup_id":"b1","ok":true,
            "message":"base backup b1 restored, opened and checked","last_lsn":9,"versions":7,
            "seconds":0.25}}"#;
        assert_eq!(
            parse_list(drilled).unwrap().verification,
            Some(Drill {
                at: "2026-11-26T05:00:00.000001Z".into(),
                backup_id: Some("b1".into()),
                ok: true,
                message: "base backup b1 restored, opened and checked".into(),
                last_lsn: 9,
                versions: 7,
                seconds: 0.25,
            })
        );
        let nothing_to_drill = br#"{"backups":[],"verification":{"at":"t","backup_id":null,
            "ok":false,"message":"there is no base backup to restore yet","last_lsn":0,
            "versions":0,"seconds":0.0}}"#;
        let drill = parse_list(nothing_to_drill).unwrap().verification.unwrap();
        assert_eq!((drill.ok, drill.backup_id), (false, None));
        assert_eq!(
            parse_archive_lag(br#"{"status":"ready","archive":{"lag_seconds":1.5}}"#),
            Some(1.5)
        );
        assert_eq!(
            parse_archive_lag(br#"{"status":"ready","archive":null}"#),
            None
        );
    }

    #[test]
    fn the_region_status_reads_as_regions_md_documents_it() {
        let body = br#"{"region":"us-east","peers":[{"name":"eu-west",
            "url":"https://eu-west.example.com","state":"failing","applied_lsn":12,
            "applied_time":null,"lag_seconds":null,"records_applied":0,
            "last_error":"401 unauthorized"}]}"#;
        let status = parse_regions(body).unwrap();
        assert_eq!(status.region, "us-east");
        let link = &status.peers[0];
        assert_eq!(
            (link.state, link.applied_lsn, link.last_error.as_deref()),
            (
                koru_dataplane_api::region::LinkState::Failing,
                12,
                Some("401 unauthorized")
            )
        );
        assert!(matches!(
            parse_regions(b"{\"peers\":[]}"),
            Err(CallError::Permanent(_))
        ));
    }
}
