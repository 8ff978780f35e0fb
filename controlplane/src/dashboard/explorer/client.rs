//! The explorer's door to a cluster's data: HTTP calls to its data plane with a short-lived
//! data-plane token minted for the signed-in user, with at most the scope their role allows.
//!
//! The token's `sub` is the user's email, so the data plane records them as the author of what
//! they write here, as it does for their own tokens.

use std::time::Duration;

use koru_dataplane_api::auth::Scope;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::clusters::Cluster;
use crate::dashboard::view::OrgContext;
use crate::data_tokens::{self, DataTokenRequest};
use crate::error::Error;
use crate::state::AppState;

/// Lifetime of a token minted for one page (the shortest a data token may live). A live feed
/// mints a new one before this runs out.
pub const TOKEN_TTL_SECS: u64 = 60;
/// How long one call to the data plane may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call to the data plane gave no answer to show.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The cluster cannot be asked now (suspended, not running, unreachable).
    #[error("{0}")]
    Unavailable(String),
    /// The data plane answered with an error: its status and `{"error": {code, message}}`.
    #[error("{message}")]
    Refused {
        /// The HTTP status it answered.
        status: u16,
        /// Its error code (`not_found`, `version_conflict`, …).
        code: String,
        /// Its message.
        message: String,
    },
    /// The control plane refused (the role does not allow the scope, the database failed).
    #[error(transparent)]
    ControlPlane(#[from] Error),
}

impl DataError {
    /// The data plane's error code, if it answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            DataError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// An answer of the data plane: status, headers and JSON body (`Value::Null` when empty).
#[derive(Debug)]
pub struct Answer {
    /// Its status.
    pub status: u16,
    /// Its headers (`ETag`, `Link`, …).
    pub headers: HeaderMap,
    /// Its body as JSON.
    pub body: Value,
}

/// A connection to one cluster's data plane on behalf of the page's user.
#[derive(Debug, Clone)]
pub struct DataPlane {
    endpoint: String,
    token: String,
    expires_at: u64,
    scope: Scope,
    http: reqwest::Client,
}

impl DataPlane {
    /// Mints a token of `scope` for the page's user on `cluster` (refused with 403 when their
    /// role does not allow it) and returns the connection; an unreachable or sleeping cluster is
    /// [`DataError::Unavailable`].
    pub async fn connect(
        state: &AppState,
        ctx: &OrgContext,
        cluster: &Cluster,
        scope: Scope,
    ) -> Result<DataPlane, DataError> {
        if cluster.suspended || cluster.phase == "Suspended" {
            return Err(DataError::Unavailable(format!(
                "Cluster {} is suspended (scaled to zero). Resume it from its page to see its data.",
                cluster.name
            )));
        }
        let endpoint = match (&cluster.endpoint, cluster.phase.as_str()) {
            (Some(endpoint), "Running" | "Updating") => endpoint.trim_end_matches('/').to_string(),
            _ => {
                return Err(DataError::Unavailable(format!(
                    "Cluster {} is {}; its data can be explored once it is running.",
                    cluster.name, cluster.phase
                )));
            }
        };
        let token = data_tokens::store::issue(
            state,
            cluster,
            &ctx.actor,
            &ctx.author,
            ctx.access.role,
            &DataTokenRequest {
                scope,
                ttl_secs: Some(TOKEN_TTL_SECS),
            },
        )
        .await?;
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|e| Error::Internal(format!("building the data-plane client: {e}")))?;
        Ok(DataPlane {
            endpoint,
            token: token.token,
            expires_at: token.expires_at,
            scope,
            http,
        })
    }

    /// The scope of this connection's token.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// When its token expires, seconds since the epoch.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// `GET path` (with its query), answering the body of a success.
    pub async fn get(&self, path: &str) -> Result<Value, DataError> {
        Ok(self.call(Method::GET, path, &[], None).await?.body)
    }

    /// `method path` with `headers` and a JSON `body`; a success answers [`Answer`], an error
    /// answer [`DataError::Refused`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Answer, DataError> {
        self.call_text(method, path, headers, body.map(Value::to_string))
            .await
    }

    /// [`DataPlane::call`] with the JSON body as text, sent as it is: a value the user typed
    /// keeps its key order and the digits of its numbers (a `Value` would sort and round them).
    pub async fn call_text(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Result<Answer, DataError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.endpoint))
            .bearer_auth(&self.token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request.send().await.map_err(|e| {
            tracing::warn!(error = %e, path, "cannot reach a data plane from the explorer");
            DataError::Unavailable(
                "The cluster cannot be reached right now; try again shortly.".into(),
            )
        })?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(|e| {
            DataError::Unavailable(format!(
                "The cluster's answer was cut short ({e}); try again."
            ))
        })?;
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        if (200..300).contains(&status) {
            return Ok(Answer {
                status,
                headers,
                body,
            });
        }
        Err(refused(status, &body))
    }

    /// `GET path` answering the raw body, for streams read line by line (the NDJSON snapshot).
    pub async fn get_text(&self, path: &str) -> Result<String, DataError> {
        let response = self
            .http
            .get(format!("{}{path}", self.endpoint))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, path, "cannot reach a data plane from the explorer");
                DataError::Unavailable(
                    "The cluster cannot be reached right now; try again shortly.".into(),
                )
            })?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| {
            DataError::Unavailable(format!(
                "The cluster's answer was cut short ({e}); try again."
            ))
        })?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        Err(refused(
            status,
            &serde_json::from_str(&text).unwrap_or(Value::Null),
        ))
    }
}

/// The data plane's error answer `{"error": {code, message}}` as a [`DataError`].
fn refused(status: u16, body: &Value) -> DataError {
    let field = |name: &str| {
        body.pointer(&format!("/error/{name}"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    DataError::Refused {
        status,
        code: field("code").unwrap_or_else(|| "unknown".into()),
        message: field("message").unwrap_or_else(|| format!("the cluster answered {status}")),
    }
}

/// A path segment (namespace) percent-encoded for the data plane's URLs.
pub fn segment(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
