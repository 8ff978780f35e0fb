//! Processes of the local provisioner: the data plane's command line, finding and signalling data
//! planes through `/proc`, and the HTTP probe of `/healthz` and `/readyz`.
//!
//! A data plane is identified by its command line, not only by its pid: a pid names the cluster's
//! data plane only while `/proc/<pid>/cmdline` has `--data-dir <cluster>/data`, so a pid reused by
//! an unrelated process after a crash is never adopted or signalled.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::super::{ClusterSpec, ProvisionError};
use super::layout::ClusterDir;

/// How long one probe may take, connection included.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// How often a process that is not our child is checked while waiting for it to exit.
const EXIT_POLL: Duration = Duration::from_millis(100);

/// How long a process may take to vanish after SIGKILL before we give up on it.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// When every data plane takes a base backup: hourly, on the hour (UTC), so a restore replays at
/// most an hour of archived log on top of its base backup.
pub(super) const BACKUP_SCHEDULE: &str = "0 * * * *";

/// When every data plane runs a restore drill of its newest base backup: daily at 04:30 UTC,
/// between two hourly backups, so a backup nobody could restore is noticed within a day.
pub(super) const VERIFY_SCHEDULE: &str = "30 4 * * *";

/// How soon a cluster's writes reach its backup store, as on Kubernetes
/// (`kubernetes::desired::ARCHIVE_TIMEOUT`): a restore can reach to within seconds of now.
pub(super) const ARCHIVE_TIMEOUT: &str = "10s";

/// The arguments after the program name that start the data plane of `spec` on `port`.
///
/// Limits of 0 mean "no limit" (the data plane refuses `--max-ops-per-sec 0`), and a rate above
/// the data plane's `u32` range is passed as its maximum. `replicas` is not passed: locally every
/// cluster is one process whatever its replica count, since there is no replication yet. Every
/// data plane archives to its own store ([`ClusterDir::backups`]) with hourly base backups and a
/// daily restore drill; a retention of 0 days (a spec from before backups) keeps every backup.
pub(super) fn dataplane_args(dir: &ClusterDir, port: u16, spec: &ClusterSpec) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "--data-dir".into(),
        dir.data().into(),
        "--listen".into(),
        format!("127.0.0.1:{port}").into(),
        "--auth-public-key".into(),
        dir.public_key().into(),
        "--cluster-id".into(),
        spec.id.clone().into(),
    ];
    if let Some(url) = &spec.revocations_url {
        args.extend(["--revocations-url".into(), url.into()]);
    }
    if let Some(region) = &spec.region {
        args.extend(["--region".into(), region.name.clone().into()]);
        for (name, url) in &region.peers {
            args.extend(["--region-peer".into(), format!("{name}={url}").into()]);
        }
        args.extend([
            "--region-token-file".into(),
            dir.region_token(&spec.id).into(),
        ]);
    }
    if spec.max_ops_per_sec > 0 {
        let rate = u32::try_from(spec.max_ops_per_sec).unwrap_or(u32::MAX);
        args.extend(["--max-ops-per-sec".into(), rate.to_string().into()]);
    }
    if spec.max_stored_bytes > 0 {
        args.extend([
            "--max-stored-bytes".into(),
            spec.max_stored_bytes.to_string().into(),
        ]);
    }
    let mut store = OsString::from("file://");
    store.push(dir.backups());
    args.extend([
        "--backup-store".into(),
        store,
        "--backup-schedule".into(),
        BACKUP_SCHEDULE.into(),
        "--verify-schedule".into(),
        VERIFY_SCHEDULE.into(),
        "--archive-timeout".into(),
        ARCHIVE_TIMEOUT.into(),
    ]);
    if spec.backup_retention_days > 0 {
        args.extend([
            "--backup-retention".into(),
            format!("{}d", spec.backup_retention_days).into(),
        ]);
    }
    args.extend(
        ["--fsync", "always", "--log-format", "json"]
            .into_iter()
            .map(OsString::from),
    );
    args
}

/// Longest a restore may take before it is abandoned (its half-made directory is removed by the
/// data plane itself on failure, and a stopped one leaves only a hidden temporary directory).
const RESTORE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Longest restore output quoted in an error.
const MAX_QUOTED_OUTPUT: usize = 500;

/// Fills the empty data directory of a new cluster from `source`'s backup store with
/// `koru-dataplane restore`, before its data plane first starts. A data directory that already
/// holds data is left alone (`--skip-existing`), so applying the spec again is harmless.
pub(super) async fn restore(
    bin: &Path,
    dir: &ClusterDir,
    source_store: &Path,
    restore: &super::super::RestoreSource,
) -> Result<(), ProvisionError> {
    let mut from = OsString::from("file://");
    from.push(source_store);
    let mut command = tokio::process::Command::new(bin);
    command
        .arg("restore")
        .arg("--from")
        .arg(from)
        .arg("--data-dir")
        .arg(dir.data())
        .arg("--skip-existing")
        .kill_on_drop(true);
    if let Some(id) = &restore.backup_id {
        command.arg("--backup").arg(id);
    }
    if let Some(t) = &restore.target_time {
        command.arg("--target-time").arg(t);
    }
    let output = tokio::time::timeout(RESTORE_TIMEOUT, command.output())
        .await
        .map_err(|_| {
            ProvisionError::Local(format!(
                "restoring from cluster {} took over {} minutes",
                restore.cluster_id,
                RESTORE_TIMEOUT.as_secs() / 60
            ))
        })?
        .map_err(|e| ProvisionError::Local(format!("cannot run {}: {e}", bin.display())))?;
    if output.status.success() {
        tracing::info!(
            dir = %dir.root().display(),
            source = %restore.cluster_id,
            summary = %String::from_utf8_lossy(&output.stdout).trim(),
            "restored a new cluster's data"
        );
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let mut reason = stderr
        .trim()
        .trim_start_matches("koru-dataplane restore: ")
        .to_string();
    if reason.len() > MAX_QUOTED_OUTPUT {
        let mut end = MAX_QUOTED_OUTPUT;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push('…');
    }
    Err(ProvisionError::Local(format!(
        "restoring from cluster {} failed: {reason}",
        restore.cluster_id
    )))
}

/// The full command line (program first) the provisioner starts for a cluster, as `/proc` shows it.
pub(super) fn expected_cmdline(
    bin: &Path,
    dir: &ClusterDir,
    port: u16,
    spec: &ClusterSpec,
) -> Vec<OsString> {
    let mut line = vec![bin.as_os_str().to_owned()];
    line.extend(dataplane_args(dir, port, spec));
    line
}

/// The command line of a live (not zombie) process, or `None` when there is no such process.
pub(super) fn cmdline(pid: u32) -> Option<Vec<OsString>> {
    use std::os::unix::ffi::OsStringExt;
    if !is_alive(pid) {
        return None;
    }
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|&b| b == 0)
            .filter(|arg| !arg.is_empty())
            .map(|arg| OsString::from_vec(arg.to_vec()))
            .collect(),
    )
}

/// Whether `pid` is a live process serving the cluster in `dir` (its `--data-dir` is `dir`'s).
pub(super) fn serves(pid: u32, dir: &ClusterDir) -> bool {
    cmdline(pid).is_some_and(|line| names_data_dir(&line, &dir.data()))
}

/// Every live process serving the cluster in `dir`, found by scanning `/proc`.
pub(super) fn find_serving(dir: &ClusterDir) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != std::process::id() && serves(pid, dir))
        .collect()
}

/// Whether a command line passes `--data-dir <data>`.
fn names_data_dir(line: &[OsString], data: &Path) -> bool {
    line.windows(2)
        .any(|w| w[0] == "--data-dir" && Path::new(&w[1]) == data)
}

/// Whether a process exists and has not exited: a zombie (exited, not yet reaped by its parent)
/// counts as gone. An adopted data plane may still be the child of a dead or dropped control
/// plane's handle, so after it exits it can linger as a zombie.
pub(super) fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| process_state(&stat))
        .is_some_and(|state| !matches!(state, 'Z' | 'X' | 'x'))
}

/// The state letter of a `/proc/<pid>/stat` line. The command name in parentheses may itself hold
/// spaces and parentheses, so the state is found after the last `)`.
fn process_state(stat: &str) -> Option<char> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.trim_start().chars().next()
}

/// Sends `signal` to process `pid`.
pub(super) fn send_signal(pid: u32, signal: Signal) -> Result<(), ProvisionError> {
    // pid 0 and negative pids address process groups; only ever signal one real process.
    let target = i32::try_from(pid)
        .ok()
        .filter(|&p| p > 1)
        .map(Pid::from_raw)
        .ok_or_else(|| ProvisionError::Local(format!("refusing to signal pid {pid}")))?;
    match nix::sys::signal::kill(target, signal) {
        // Already gone (ESRCH): what the caller wanted.
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => Err(ProvisionError::Local(format!(
            "cannot signal data plane pid {pid}: {e}"
        ))),
    }
}

/// Stops a process that is not our child (an adopted data plane): SIGTERM, up to `grace` for it to
/// drain and exit, then SIGKILL. `still_ours` re-checks before each signal that the pid still
/// names the data plane, so a pid reused meanwhile is left alone.
pub(super) async fn terminate_pid(
    pid: u32,
    grace: Duration,
    still_ours: impl Fn(u32) -> bool,
) -> Result<(), ProvisionError> {
    if !still_ours(pid) {
        return Ok(());
    }
    send_signal(pid, Signal::SIGTERM)?;
    if wait_gone(pid, grace, &still_ours).await {
        return Ok(());
    }
    tracing::warn!(
        pid,
        "data plane did not exit after SIGTERM; sending SIGKILL"
    );
    if still_ours(pid) {
        send_signal(pid, Signal::SIGKILL)?;
    }
    if wait_gone(pid, KILL_WAIT, &still_ours).await {
        Ok(())
    } else {
        Err(ProvisionError::Local(format!(
            "data plane pid {pid} is still running after SIGKILL"
        )))
    }
}

/// Polls until `still_ours(pid)` is false or `limit` passes; true when the process is gone.
pub(super) async fn wait_gone(pid: u32, limit: Duration, still_ours: impl Fn(u32) -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if !still_ours(pid) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(EXIT_POLL).await;
    }
}

/// `GET <path>` on `127.0.0.1:<port>`: the response's status code, or `None` when nothing answers
/// within [`PROBE_TIMEOUT`].
///
/// A raw HTTP/1.1 request keeps the probe free of client state (pools, keep-alive) that could
/// outlive a restarted data plane; only the status line is read.
pub(super) async fn probe(port: u16, path: &str) -> Option<u16> {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = Vec::with_capacity(64);
        let mut buf = [0u8; 256];
        // The status line is all we need; stop reading as soon as it is complete.
        while !head.contains(&b'\n') && head.len() < 4096 {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        status_code(&head)
    };
    tokio::time::timeout(PROBE_TIMEOUT, exchange)
        .await
        .ok()
        .flatten()
}

/// The status code of an HTTP/1.x response's first line.
fn status_code(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(max_ops_per_sec: u64, max_stored_bytes: u64) -> ClusterSpec {
        ClusterSpec {
            id: "c1".into(),
            name: "orders".into(),
            org_id: "org-1".into(),
            org_slug: "acme".into(),
            version: "0.1.0".into(),
            replicas: 3,
            storage_bytes: 1 << 30,
            max_ops_per_sec,
            max_stored_bytes,
            token_public_key_pem: String::new(),
            revocations_url: None,
            backup_retention_days: 7,
            restore: None,
            suspended: false,
            regions: Vec::new(),
            region: None,
        }
    }

    fn strings(args: &[OsString]) -> Vec<&str> {
        args.iter().map(|a| a.to_str().unwrap()).collect()
    }

    #[test]
    fn the_command_line_carries_the_limits_auth_and_durability() {
        let dir = ClusterDir::new(Path::new("/srv/koru/clusters"), "c1");
        let args = dataplane_args(&dir, 40001, &spec(100, 1_000_000_000));
        assert_eq!(
            strings(&args),
            [
                "--data-dir",
                "/srv/koru/clusters/c1/data",
                "--listen",
                "127.0.0.1:40001",
                "--auth-public-key",
                "/srv/koru/clusters/c1/public.pem",
                "--cluster-id",
                "c1",
                "--max-ops-per-sec",
                "100",
                "--max-stored-bytes",
                "1000000000",
                "--backup-store",
                "file:///srv/koru/backups/c1",
                "--backup-schedule",
                "0 * * * *",
                "--verify-schedule",
                "30 4 * * *",
                "--archive-timeout",
                "10s",
                "--backup-retention",
                "7d",
                "--fsync",
                "always",
                "--log-format",
                "json",
            ]
        );
        // The data plane's own parser accepts exactly this command line.
        use clap::Parser;
        let mut line = vec![OsString::from("koru-dataplane")];
        line.extend(args);
        let config = koru_dataplane::config::Cli::try_parse_from(line)
            .unwrap()
            .into_config()
            .unwrap();
        assert_eq!(config.max_ops_per_sec, Some(100));
        assert_eq!(config.store.max_stored_bytes, Some(1_000_000_000));
        assert_eq!(config.auth.unwrap().1, "c1");
        let archive = config.archive.unwrap();
        assert_eq!(archive.store.to_string(), "file:///srv/koru/backups/c1");
        assert!(archive.schedule.is_some());
        assert_eq!(archive.retention, Some(Duration::from_secs(7 * 86_400)));
    }

    #[test]
    fn zero_limits_mean_none_and_huge_rates_are_clamped() {
        let dir = ClusterDir::new(Path::new("/c"), "c1");
        let args = strings(&dataplane_args(&dir, 1, &spec(0, 0))).join(" ");
        assert!(!args.contains("--max-ops-per-sec") && !args.contains("--max-stored-bytes"));
        let mut keep_all = spec(0, 0);
        keep_all.backup_retention_days = 0;
        let args = strings(&dataplane_args(&dir, 1, &keep_all)).join(" ");
        assert!(
            args.contains("--backup-store file:///backups/c1")
                && !args.contains("--backup-retention"),
            "{args}"
        );
        let args = strings(&dataplane_args(&dir, 1, &spec(u64::MAX, 5))).join(" ");
        assert!(
            args.contains(&format!("--max-ops-per-sec {}", u32::MAX)),
            "{args}"
        );
    }

    #[test]
    fn a_data_dir_is_recognised_only_as_the_value_of_data_dir() {
        let line: Vec<OsString> = [
            "koru-dataplane",
            "--data-dir",
            "/x/c1/data",
            "--listen",
            "a",
        ]
        .map(OsString::from)
        .to_vec();
        assert!(names_data_dir(&line, Path::new("/x/c1/data")));
        assert!(!names_data_dir(&line, Path::new("/x/c11/data")));
        assert!(!names_data_dir(&line[..2], Path::new("/x/c1/data")));
    }

    #[test]
    fn process_states_are_read_after_the_command_name() {
        assert_eq!(process_state("42 (koru-dataplane) S 1 42"), Some('S'));
        assert_eq!(process_state("42 (a) b) Z 1 42"), Some('Z'));
        assert_eq!(process_state("garbage"), None);
        assert!(is_alive(std::process::id()));
        assert!(!is_alive(u32::MAX));
    }

    #[test]
    fn status_lines_are_parsed_and_anything_else_is_not() {
        assert_eq!(
            status_code(b"HTTP/1.1 200 OK\r\ncontent-length: 2"),
            Some(200)
        );
        assert_eq!(
            status_code(b"HTTP/1.0 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(status_code(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_code(b""), None);
    }

    #[test]
    fn signalling_refuses_process_groups() {
        assert!(send_signal(0, Signal::SIGTERM).is_err());
        assert!(send_signal(1, Signal::SIGTERM).is_err());
    }
}
