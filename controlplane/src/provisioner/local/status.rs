//! Pure decisions of the local provisioner: what a supervisor observed → the cluster's
//! [`ClusterState`], and how long to wait before restarting a data plane that exited.

use std::time::{Duration, Instant};

use super::super::ClusterState;

/// Wait before the first restart after an unexpected exit.
pub(super) const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// Longest wait between restarts; a data plane that keeps exiting is retried this often.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A process that ran this long before exiting was healthy: its exit starts the backoff afresh.
pub(super) const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// The restart backoff of one data plane: doubling from [`FIRST_BACKOFF`] to [`MAX_BACKOFF`], so a
/// data plane that refuses to start (bad key, damaged log, port taken) is retried ever more slowly
/// instead of spinning.
#[derive(Debug, Default, Clone)]
pub(super) struct Backoff {
    /// Exits since the last healthy run.
    failures: u32,
}

impl Backoff {
    /// Records an exit after `ran_for` of running and returns how long to wait before restarting.
    pub(super) fn after_exit(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= HEALTHY_RUN {
            self.failures = 0;
        }
        let factor = 1u32 << self.failures.min(16);
        self.failures = self.failures.saturating_add(1);
        FIRST_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
    }
}

/// What a supervisor last saw of its data plane; `state()` reads it without touching the process.
#[derive(Debug, Clone)]
pub(super) struct Observed {
    /// The process's lifecycle.
    pub(super) process: Process,
    /// Whether the latest `/readyz` probe of the current process answered 200.
    pub(super) ready: bool,
    /// Whether the current process has answered `/readyz` with 200 at least once.
    pub(super) was_ready: bool,
    /// Unexpected exits since supervision began, each followed by a restart.
    pub(super) restarts: u32,
    /// How the latest unexpected exit went, until the process after it is ready or a planned
    /// restart (new limits) replaces it: while set, a process that is not ready yet is Degraded
    /// (recovering from a crash) rather than Provisioning.
    pub(super) last_exit: Option<String>,
}

impl Default for Observed {
    fn default() -> Observed {
        Observed {
            process: Process::Starting,
            ready: false,
            was_ready: false,
            restarts: 0,
            last_exit: None,
        }
    }
}

/// The lifecycle of a cluster's data-plane process as its supervisor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Process {
    /// No process yet: checking whether a running one can be adopted, or about to start one.
    Starting,
    /// A process runs (started by us, or adopted from an earlier control plane).
    Up,
    /// The process is gone and the next one starts at `restart_at`.
    Down {
        /// When the restart is due.
        restart_at: Instant,
        /// The backoff chosen for it.
        delay: Duration,
    },
    /// Scaled to zero: no process until the cluster is resumed.
    Suspended,
    /// Stopped for deletion.
    Stopped,
}

/// The cluster's state from what its supervisor observed.
///
/// Provisioning until a fresh process first answers `/readyz` with 200, then Running. A process
/// that crashed is Degraded while it restarts, and Failed once restarts have backed off to
/// [`MAX_BACKOFF`] (it keeps exiting: the message carries the last exit and its log line).
/// `ready_replicas` is 0 or 1: locally one process serves a cluster of any replica count.
pub(super) fn cluster_state(observed: &Observed, endpoint: &str, now: Instant) -> ClusterState {
    let restarts = observed.restarts;
    let last_exit = observed.last_exit.as_deref().unwrap_or("data plane exited");
    let (phase, message) = match &observed.process {
        Process::Up if observed.ready => ("Running", None),
        Process::Up if observed.was_ready => (
            "Degraded",
            Some(
                "the data plane is up but /readyz does not answer 200 \
                 (read-only after a failed write, or overloaded)"
                    .to_string(),
            ),
        ),
        Process::Up | Process::Starting if observed.last_exit.is_none() => (
            "Provisioning",
            Some("starting the data plane; waiting for /readyz".to_string()),
        ),
        Process::Up | Process::Starting => (
            "Degraded",
            Some(format!(
                "restarted after: {last_exit} (restart {restarts}); waiting for /readyz"
            )),
        ),
        Process::Down { restart_at, delay } => {
            let left = restart_at.saturating_duration_since(now).as_secs_f64();
            let phase = if *delay >= MAX_BACKOFF {
                "Failed"
            } else {
                "Degraded"
            };
            (
                phase,
                Some(format!(
                    "{last_exit}; restarting in {left:.1} s (restart {restarts})"
                )),
            )
        }
        Process::Suspended => (
            "Suspended",
            Some(
                "scaled to zero: no process runs, the data is kept; the first request through the \
                 gateway, or POST …/resume, starts it"
                    .to_string(),
            ),
        ),
        Process::Stopped => ("Deleted", Some("the data plane was stopped".to_string())),
    };
    ClusterState {
        phase: phase.to_string(),
        ready_replicas: u32::from(phase == "Running"),
        endpoint: Some(endpoint.to_string()),
        message,
        regions: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENDPOINT: &str = "http://127.0.0.1:40001";

    fn up(ready: bool, was_ready: bool, restarts: u32) -> Observed {
        Observed {
            process: Process::Up,
            ready,
            was_ready,
            restarts,
            last_exit: (restarts > 0).then(|| "data plane was killed by signal 9".into()),
        }
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_resets_after_a_healthy_run() {
        let mut backoff = Backoff::default();
        let quick = Duration::from_millis(10);
        let delays: Vec<f64> = (0..9)
            .map(|_| backoff.after_exit(quick).as_secs_f64())
            .collect();
        assert_eq!(delays, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]);
        assert_eq!(backoff.after_exit(HEALTHY_RUN), FIRST_BACKOFF);
        assert_eq!(backoff.after_exit(quick), Duration::from_secs(1));
        // Counting on forever must neither overflow nor pass the cap.
        for _ in 0..100 {
            assert!(backoff.after_exit(quick) <= MAX_BACKOFF);
        }
    }

    #[test]
    fn a_new_cluster_is_provisioning_until_ready_then_running() {
        let now = Instant::now();
        let starting = cluster_state(&Observed::default(), ENDPOINT, now);
        assert_eq!(starting.phase, "Provisioning");
        assert_eq!(starting.ready_replicas, 0);
        assert_eq!(starting.endpoint.as_deref(), Some(ENDPOINT));
        assert_eq!(
            cluster_state(&up(false, false, 0), ENDPOINT, now).phase,
            "Provisioning"
        );
        let running = cluster_state(&up(true, true, 0), ENDPOINT, now);
        assert_eq!(running.phase, "Running");
        assert_eq!(running.ready_replicas, 1);
        assert_eq!(running.message, None);
    }

    #[test]
    fn a_crashed_data_plane_is_degraded_then_failed_once_backoff_is_capped() {
        let now = Instant::now();
        let mut observed = up(false, false, 3);
        observed.process = Process::Down {
            restart_at: now + Duration::from_secs(2),
            delay: Duration::from_secs(4),
        };
        let down = cluster_state(&observed, ENDPOINT, now);
        assert_eq!(down.phase, "Degraded");
        assert_eq!(
            down.message.as_deref(),
            Some("data plane was killed by signal 9; restarting in 2.0 s (restart 3)")
        );
        observed.process = Process::Down {
            restart_at: now + MAX_BACKOFF,
            delay: MAX_BACKOFF,
        };
        assert_eq!(cluster_state(&observed, ENDPOINT, now).phase, "Failed");

        let restarting = cluster_state(&up(false, false, 3), ENDPOINT, now);
        assert_eq!(restarting.phase, "Degraded");
        assert!(
            restarting.message.unwrap().contains("restart 3"),
            "the message should count restarts"
        );
    }

    #[test]
    fn a_planned_restart_after_an_old_crash_is_provisioning_again() {
        let mut observed = up(false, false, 3);
        observed.last_exit = None;
        let state = cluster_state(&observed, ENDPOINT, Instant::now());
        assert_eq!(state.phase, "Provisioning");
    }

    #[test]
    fn a_suspended_cluster_is_suspended_with_no_ready_replica() {
        let observed = Observed {
            process: Process::Suspended,
            ..Observed::default()
        };
        let state = cluster_state(&observed, ENDPOINT, Instant::now());
        assert_eq!(state.phase, "Suspended");
        assert_eq!(state.ready_replicas, 0);
        assert!(state.message.unwrap().contains("resume"));
    }

    #[test]
    fn a_data_plane_that_stops_being_ready_is_degraded() {
        let state = cluster_state(&up(false, true, 0), ENDPOINT, Instant::now());
        assert_eq!(state.phase, "Degraded");
        assert!(state.message.unwrap().contains("/readyz"));
    }
}
