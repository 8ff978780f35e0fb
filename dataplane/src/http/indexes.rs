//! Index routes: define, list and drop a namespace's indexes, and look documents up by an indexed
//! value, now or as of a moment (`GET /api/v1/{ns}/by/{index}/{value}?at=`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::{ApiPath, ApiQuery, JsonBody};
use super::{ApiError, AppState, blocking, json};
use crate::error::StoreError;
use crate::indexes::{IndexDef, IndexInfo, IndexKind, IndexStatus, Probe};
use crate::names;
use crate::query::Row;
use crate::rewind::{GuardedWrite, RewindError};

/// Body of `POST /api/v1/{ns}/indexes`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    field: String,
    #[serde(default)]
    unique: bool,
    #[serde(default)]
    kind: IndexKind,
    name: Option<String>,
}

/// Query of a lookup: `?at=<RFC 3339>`.
#[derive(Deserialize)]
pub struct LookupParams {
    at: Option<String>,
}

/// Results of a lookup, shaped like a query's.
#[derive(Serialize)]
pub struct LookupResult {
    results: Vec<Row>,
}

fn check_namespace(namespace: &str) -> Result<(), ApiError> {
    names::validate_namespace(namespace).map_err(StoreError::from)?;
    Ok(())
}

/// An index as the API shows it.
pub fn info_json(info: &IndexInfo) -> Value {
    let mut out = json!({
        "name": info.def.name,
        "namespace": info.def.namespace,
        "field": info.def.field,
        "kind": info.def.kind,
        "unique": info.def.unique,
        "entries": info.entries,
        "distinct_values": info.distinct_values,
    });
    if info.created_micros > 0 {
        out["created"] = json!(json::timestamp(info.created_micros));
    }
    match &info.status {
        IndexStatus::Building { indexed, total } => {
            out["status"] = json!("building");
            out["progress"] = json!({ "indexed": indexed, "total": total });
        }
        IndexStatus::Ready => out["status"] = json!("ready"),
        IndexStatus::Failed { reason } => {
            out["status"] = json!("failed");
            out["reason"] = json!(reason);
        }
    }
    out
}

/// `POST /api/v1/{ns}/indexes`: defines an index (201 with it); 409 `already_exists` when the
/// name is taken.
pub async fn create(
    State(state): State<AppState>,
    ApiPath(namespace): ApiPath<String>,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_namespace(&namespace)?;
    let def = IndexDef {
        namespace: namespace.clone(),
        name: body.name.unwrap_or_else(|| body.field.clone()),
        field: body.field,
        kind: body.kind,
        unique: body.unique,
    };
    if let Some(replica) = &state.replica {
        // This member must hold the definitions the leader holds before it decides the name is free.
        replica.read_barrier(None).await?;
    }
    let (op, guard) = state.store.index_definition_write(&def)?;
    let exists = || StoreError::IndexExists {
        namespace: def.namespace.clone(),
        name: def.name.clone(),
    };
    let written = match &state.replica {
        None => state.store.write_guarded(vec![op], guard).await,
        Some(replica) => match replica
            .write_guarded(vec![op], guard, Default::default())
            .await
        {
            Ok(c) => Ok(c),
            Err(RewindError::Store(e)) => Err(e),
            Err(e) => return Err(e.into()),
        },
    };
    match written {
        Err(StoreError::Conflict { .. }) => return Err(exists().into()),
        other => other?,
    };
    let info = state
        .store
        .index(&def.namespace, &def.name)
        .unwrap_or_else(|| crate::store::pending_info(&def));
    Ok((StatusCode::CREATED, Json(info_json(&info))))
}

/// `GET /api/v1/{ns}/indexes`: the namespace's indexes with status and counts.
pub async fn list(
    State(state): State<AppState>,
    ApiPath(namespace): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    check_namespace(&namespace)?;
    let indexes: Vec<Value> = state
        .store
        .indexes(&namespace)
        .iter()
        .map(info_json)
        .collect();
    Ok(Json(json!({ "indexes": indexes })))
}

/// `DELETE /api/v1/{ns}/indexes/{name}`: drops an index (204); 404 when it is not defined.
pub async fn drop(
    State(state): State<AppState>,
    ApiPath((namespace, name)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    check_namespace(&namespace)?;
    if let Some(replica) = &state.replica {
        replica.read_barrier(None).await?;
    }
    let op = state.store.index_drop_write(&namespace, &name)?;
    state.write(vec![op], Default::default()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The values a path segment stands for: the string itself, and the number, boolean or null
/// it spells when it spells one (`/by/age/42` finds 42 and "42").
pub fn path_values(text: &str) -> Vec<Value> {
    let mut values = vec![Value::String(text.to_string())];
    if let Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::Null)) =
        serde_json::from_str::<Value>(text)
    {
        values.push(v);
    }
    values
}

/// `GET /api/v1/{ns}/by/{index}/{value}`: the documents whose indexed field equals the value,
/// in key order, now or as of `?at=`.
pub async fn lookup(
    State(state): State<AppState>,
    ApiPath((namespace, index, value)): ApiPath<(String, String, String)>,
    ApiQuery(params): ApiQuery<LookupParams>,
) -> Result<Json<LookupResult>, ApiError> {
    check_namespace(&namespace)?;
    let at = params
        .at
        .as_deref()
        .map(json::parse_timestamp)
        .transpose()?;
    let store = state.store.clone();
    let probe = Probe::In(path_values(&value));
    blocking::read(move || {
        let found = store.fetch_by_index(&namespace, &index, &probe, at)?;
        let mut results = Vec::with_capacity(found.len());
        for (key, mut fetched) in found {
            let text = fetched.value.take().unwrap_or_else(|| "null".into());
            results.push(Row::of(key, &fetched, text, Value::Null)?);
        }
        Ok(Json(LookupResult { results }))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_values_also_read_numbers_booleans_and_null() {
        assert_eq!(path_values("42"), vec![json!("42"), json!(42)]);
        assert_eq!(path_values("true"), vec![json!("true"), json!(true)]);
        assert_eq!(path_values("null"), vec![json!("null"), json!(null)]);
        assert_eq!(path_values("bob"), vec![json!("bob")]);
        assert_eq!(path_values("[1]"), vec![json!("[1]")]);
    }
}
