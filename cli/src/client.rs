//! The control-plane API as the CLI calls it: JSON in and out (the CLI prints what the API
//! answers, so answers stay `serde_json::Value`), the API's error message carried as it is, and
//! the session refreshed with its refresh token when the access token has expired (or is
//! refused as expired), the new tokens saved to the profile.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use crate::config::{self, ConfigFile, Profile};
use crate::error::{CliError, Result};

/// How long one call may take: taking a base backup waits up to 150 s on the data plane.
const CALL_TIMEOUT: Duration = Duration::from_secs(180);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// An access token this close to expiry is refreshed before use.
const REFRESH_MARGIN_SECS: i64 = 30;

/// The credential a call carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// None: only anonymous calls work.
    None,
    /// A token given by `--api-token`/`KORU_TOKEN` or stored as the profile's API token; used
    /// as it is.
    Fixed(String),
    /// The profile's session, refreshed when it expires.
    Session,
}

/// Everything a command needs: the API, the profile, and where to save it.
pub struct Client {
    http: reqwest::Client,
    /// The control plane's base URL, without a final slash.
    pub base: String,
    credential: Credential,
    /// The config file as read (and as it will be saved).
    pub config: ConfigFile,
    /// Its path.
    pub config_path: PathBuf,
    /// The profile in use.
    pub profile_name: String,
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

/// Session tokens as the API returns them.
#[derive(Debug, Clone, Deserialize)]
pub struct Tokens {
    /// Access token.
    pub access_token: String,
    /// Refresh token.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

/// Seconds since the epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
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

impl Client {
    /// A client for `base` with `credential`, the profile `profile_name` of `config`.
    pub fn new(
        base: &str,
        credential: Credential,
        config: ConfigFile,
        config_path: PathBuf,
        profile_name: String,
    ) -> Result<Client> {
        // reqwest's TLS needs a process-wide rustls provider: ring, as in the rest of the
        // workspace. Installing fails harmlessly when one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("koru-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::Local(format!("cannot set up HTTP: {}", chain(&e))))?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            credential,
            config,
            config_path,
            profile_name,
        })
    }

    /// The profile in use (created empty when new).
    pub fn profile(&mut self) -> &mut Profile {
        self.config
            .profiles
            .entry(self.profile_name.clone())
            .or_default()
    }

    /// Saves the config file.
    pub fn save(&self) -> Result<()> {
        config::save(&self.config_path, &self.config)
    }

    /// Whether the client holds any credential.
    pub fn has_credential(&self) -> bool {
        self.credential != Credential::None
    }

    /// Whether the credential is the profile's session.
    pub fn is_session(&self) -> bool {
        self.credential == Credential::Session
    }

    /// Uses the profile's session from now on (after a login).
    pub fn use_session(&mut self) {
        self.credential = Credential::Session;
    }

    /// Stores a fresh session in the profile and saves the file.
    pub fn store_session(&mut self, tokens: &Tokens) -> Result<()> {
        let profile = self.profile();
        profile.api_token = None;
        profile.access_token = Some(tokens.access_token.clone());
        profile.refresh_token = Some(tokens.refresh_token.clone());
        profile.access_expires_at = Some(now_secs() + tokens.expires_in);
        self.save()
    }

    /// The bearer token of the next call, refreshing the session first when it has expired.
    async fn bearer(&mut self) -> Result<Option<String>> {
        match self.credential.clone() {
            Credential::None => Ok(None),
            Credential::Fixed(t) => Ok(Some(t)),
            Credential::Session => {
                let profile = self.profile().clone();
                let fresh = profile
                    .access_expires_at
                    .is_some_and(|at| at - REFRESH_MARGIN_SECS > now_secs());
                match profile.access_token {
                    Some(t) if fresh => Ok(Some(t)),
                    _ => self.refresh().await.map(Some),
                }
            }
        }
    }

    /// Exchanges the profile's refresh token for a new session; returns the access token.
    pub async fn refresh(&mut self) -> Result<String> {
        let Some(refresh) = self.profile().refresh_token.clone() else {
            return Err(CliError::Auth(
                "the session has expired; log in again with `koru login`".into(),
            ));
        };
        let body = serde_json::json!({ "refresh_token": refresh });
        let answer = self
            .send(Method::POST, "/api/v1/token/refresh", None, Some(&body))
            .await;
        let tokens: Tokens = match answer {
            Ok(v) => decode(&self.url("/api/v1/token/refresh"), v)?,
            Err(CliError::Api { status: 401, .. }) => {
                let profile = self.profile();
                profile.access_token = None;
                profile.refresh_token = None;
                profile.access_expires_at = None;
                self.save()?;
                return Err(CliError::Auth(
                    "the session has ended; log in again with `koru login`".into(),
                ));
            }
            Err(e) => return Err(e),
        };
        self.store_session(&tokens)?;
        Ok(tokens.access_token)
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// One authenticated JSON call; an expired session is refreshed and the call made again.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value> {
        self.call_with(method, path, body, &[]).await
    }

    /// [`Client::call`] with extra headers.
    pub async fn call_with(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Value> {
        let Some(token) = self.bearer().await? else {
            return Err(not_logged_in());
        };
        let first = self
            .send_with(method.clone(), path, Some(&token), body, headers)
            .await;
        match first {
            Err(CliError::Api { status: 401, .. }) if self.is_session() => {
                let token = self.refresh().await?;
                self.send_with(method, path, Some(&token), body, headers)
                    .await
            }
            Err(CliError::Api {
                status: 401,
                message,
                ..
            }) => Err(CliError::Auth(format!(
                "{message} (the token was refused; check KORU_TOKEN or log in again)"
            ))),
            other => other,
        }
    }

    /// An authenticated GET whose answer is text (the audit export).
    pub async fn get_text(&mut self, path: &str) -> Result<String> {
        let Some(token) = self.bearer().await? else {
            return Err(not_logged_in());
        };
        let url = self.url(path);
        let response = self
            .http
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| unreachable(&url, &e))?;
        let response = check(response, &url).await?;
        response.text().await.map_err(|e| unreachable(&url, &e))
    }

    /// One call without a credential (login, device flow), or with `token`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Value> {
        self.send_with(method, path, token, body, &[]).await
    }

    async fn send_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Value> {
        let url = self.url(path);
        let mut request = self.http.request(method, &url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(b) = body {
            request = request.json(b);
        }
        let response = request.send().await.map_err(|e| unreachable(&url, &e))?;
        let response = check(response, &url).await?;
        let bytes = response.bytes().await.map_err(|e| unreachable(&url, &e))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| CliError::Decode {
            url,
            detail: e.to_string(),
        })
    }
}

/// Reads a typed answer out of a JSON value.
pub fn decode<T: serde::de::DeserializeOwned>(url: &str, value: Value) -> Result<T> {
    serde_json::from_value(value).map_err(|e| CliError::Decode {
        url: url.to_string(),
        detail: e.to_string(),
    })
}

fn not_logged_in() -> CliError {
    CliError::Auth("not logged in: run `koru login` (or set KORU_TOKEN to an API token)".into())
}

fn unreachable(url: &str, e: &reqwest::Error) -> CliError {
    CliError::Unreachable {
        url: url.to_string(),
        detail: chain(e),
    }
}

/// The response if it is a success, else the API's error.
async fn check(response: reqwest::Response, url: &str) -> Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    Err(match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => CliError::Api {
            status: status.as_u16(),
            code: body.error.code,
            message: body.error.message,
        },
        // Not our API (a proxy, a wrong URL): say what answered.
        Err(_) => CliError::Api {
            status: status.as_u16(),
            code: "unknown".into(),
            message: format!(
                "{url} answered {status} without an API error body (is KORU_URL right?)"
            ),
        },
    })
}
