//! Errors and warnings for Terraform, built without tf-provider's constructors: those append a
//! Rust backtrace to every message whenever `RUST_BACKTRACE` is set in the user's environment.

use tf_provider::{AttributePath, Diagnostic, Diagnostics};

use crate::client::ApiError;

fn diagnostic(
    summary: impl Into<String>,
    detail: impl Into<String>,
    attribute: AttributePath,
) -> Diagnostic {
    Diagnostic {
        summary: summary.into().into(),
        detail: detail.into().into(),
        attribute,
    }
}

/// An error about the attribute at `path`, which Terraform shows with its line.
pub fn error(
    diags: &mut Diagnostics,
    summary: impl Into<String>,
    detail: impl Into<String>,
    path: AttributePath,
) {
    diags.add_error(diagnostic(summary, detail, path));
}

/// An error about the resource or the provider as a whole.
pub fn root_error(diags: &mut Diagnostics, summary: impl Into<String>, detail: impl Into<String>) {
    diags.add_error(diagnostic(summary, detail, AttributePath::default()));
}

/// A warning about the resource or the provider as a whole.
pub fn root_warning(
    diags: &mut Diagnostics,
    summary: impl Into<String>,
    detail: impl Into<String>,
) {
    diags.add_warning(diagnostic(summary, detail, AttributePath::default()));
}

/// Records an error of `check` on the attribute at `path`.
pub fn check_attribute(
    diags: &mut Diagnostics,
    path: AttributePath,
    summary: &str,
    check: Result<(), String>,
) {
    if let Err(message) = check {
        error(diags, summary, message, path);
    }
}

/// Records a failed API call: what was being done, and the API's own message.
pub fn api_error(diags: &mut Diagnostics, summary: impl Into<String>, e: &ApiError) {
    root_error(diags, summary, e.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_kept_as_written() {
        let mut diags = Diagnostics::default();
        error(
            &mut diags,
            "Invalid name",
            "name must be short",
            AttributePath::new("name"),
        );
        root_warning(&mut diags, "Careful", "details");
        assert_eq!(diags.errors.len(), 1);
        assert_eq!(diags.errors[0].detail, "name must be short");
        assert_eq!(diags.errors[0].attribute, AttributePath::new("name"));
        assert_eq!(diags.warnings[0].detail, "details");
    }
}
