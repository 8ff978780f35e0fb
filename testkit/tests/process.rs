//! The process harness against small shell scripts standing in for our servers: the ready line,
//! an early exit, a start that takes too long, a graceful stop, a kill and a restart.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

use std::time::Duration;

use koru_testkit::{Process, ProcessSpec, StartError};

/// A `sh -c script` child, ready at "demo listening on ".
fn shell(script: &str) -> ProcessSpec {
    ProcessSpec::new("/bin/sh", "demo listening on ")
        .name("demo")
        .args(["-c", script])
        .show_output_on_panic(false)
}

#[test]
fn a_child_is_ready_at_its_listening_line_and_its_output_is_kept() {
    let mut process = Process::start(shell(
        "echo booting; echo starting >&2; echo 'demo listening on http://127.0.0.1:1 '; \
         echo after; exec sleep 30",
    ));
    assert_eq!(process.url(), "http://127.0.0.1:1");
    assert!(process.pid() > 0);
    // Stdout and stderr are drained by separate threads, so each is awaited on its own.
    koru_testkit::wait_until(10, "the line after the ready line", || {
        process.stdout().contains("after")
    });
    koru_testkit::wait_until(10, "the line on stderr", || !process.stderr().is_empty());
    assert!(process.stdout().starts_with("booting\ndemo listening on"));
    assert_eq!(process.stderr(), "starting\n");
    assert_eq!(process.exited(), None, "still running");
    let status = process.kill();
    assert!(!status.success(), "killed: {status}");
}

#[test]
fn a_child_that_exits_before_it_is_ready_is_reported_with_what_it_said() {
    let Err(StartError::Exited(exited)) =
        Process::try_start(shell("echo 'no such file' >&2; exit 3"))
    else {
        panic!("the child exited before it was ready");
    };
    assert_eq!(exited.status.code(), Some(3));
    assert_eq!(exited.stderr, "no such file\n");
    assert_eq!(exited.name, "demo");
    let message = StartError::Exited(exited).to_string();
    assert!(
        message.starts_with("demo exited with exit status: 3 after"),
        "{message}"
    );
    assert!(message.ends_with("stderr:\nno such file\n"), "{message}");
}

#[test]
fn a_child_that_never_gets_ready_is_killed_after_the_start_timeout() {
    let spec = shell("echo waiting >&2; exec sleep 30").start_timeout(Duration::from_millis(300));
    let Err(e @ StartError::TimedOut { .. }) = Process::try_start(spec) else {
        panic!("the child never printed its ready line");
    };
    let message = e.to_string();
    assert!(
        message.contains("printed no \"demo listening on \" line within 300ms"),
        "{message}"
    );
    assert!(message.ends_with("waiting\n"), "{message}");
}

#[test]
fn a_missing_program_is_a_spawn_error() {
    let spec = ProcessSpec::new("/nonexistent/koru-nothing", "x");
    assert!(matches!(
        Process::try_start(spec),
        Err(StartError::Spawn { .. })
    ));
}

#[test]
fn stop_sends_sigterm_and_returns_the_exit_status() {
    let mut process = Process::start(shell(
        "trap 'echo bye >&2; exit 7' TERM; echo 'demo listening on x'; \
         while true; do sleep 0.05; done",
    ));
    let status = process.stop();
    assert_eq!(status.code(), Some(7), "the TERM trap's exit code");
    assert!(process.stderr().contains("bye"), "{}", process.stderr());
    assert_eq!(
        process.stop(),
        status,
        "stopping again returns the same status"
    );
}

#[test]
fn a_restart_runs_the_same_spec_again_and_keeps_the_earlier_output() {
    let mut process = Process::start(shell(
        "echo \"run $$\" >&2; echo \"demo listening on $$\"; exec sleep 30",
    ));
    let first = process.pid();
    assert_eq!(process.url(), first.to_string());
    process.restart();
    let second = process.pid();
    assert_ne!(first, second);
    assert_eq!(process.url(), second.to_string());
    koru_testkit::wait_until(10, "the second run's log line", || {
        process.stderr().contains(&format!("run {second}"))
    });
    assert!(process.stderr().starts_with(&format!("run {first}\n")));
}

#[test]
fn the_log_file_gets_a_copy_of_stderr() {
    let dir = std::env::temp_dir().join(format!("koru-testkit-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("log");
    let mut process =
        Process::start(shell("echo logged >&2; echo 'demo listening on x'").log_file(&log));
    process.kill();
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "logged\n");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_variables_given_reach_the_child_after_koru_ones_are_cleared() {
    let mut process = Process::start(
        shell("echo \"demo listening on ${KORU_GIVEN:-unset}/${PATH:+path}\"")
            .clear_koru_env()
            .env("KORU_GIVEN", "given"),
    );
    assert_eq!(process.url(), "given/path");
    process.kill();
}
