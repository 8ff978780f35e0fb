//! Running a parsed command line: resolving the profile, URL, credential, organization and
//! output format (flag, then `KORU_*` variable, then profile, then default), then one module per
//! group of commands.

mod auth;
mod clusters;
mod data;
mod settings;

use reqwest::Method;
use serde_json::Value;

use crate::args::{Cli, Command, Format, Global};
use crate::client::{Client, Credential};
use crate::config;
use crate::error::{CliError, Result};
use crate::output;

/// Items per page when listing (the API's maximum).
const PAGE_LIMIT: u32 = 500;

/// What every command works with.
pub struct Ctx {
    /// The API and the profile.
    pub client: Client,
    /// The output format.
    pub format: Format,
    /// `--org`/`KORU_ORG`, else the profile's.
    org: Option<String>,
}

impl Ctx {
    /// The organization to act in: the flag, variable or profile's, else (for a session) the
    /// only or first organization of the user.
    pub async fn org(&mut self) -> Result<String> {
        if let Some(org) = &self.org {
            return Ok(org.clone());
        }
        if !self.client.has_credential() || !self.client.is_session() {
            return Err(CliError::Usage(
                "no organization: pass --org, set KORU_ORG, or `koru config set org <slug>`".into(),
            ));
        }
        let me = self.client.call(Method::GET, "/api/v1/me", None).await?;
        let slug = auth::first_org(&me)
            .ok_or_else(|| CliError::Usage("your account belongs to no organization yet".into()))?;
        self.org = Some(slug.clone());
        Ok(slug)
    }

    /// Prints `value` in the chosen format.
    pub fn print(&self, value: &Value, columns: &[output::Column]) -> Result<()> {
        output::print(value, self.format, columns)
    }

    /// Every item of a paginated list at `path`.
    pub async fn list_all(&mut self, path: &str) -> Result<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut page_path = format!("{path}?limit={PAGE_LIMIT}");
            if let Some(c) = &cursor {
                page_path.push_str("&cursor=");
                page_path.push_str(c);
            }
            let page = self.client.call(Method::GET, &page_path, None).await?;
            if let Some(list) = page["items"].as_array() {
                items.extend(list.iter().cloned());
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => return Ok(Value::Array(items)),
            }
        }
    }
}

/// Builds the context from the global options and the config file.
fn context(global: &Global) -> Result<Ctx> {
    let config_path = match &global.config {
        Some(p) => p.clone(),
        None => config::default_path()?,
    };
    let file = config::load(&config_path)?;
    let profile_name = config::profile_name(global.profile.as_deref(), &file);
    config::check_profile_name(&profile_name)?;
    let profile = file
        .profiles
        .get(&profile_name)
        .cloned()
        .unwrap_or_default();
    let url = global
        .url
        .clone()
        .or(profile.url.clone())
        .unwrap_or_else(|| config::DEFAULT_URL.to_string());
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(CliError::Usage(format!(
            "{url:?} is not a URL: use http://host:port or https://host"
        )));
    }
    let credential = match (&global.token, &profile.api_token) {
        (Some(t), _) if !t.is_empty() => Credential::Fixed(t.clone()),
        (_, Some(t)) => Credential::Fixed(t.clone()),
        _ if profile.access_token.is_some() || profile.refresh_token.is_some() => {
            Credential::Session
        }
        _ => Credential::None,
    };
    let format = output::choose(global.output, profile.output);
    let org = global.org.clone().or(profile.org.clone());
    let client = Client::new(&url, credential, file, config_path, profile_name)?;
    Ok(Ctx {
        client,
        format,
        org,
    })
}

/// Runs one command.
pub async fn run(cli: Cli) -> Result<()> {
    if let Command::Completion { shell } = &cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(*shell, &mut command, "koru", &mut std::io::stdout());
        return Ok(());
    }
    let mut ctx = context(&cli.global)?;
    match cli.command {
        Command::Completion { .. } => Ok(()),
        Command::Login(args) => auth::login(&mut ctx, &cli.global, args).await,
        Command::Logout => auth::logout(&mut ctx).await,
        Command::Orgs { .. } => auth::orgs(&mut ctx).await,
        Command::Clusters(c) => clusters::run(&mut ctx, c).await,
        Command::Tokens(c) => data::tokens(&mut ctx, c).await,
        Command::Backups(c) => data::backups(&mut ctx, c).await,
        Command::Restore(args) => clusters::restore(&mut ctx, args).await,
        Command::Connect(args) => data::connect(&mut ctx, args).await,
        Command::Usage(args) => data::usage(&mut ctx, args).await,
        Command::Audit(c) => data::audit(&mut ctx, c).await,
        Command::Config(c) => settings::run(&mut ctx, c),
    }
}

/// A path segment, percent-encoded (names and ids are plain, but a typo must not change the
/// path); empty, `.` and `..` are refused, since URLs resolve them to another path.
pub fn seg(s: &str) -> Result<String> {
    if s.is_empty() || s == "." || s == ".." {
        return Err(CliError::Usage(format!("{s:?} is not a name or id")));
    }
    Ok(s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_cannot_change_the_path() {
        assert_eq!(seg("orders-1").unwrap(), "orders-1");
        assert_eq!(seg("../admin?x=1").unwrap(), "..%2Fadmin%3Fx%3D1");
        for bad in ["", ".", ".."] {
            assert!(seg(bad).is_err(), "{bad:?}");
        }
    }
}
