//! Fuzzes the v2 query parser: bytes as a `POST /api/v1/{ns}/query` body; what parses must
//! serialize back to the same query and run over a small store without a server failure.

#![no_main]

use std::sync::OnceLock;

use koru_dataplane_fuzz::Queries;
use libfuzzer_sys::fuzz_target;

/// Built once: opening a store per input would cost more than the query itself.
static QUERIES: OnceLock<Queries> = OnceLock::new();

fuzz_target!(|data: &[u8]| QUERIES.get_or_init(Queries::new).check(data));
