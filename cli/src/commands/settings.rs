//! `koru config set|get|use-profile|list`: the config file's profiles.

use serde_json::{Value, json};

use super::Ctx;
use crate::args::{ConfigCommand, Format};
use crate::config::check_profile_name;
use crate::error::{CliError, Result};

/// `koru config …`.
pub fn run(ctx: &mut Ctx, command: ConfigCommand) -> Result<()> {
    match command {
        ConfigCommand::Set { key, value } => {
            let profile = ctx.client.profile();
            match key.as_str() {
                "url" => {
                    if !(value.starts_with("http://") || value.starts_with("https://")) {
                        return Err(CliError::Usage(format!(
                            "{value:?} is not a URL: use http://host:port or https://host"
                        )));
                    }
                    profile.url = Some(value);
                }
                "org" => profile.org = Some(value),
                "output" => {
                    let format =
                        <Format as clap::ValueEnum>::from_str(&value, true).map_err(|_| {
                            CliError::Usage(format!("{value:?} is not table, json or yaml"))
                        })?;
                    profile.output = Some(format);
                }
                other => {
                    return Err(CliError::Usage(format!(
                        "unknown key {other:?}: use url, org or output (log in to set credentials)"
                    )));
                }
            }
            ctx.client.save()
        }
        ConfigCommand::Get { key } => {
            let name = ctx.client.profile_name.clone();
            let profile = ctx.client.profile().clone();
            let value = match key.as_str() {
                "url" => profile.url,
                "org" => profile.org,
                "output" => profile.output.map(|f| format!("{f:?}").to_lowercase()),
                "profile" => Some(name),
                other => {
                    return Err(CliError::Usage(format!(
                        "unknown key {other:?}: use url, org, output or profile"
                    )));
                }
            };
            match value {
                Some(v) => {
                    println!("{v}");
                    Ok(())
                }
                None => Err(CliError::Usage(format!("{key} is not set in this profile"))),
            }
        }
        ConfigCommand::UseProfile { name } => {
            check_profile_name(&name)?;
            ctx.client.config.profiles.entry(name.clone()).or_default();
            ctx.client.config.current_profile = Some(name.clone());
            ctx.client.save()?;
            eprintln!("Using profile {name}.");
            Ok(())
        }
        ConfigCommand::List => {
            let current = ctx.client.profile_name.clone();
            let rows: Vec<Value> = ctx
                .client
                .config
                .profiles
                .iter()
                .map(|(name, p)| {
                    let login = if p.api_token.is_some() {
                        "api token"
                    } else if p.refresh_token.is_some() {
                        "session"
                    } else {
                        "none"
                    };
                    json!({
                        "name": name,
                        "current": *name == current,
                        "url": p.url,
                        "org": p.org,
                        "email": p.email,
                        "credentials": login,
                    })
                })
                .collect();
            ctx.print(
                &Value::Array(rows),
                &[
                    ("NAME", "name"),
                    ("CURRENT", "current"),
                    ("URL", "url"),
                    ("ORG", "org"),
                    ("EMAIL", "email"),
                    ("CREDENTIALS", "credentials"),
                ],
            )
        }
    }
}
