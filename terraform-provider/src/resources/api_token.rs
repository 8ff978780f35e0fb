//! `koru_api_token`: an API token of the organization, for automation. The API cannot change a
//! token, so any change replaces it (a new secret); destroying it revokes it. The secret is known
//! only to the apply that created the token: an imported token has none.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{AttributeConstraint, AttributeType, Block, Description, Schema};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, Resource};

use super::{attribute, known, rfc3339};
use crate::client::{ApiToken, CreateToken};
use crate::diagnostics::{api_error, check_attribute, root_error};
use crate::provider::Shared;
use crate::rules;

/// Milliseconds in a day, to recover `expires_in_days` from an imported token's times.
const DAY_MS: i64 = 24 * 3600 * 1000;

/// A `koru_api_token` as configured, planned and stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiTokenState {
    /// Token id.
    pub id: Value<String>,
    /// What the token is for.
    pub name: Value<String>,
    /// Its role: viewer, member, admin or owner (at most the caller's).
    pub role: Value<String>,
    /// Days until it expires; never when not set.
    pub expires_in_days: Value<i64>,
    /// The secret (sensitive); only known to the apply that created the token.
    pub token: Value<String>,
    /// The first characters of the secret, to recognise it.
    pub prefix: Value<String>,
    /// Creation time (RFC 3339).
    pub created_at: Value<String>,
    /// Expiry (RFC 3339), when it expires.
    pub expires_at: Value<String>,
}

impl ApiTokenState {
    /// The state of `token`; `secret` is kept from the state (the API shows it only once).
    pub fn from_api(token: &ApiToken, secret: Value<String>) -> ApiTokenState {
        ApiTokenState {
            id: Value::Value(token.id.clone()),
            name: Value::Value(token.name.clone()),
            role: Value::Value(token.role.clone()),
            // The API computes the expiry as creation time plus whole days, so this is exact.
            expires_in_days: token
                .expires_at
                .map(|at| (at - token.created_at) / DAY_MS)
                .into(),
            token: token.token.clone().map(Value::Value).unwrap_or(secret),
            prefix: Value::Value(token.prefix.clone()),
            created_at: Value::Value(rfc3339(token.created_at)),
            expires_at: token.expires_at.map(rfc3339).into(),
        }
    }
}

/// The attributes whose change replaces the token (the API has no update).
const REPLACING: [&str; 3] = ["name", "role", "expires_in_days"];

/// The attributes of `proposed` that differ from `prior`, each replacing the token.
pub fn replaced(prior: &ApiTokenState, proposed: &ApiTokenState) -> Vec<&'static str> {
    let differ = [
        prior.name != proposed.name,
        prior.role != proposed.role,
        prior.expires_in_days != proposed.expires_in_days,
    ];
    REPLACING
        .iter()
        .zip(differ)
        .filter_map(|(attr, d)| d.then_some(*attr))
        .collect()
}

/// The `koru_api_token` resource.
pub struct ApiTokenResource {
    shared: Shared,
}

impl ApiTokenResource {
    /// The resource, calling the API through `shared` once the provider is configured.
    pub fn new(shared: Shared) -> ApiTokenResource {
        ApiTokenResource { shared }
    }
}

#[async_trait]
impl Resource for ApiTokenResource {
    type State<'a> = ApiTokenState;
    type PrivateState<'a> = ();
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        use AttributeConstraint::{Computed, Optional, Required};
        use AttributeType::{Number, String};
        let mut token = attribute(
            String,
            Computed,
            "The secret, for `Authorization: Bearer`. Known only to the apply that created the token (null after an import).",
        );
        token.sensitive = true;
        let attributes = HashMap::from([
            ("id".into(), attribute(String, Computed, "Token id.")),
            (
                "name".into(),
                attribute(
                    String,
                    Required,
                    "What the token is for (1 to 100 characters). Changing it replaces the token.",
                ),
            ),
            (
                "role".into(),
                attribute(
                    String,
                    Required,
                    "Role: viewer, member, admin or owner, at most the caller's. Changing it replaces the token.",
                ),
            ),
            (
                "expires_in_days".into(),
                attribute(
                    Number,
                    Optional,
                    "Days until the token expires (1 to 3650); never when not set. Changing it replaces the token.",
                ),
            ),
            ("token".into(), token),
            (
                "prefix".into(),
                attribute(String, Computed, "The first characters of the secret."),
            ),
            (
                "created_at".into(),
                attribute(String, Computed, "Creation time (RFC 3339)."),
            ),
            (
                "expires_at".into(),
                attribute(
                    String,
                    Computed,
                    "Expiry (RFC 3339); null when it never expires.",
                ),
            ),
        ]);
        Some(Schema {
            version: 1,
            block: Block {
                attributes,
                description: Description::plain(
                    "An API token of the organization. Destroying it revokes it.",
                ),
                ..Default::default()
            },
        })
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: ApiTokenState) -> Option<()> {
        if let Some(name) = known(&config.name) {
            check_attribute(
                diags,
                AttributePath::new("name"),
                "Invalid token name",
                rules::check_token_name(name),
            );
        }
        if let Some(role) = known(&config.role) {
            check_attribute(
                diags,
                AttributePath::new("role"),
                "Invalid role",
                rules::check_role(role),
            );
        }
        if let Some(days) = known(&config.expires_in_days) {
            check_attribute(
                diags,
                AttributePath::new("expires_in_days"),
                "Invalid expiry",
                rules::check_expires_in_days(*days),
            );
        }
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        state: ApiTokenState,
        _private: (),
        _meta: ValueEmpty,
    ) -> Option<(ApiTokenState, ())> {
        let conn = self.shared.connection(diags)?;
        let Some(id) = known(&state.id) else {
            return Some((state, ()));
        };
        match conn.client.token(&conn.org, id).await {
            Ok(Some(token)) if token.revoked_at.is_none() => {
                Some((ApiTokenState::from_api(&token, state.token), ()))
            }
            // Revoked or deleted outside Terraform: forget it, so the next plan creates another.
            Ok(_) => None,
            Err(e) => {
                api_error(diags, format!("Cannot read API token {id}"), &e);
                Some((state, ()))
            }
        }
    }

    async fn plan_create<'a>(
        &self,
        _diags: &mut Diagnostics,
        proposed: ApiTokenState,
        _config: ApiTokenState,
        _meta: ValueEmpty,
    ) -> Option<(ApiTokenState, ())> {
        let never_expires = proposed.expires_in_days.is_null();
        let planned = ApiTokenState {
            id: Value::Unknown,
            token: Value::Unknown,
            prefix: Value::Unknown,
            created_at: Value::Unknown,
            expires_at: if never_expires {
                Value::Null
            } else {
                Value::Unknown
            },
            ..proposed
        };
        Some((planned, ()))
    }

    async fn plan_update<'a>(
        &self,
        _diags: &mut Diagnostics,
        prior: ApiTokenState,
        proposed: ApiTokenState,
        _config: ApiTokenState,
        _private: (),
        _meta: ValueEmpty,
    ) -> Option<(ApiTokenState, (), Vec<AttributePath>)> {
        let replace = replaced(&prior, &proposed);
        if replace.is_empty() {
            return Some((proposed, (), vec![]));
        }
        let planned = ApiTokenState {
            id: Value::Unknown,
            token: Value::Unknown,
            prefix: Value::Unknown,
            created_at: Value::Unknown,
            expires_at: Value::Unknown,
            ..proposed
        };
        Some((
            planned,
            (),
            replace.into_iter().map(AttributePath::new).collect(),
        ))
    }

    async fn plan_destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: ApiTokenState,
        _private: (),
        _meta: ValueEmpty,
    ) -> Option<()> {
        Some(())
    }

    async fn create<'a>(
        &self,
        diags: &mut Diagnostics,
        planned: ApiTokenState,
        _config: ApiTokenState,
        _private: (),
        _meta: ValueEmpty,
    ) -> Option<(ApiTokenState, ())> {
        let conn = self.shared.connection(diags)?;
        let request = CreateToken {
            name: known(&planned.name)?.clone(),
            role: known(&planned.role)?.clone(),
            expires_in_days: known(&planned.expires_in_days)
                .map(|d| u32::try_from(*d).unwrap_or(u32::MAX)),
        };
        match conn.client.create_token(&conn.org, &request).await {
            Ok(token) => Some((ApiTokenState::from_api(&token, Value::Null), ())),
            Err(e) => {
                api_error(
                    diags,
                    format!("Cannot create API token {:?}", request.name),
                    &e,
                );
                None
            }
        }
    }

    async fn update<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior: ApiTokenState,
        planned: ApiTokenState,
        _config: ApiTokenState,
        _private: (),
        _meta: ValueEmpty,
    ) -> Option<(ApiTokenState, ())> {
        // Every change of an argument replaces the token, so an update changes nothing.
        Some((planned, ()))
    }

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        prior: ApiTokenState,
        _private: (),
        _meta: ValueEmpty,
    ) -> Option<()> {
        let conn = self.shared.connection(diags)?;
        let id = known(&prior.id)?;
        match conn.client.revoke_token(&conn.org, id).await {
            Ok(()) => Some(()),
            Err(e) if e.is_not_found() => Some(()),
            Err(e) => {
                api_error(diags, format!("Cannot revoke API token {id}"), &e);
                None
            }
        }
    }

    async fn import<'a>(&self, diags: &mut Diagnostics, id: String) -> Option<(ApiTokenState, ())> {
        let conn = self.shared.connection(diags)?;
        match conn.client.token(&conn.org, &id).await {
            Ok(Some(token)) if token.revoked_at.is_none() => {
                Some((ApiTokenState::from_api(&token, Value::Null), ()))
            }
            Ok(_) => {
                root_error(
                    diags,
                    format!("Cannot import API token {id:?}"),
                    format!(
                        "organization {:?} has no active API token with this id",
                        conn.org
                    ),
                );
                None
            }
            Err(e) => {
                api_error(diags, format!("Cannot import API token {id:?}"), &e);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_token(expires_at: Option<i64>, secret: Option<&str>) -> ApiToken {
        ApiToken {
            id: "t1".into(),
            name: "ci".into(),
            role: "member".into(),
            prefix: "koru_abcdefg".into(),
            expires_at,
            revoked_at: None,
            created_at: 1_700_000_000_000,
            token: secret.map(str::to_string),
        }
    }

    #[test]
    fn the_lifetime_is_recovered_from_the_expiry() {
        let state = ApiTokenState::from_api(
            &api_token(Some(1_700_000_000_000 + 30 * DAY_MS), None),
            Value::Null,
        );
        assert_eq!(state.expires_in_days, Value::Value(30));
        assert_eq!(
            state.expires_at,
            Value::Value("2023-12-14T22:13:20Z".to_string())
        );
        let never = ApiTokenState::from_api(&api_token(None, None), Value::Null);
        assert!(never.expires_in_days.is_null() && never.expires_at.is_null());
    }

    #[test]
    fn the_secret_is_taken_once_and_then_kept() {
        let created = ApiTokenState::from_api(&api_token(None, Some("koru_secret")), Value::Null);
        assert_eq!(created.token, Value::Value("koru_secret".to_string()));
        let read = ApiTokenState::from_api(&api_token(None, None), created.token.clone());
        assert_eq!(read.token, created.token);
        let imported = ApiTokenState::from_api(&api_token(None, None), Value::Null);
        assert!(imported.token.is_null());
    }

    #[test]
    fn every_argument_change_replaces_the_token() {
        let prior = ApiTokenState::from_api(&api_token(None, Some("koru_secret")), Value::Null);
        assert!(replaced(&prior, &prior.clone()).is_empty());
        let mut proposed = prior.clone();
        proposed.role = Value::Value("admin".into());
        proposed.expires_in_days = Value::Value(7);
        assert_eq!(replaced(&prior, &proposed), ["role", "expires_in_days"]);
    }
}
