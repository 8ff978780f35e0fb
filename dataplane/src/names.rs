//! Rules for namespace and key names, checked before anything reaches the log.

use thiserror::Error;

/// Longest namespace name, in bytes.
pub const MAX_NAMESPACE_LEN: usize = 128;
/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// Prefix of namespaces the server keeps for itself (views live in one).
pub const INTERNAL_PREFIX: &str = "_koru";
/// Namespaces that would collide with fixed API paths (`/api/v1/views/...`, `/api/v1/batch/...`).
const RESERVED_NAMESPACES: [&str; 2] = ["views", "batch"];
/// Keys that would collide with fixed API paths (`/api/v1/{ns}/keys`, `/api/v1/{ns}/query`,
/// `/api/v1/{ns}/indexes`).
const RESERVED_KEYS: [&str; 3] = ["keys", "query", "indexes"];

/// Why a name was refused.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("invalid {what} {name:?}: {reason}")]
pub struct NameError {
    /// "namespace" or "key".
    pub what: &'static str,
    /// The refused name, shortened when long.
    pub name: String,
    /// Which rule it breaks.
    pub reason: String,
}

fn refuse(what: &'static str, name: &str, reason: impl Into<String>) -> NameError {
    let name = if name.len() > 64 {
        format!("{}…", &name[..name.floor_char_boundary(64)])
    } else {
        name.to_string()
    };
    NameError {
        what,
        name,
        reason: reason.into(),
    }
}

/// Checks a namespace name given by a client: 1–128 of `A-Z a-z 0-9 _ - .`, not reserved.
pub fn validate_namespace(name: &str) -> Result<(), NameError> {
    validate_namespace_inner(name)?;
    if name.starts_with(INTERNAL_PREFIX) {
        return Err(refuse(
            "namespace",
            name,
            format!("names starting with {INTERNAL_PREFIX:?} are reserved"),
        ));
    }
    Ok(())
}

/// Checks a namespace name, internal ones allowed.
pub(crate) fn validate_namespace_inner(name: &str) -> Result<(), NameError> {
    if name.is_empty() || name.len() > MAX_NAMESPACE_LEN {
        return Err(refuse(
            "namespace",
            name,
            format!("must be 1 to {MAX_NAMESPACE_LEN} bytes long"),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(refuse(
            "namespace",
            name,
            format!("character {c:?} is not allowed (use A-Z a-z 0-9 _ - .)"),
        ));
    }
    if RESERVED_NAMESPACES.contains(&name) {
        return Err(refuse("namespace", name, "the name is reserved by the API"));
    }
    Ok(())
}

/// Checks a key: 1–1024 bytes of UTF-8 without control characters, not reserved.
pub fn validate_key(key: &str) -> Result<(), NameError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(refuse(
            "key",
            key,
            format!("must be 1 to {MAX_KEY_LEN} bytes long"),
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(refuse("key", key, "control characters are not allowed"));
    }
    if RESERVED_KEYS.contains(&key) {
        return Err(refuse("key", key, "the name is reserved by the API"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        assert!(validate_namespace("users.v2-eu_1").is_ok());
        assert!(validate_key("user:42/ünïcode key").is_ok());
    }

    #[test]
    fn refuses_bad_names_with_reasons() {
        assert!(
            validate_namespace("")
                .unwrap_err()
                .reason
                .contains("1 to 128")
        );
        assert!(
            validate_namespace("a b")
                .unwrap_err()
                .reason
                .contains("' '")
        );
        assert!(
            validate_namespace("_koru_views")
                .unwrap_err()
                .reason
                .contains("reserved")
        );
        assert!(validate_namespace("views").is_err());
        assert!(
            validate_key(&"k".repeat(1025))
                .unwrap_err()
                .name
                .ends_with('…')
        );
        assert!(validate_key("a\nb").is_err());
        assert!(validate_key("keys").is_err());
        assert!(validate_key("indexes").is_err());
        assert!(
            validate_key("by").is_ok(),
            "only by/{{index}}/{{value}} is a lookup"
        );
    }
}
