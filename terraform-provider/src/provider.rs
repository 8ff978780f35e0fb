//! The provider itself: its configuration (`endpoint`, `token`, `organization`, each with a
//! `KORU_*` environment fallback), the organization it acts in, and the resources and data
//! sources it serves.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{
    Attribute, AttributeConstraint, AttributeType, Block, Description, Schema,
};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, DynamicDataSource, DynamicResource, Provider};

use crate::client::{ApiError, Client};
use crate::data_sources::{ClusterDataSource, TiersDataSource};
use crate::diagnostics::{error, root_error};
use crate::resources::{ApiTokenResource, BackupResource, ClusterResource};

/// Environment variable read when `endpoint` is not set.
pub const ENV_ENDPOINT: &str = "KORU_ENDPOINT";
/// Environment variable read when `token` is not set.
pub const ENV_TOKEN: &str = "KORU_TOKEN";
/// Environment variable read when `organization` is not set.
pub const ENV_ORGANIZATION: &str = "KORU_ORGANIZATION";

/// The `provider "koru"` block.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProviderConfig {
    /// Base URL of the control plane.
    pub endpoint: Value<String>,
    /// API token or session access token.
    pub token: Value<String>,
    /// Organization id or slug.
    pub organization: Value<String>,
}

/// The provider's settings once configuration and environment are combined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Base URL of the control plane, without a trailing slash.
    pub endpoint: String,
    /// The bearer token.
    pub token: String,
    /// The organization, when named.
    pub organization: Option<String>,
}

/// A setting that is missing or wrong, with the attribute it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// The attribute.
    pub attribute: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Combines the configuration with the environment (`env` looks a variable up): a value set in
/// the configuration wins, an empty one counts as unset.
pub fn settings(
    config: &ProviderConfig,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Settings, Vec<SettingError>> {
    let pick = |value: &Value<String>, var: &str| -> Result<Option<String>, ()> {
        match value {
            Value::Value(v) if !v.is_empty() => Ok(Some(v.clone())),
            Value::Unknown => Err(()),
            _ => Ok(env(var).filter(|v| !v.is_empty())),
        }
    };
    let mut errors = Vec::new();
    let unknown = |attribute| SettingError {
        attribute,
        message: format!(
            "{attribute} must be known when the provider is configured; it cannot come from a resource created in the same run"
        ),
    };
    let endpoint = match pick(&config.endpoint, ENV_ENDPOINT) {
        Ok(Some(e)) => match check_endpoint(&e) {
            Ok(()) => Some(e.trim_end_matches('/').to_string()),
            Err(message) => {
                errors.push(SettingError {
                    attribute: "endpoint",
                    message,
                });
                None
            }
        },
        Ok(None) => {
            errors.push(SettingError {
                attribute: "endpoint",
                message: format!("set endpoint in the provider block or {ENV_ENDPOINT} to the control plane's URL, e.g. http://127.0.0.1:8080"),
            });
            None
        }
        Err(()) => {
            errors.push(unknown("endpoint"));
            None
        }
    };
    let token = match pick(&config.token, ENV_TOKEN) {
        Ok(Some(t)) => Some(t),
        Ok(None) => {
            errors.push(SettingError {
                attribute: "token",
                message: format!("set token in the provider block or {ENV_TOKEN} to an API token (koru_...) of your organization"),
            });
            None
        }
        Err(()) => {
            errors.push(unknown("token"));
            None
        }
    };
    let organization = match pick(&config.organization, ENV_ORGANIZATION) {
        Ok(o) => o,
        Err(()) => {
            errors.push(unknown("organization"));
            None
        }
    };
    match (endpoint, token) {
        (Some(endpoint), Some(token)) if errors.is_empty() => Ok(Settings {
            endpoint,
            token,
            organization,
        }),
        _ => Err(errors),
    }
}

/// Checks the endpoint is an http(s) URL.
pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let rest = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(()),
        _ => Err(format!(
            "endpoint {endpoint:?} must be an http:// or https:// URL, e.g. http://127.0.0.1:8080"
        )),
    }
}

/// What every resource and data source calls the API with: a client and the organization.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The API client.
    pub client: Client,
    /// The organization's id or slug, as it appears in API paths.
    pub org: String,
}

/// The connection, shared by the provider (which sets it when configured) with its resources
/// and data sources (created before configuration, so they hold this handle).
#[derive(Debug, Clone, Default)]
pub struct Shared(Arc<RwLock<Option<Arc<Connection>>>>);

impl Shared {
    /// The connection, or an error diagnostic when the provider is not configured.
    pub fn connection(&self, diags: &mut Diagnostics) -> Option<Arc<Connection>> {
        let current = match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        if current.is_none() {
            root_error(
                diags,
                "The koru provider is not configured",
                "its configuration failed or has not been applied yet; see the errors above",
            );
        }
        current
    }

    fn set(&self, connection: Connection) {
        let mut guard = match self.0.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Some(Arc::new(connection));
    }
}

/// The `koru` provider.
#[derive(Debug, Default)]
pub struct KoruProvider {
    shared: Shared,
}

impl KoruProvider {
    /// A provider to be configured by Terraform.
    pub fn new() -> KoruProvider {
        KoruProvider::default()
    }
}

fn attribute(description: &str, constraint: AttributeConstraint, sensitive: bool) -> Attribute {
    Attribute {
        attr_type: AttributeType::String,
        description: Description::plain(description),
        constraint,
        sensitive,
        deprecated: false,
    }
}

#[async_trait]
impl Provider for KoruProvider {
    type Config<'a> = ProviderConfig;
    type MetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        use AttributeConstraint::Optional;
        let attributes = HashMap::from([
            (
                "endpoint".to_string(),
                attribute(
                    "Base URL of the KoruDelta Cloud control plane, e.g. http://127.0.0.1:8080. Default: KORU_ENDPOINT.",
                    Optional,
                    false,
                ),
            ),
            (
                "token".to_string(),
                attribute(
                    "API token (koru_...) or session access token. Default: KORU_TOKEN.",
                    Optional,
                    true,
                ),
            ),
            (
                "organization".to_string(),
                attribute(
                    "Id or slug of the organization to manage. Default: KORU_ORGANIZATION; with a user's session token whose user has one organization, that one. Required with API tokens.",
                    Optional,
                    false,
                ),
            ),
        ]);
        Some(Schema {
            version: 1,
            block: Block {
                attributes,
                description: Description::plain("KoruDelta Cloud: versioned key-value clusters."),
                ..Default::default()
            },
        })
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: ProviderConfig) -> Option<()> {
        if let Value::Value(endpoint) = &config.endpoint
            && let Err(message) = check_endpoint(endpoint)
        {
            error(
                diags,
                "Invalid endpoint",
                message,
                AttributePath::new("endpoint"),
            );
        }
        Some(())
    }

    async fn configure<'a>(
        &self,
        diags: &mut Diagnostics,
        _terraform_version: String,
        config: ProviderConfig,
    ) -> Option<()> {
        let settings = match settings(&config, |var| std::env::var(var).ok()) {
            Ok(settings) => settings,
            Err(errors) => {
                for e in errors {
                    error(
                        diags,
                        format!("Missing or invalid provider setting {}", e.attribute),
                        e.message,
                        AttributePath::new(e.attribute),
                    );
                }
                return Some(());
            }
        };
        let client = match Client::new(&settings.endpoint, &settings.token) {
            Ok(client) => client,
            Err(e) => {
                root_error(diags, "Cannot create the API client", e.to_string());
                return Some(());
            }
        };
        let org = match settings.organization {
            Some(org) => org,
            None => match discover_organization(&client).await {
                Ok(org) => org,
                Err(message) => {
                    error(
                        diags,
                        "Which organization?",
                        message,
                        AttributePath::new("organization"),
                    );
                    return Some(());
                }
            },
        };
        self.shared.set(Connection { client, org });
        Some(())
    }

    fn get_resources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicResource>>> {
        Some(HashMap::from([
            (
                "cluster".to_string(),
                ClusterResource::new(self.shared.clone()).into(),
            ),
            (
                "api_token".to_string(),
                ApiTokenResource::new(self.shared.clone()).into(),
            ),
            (
                "backup".to_string(),
                BackupResource::new(self.shared.clone()).into(),
            ),
        ]))
    }

    fn get_data_sources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicDataSource>>> {
        Some(HashMap::from([
            (
                "cluster".to_string(),
                ClusterDataSource::new(self.shared.clone()).into(),
            ),
            (
                "tiers".to_string(),
                TiersDataSource::new(self.shared.clone()).into(),
            ),
        ]))
    }
}

/// The organization of a user's session token whose user belongs to exactly one. API tokens
/// cannot name their organization (`GET /api/v1/me` is for users), so they need `organization`.
async fn discover_organization(client: &Client) -> Result<String, String> {
    let hint = format!("set organization in the provider block or {ENV_ORGANIZATION}");
    match client.my_organizations().await {
        Ok(orgs) => match orgs.as_slice() {
            [one] => Ok(one.slug.clone()),
            [] => Err(format!("this user belongs to no organization; {hint}")),
            many => Err(format!(
                "this user belongs to {} organizations ({}); {hint}",
                many.len(),
                many.iter()
                    .map(|o| o.slug.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        },
        Err(ApiError::Api { status: 403, .. }) => Err(format!(
            "the token is an API token, which does not tell which organization it belongs to; {hint}"
        )),
        Err(e) => Err(format!("could not find the organization: {e}; {hint}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(endpoint: Value<String>, token: Value<String>, org: Value<String>) -> ProviderConfig {
        ProviderConfig {
            endpoint,
            token,
            organization: org,
        }
    }

    fn v(s: &str) -> Value<String> {
        Value::Value(s.to_string())
    }

    #[test]
    fn configuration_wins_over_the_environment() {
        let env = |var: &str| match var {
            ENV_ENDPOINT => Some("http://env:1/".to_string()),
            ENV_TOKEN => Some("koru_env".to_string()),
            ENV_ORGANIZATION => Some("env-org".to_string()),
            _ => None,
        };
        let from_env = settings(&config(Value::Null, Value::Null, Value::Null), env).unwrap();
        assert_eq!(
            from_env,
            Settings {
                endpoint: "http://env:1".into(),
                token: "koru_env".into(),
                organization: Some("env-org".into()),
            }
        );
        let from_config =
            settings(&config(v("https://api"), v("koru_cfg"), v("acme")), env).unwrap();
        assert_eq!(
            (from_config.endpoint.as_str(), from_config.token.as_str()),
            ("https://api", "koru_cfg")
        );
        assert_eq!(from_config.organization.as_deref(), Some("acme"));
        // An empty value counts as unset.
        let empty = settings(&config(v(""), v(""), v("")), env).unwrap();
        assert_eq!(empty.token, "koru_env");
    }

    #[test]
    fn missing_unknown_and_invalid_settings_name_their_attribute() {
        let none = |_: &str| None;
        let errors = settings(&config(Value::Null, Value::Null, Value::Null), none).unwrap_err();
        let attributes: Vec<_> = errors.iter().map(|e| e.attribute).collect();
        assert_eq!(attributes, ["endpoint", "token"]);
        assert!(errors[0].message.contains(ENV_ENDPOINT), "{errors:?}");
        assert!(errors[1].message.contains(ENV_TOKEN), "{errors:?}");
        // No organization is fine here: a session token's is looked up.
        assert!(settings(&config(v("http://a"), v("t"), Value::Null), none).is_ok());

        let errors = settings(&config(v("ftp://a"), Value::Unknown, v("o")), none).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert!(errors[0].attribute == "endpoint" && errors[0].message.contains("http://"));
        assert!(errors[1].attribute == "token" && errors[1].message.contains("known"));
    }

    #[test]
    fn endpoints_must_be_http_urls() {
        assert!(check_endpoint("http://127.0.0.1:8080").is_ok());
        assert!(check_endpoint("https://api.example.com/").is_ok());
        for bad in ["127.0.0.1:8080", "http://", "https:///x", "ftp://a"] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
    }
}
