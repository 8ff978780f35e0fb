//! `koru login` (password, API token, SSO through the device flow), `koru logout`, `koru orgs`.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use super::{Ctx, seg};
use crate::args::{Global, LoginArgs};
use crate::client::{Tokens, decode};
use crate::error::{CliError, Result};

/// The organization a session should act in: the one SSO scoped it to, else the first.
pub fn first_org(me: &Value) -> Option<String> {
    let orgs = me["organizations"].as_array()?;
    let scoped = me["session_organization"].as_str();
    orgs.iter()
        .find(|o| scoped.is_some_and(|s| o["id"].as_str() == Some(s)))
        .or(orgs.first())
        .and_then(|o| o["slug"].as_str())
        .map(str::to_string)
}

/// Reads one line from standard input, prompting on stderr when it is a terminal.
fn read_line(prompt: &str) -> Result<String> {
    if std::io::stdin().is_terminal() {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::Local(format!("cannot read standard input: {e}")))?;
    Ok(line.trim().to_string())
}

/// `koru login`.
pub async fn login(ctx: &mut Ctx, global: &Global, args: LoginArgs) -> Result<()> {
    if let Some(token) = args.token {
        return login_with_token(ctx, global, token).await;
    }
    let tokens = match &args.sso {
        Some(org) => device_login(ctx, org, args.no_browser).await?,
        None => password_login(ctx, args.email, args.password_stdin).await?,
    };
    ctx.client.store_session(&tokens)?;
    ctx.client.use_session();
    let me = ctx.client.call(Method::GET, "/api/v1/me", None).await?;
    let email = me["user"]["email"].as_str().unwrap_or_default().to_string();
    let org = match (&args.sso, global.org.clone()) {
        (Some(sso), _) => Some(sso.clone()),
        (None, Some(flag)) => Some(flag),
        (None, None) => ctx.client.profile().org.clone().or_else(|| first_org(&me)),
    };
    let profile = ctx.client.profile();
    profile.email = Some(email.clone());
    profile.org = org.clone();
    if let Some(url) = &global.url {
        profile.url = Some(url.clone());
    }
    ctx.client.save()?;
    eprintln!(
        "Logged in as {email}{} (profile {}).",
        org.as_deref()
            .map(|o| format!(" in organization {o}"))
            .unwrap_or_default(),
        ctx.client.profile_name
    );
    ctx.print(
        &json!({"email": email, "organization": org, "profile": ctx.client.profile_name}),
        &[],
    )
}

async fn password_login(
    ctx: &mut Ctx,
    email: Option<String>,
    password_stdin: bool,
) -> Result<Tokens> {
    let email = match email {
        Some(e) => e,
        None if password_stdin => {
            return Err(CliError::Usage(
                "--password-stdin needs --email (standard input holds the password)".into(),
            ));
        }
        None => read_line("Email: ")?,
    };
    if email.is_empty() {
        return Err(CliError::Usage("no email given".into()));
    }
    let password = if password_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::Local(format!("cannot read standard input: {e}")))?;
        text.trim_end_matches(['\n', '\r']).to_string()
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Password: ")
            .map_err(|e| CliError::Local(format!("cannot read the password: {e}")))?
    } else {
        return Err(CliError::Usage(
            "standard input is not a terminal: pass the password with --password-stdin".into(),
        ));
    };
    let answer = ctx
        .client
        .send(
            Method::POST,
            "/api/v1/login",
            None,
            Some(&json!({"email": email, "password": password})),
        )
        .await
        .map_err(|e| match e {
            CliError::Api {
                status: 401,
                message,
                ..
            } => CliError::Auth(message),
            other => other,
        })?;
    decode(&ctx.client.url("/api/v1/login"), answer)
}

async fn login_with_token(ctx: &mut Ctx, global: &Global, token: String) -> Result<()> {
    let Some(org) = global.org.clone().or(ctx.client.profile().org.clone()) else {
        return Err(CliError::Usage(
            "an API token belongs to one organization: pass --org <slug> with --token".into(),
        ));
    };
    // Checks the token and the organization before storing them.
    let answer = ctx
        .client
        .send(
            Method::GET,
            &format!("/api/v1/orgs/{}", seg(&org)?),
            Some(&token),
            None,
        )
        .await
        .map_err(|e| match e {
            CliError::Api {
                status: 401,
                message,
                ..
            } => CliError::Auth(format!("the token was refused: {message}")),
            other => other,
        })?;
    let profile = ctx.client.profile();
    profile.clear_credentials();
    profile.api_token = Some(token);
    profile.org = Some(org.clone());
    if let Some(url) = &global.url {
        profile.url = Some(url.clone());
    }
    ctx.client.save()?;
    eprintln!(
        "Stored the API token for organization {org} (profile {}).",
        ctx.client.profile_name
    );
    ctx.print(
        &json!({"organization": answer["slug"], "profile": ctx.client.profile_name}),
        &[],
    )
}

/// Tries to open `url` in a browser; failing quietly is fine (the link is printed).
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let _ = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

/// The device flow: a code pair, the person approves in a browser, we poll for the session.
async fn device_login(ctx: &mut Ctx, org: &str, no_browser: bool) -> Result<Tokens> {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let client_name = if host.is_empty() {
        "koru CLI".to_string()
    } else {
        format!("koru CLI on {host}")
    };
    let flow = ctx
        .client
        .send(
            Method::POST,
            "/api/v1/device/code",
            None,
            Some(&json!({"client_name": client_name, "organization": org})),
        )
        .await?;
    let url = ctx.client.url("/api/v1/device/code");
    let device_code: String = decode(&url, flow["device_code"].clone())?;
    let user_code: String = decode(&url, flow["user_code"].clone())?;
    let complete: String = decode(&url, flow["verification_uri_complete"].clone())?;
    let page: String = decode(&url, flow["verification_uri"].clone())?;
    let mut interval = flow["interval"].as_u64().unwrap_or(5).max(1);
    let expires_in = flow["expires_in"].as_u64().unwrap_or(600);
    eprintln!("To sign in, open this link and approve the code {user_code}:");
    eprintln!("  {complete}");
    eprintln!("(or go to {page} and enter the code). Waiting for approval…");
    if !no_browser {
        open_browser(&complete);
    }
    let deadline = Instant::now() + Duration::from_secs(expires_in);
    loop {
        tokio::time::sleep(Duration::from_secs(interval)).await;
        let answer = ctx
            .client
            .send(
                Method::POST,
                "/api/v1/device/token",
                None,
                Some(&json!({"device_code": device_code})),
            )
            .await;
        match answer {
            Ok(tokens) => return decode(&ctx.client.url("/api/v1/device/token"), tokens),
            Err(e) => match e.api_code() {
                Some("authorization_pending") => {}
                Some("slow_down") => interval += 5,
                Some("access_denied") => {
                    return Err(CliError::Auth(
                        "the sign-in was denied in the browser".into(),
                    ));
                }
                Some("expired_token") => {
                    return Err(CliError::Timeout(
                        "the code expired before it was approved; run `koru login --sso` again"
                            .into(),
                    ));
                }
                _ => return Err(e),
            },
        }
        if Instant::now() >= deadline {
            return Err(CliError::Timeout(
                "the code expired before it was approved; run `koru login --sso` again".into(),
            ));
        }
    }
}

/// `koru logout`.
pub async fn logout(ctx: &mut Ctx) -> Result<()> {
    let profile = ctx.client.profile().clone();
    let mut note = "Logged out";
    if let Some(access) = &profile.access_token {
        let body = profile
            .refresh_token
            .as_ref()
            .map(|r| json!({"refresh_token": r}))
            .unwrap_or_else(|| json!({}));
        // An expired or already ended session is as good as ended.
        match ctx
            .client
            .send(Method::POST, "/api/v1/logout", Some(access), Some(&body))
            .await
        {
            Ok(_) | Err(CliError::Api { status: 401, .. }) => {}
            Err(e) => return Err(e),
        }
    } else if profile.api_token.is_some() {
        note = "Forgot the API token (it still works until revoked with `koru tokens revoke`)";
    } else {
        note = "Not logged in";
    }
    ctx.client.profile().clear_credentials();
    ctx.client.save()?;
    eprintln!("{note} (profile {}).", ctx.client.profile_name);
    Ok(())
}

/// `koru orgs [list]`.
pub async fn orgs(ctx: &mut Ctx) -> Result<()> {
    let me = ctx
        .client
        .call(Method::GET, "/api/v1/me", None)
        .await
        .map_err(|e| match e {
            CliError::Api { status: 403, .. } => CliError::Usage(
                "an API token belongs to one organization and cannot list organizations; log in \
                 as a person to see yours"
                    .into(),
            ),
            other => other,
        })?;
    ctx.print(
        &me["organizations"],
        &[
            ("SLUG", "slug"),
            ("NAME", "name"),
            ("TIER", "tier"),
            ("ROLE", "role"),
            ("ID", "id"),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sso_session_starts_in_its_own_organization() {
        let me = json!({
            "organizations": [{"id": "o1", "slug": "first"}, {"id": "o2", "slug": "second"}],
            "session_organization": "o2",
        });
        assert_eq!(first_org(&me).as_deref(), Some("second"));
        let me = json!({"organizations": [{"id": "o1", "slug": "first"}]});
        assert_eq!(first_org(&me).as_deref(), Some("first"));
        assert_eq!(first_org(&json!({"organizations": []})), None);
    }
}
