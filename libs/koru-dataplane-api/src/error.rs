//! The body of every data-plane error answer: `{"error": {"code": …, "message": …}}`.

use serde::{Deserialize, Serialize};

/// An error answer's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong: a stable code for programs and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable machine-readable code (e.g. `not_found`, `backups_not_configured`).
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

impl ErrorBody {
    /// The body of an error with `code` and `message`.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }

    /// Reads an error answer's body; None when it is not one (a proxy's HTML page, say).
    pub fn parse(body: &[u8]) -> Option<ErrorBody> {
        serde_json::from_slice(body).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_written_as_the_data_plane_always_wrote_it() {
        let json = r#"{"error":{"code":"not_found","message":"no such key"}}"#;
        assert_eq!(
            serde_json::to_string(&ErrorBody::new("not_found", "no such key")).unwrap(),
            json
        );
        assert_eq!(
            ErrorBody::parse(json.as_bytes()),
            Some(ErrorBody::new("not_found", "no such key"))
        );
        assert_eq!(ErrorBody::parse(b"<html>"), None);
    }
}
