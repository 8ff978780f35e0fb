//! The CLI's errors and their exit codes (the table in cli/README.md).

/// Exit code: a generic failure (the API refused with another status, or broke).
pub const EXIT_FAILURE: i32 = 1;
/// Exit code: bad command line or input (clap uses 2 too).
pub const EXIT_USAGE: i32 = 2;
/// Exit code: not logged in, or the credentials were refused (401), or a login was denied.
pub const EXIT_AUTH: i32 = 3;
/// Exit code: the object does not exist (404).
pub const EXIT_NOT_FOUND: i32 = 4;
/// Exit code: not allowed: role, quota or plan (403, 402).
pub const EXIT_FORBIDDEN: i32 = 5;
/// Exit code: conflict with the current state (409, 423: name taken, operation running).
pub const EXIT_CONFLICT: i32 = 6;
/// Exit code: an operation the command waited for failed.
pub const EXIT_OPERATION_FAILED: i32 = 7;
/// Exit code: the API could not be reached.
pub const EXIT_UNREACHABLE: i32 = 8;
/// Exit code: waiting ran out of time (an operation, a device login).
pub const EXIT_TIMEOUT: i32 = 9;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The API answered with its error body: its message is shown as it is.
    #[error("{message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The API's stable code.
        code: String,
        /// The API's message.
        message: String,
    },
    /// The command line or an input was wrong.
    #[error("{0}")]
    Usage(String),
    /// No credentials, or they no longer work.
    #[error("{0}")]
    Auth(String),
    /// The API could not be reached.
    #[error("could not reach {url}: {detail}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// The API answered something unexpected.
    #[error("unexpected answer from {url}: {detail}")]
    Decode {
        /// The URL called.
        url: String,
        /// What could not be read.
        detail: String,
    },
    /// An operation the command waited for failed.
    #[error("operation {id} failed: {message}")]
    OperationFailed {
        /// The operation.
        id: String,
        /// Why.
        message: String,
    },
    /// Waiting ran out of time.
    #[error("{0}")]
    Timeout(String),
    /// Reading or writing a local file failed.
    #[error("{0}")]
    Local(String),
}

impl CliError {
    /// The process's exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Api { status, .. } => match status {
                401 => EXIT_AUTH,
                404 => EXIT_NOT_FOUND,
                402 | 403 => EXIT_FORBIDDEN,
                409 | 423 => EXIT_CONFLICT,
                400 | 422 => EXIT_USAGE,
                _ => EXIT_FAILURE,
            },
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Auth(_) => EXIT_AUTH,
            CliError::Unreachable { .. } => EXIT_UNREACHABLE,
            CliError::Decode { .. } | CliError::Local(_) => EXIT_FAILURE,
            CliError::OperationFailed { .. } => EXIT_OPERATION_FAILED,
            CliError::Timeout(_) => EXIT_TIMEOUT,
        }
    }

    /// The API's error code, when the API answered with one.
    pub fn api_code(&self) -> Option<&str> {
        match self {
            CliError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Results of the CLI.
pub type Result<T, E = CliError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_statuses_map_to_documented_exit_codes() {
        let api = |status| CliError::Api {
            status,
            code: "x".into(),
            message: "m".into(),
        };
        assert_eq!(api(401).exit_code(), EXIT_AUTH);
        assert_eq!(api(404).exit_code(), EXIT_NOT_FOUND);
        assert_eq!(api(402).exit_code(), EXIT_FORBIDDEN);
        assert_eq!(api(423).exit_code(), EXIT_CONFLICT);
        assert_eq!(api(400).exit_code(), EXIT_USAGE);
        assert_eq!(api(503).exit_code(), EXIT_FAILURE);
        assert_eq!(api(400).to_string(), "m", "the API's message, plainly");
    }
}
