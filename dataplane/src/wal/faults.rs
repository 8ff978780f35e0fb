//! Fault injection for the log writer: tests arm a failure and the next append or fsync hits it.
//!
//! This is the seam that lets tests prove what happens after a short write or a failed fsync
//! (the store turns read-only and recovery cuts the torn tail) without a faulty disk.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Failures armed for the next log write or fsync; each fires once.
#[derive(Debug, Default)]
pub struct Faults {
    short_write: AtomicUsize,
    fail_sync: AtomicBool,
}

/// `short_write` value meaning "not armed".
const DISARMED: usize = 0;

impl Faults {
    /// The next append writes only its first `bytes` bytes, then fails.
    pub fn short_write_next(&self, bytes: usize) {
        self.short_write.store(bytes + 1, Ordering::SeqCst);
    }

    /// The next fsync fails.
    pub fn fail_next_sync(&self) {
        self.fail_sync.store(true, Ordering::SeqCst);
    }

    /// How many bytes the armed short write lets through, disarming it.
    pub(crate) fn take_short_write(&self) -> Option<usize> {
        match self.short_write.swap(DISARMED, Ordering::SeqCst) {
            DISARMED => None,
            n => Some(n - 1),
        }
    }

    /// An injected fsync error, if armed, disarming it.
    pub(crate) fn take_sync_failure(&self) -> Option<io::Error> {
        self.fail_sync
            .swap(false, Ordering::SeqCst)
            .then(|| io::Error::other("injected fsync failure"))
    }
}
