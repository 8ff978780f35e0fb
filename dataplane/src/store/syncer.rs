//! The interval fsync, on its own thread so a slow fsync never stalls the commit thread.
//!
//! In `--fsync interval=<ms>` mode writes are acknowledged once they reach the OS; this thread
//! makes them durable within the interval. It syncs through its own handle on the active segment,
//! which the commit thread swaps when it rolls (sealed segments were already fsynced by the roll).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::metrics::StoreMetrics;
use crate::wal::storage::StorageFile;

/// What the commit thread and the syncer share.
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    /// The active segment.
    file: Arc<dyn StorageFile>,
    /// Whether anything was appended since the last sync began.
    dirty: bool,
    /// Set once the store closes.
    closed: bool,
}

/// Handle the commit thread keeps on its syncer.
pub(crate) struct Syncer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts a thread that fsyncs `file` every `every` while there are unsynced appends.
    pub fn start(
        file: Arc<dyn StorageFile>,
        every: Duration,
        read_only: Arc<AtomicBool>,
        metrics: Arc<StoreMetrics>,
    ) -> std::io::Result<Syncer> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                file,
                dirty: false,
                closed: false,
            }),
            wake: Condvar::new(),
        });
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("koru-fsync".into())
            .spawn(move || run(&theirs, every, &read_only, &metrics))?;
        Ok(Syncer {
            shared,
            thread: Some(thread),
        })
    }

    /// Notes that appends since the last sync need one.
    pub fn mark_dirty(&self) {
        self.shared.state.lock().dirty = true;
    }

    /// Points the syncer at a new active segment after a roll.
    pub fn set_file(&self, file: Arc<dyn StorageFile>) {
        self.shared.state.lock().file = file;
    }

    /// Stops the thread; the caller fsyncs what is left itself.
    pub fn stop(&mut self) {
        self.shared.state.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The syncer's loop: sleep one interval, fsync if dirty, until closed.
fn run(shared: &Shared, every: Duration, read_only: &AtomicBool, metrics: &StoreMetrics) {
    let mut state = shared.state.lock();
    loop {
        let deadline = Instant::now() + every;
        while !state.closed && !shared.wake.wait_until(&mut state, deadline).timed_out() {}
        if state.closed {
            return;
        }
        if !state.dirty {
            continue;
        }
        state.dirty = false;
        let file = Arc::clone(&state.file);
        // The lock is not held across the fsync, so the commit thread never waits for the disk.
        drop(state);
        let started = Instant::now();
        match file.sync_data() {
            Ok(()) => metrics
                .fsync_seconds
                .observe(started.elapsed().as_secs_f64()),
            Err(e) => {
                tracing::error!(error = %e, "interval fsync of the log failed; refusing further writes");
                read_only.store(true, Ordering::SeqCst);
            }
        }
        state = shared.state.lock();
    }
}
