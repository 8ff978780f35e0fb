//! The supervisor of one cluster's data plane: a tokio task that starts or adopts the process,
//! probes its readiness, restarts it with backoff when it exits, restarts it on new limits, and
//! stops it on delete.
//!
//! Children run in their own process group with stdout and stderr going to `dataplane.log`, not to
//! pipes: a Ctrl-C or SIGTERM aimed at the control plane does not reach them, and nothing breaks
//! when the control plane goes away, so data planes keep serving across a control-plane restart
//! and the next control plane adopts them.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::process::Child;
use tokio::sync::{mpsc, oneshot};

use super::super::{ClusterSpec, ProvisionError};
use super::layout::{ClusterDir, io_error};
use super::process;
use super::status::{Backoff, Observed, Process};

/// How long a data plane may drain and fsync after SIGTERM before it gets SIGKILL.
pub(super) const STOP_GRACE: Duration = Duration::from_secs(10);

/// How long a data plane found running at start-up may take to answer `/healthz` (it may still be
/// replaying its log) before it is judged hung and replaced.
const ADOPT_WAIT: Duration = Duration::from_secs(10);

/// Readiness probe interval until the current process is first ready: quick, so a new cluster
/// turns Running soon after it can serve.
const PROBE_WHILE_STARTING: Duration = Duration::from_millis(50);

/// Readiness probe interval once ready.
const PROBE_WHILE_READY: Duration = Duration::from_secs(1);

/// How often an adopted data plane (not our child, so no exit notification) is checked.
const ADOPTED_POLL: Duration = Duration::from_millis(250);

/// Longest log line quoted in a cluster's state message.
const MAX_QUOTED_LOG: usize = 300;

/// What the provisioner asks of a supervisor.
pub(super) enum Command {
    /// The spec changed in a way the data plane reads only at start: restart it with this spec.
    /// A spec with `suspended` stops the data plane and starts none until one without it comes.
    Restart(Box<ClusterSpec>),
    /// Stop the data plane for good (delete); answers once the process is gone.
    Stop(oneshot::Sender<Result<(), ProvisionError>>),
    /// Stop supervising and leave the data plane running (control-plane shutdown).
    Detach,
}

/// How a supervisor begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Start {
    /// Start a new process.
    Spawn,
    /// A process serving this cluster is running already (left by an earlier control plane):
    /// adopt it if it runs our exact command line and answers `/healthz`, else replace it.
    Adopt(u32),
}

/// The supervisor of one cluster's data plane.
pub(super) struct Supervisor {
    /// The `koru-dataplane` binary.
    pub(super) bin: PathBuf,
    /// The cluster's directory.
    pub(super) dir: ClusterDir,
    /// The cluster's loopback port.
    pub(super) port: u16,
    /// The spec the next process starts with.
    pub(super) spec: ClusterSpec,
    /// What `state()` reads.
    pub(super) observed: Arc<Mutex<Observed>>,
}

/// A data-plane process being supervised.
enum Running {
    /// Started by this supervisor.
    Child(Child),
    /// Started by an earlier control plane; watched through `/proc` since we cannot wait on it.
    Adopted(u32),
}

/// Why [`Supervisor::watch`] returned.
enum Event {
    /// The process exited on its own; how.
    Exited(String),
    /// A command arrived (`None`: the provisioner is gone).
    Command(Option<Command>),
}

/// What to do after waiting out a backoff.
enum After {
    /// Start the process.
    Start,
    /// Leave the loop: stopped or detached.
    Leave,
}

impl Supervisor {
    /// Supervises until stopped or detached.
    pub(super) async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        start: Start,
    ) {
        let mut backoff = Backoff::default();
        let mut current = match start {
            // A suspended cluster stays down across control-plane restarts, whatever is found.
            Start::Adopt(pid) if self.spec.suspended => {
                self.stop_found(pid).await;
                None
            }
            Start::Adopt(pid) => self.adopt_or_replace(pid).await,
            Start::Spawn => None,
        };
        loop {
            if self.spec.suspended {
                self.update(|o| {
                    o.process = Process::Suspended;
                    o.ready = false;
                    o.was_ready = false;
                    o.last_exit = None;
                });
                match self.sleep_suspended(&mut commands).await {
                    After::Start => {
                        backoff = Backoff::default();
                        continue;
                    }
                    After::Leave => return,
                }
            }
            let mut running = match current.take() {
                Some(running) => running,
                None => match self.spawn() {
                    Ok(running) => running,
                    Err(e) => {
                        let delay = backoff.after_exit(Duration::ZERO);
                        tracing::error!(cluster = %self.spec.id, error = %e, ?delay, "cannot start the data plane");
                        self.set_down(e.to_string(), delay);
                        match self.wait_out(delay, &mut commands).await {
                            After::Start => continue,
                            After::Leave => return,
                        }
                    }
                },
            };
            let started = Instant::now();
            match self.watch(&mut running, &mut commands).await {
                Event::Exited(how) => {
                    self.dir.remove_pid();
                    let delay = backoff.after_exit(started.elapsed());
                    let restart = self.set_down(how.clone(), delay);
                    tracing::warn!(
                        cluster = %self.spec.id,
                        port = self.port,
                        exit = %how,
                        ?delay,
                        restart,
                        "data plane exited; restarting after backoff"
                    );
                    match self.wait_out(delay, &mut commands).await {
                        After::Start => continue,
                        After::Leave => return,
                    }
                }
                Event::Command(Some(Command::Restart(spec))) => {
                    if spec.suspended {
                        tracing::info!(cluster = %self.spec.id, "suspending: stopping the data plane, keeping its data");
                    } else {
                        tracing::info!(cluster = %self.spec.id, "restarting the data plane with new limits");
                    }
                    self.stop(&mut running).await.unwrap_or_else(|e| {
                        // The new process will fail on the data directory's lock and back off,
                        // with the reason in its log and the cluster's state.
                        tracing::error!(cluster = %self.spec.id, error = %e, "cannot stop the data plane");
                    });
                    self.spec = *spec;
                    backoff = Backoff::default();
                    self.update(|o| {
                        o.process = Process::Starting;
                        o.last_exit = None;
                    });
                }
                Event::Command(Some(Command::Stop(reply))) => {
                    let stopped = self.stop(&mut running).await;
                    self.update(|o| o.process = Process::Stopped);
                    let _ = reply.send(stopped);
                    return;
                }
                Event::Command(Some(Command::Detach) | None) => {
                    tracing::info!(cluster = %self.spec.id, "detached; the data plane keeps running");
                    return;
                }
            }
        }
    }

    /// Starts a data plane: its own process group, output appended to `dataplane.log`.
    fn spawn(&self) -> Result<Running, ProvisionError> {
        let log_path = self.dir.log();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| io_error("opening", &log_path, &e))?;
        let stderr = log
            .try_clone()
            .map_err(|e| io_error("opening", &log_path, &e))?;
        let mut command = tokio::process::Command::new(&self.bin);
        command.args(process::dataplane_args(&self.dir, self.port, &self.spec));
        // The data plane also reads KORU_* variables; only our arguments may configure it.
        // KORU_LOG (the log level) is passed on so an operator can turn on debug logs.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("KORU_") && name != "KORU_LOG" {
                command.env_remove(name);
            }
        }
        command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            // Its own process group: signals for the control plane's group do not reach it.
            .process_group(0)
            // Dropping the handle (control-plane shutdown) must leave the data plane running.
            .kill_on_drop(false);
        let child = command.spawn().map_err(|e| {
            ProvisionError::Local(format!(
                "cannot run {} for cluster {}: {e}",
                self.bin.display(),
                self.spec.id
            ))
        })?;
        let pid = child.id();
        // Without the pid file a later control plane still finds this process by scanning /proc.
        if let Some(pid) = pid
            && let Err(e) = self.dir.write_pid(pid)
        {
            tracing::warn!(cluster = %self.spec.id, error = %e, "cannot record the data plane's pid");
        }
        tracing::info!(cluster = %self.spec.id, ?pid, port = self.port, "data plane started");
        self.update(|o| {
            o.process = Process::Up;
            o.ready = false;
            o.was_ready = false;
        });
        Ok(Running::Child(child))
    }

    /// Waits, with no process, until the cluster is resumed (a spec without `suspended`),
    /// stopped or detached.
    async fn sleep_suspended(&mut self, commands: &mut mpsc::UnboundedReceiver<Command>) -> After {
        loop {
            match commands.recv().await {
                Some(Command::Restart(spec)) => {
                    self.spec = *spec;
                    if !self.spec.suspended {
                        tracing::info!(cluster = %self.spec.id, "resuming: starting the data plane");
                        self.update(|o| o.process = Process::Starting);
                        return After::Start;
                    }
                }
                Some(Command::Stop(reply)) => {
                    self.update(|o| o.process = Process::Stopped);
                    let _ = reply.send(Ok(()));
                    return After::Leave;
                }
                Some(Command::Detach) | None => return After::Leave,
            }
        }
    }

    /// Stops a data plane found running for a suspended cluster (one left by a suspend that a
    /// control-plane crash interrupted).
    async fn stop_found(&self, pid: u32) {
        tracing::info!(cluster = %self.spec.id, pid, "the cluster is suspended; stopping the data plane found running");
        let dir = self.dir.clone();
        if let Err(e) = process::terminate_pid(pid, STOP_GRACE, |p| process::serves(p, &dir)).await
        {
            tracing::error!(cluster = %self.spec.id, error = %e, "cannot stop the data plane found running");
        }
        self.dir.remove_pid();
    }

    /// Adopts a data plane found running at start-up, or stops it when it is not one we would
    /// start now (other limits, key or binary) or does not answer `/healthz` within [`ADOPT_WAIT`].
    ///
    /// Adopting instead of restarting keeps clusters serving through a control-plane restart;
    /// requiring our exact command line keeps an adopted process indistinguishable from one we
    /// started, so the spec on disk is what runs.
    async fn adopt_or_replace(&mut self, pid: u32) -> Option<Running> {
        let expected = process::expected_cmdline(&self.bin, &self.dir, self.port, &self.spec);
        if process::cmdline(pid).as_deref() == Some(expected.as_slice()) {
            let deadline = Instant::now() + ADOPT_WAIT;
            loop {
                if !process::serves(pid, &self.dir) {
                    return None;
                }
                if process::probe(self.port, "/healthz").await == Some(200) {
                    if self.dir.read_pid() != Some(pid)
                        && let Err(e) = self.dir.write_pid(pid)
                    {
                        tracing::warn!(cluster = %self.spec.id, error = %e, "cannot record the data plane's pid");
                    }
                    tracing::info!(cluster = %self.spec.id, pid, port = self.port, "adopted the running data plane");
                    self.update(|o| o.process = Process::Up);
                    return Some(Running::Adopted(pid));
                }
                if Instant::now() >= deadline {
                    tracing::warn!(cluster = %self.spec.id, pid, "the running data plane does not answer /healthz; replacing it");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        } else {
            tracing::info!(cluster = %self.spec.id, pid, "the running data plane has another command line; replacing it");
        }
        let dir = self.dir.clone();
        if let Err(e) = process::terminate_pid(pid, STOP_GRACE, |p| process::serves(p, &dir)).await
        {
            tracing::error!(cluster = %self.spec.id, error = %e, "cannot stop the running data plane");
        }
        self.dir.remove_pid();
        None
    }

    /// Waits for the process to exit or a command to arrive, probing readiness meanwhile.
    async fn watch(
        &self,
        running: &mut Running,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> Event {
        loop {
            let ready_before = self.observed().ready;
            let interval = if ready_before {
                PROBE_WHILE_READY
            } else {
                PROBE_WHILE_STARTING
            };
            let probe = async {
                tokio::time::sleep(interval).await;
                process::probe(self.port, "/readyz").await == Some(200)
            };
            tokio::select! {
                how = wait(running, &self.dir) => return Event::Exited(how),
                command = commands.recv() => return Event::Command(command),
                ready = probe => {
                    if ready != ready_before {
                        if ready {
                            tracing::info!(cluster = %self.spec.id, port = self.port, "data plane ready");
                        } else {
                            tracing::warn!(cluster = %self.spec.id, port = self.port, "data plane no longer ready");
                        }
                    }
                    self.update(|o| {
                        o.ready = ready;
                        o.was_ready |= ready;
                        if ready {
                            // Recovered: a later planned restart is not a crash recovery.
                            o.last_exit = None;
                        }
                    });
                }
            }
        }
    }

    /// Sleeps out a restart backoff, still obeying commands.
    async fn wait_out(
        &mut self,
        delay: Duration,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> After {
        tokio::select! {
            () = tokio::time::sleep(delay) => After::Start,
            command = commands.recv() => match command {
                // New limits may be what it needed; try them at once.
                Some(Command::Restart(spec)) => {
                    self.spec = *spec;
                    After::Start
                }
                Some(Command::Stop(reply)) => {
                    self.update(|o| o.process = Process::Stopped);
                    let _ = reply.send(Ok(()));
                    After::Leave
                }
                Some(Command::Detach) | None => After::Leave,
            },
        }
    }

    /// Stops the process: SIGTERM, [`STOP_GRACE`] to drain and fsync, then SIGKILL.
    async fn stop(&self, running: &mut Running) -> Result<(), ProvisionError> {
        let stopped = match running {
            Running::Child(child) => {
                if let Some(pid) = child.id() {
                    process::send_signal(pid, nix::sys::signal::Signal::SIGTERM)?;
                }
                match tokio::time::timeout(STOP_GRACE, child.wait()).await {
                    Ok(_) => Ok(()),
                    Err(_) => {
                        tracing::warn!(cluster = %self.spec.id, "data plane did not exit after SIGTERM; killing it");
                        let _ = child.start_kill();
                        tokio::time::timeout(STOP_GRACE, child.wait())
                            .await
                            .map(|_| ())
                            .map_err(|_| {
                                ProvisionError::Local(format!(
                                    "the data plane of cluster {} on port {} survived SIGKILL",
                                    self.spec.id, self.port
                                ))
                            })
                    }
                }
            }
            Running::Adopted(pid) => {
                let dir = self.dir.clone();
                process::terminate_pid(*pid, STOP_GRACE, |p| process::serves(p, &dir)).await
            }
        };
        if stopped.is_ok() {
            self.dir.remove_pid();
        }
        stopped
    }

    /// Records an unexpected exit and the coming restart; returns the restart's number.
    fn set_down(&self, how: String, delay: Duration) -> u32 {
        let mut observed = self.observed();
        observed.restarts = observed.restarts.saturating_add(1);
        observed.last_exit = Some(how);
        observed.ready = false;
        observed.was_ready = false;
        observed.process = Process::Down {
            restart_at: Instant::now() + delay,
            delay,
        };
        observed.restarts
    }

    /// Changes what `state()` sees.
    fn update(&self, change: impl FnOnce(&mut Observed)) {
        change(&mut self.observed());
    }

    /// The shared observation, even if a panicking holder poisoned the lock (it is plain data).
    fn observed(&self) -> MutexGuard<'_, Observed> {
        lock(&self.observed)
    }
}

/// Locks a mutex holding plain data, ignoring poisoning.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Resolves when the process exits, describing how. Cancel-safe: `Child::wait` is, and the
/// adopted case only polls `/proc`.
async fn wait(running: &mut Running, dir: &ClusterDir) -> String {
    match running {
        Running::Child(child) => match child.wait().await {
            Ok(status) => describe_exit(status, dir),
            Err(e) => format!("cannot wait for the data plane: {e}"),
        },
        Running::Adopted(pid) => {
            while process::serves(*pid, dir) {
                tokio::time::sleep(ADOPTED_POLL).await;
            }
            format!(
                "data plane pid {pid} exited (its status is unknown: an earlier control plane started it)"
            )
        }
    }
}

/// Says how a data plane ended, quoting the last line of its log when it failed on its own: the
/// data plane prints its fatal error (bad key, damaged log, port in use) last.
fn describe_exit(status: ExitStatus, dir: &ClusterDir) -> String {
    match (status.code(), status.signal()) {
        (Some(0), _) => "data plane exited with status 0".to_string(),
        (Some(code), _) => match last_log_line(dir) {
            Some(line) => format!("data plane exited with status {code}: {line}"),
            None => format!("data plane exited with status {code}"),
        },
        (None, Some(signal)) => format!("data plane was killed by signal {signal}"),
        (None, None) => format!("data plane ended: {status}"),
    }
}

/// The last non-empty line of `dataplane.log`, shortened to [`MAX_QUOTED_LOG`] characters.
fn last_log_line(dir: &ClusterDir) -> Option<String> {
    let mut file = std::fs::File::open(dir.log()).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).ok()?;
    let text = String::from_utf8_lossy(&tail);
    let line = text.lines().rev().map(str::trim).find(|l| !l.is_empty())?;
    Some(line.chars().take(MAX_QUOTED_LOG).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_exit_quotes_the_last_log_line() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ClusterDir::new(tmp.path(), "c1");
        std::fs::create_dir_all(dir.root()).unwrap();
        let status = |raw| ExitStatus::from_raw(raw);
        assert_eq!(
            describe_exit(status(1 << 8), &dir),
            "data plane exited with status 1"
        );
        std::fs::write(
            dir.log(),
            "{\"level\":\"INFO\"}\nkoru-dataplane: cannot use key.pem\n\n",
        )
        .unwrap();
        assert_eq!(
            describe_exit(status(1 << 8), &dir),
            "data plane exited with status 1: koru-dataplane: cannot use key.pem"
        );
        assert_eq!(
            describe_exit(status(9), &dir),
            "data plane was killed by signal 9"
        );
        std::fs::write(dir.log(), "x".repeat(10_000)).unwrap();
        assert_eq!(last_log_line(&dir).unwrap().len(), MAX_QUOTED_LOG);
    }
}
