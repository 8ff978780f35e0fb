//! `koru clusters …` and `koru restore`: the commands that start operations and wait for them.

use std::io::IsTerminal;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::{Ctx, seg};
use crate::args::{ClustersCommand, RestoreArgs, WaitArgs};
use crate::error::{CliError, Result};
use crate::output::Column;
use crate::wait;

/// The columns of a cluster list.
const LIST: &[Column] = &[
    ("NAME", "name"),
    ("PHASE", "phase"),
    ("TIER", "tier"),
    ("REPLICAS", "replicas"),
    ("REGION", "region"),
    ("ENDPOINT", "endpoint"),
    ("ID", "id"),
];

/// The rows of one cluster.
const ONE: &[Column] = &[
    ("name", "name"),
    ("id", "id"),
    ("phase", "phase"),
    ("tier", "tier"),
    ("replicas", "replicas"),
    ("region", "region"),
    ("version", "version"),
    ("endpoint", "endpoint"),
    ("message", "message"),
    ("allowed_cidrs", "allowed_cidrs"),
    ("max_storage_bytes", "max_storage_bytes"),
    ("max_ops_per_sec", "max_ops_per_sec"),
];

/// The rows of an operation that was not waited for.
const STARTED: &[Column] = &[
    ("cluster", "cluster.name"),
    ("cluster_id", "cluster.id"),
    ("operation", "operation.id"),
    ("kind", "operation.kind"),
    ("status", "operation.status"),
];

fn clusters_path(org: &str) -> Result<String> {
    Ok(format!("/api/v1/orgs/{}/clusters", seg(org)?))
}

/// Waits for the operation in `started` (unless `--no-wait`), then prints the cluster as it is.
async fn finish(
    ctx: &mut Ctx,
    org: &str,
    started: Value,
    wait: &WaitArgs,
    what: &str,
) -> Result<()> {
    if wait.no_wait {
        return ctx.print(&started, STARTED);
    }
    let op_id = started["operation"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let id = started["cluster"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    wait::operation(
        &mut ctx.client,
        &op_id,
        what,
        Duration::from_secs(wait.timeout),
    )
    .await?;
    let cluster = ctx
        .client
        .call(
            Method::GET,
            &format!("{}/{}", clusters_path(org)?, seg(&id)?),
            None,
        )
        .await?;
    ctx.print(&cluster, ONE)
}

/// `koru clusters …`.
pub async fn run(ctx: &mut Ctx, command: ClustersCommand) -> Result<()> {
    let org = ctx.org().await?;
    let base = clusters_path(&org)?;
    match command {
        ClustersCommand::List => {
            let list = ctx.list_all(&base).await?;
            ctx.print(&list, LIST)
        }
        ClustersCommand::Get { cluster } => {
            let found = ctx
                .client
                .call(Method::GET, &format!("{base}/{}", seg(&cluster)?), None)
                .await?;
            ctx.print(&found, ONE)
        }
        ClustersCommand::Create {
            name,
            tier,
            region,
            replicas,
            wait,
        } => {
            let mut body = json!({ "name": name });
            if let Some(t) = tier {
                body["tier"] = json!(t);
            }
            if let Some(r) = region {
                body["region"] = json!(r);
            }
            if let Some(n) = replicas {
                body["replicas"] = json!(n);
            }
            // A retried create (after a dropped connection) returns the first cluster.
            let key = uuid::Uuid::new_v4().to_string();
            let started = ctx
                .client
                .call_with(
                    Method::POST,
                    &base,
                    Some(&body),
                    &[("idempotency-key", &key)],
                )
                .await?;
            finish(ctx, &org, started, &wait, &format!("creating {name}")).await
        }
        ClustersCommand::Scale {
            cluster,
            replicas,
            tier,
            allow,
            allow_any,
            wait,
        } => {
            if replicas.is_none() && tier.is_none() && allow.is_empty() && !allow_any {
                return Err(CliError::Usage(
                    "nothing to change: pass --replicas, --tier, --allow or --allow-any".into(),
                ));
            }
            let mut body = json!({});
            if let Some(n) = replicas {
                body["replicas"] = json!(n);
            }
            if let Some(t) = tier {
                body["tier"] = json!(t);
            }
            if allow_any || !allow.is_empty() {
                body["allowed_cidrs"] = json!(allow);
            }
            let started = ctx
                .client
                .call(
                    Method::PATCH,
                    &format!("{base}/{}", seg(&cluster)?),
                    Some(&body),
                )
                .await?;
            finish(ctx, &org, started, &wait, &format!("changing {cluster}")).await
        }
        ClustersCommand::Suspend { cluster, wait } => {
            let path = format!("{base}/{}/suspend", seg(&cluster)?);
            let started = ctx.client.call(Method::POST, &path, None).await?;
            finish(ctx, &org, started, &wait, &format!("suspending {cluster}")).await
        }
        ClustersCommand::Resume { cluster, wait } => {
            let path = format!("{base}/{}/resume", seg(&cluster)?);
            let started = ctx.client.call(Method::POST, &path, None).await?;
            finish(ctx, &org, started, &wait, &format!("resuming {cluster}")).await
        }
        ClustersCommand::Delete { cluster, yes, wait } => {
            if !yes && std::io::stdin().is_terminal() {
                confirm_delete(&cluster)?;
            }
            let op = ctx
                .client
                .call(Method::DELETE, &format!("{base}/{}", seg(&cluster)?), None)
                .await?;
            let id = op["id"].as_str().unwrap_or_default().to_string();
            if !wait.no_wait {
                wait::operation(
                    &mut ctx.client,
                    &id,
                    &format!("deleting {cluster}"),
                    Duration::from_secs(wait.timeout),
                )
                .await?;
            }
            let done = json!({
                "cluster": cluster,
                "operation": id,
                "status": if wait.no_wait { "deleting" } else { "deleted" },
            });
            ctx.print(&done, &[])
        }
    }
}

/// Asks the person at the terminal to type the cluster's name before deleting it.
fn confirm_delete(cluster: &str) -> Result<()> {
    use std::io::{BufRead, Write};
    eprint!("Delete cluster {cluster} and its data? Type its name to confirm: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::Local(format!("cannot read standard input: {e}")))?;
    if line.trim() == cluster {
        Ok(())
    } else {
        Err(CliError::Usage(
            "not confirmed; nothing was deleted (pass --yes to skip the question)".into(),
        ))
    }
}

/// `koru restore --from … --name … [--at …]`.
pub async fn restore(ctx: &mut Ctx, args: RestoreArgs) -> Result<()> {
    let org = ctx.org().await?;
    let mut body = json!({ "name": args.name });
    if let Some(at) = &args.at {
        body["target_time"] = json!(at);
    }
    if let Some(b) = &args.backup {
        body["backup_id"] = json!(b);
    }
    let key = uuid::Uuid::new_v4().to_string();
    let path = format!("{}/{}/restore", clusters_path(&org)?, seg(&args.from)?);
    let started = ctx
        .client
        .call_with(
            Method::POST,
            &path,
            Some(&body),
            &[("idempotency-key", &key)],
        )
        .await?;
    let what = format!("restoring {} into {}", args.from, args.name);
    finish(ctx, &org, started, &args.wait, &what).await
}
