//! The gateway `koru-controlplane dev` runs in front of its local clusters: a `koru-gateway` child
//! process with the shared secret, syncing with this control plane, stopped when `dev` stops.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

/// How long the gateway may take to say where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long it may take to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A running gateway child.
pub struct GatewayChild {
    child: Child,
    /// Where it serves clients.
    pub addr: SocketAddr,
}

/// Why the gateway could not be started.
#[derive(Debug, thiserror::Error)]
pub enum GatewayChildError {
    /// Spawning, or its output, failed.
    #[error("cannot run the gateway {bin}: {reason}")]
    Start {
        /// The binary.
        bin: String,
        /// Why.
        reason: String,
    },
}

/// Reads `<addr>` out of the gateway's `listening on <addr>` line (`http://` allowed); its
/// `admin listening on` line, printed first, is not where clients go.
pub fn listening_addr(line: &str) -> Option<SocketAddr> {
    if line.contains("admin listening on ") {
        return None;
    }
    let rest = line.split_once("listening on ")?.1;
    let word = rest.split_whitespace().next()?;
    let word = word.trim_start_matches("http://").trim_end_matches('/');
    word.parse().ok()
}

/// Starts `bin` on `listen` with its admin endpoint on a free loopback port, syncing with
/// `controlplane_url` using `secret`; returns once it says where it listens. `Ok(None)`, logged,
/// when there is no such binary: `dev` then runs without a gateway.
pub async fn spawn(
    bin: &Path,
    listen: SocketAddr,
    controlplane_url: &str,
    secret: &str,
) -> Result<Option<GatewayChild>, GatewayChildError> {
    let fail = |reason: String| GatewayChildError::Start {
        bin: bin.display().to_string(),
        reason,
    };
    if !bin.is_file() {
        tracing::warn!(
            bin = %bin.display(),
            "no koru-gateway binary: running WITHOUT a gateway, clusters are shown at their own endpoints \
             and never woken by requests (build it with `cargo build -p koru-gateway`, or pass --no-gateway)"
        );
        return Ok(None);
    }
    let admin = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| fail(format!("no free port for its admin endpoint: {e}")))?;
    let mut command = tokio::process::Command::new(bin);
    command
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--admin-listen")
        .arg(admin.to_string())
        .arg("--controlplane-url")
        .arg(controlplane_url)
        // A `dev` killed outright (SIGKILL, a crash) cannot stop it; it stops itself.
        .arg("--exit-with-parent");
    // Only our arguments and the secret configure it, not the KORU_* settings meant for us.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KORU_") && name != "KORU_LOG" {
            command.env_remove(name);
        }
    }
    command
        .env(koru_gateway_api::SECRET_ENV, secret)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| fail(e.to_string()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| fail("no stdout".into()))?;
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(START_TIMEOUT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            println!("{line}");
            if let Some(addr) = listening_addr(&line) {
                return Some(addr);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .ok_or_else(|| {
        fail(format!(
            "it exited or did not print `listening on <addr>` within {START_TIMEOUT:?} (its own error, if any, is above)"
        ))
    })?;
    // Its later output goes on to ours.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            println!("{line}");
        }
    });
    tracing::info!(%addr, admin = %admin, "gateway started");
    Ok(Some(GatewayChild { child, addr }))
}

impl GatewayChild {
    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stops it: SIGTERM, then SIGKILL after [`STOP_GRACE`].
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id()
            && let Ok(pid) = i32::try_from(pid)
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        if tokio::time::timeout(STOP_GRACE, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_names_the_address() {
        let addr: SocketAddr = "127.0.0.1:8081".parse().unwrap();
        assert_eq!(listening_addr("listening on 127.0.0.1:8081"), Some(addr));
        assert_eq!(
            listening_addr("koru-gateway admin listening on http://127.0.0.1:9090"),
            None
        );
        assert_eq!(
            listening_addr("koru-gateway listening on http://127.0.0.1:8081/ (h1, h2)"),
            Some(addr)
        );
        assert_eq!(listening_addr("starting"), None);
    }
}
