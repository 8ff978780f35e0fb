//! `BackupUrl`: where backups live, parsed from `--backup-store` / `--from` (the data plane's
//! flags, and the control plane's setting it passes on to the data planes it starts).

use std::fmt;
use std::path::PathBuf;

/// Where backups live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupUrl {
    /// `file:///absolute/path`: a local directory.
    File(PathBuf),
    /// `s3://bucket/prefix`: an S3 bucket (endpoint, region and credentials from `AWS_*`).
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix inside the bucket, without leading or trailing slashes (may be empty).
        prefix: String,
    },
}

/// Why a text is not a backup store URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid backup store URL {url:?}: {reason}")]
pub struct BackupUrlError {
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub reason: String,
}

impl std::str::FromStr for BackupUrl {
    type Err = BackupUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| BackupUrlError {
            url: s.to_string(),
            reason: reason.to_string(),
        };
        let url = url::Url::parse(s)
            .map_err(|e| bad(&format!("{e}; expected file:///path or s3://bucket/prefix")))?;
        match url.scheme() {
            "file" => {
                if url
                    .host_str()
                    .is_some_and(|h| !h.is_empty() && h != "localhost")
                {
                    return Err(bad("a file URL names no host: use file:///absolute/path"));
                }
                // The browser build (wasm) has no local paths: the parse fails there.
                #[cfg(not(target_family = "wasm"))]
                let path = url
                    .to_file_path()
                    .map_err(|()| bad("not an absolute local path"))?;
                #[cfg(target_family = "wasm")]
                let path: std::path::PathBuf = Err(bad("no local paths in the browser"))?;
                if path.parent().is_none() {
                    return Err(bad("refusing the file-system root as a backup store"));
                }
                Ok(BackupUrl::File(path))
            }
            "s3" => {
                let bucket = url
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| bad("an s3 URL needs a bucket: s3://bucket/prefix"))?;
                if url.query().is_some() || url.fragment().is_some() {
                    return Err(bad("query strings and fragments are not supported"));
                }
                Ok(BackupUrl::S3 {
                    bucket: bucket.to_string(),
                    prefix: url.path().trim_matches('/').to_string(),
                })
            }
            other => Err(bad(&format!(
                "scheme {other:?} is not supported; use file:///path or s3://bucket/prefix"
            ))),
        }
    }
}

impl fmt::Display for BackupUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackupUrl::File(path) => write!(f, "file://{}", path.display()),
            BackupUrl::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            BackupUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_file_and_s3_urls() {
        assert_eq!(
            "file:///var/backups/c1".parse::<BackupUrl>().unwrap(),
            BackupUrl::File(PathBuf::from("/var/backups/c1"))
        );
        assert_eq!(
            "s3://bucket/a/b/".parse::<BackupUrl>().unwrap(),
            BackupUrl::S3 {
                bucket: "bucket".into(),
                prefix: "a/b".into()
            }
        );
        let s3 = "s3://bucket".parse::<BackupUrl>().unwrap();
        assert_eq!(s3.to_string(), "s3://bucket");
    }

    #[test]
    fn refuses_bad_urls_with_a_reason() {
        for (url, says) in [
            ("/var/backups", "expected file:///path"),
            ("file://host/path", "names no host"),
            ("gs://bucket/x", "not supported"),
            ("s3:///prefix", "needs a bucket"),
            ("file:///", "root"),
        ] {
            let err = url.parse::<BackupUrl>().unwrap_err().to_string();
            assert!(err.contains(says), "{url}: {err}");
        }
    }
}
