//! The key page's writes (members): put a JSON value or delete the key, with `If-Match` on the
//! version the form was rendered with. A write that meets another version (the data plane's
//! 412) writes nothing and shows the other version inline; invalid JSON is refused before the
//! data plane is asked.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use koru_dataplane_api::auth::Scope;
use koru_dataplane_api::data::Written;
use reqwest::Method;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::auth::Role;
use crate::dashboard::PageResult;
use crate::dashboard::session::{Flash, SignedIn, with_cookies};
use crate::dashboard::view;
use crate::state::AppState;

use super::super::Explorer;
use super::super::client::{DataError, DataPlane};
use super::super::keys::{connect, inline};
use super::{KeyQuery, Outcome, current, key_page, key_path};

/// The edit, delete and new-key forms.
#[derive(Debug, Clone, Deserialize)]
pub struct EditForm {
    /// The namespace (new-key form of the namespaces page; otherwise it is in the path).
    #[serde(default)]
    namespace: String,
    key: String,
    /// The value as JSON text (put).
    #[serde(default)]
    value: String,
    /// The version the form was rendered with; empty for a key that has none (create).
    #[serde(default)]
    if_match: String,
    /// `put` or `delete`.
    action: String,
}

/// Why a write was not made.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    /// The form is not one the page sends (an unknown action, no key).
    #[error("{0}")]
    Form(String),
    /// The value is not JSON.
    #[error("The value is not JSON: {0}. Nothing was written.")]
    Json(String),
    /// The key is not at the version the form was rendered with.
    #[error("conflict")]
    Conflict,
    /// The data plane refused or could not be asked.
    #[error(transparent)]
    Data(#[from] DataError),
}

/// `POST …/data/ns/{ns}/key`: writes or deletes the key, then back to its page.
pub async fn submit(
    State(state): State<AppState>,
    user: SignedIn,
    Path((org, id, ns)): Path<(String, String, String)>,
    Form(form): Form<EditForm>,
) -> PageResult {
    write(&state, &user, &org, &id, &ns, form).await
}

/// `POST …/data/key`: the namespaces page's new-key form, the namespace a field.
pub async fn create(
    State(state): State<AppState>,
    user: SignedIn,
    Path((org, id)): Path<(String, String)>,
    Form(form): Form<EditForm>,
) -> PageResult {
    let ns = form.namespace.trim().to_string();
    write(&state, &user, &org, &id, &ns, form).await
}

async fn write(
    state: &AppState,
    user: &SignedIn,
    org: &str,
    id: &str,
    ns: &str,
    form: EditForm,
) -> PageResult {
    let ex = Explorer::load(state, user, org, id, &form.key, "data").await?;
    ex.ctx.access.require(Role::Member)?;
    let dp = connect(state, &ex, Scope::Write).await?;
    let q = KeyQuery {
        key: form.key.clone(),
        ..KeyQuery::default()
    };
    match attempt(&dp, ns, &form).await {
        Ok(flash) => {
            let cookie = Flash::cookie(&user.visitor.policy, false, &flash);
            let to = format!(
                "{}/ns/{}/key{}",
                ex.base,
                super::segment(ns),
                super::query(&[("key", &form.key)])
            );
            Ok(with_cookies(
                Redirect::to(&to).into_response(),
                vec![cookie],
            ))
        }
        Err(refusal) => {
            let (status, outcome) = match refusal {
                Refusal::Conflict => (
                    StatusCode::PRECONDITION_FAILED,
                    Outcome {
                        value: Some(form.value),
                        error: None,
                        conflict: true,
                    },
                ),
                Refusal::Data(e) => {
                    let (status, message) = inline(e)?;
                    (status, refused(form.value, message))
                }
                e @ (Refusal::Form(_) | Refusal::Json(_)) => {
                    (StatusCode::BAD_REQUEST, refused(form.value, e.to_string()))
                }
            };
            key_page(ex, &dp, ns, &q, status, outcome).await
        }
    }
}

/// The form again with `error`, as submitted.
fn refused(value: String, error: String) -> Outcome {
    Outcome {
        value: Some(value),
        error: Some(error),
        conflict: false,
    }
}

/// Makes the write the form asks for; the flash message saying what it did.
async fn attempt(dp: &DataPlane, ns: &str, form: &EditForm) -> Result<String, Refusal> {
    if form.key.is_empty() {
        return Err(Refusal::Form("Name the key to write.".into()));
    }
    let version = form.if_match.trim();
    let quoted = format!("\"{version}\"");
    let mut headers = Vec::new();
    if !version.is_empty() {
        headers.push(("if-match", quoted.as_str()));
    }
    let path = key_path(ns, &form.key);
    let answer = match form.action.as_str() {
        "put" => {
            let value = json_value(&form.value)?;
            if version.is_empty() && current(dp, ns, &form.key).await?.is_some() {
                // The data plane has no "only if absent": a key that exists by now was
                // written by someone else since the form was shown.
                return Err(Refusal::Conflict);
            }
            let body = format!("{{\"value\":{}}}", value.get());
            dp.call_text(Method::PUT, &path, &headers, Some(body)).await
        }
        "delete" if !version.is_empty() => dp.call(Method::DELETE, &path, &headers, None).await,
        "delete" => {
            return Err(Refusal::Form(
                "There is no version to delete: reload the key's page.".into(),
            ));
        }
        other => return Err(Refusal::Form(format!("There is no action {other:?}."))),
    };
    let answer = match answer {
        Ok(a) => a,
        Err(DataError::Refused { status: 412, .. }) => return Err(Refusal::Conflict),
        Err(e) => return Err(e.into()),
    };
    let written: Option<Written> = serde_json::from_value(answer.body).ok();
    let version = written.map(|w| w.version_id).unwrap_or_default();
    Ok(if form.action == "delete" {
        format!(
            "Deleted {} (version {version}); its history is kept.",
            form.key
        )
    } else {
        format!("Saved {}: version {version}.", form.key)
    })
}

/// The form's value as JSON text, checked (surrounding whitespace dropped).
fn json_value(text: &str) -> Result<Box<RawValue>, Refusal> {
    serde_json::from_str::<Box<RawValue>>(text.trim()).map_err(|e| {
        Refusal::Json(
            view::sentence(&e.to_string())
                .trim_end_matches('.')
                .to_string(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_must_be_json_and_keep_their_text() {
        assert_eq!(
            json_value(" {\"b\":1, \"a\":12345678901234567890123} ")
                .unwrap()
                .get(),
            "{\"b\":1, \"a\":12345678901234567890123}"
        );
        let e = json_value("{not json").unwrap_err().to_string();
        assert!(
            e.starts_with("The value is not JSON: Key must be a string"),
            "{e}"
        );
        assert!(e.ends_with("Nothing was written."), "{e}");
        assert!(json_value("").is_err());
    }
}
