//! One of our binaries as a child process of a test or a benchmark: started with the arguments
//! and environment given, ready once it prints its "listening on" line on stdout, its stdout and
//! stderr drained and kept for the whole life of the [`Process`], stopped (SIGTERM), killed
//! (SIGKILL) or restarted on request, and killed when dropped.
//!
//! Both pipes are drained by threads of their own until the child closes them, so a chatty child
//! never blocks on a full pipe and everything it said stays readable after it exited.

use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The line prefix `koru-dataplane` prints on stdout once it accepts connections.
pub const DATAPLANE_READY: &str = "koru-dataplane listening on ";
/// The line prefix `koru-controlplane` prints on stdout once it accepts connections.
pub const CONTROLPLANE_READY: &str = "koru-controlplane listening on ";
/// How long a child may take to print its ready line by default; debug builds replaying a big
/// log are slow.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a child may take to exit after SIGTERM by default.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait, once the child exited, for its pipes to be read to the end: a grandchild
/// that inherited them could hold them open for ever.
const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// How many lines of stderr a [`Process`] dropped while its test panics shows.
const PANIC_TAIL_LINES: usize = 100;

/// How to start one of our binaries: program, arguments, environment, ready line and limits.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    name: String,
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    clear_koru_env: bool,
    ready_prefix: String,
    start_timeout: Duration,
    stop_timeout: Duration,
    log_file: Option<PathBuf>,
    show_on_panic: bool,
}

impl ProcessSpec {
    /// Runs `program`, ready once it prints a line starting with `ready_prefix` (the rest of the
    /// line is its [`Process::url`]).
    pub fn new(program: impl Into<PathBuf>, ready_prefix: &str) -> ProcessSpec {
        let program = program.into();
        let name = program.file_name().map_or_else(
            || program.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        ProcessSpec {
            name,
            program,
            args: Vec::new(),
            env: Vec::new(),
            clear_koru_env: false,
            ready_prefix: ready_prefix.to_string(),
            start_timeout: START_TIMEOUT,
            stop_timeout: STOP_TIMEOUT,
            log_file: None,
            show_on_panic: true,
        }
    }

    /// A `koru-dataplane` binary, ready at [`DATAPLANE_READY`].
    pub fn dataplane(program: impl Into<PathBuf>) -> ProcessSpec {
        ProcessSpec::new(program, DATAPLANE_READY)
    }

    /// A `koru-controlplane` binary, ready at [`CONTROLPLANE_READY`].
    pub fn controlplane(program: impl Into<PathBuf>) -> ProcessSpec {
        ProcessSpec::new(program, CONTROLPLANE_READY)
    }

    /// The name used in messages (e.g. `member 2`); the program's file name by default.
    pub fn name(mut self, name: impl Into<String>) -> ProcessSpec {
        self.name = name.into();
        self
    }

    /// Appends one command-line argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> ProcessSpec {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends command-line arguments.
    pub fn args<I, S>(mut self, args: I) -> ProcessSpec
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets one environment variable of the child (after `KORU_*` are cleared, so it stays).
    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> ProcessSpec {
        self.env
            .push((name.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Sets environment variables of the child.
    pub fn envs<I, K, V>(mut self, vars: I) -> ProcessSpec
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.env.extend(
            vars.into_iter()
                .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned())),
        );
        self
    }

    /// Removes every `KORU_*` variable of this process from the child's environment: our binaries
    /// read their settings from them too, so only the arguments and variables given here count.
    pub fn clear_koru_env(mut self) -> ProcessSpec {
        self.clear_koru_env = true;
        self
    }

    /// How long the child may take to print its ready line.
    pub fn start_timeout(mut self, limit: Duration) -> ProcessSpec {
        self.start_timeout = limit;
        self
    }

    /// How long the child may take to exit after SIGTERM.
    pub fn stop_timeout(mut self, limit: Duration) -> ProcessSpec {
        self.stop_timeout = limit;
        self
    }

    /// Also appends the child's stderr to `path` (across restarts), e.g. to keep a benchmark's
    /// server logs beside its data.
    pub fn log_file(mut self, path: impl Into<PathBuf>) -> ProcessSpec {
        self.log_file = Some(path.into());
        self
    }

    /// Whether a [`Process`] dropped while its thread panics (a failing test) prints the end of
    /// the child's stderr; on by default.
    pub fn show_output_on_panic(mut self, show: bool) -> ProcessSpec {
        self.show_on_panic = show;
        self
    }

    /// The program this runs.
    pub fn program(&self) -> &Path {
        &self.program
    }
}

/// A child that exited before it printed its ready line, with what it said.
#[derive(Debug)]
pub struct Exited {
    /// Its name, from the [`ProcessSpec`].
    pub name: String,
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
    /// How long it ran.
    pub after: Duration,
}

/// Why a child did not become ready.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The program could not be run at all.
    #[error("cannot run {name} ({}): {source}", program.display())]
    Spawn {
        /// The child's name.
        name: String,
        /// The program.
        program: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The log file given with [`ProcessSpec::log_file`] could not be opened.
    #[error("cannot open {name}'s log file {}: {source}", path.display())]
    LogFile {
        /// The child's name.
        name: String,
        /// The log file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The child exited before it was ready.
    #[error(
        "{} exited with {} after {:?} instead of starting; stderr:\n{}",
        .0.name, .0.status, .0.after, .0.stderr
    )]
    Exited(Exited),
    /// The child printed no ready line in time (it was killed).
    #[error("{name} printed no {prefix:?} line within {limit:?}; stderr:\n{stderr}")]
    TimedOut {
        /// The child's name.
        name: String,
        /// The ready line's prefix it was expected to print.
        prefix: String,
        /// How long it was given.
        limit: Duration,
        /// Everything it wrote to stderr.
        stderr: String,
    },
}

/// What the child wrote, shared with the threads draining its pipes.
#[derive(Default)]
struct Captured {
    stdout: Mutex<String>,
    stderr: Mutex<String>,
}

impl Captured {
    /// Appends to one stream's text; a reader that panicked still leaves its text readable.
    fn push(stream: &Mutex<String>, text: &str) {
        stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_str(text);
    }

    /// One stream's text so far.
    fn read(stream: &Mutex<String>) -> String {
        stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A running (or exited) child process; killed and reaped when dropped.
pub struct Process {
    spec: ProcessSpec,
    child: Child,
    url: String,
    captured: Arc<Captured>,
    /// The threads draining the pipes; each ends when its pipe reached its end.
    drainers: Vec<JoinHandle<()>>,
    exit: Option<ExitStatus>,
}

impl Process {
    /// Starts the child and waits for its ready line; panics (failing the test) with its output
    /// if it exits first or takes too long.
    pub fn start(spec: ProcessSpec) -> Process {
        Process::try_start(spec).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts the child and waits for its ready line, or says how it failed.
    pub fn try_start(spec: ProcessSpec) -> Result<Process, StartError> {
        let captured = Arc::new(Captured::default());
        let Launched {
            child,
            drainers,
            ready,
        } = launch(&spec, &captured)?;
        let mut process = Process {
            spec,
            child,
            url: String::new(),
            captured,
            drainers,
            exit: None,
        };
        process.await_ready(&ready, Instant::now())?;
        Ok(process)
    }

    /// Kills the child if it still runs and starts it again with the same spec; its output is
    /// appended to what the earlier run said. Panics if it does not become ready.
    pub fn restart(&mut self) {
        self.try_restart().unwrap_or_else(|e| panic!("{e}"));
    }

    /// [`Process::restart`], saying how it failed instead of panicking.
    pub fn try_restart(&mut self) -> Result<(), StartError> {
        self.kill();
        let Launched {
            child,
            drainers,
            ready,
        } = launch(&self.spec, &self.captured)?;
        self.child = child;
        self.drainers = drainers;
        self.exit = None;
        self.url.clear();
        self.await_ready(&ready, Instant::now())
    }

    /// Waits for the ready line (the text after its prefix becomes the url).
    fn await_ready(
        &mut self,
        ready: &Receiver<String>,
        started: Instant,
    ) -> Result<(), StartError> {
        match ready.recv_timeout(self.spec.start_timeout) {
            Ok(url) => {
                self.url = url;
                Ok(())
            }
            Err(RecvTimeoutError::Disconnected) => {
                // Stdout closed without the ready line: the child is exiting.
                let status = self.wait();
                Err(StartError::Exited(Exited {
                    name: self.spec.name.clone(),
                    status,
                    stdout: self.stdout(),
                    stderr: self.stderr(),
                    after: started.elapsed(),
                }))
            }
            Err(RecvTimeoutError::Timeout) => {
                self.kill();
                Err(StartError::TimedOut {
                    name: self.spec.name.clone(),
                    prefix: self.spec.ready_prefix.clone(),
                    limit: self.spec.start_timeout,
                    stderr: self.stderr(),
                })
            }
        }
    }

    /// The rest of the ready line, trimmed: the base URL for our servers, e.g.
    /// `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The child's process id (of the latest run).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The spec it was started with.
    pub fn spec(&self) -> &ProcessSpec {
        &self.spec
    }

    /// Everything the child wrote to stdout so far (all of it once it has exited).
    pub fn stdout(&self) -> String {
        Captured::read(&self.captured.stdout)
    }

    /// Everything the child wrote to stderr so far (all of it once it has exited).
    pub fn stderr(&self) -> String {
        Captured::read(&self.captured.stderr)
    }

    /// The exit status if the child has exited, without waiting.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() && matches!(self.child.try_wait(), Ok(Some(_))) {
            self.wait();
        }
        self.exit
    }

    /// Sends SIGKILL without waiting (as a crash would, timed from here); the child is reaped by
    /// the next [`Process::kill`], [`Process::stop`] or drop.
    pub fn start_kill(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
        }
    }

    /// Kills the child with SIGKILL, as a crash or the OOM killer would, and reaps it.
    pub fn kill(&mut self) -> ExitStatus {
        self.start_kill();
        self.wait()
    }

    /// Sends SIGTERM and waits for the child to exit (a graceful stop); panics, after killing
    /// it, if it takes longer than the spec's stop timeout.
    pub fn stop(&mut self) -> ExitStatus {
        if let Some(status) = self.exited() {
            return status;
        }
        let pid = Pid::from_raw(i32::try_from(self.pid()).expect("a pid fits an i32"));
        // The child is not reaped yet, so its pid cannot have been reused.
        if let Err(e) = kill(pid, Signal::SIGTERM) {
            panic!("sending SIGTERM to {} ({pid}) failed: {e}", self.spec.name);
        }
        let deadline = Instant::now() + self.spec.stop_timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return self.wait(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {
                    self.kill();
                    panic!(
                        "{} did not exit within {:?} of SIGTERM; stderr:\n{}",
                        self.spec.name,
                        self.spec.stop_timeout,
                        self.stderr()
                    );
                }
            }
        }
    }

    /// Waits for the child to exit and for its pipes to be read to the end.
    fn wait(&mut self) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        let status = self
            .child
            .wait()
            .unwrap_or_else(|e| panic!("waiting for {}: {e}", self.spec.name));
        let deadline = Instant::now() + DRAIN_GRACE;
        while Instant::now() < deadline && !self.drainers.iter().all(JoinHandle::is_finished) {
            std::thread::sleep(Duration::from_millis(1));
        }
        // A drainer still running (a grandchild holds its pipe) is left to end on its own.
        for drainer in self.drainers.drain(..).filter(JoinHandle::is_finished) {
            let _ = drainer.join();
        }
        self.exit = Some(status);
        status
    }
}

impl Drop for Process {
    /// A failing test must not leave a child running (and holding its data directory); what the
    /// child said is shown with the failure.
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() && self.spec.show_on_panic {
            let stderr = self.stderr();
            let lines: Vec<&str> = stderr.lines().collect();
            let tail = lines[lines.len().saturating_sub(PANIC_TAIL_LINES)..].join("\n");
            eprintln!(
                "--- end of {}'s stderr (pid {}) ---\n{tail}",
                self.spec.name,
                self.pid()
            );
        }
    }
}

/// A child just spawned: the process, the threads draining its pipes, and the receiver of its
/// ready line's rest.
struct Launched {
    child: Child,
    drainers: Vec<JoinHandle<()>>,
    ready: Receiver<String>,
}

/// Spawns the child with both pipes drained into `captured`.
fn launch(spec: &ProcessSpec, captured: &Arc<Captured>) -> Result<Launched, StartError> {
    let log = match &spec.log_file {
        Some(path) => Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| StartError::LogFile {
                    name: spec.name.clone(),
                    path: path.clone(),
                    source,
                })?,
        ),
        None => None,
    };
    let mut command = Command::new(&spec.program);
    if spec.clear_koru_env {
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("KORU_") {
                command.env_remove(name);
            }
        }
    }
    let mut child = command
        .args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| StartError::Spawn {
            name: spec.name.clone(),
            program: spec.program.clone(),
            source,
        })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (ready_tx, ready) = mpsc::channel();
    let prefix = spec.ready_prefix.clone();
    let out = Arc::clone(captured);
    let stdout = std::thread::spawn(move || drain_stdout(stdout, &out, &prefix, ready_tx));
    let err = Arc::clone(captured);
    let stderr = std::thread::spawn(move || drain_stderr(stderr, &err, log));
    Ok(Launched {
        child,
        drainers: vec![stdout, stderr],
        ready,
    })
}

/// Reads stdout line by line to its end, keeping it and sending the first ready line's rest.
fn drain_stdout(pipe: impl Read, captured: &Captured, prefix: &str, ready: Sender<String>) {
    let mut ready = Some(ready);
    for line in BufReader::new(pipe).lines().map_while(Result::ok) {
        if let Some(rest) = line.strip_prefix(prefix)
            && let Some(ready) = ready.take()
        {
            let _ = ready.send(rest.trim().to_string());
        }
        Captured::push(&captured.stdout, &format!("{line}\n"));
    }
}

/// Reads stderr in chunks to its end (log lines may be long), keeping it and copying it to the
/// log file if there is one.
fn drain_stderr(mut pipe: impl Read, captured: &Captured, mut log: Option<File>) {
    let mut chunk = [0u8; 4096];
    while let Ok(n @ 1..) = pipe.read(&mut chunk) {
        if let Some(file) = &mut log {
            let _ = file.write_all(&chunk[..n]);
        }
        Captured::push(&captured.stderr, &String::from_utf8_lossy(&chunk[..n]));
    }
}
