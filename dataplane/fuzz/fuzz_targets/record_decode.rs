//! Fuzz target: arbitrary bytes into the log record decoder, which must refuse or round-trip them.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| koru_dataplane_fuzz::check_record(data));
