//! `koru tokens`, `koru backups`, `koru connect`, `koru usage`, `koru audit`.

use reqwest::Method;
use serde_json::{Value, json};

use super::{Ctx, seg};
use crate::args::{AuditCommand, BackupsCommand, ConnectArgs, Format, TokensCommand, UsageArgs};
use crate::client::now_secs;
use crate::error::{CliError, Result};

fn org_path(org: &str, rest: &str) -> Result<String> {
    Ok(format!("/api/v1/orgs/{}{rest}", seg(org)?))
}

/// `koru tokens …`.
pub async fn tokens(ctx: &mut Ctx, command: TokensCommand) -> Result<()> {
    let org = ctx.org().await?;
    let base = org_path(&org, "/tokens")?;
    match command {
        TokensCommand::List => {
            let list = ctx.list_all(&base).await?;
            ctx.print(
                &list,
                &[
                    ("ID", "id"),
                    ("NAME", "name"),
                    ("ROLE", "role"),
                    ("PREFIX", "prefix"),
                    ("EXPIRES_AT", "expires_at"),
                    ("REVOKED_AT", "revoked_at"),
                ],
            )
        }
        TokensCommand::Create {
            name,
            role,
            expires_in_days,
        } => {
            let mut body = json!({"name": name, "role": role});
            if let Some(d) = expires_in_days {
                body["expires_in_days"] = json!(d);
            }
            let created = ctx.client.call(Method::POST, &base, Some(&body)).await?;
            eprintln!("Copy the token now: it is shown only once.");
            ctx.print(
                &created,
                &[
                    ("id", "id"),
                    ("name", "name"),
                    ("role", "role"),
                    ("expires_at", "expires_at"),
                    ("token", "token"),
                ],
            )
        }
        TokensCommand::Revoke { id } => {
            ctx.client
                .call(Method::DELETE, &format!("{base}/{}", seg(&id)?), None)
                .await?;
            ctx.print(&json!({"revoked": id}), &[])
        }
    }
}

/// `koru backups …`.
pub async fn backups(ctx: &mut Ctx, command: BackupsCommand) -> Result<()> {
    let org = ctx.org().await?;
    let columns = [
        ("ID", "id"),
        ("CREATED", "created"),
        ("FIRST_LSN", "first_lsn"),
        ("LAST_LSN", "last_lsn"),
        ("LAST_TIME", "last_time"),
    ];
    match command {
        BackupsCommand::Create { cluster } => {
            let path = org_path(&org, &format!("/clusters/{}/backups", seg(&cluster)?))?;
            let backup = ctx.client.call(Method::POST, &path, None).await?;
            ctx.print(&backup, &[])
        }
        BackupsCommand::List { cluster } => {
            let path = org_path(&org, &format!("/clusters/{}/backups", seg(&cluster)?))?;
            let list = ctx.client.call(Method::GET, &path, None).await?;
            if ctx.format == Format::Table {
                ctx.print(&list["backups"], &columns)?;
                println!(
                    "\nrecoverable window: {} to {}",
                    list["window"]["earliest"].as_str().unwrap_or("-"),
                    list["window"]["latest"].as_str().unwrap_or("-")
                );
                Ok(())
            } else {
                ctx.print(&list, &[])
            }
        }
    }
}

/// Quotes `s` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `koru connect <cluster>`.
pub async fn connect(ctx: &mut Ctx, args: ConnectArgs) -> Result<()> {
    let org = ctx.org().await?;
    let cluster_path = org_path(&org, &format!("/clusters/{}", seg(&args.cluster)?))?;
    let cluster = ctx.client.call(Method::GET, &cluster_path, None).await?;
    let Some(endpoint) = cluster["endpoint"].as_str().map(str::to_string) else {
        return Err(CliError::Api {
            status: 409,
            code: "no_endpoint".into(),
            message: format!(
                "cluster {} has no endpoint yet (phase {}); wait until it runs",
                args.cluster,
                cluster["phase"].as_str().unwrap_or("unknown")
            ),
        });
    };
    let body = json!({"scope": args.scope, "ttl_secs": args.ttl});
    let token = ctx
        .client
        .call(
            Method::POST,
            &format!("{cluster_path}/data-tokens"),
            Some(&body),
        )
        .await?;
    let secret = token["token"].as_str().unwrap_or_default().to_string();
    if args.export {
        println!(
            "export KORU_URL={} KORU_TOKEN={}",
            shell_quote(&endpoint),
            shell_quote(&secret)
        );
        return Ok(());
    }
    if args.shell {
        let shell = std::env::var("SHELL")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "/bin/sh".into());
        eprintln!(
            "Opening {shell} with KORU_URL and KORU_TOKEN for cluster {} ({} scope, {} s); exit to return.",
            args.cluster, args.scope, args.ttl
        );
        let status = tokio::process::Command::new(&shell)
            .env("KORU_URL", &endpoint)
            .env("KORU_TOKEN", &secret)
            .env("KORU_CLUSTER", &args.cluster)
            .status()
            .await
            .map_err(|e| CliError::Local(format!("cannot start {shell}: {e}")))?;
        if !status.success() {
            return Err(CliError::Local(format!("{shell} exited with {status}")));
        }
        return Ok(());
    }
    let shown = json!({
        "cluster": args.cluster,
        "url": endpoint,
        "token": secret,
        "token_id": token["id"],
        "scope": token["scope"],
        "expires_at": token["expires_at"],
        "expires_in_secs": token["expires_at"].as_i64().map(|at| at - now_secs()),
    });
    ctx.print(&shown, &[])
}

/// `koru usage`.
pub async fn usage(ctx: &mut Ctx, args: UsageArgs) -> Result<()> {
    let org = ctx.org().await?;
    let since = (now_secs() - i64::from(args.hours) * 3600) * 1000;
    let usage = ctx
        .client
        .call(
            Method::GET,
            &org_path(&org, &format!("/usage?since={since}"))?,
            None,
        )
        .await?;
    if ctx.format != Format::Table {
        return ctx.print(&usage, &[]);
    }
    // A table shows each cluster's latest sample against its limits.
    let rows: Vec<Value> = usage
        .as_array()
        .map(|clusters| {
            clusters
                .iter()
                .map(|c| {
                    let last = c["points"].as_array().and_then(|p| p.last());
                    json!({
                        "name": c["name"],
                        "stored_bytes": last.map(|p| p["stored_bytes"].clone()),
                        "max_storage_bytes": c["max_storage_bytes"],
                        "ops_per_sec": last.map(|p| p["ops_per_sec"].clone()),
                        "max_ops_per_sec": c["max_ops_per_sec"],
                        "samples": c["points"].as_array().map_or(0, Vec::len),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    ctx.print(
        &Value::Array(rows),
        &[
            ("CLUSTER", "name"),
            ("STORED_BYTES", "stored_bytes"),
            ("MAX_STORAGE_BYTES", "max_storage_bytes"),
            ("OPS_PER_SEC", "ops_per_sec"),
            ("MAX_OPS_PER_SEC", "max_ops_per_sec"),
            ("SAMPLES", "samples"),
        ],
    )
}

/// `koru audit …`.
pub async fn audit(ctx: &mut Ctx, command: AuditCommand) -> Result<()> {
    let org = ctx.org().await?;
    match command {
        AuditCommand::Export { file } => {
            let text = ctx
                .client
                .get_text(&org_path(&org, "/audit/export")?)
                .await?;
            match file {
                Some(path) => {
                    std::fs::write(&path, &text).map_err(|e| {
                        CliError::Local(format!("cannot write {}: {e}", path.display()))
                    })?;
                    eprintln!(
                        "Wrote {} lines of the audit log to {}.",
                        text.lines().count(),
                        path.display()
                    );
                }
                None => print!("{text}"),
            }
            Ok(())
        }
        AuditCommand::Verify => {
            let verification = ctx
                .client
                .call(Method::GET, &org_path(&org, "/audit/verify")?, None)
                .await?;
            ctx.print(&verification, &[])?;
            if verification["intact"] == json!(true) {
                Ok(())
            } else {
                Err(CliError::Local(format!(
                    "the audit chain of {org} is NOT intact: {}",
                    verification["broken"]
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_are_quoted_for_a_posix_shell() {
        assert_eq!(shell_quote("http://127.0.0.1:1"), "'http://127.0.0.1:1'");
        assert_eq!(shell_quote("a'b; rm -rf /"), r"'a'\''b; rm -rf /'");
    }
}
