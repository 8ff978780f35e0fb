//! Fuzz target: arbitrary bytes as the body of the write and query routes of the real router.
//!
//! The first byte picks the route (see `ROUTES`), the rest is the body. One store serves many
//! inputs, so a crash usually reproduces from its input alone but may need the ones before it.

#![no_main]

use std::sync::OnceLock;

use koru_dataplane_fuzz::Api;
use libfuzzer_sys::fuzz_target;

/// Built once: opening a store per input would cost more than the request itself.
static API: OnceLock<Api> = OnceLock::new();

fuzz_target!(|data: &[u8]| API.get_or_init(|| Api::new()).check(data));
