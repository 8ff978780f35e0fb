//! The config file: named profiles, each with a URL, an organization, an output format and
//! credentials (an API token, or a session's access and refresh tokens). TOML, written with
//! mode 0600 because it holds secrets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::args::Format;
use crate::error::{CliError, Result};

/// The profile used when none is named.
pub const DEFAULT_PROFILE: &str = "default";
/// The control plane's URL when none is configured (`koru-controlplane dev`'s).
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigFile {
    /// The profile used when neither `--profile` nor `KORU_PROFILE` names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_profile: Option<String>,
    /// Profiles by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// One profile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// The control plane's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The organization acted in (slug or id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// The default output format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Format>,
    /// An API token (`koru_…`), never refreshed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_token: Option<String>,
    /// A session's access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// The session's refresh token (single use; replaced at every refresh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When the access token expires, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_expires_at: Option<i64>,
    /// Who is logged in, for `koru config list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl Profile {
    /// Forgets every credential.
    pub fn clear_credentials(&mut self) {
        self.api_token = None;
        self.access_token = None;
        self.refresh_token = None;
        self.access_expires_at = None;
        self.email = None;
    }
}

/// Where the config file is: `--config`/`KORU_CONFIG`, else `$XDG_CONFIG_HOME/koru/config.toml`,
/// else `~/.config/koru/config.toml`.
pub fn default_path() -> Result<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .ok_or_else(|| {
            CliError::Usage(
                "cannot find a config directory: set XDG_CONFIG_HOME, HOME or KORU_CONFIG".into(),
            )
        })?;
    Ok(base.join("koru").join("config.toml"))
}

/// Reads the file; a missing file is an empty config.
pub fn load(path: &Path) -> Result<ConfigFile> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            CliError::Local(format!(
                "the config file {} is not valid: {e}",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
        Err(e) => Err(CliError::Local(format!(
            "cannot read the config file {}: {e}",
            path.display()
        ))),
    }
}

/// Writes the file with mode 0600 (created so, never readable by others even briefly), through
/// a temporary file renamed over it so a crash never leaves half a file.
pub fn save(path: &Path, config: &ConfigFile) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let fail = |e: std::io::Error| {
        CliError::Local(format!(
            "cannot write the config file {}: {e}",
            path.display()
        ))
    };
    let text = toml::to_string_pretty(config)
        .map_err(|e| CliError::Local(format!("cannot encode the config: {e}")))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let tmp = path.with_extension(format!("toml.{}.tmp", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

/// The name of the profile in use: the flag or variable, else the file's current one, else
/// [`DEFAULT_PROFILE`].
pub fn profile_name(flag: Option<&str>, config: &ConfigFile) -> String {
    flag.map(str::to_string)
        .or_else(|| config.current_profile.clone())
        .unwrap_or_else(|| DEFAULT_PROFILE.to_string())
}

/// Checks a profile name: letters, digits, `-`, `_`, `.`.
pub fn check_profile_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "{name:?} is not a profile name: use letters, digits, '-', '_' and '.'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_round_trips_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("koru").join("config.toml");
        assert_eq!(load(&path).unwrap(), ConfigFile::default());
        let mut config = ConfigFile::default();
        config.profiles.insert(
            "work".into(),
            Profile {
                url: Some("https://cloud.example".into()),
                output: Some(Format::Yaml),
                api_token: Some("koru_x".into()),
                ..Profile::default()
            },
        );
        config.current_profile = Some("work".into());
        save(&path, &config).unwrap();
        assert_eq!(load(&path).unwrap(), config);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(profile_name(None, &config), "work");
        assert_eq!(profile_name(Some("other"), &config), "other");
        assert!(check_profile_name("a b").is_err() && check_profile_name("ci-1").is_ok());
    }
}
