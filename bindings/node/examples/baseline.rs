//! The Rust loop that `bench/bench.mjs` is compared with: the same cases straight on
//! `BlockingDb` (one thread, or 32 threads standing for 32 calls in flight), so the difference is
//! the binding's cost per call. `cargo run --release -p koru-delta-node --example baseline -- [secs]`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use koru_dataplane::db::{BatchKey, BatchWrite, BlockingDb};

const KEYS: u64 = 100_000;
const BATCH: u64 = 1000;
const THREADS: usize = 32;

/// A cheap per-thread pseudo-random key (xorshift), as the JS bench draws them.
fn key(state: &mut u64) -> String {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    format!("k{}", *state % KEYS)
}

fn value(i: u64) -> String {
    format!(r#"{{"n":{i},"p":"{}"}}"#, "x".repeat(16))
}

/// Runs `op` on `threads` threads for `secs`; calls per second times `weight`.
fn measure(
    db: &BlockingDb,
    threads: usize,
    secs: f64,
    weight: u64,
    op: fn(&BlockingDb, &mut u64, u64),
) -> f64 {
    let calls = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let calls = Arc::clone(&calls);
            s.spawn(move || {
                let mut state = 0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1);
                let mut i = 0;
                while Instant::now() < end {
                    op(db, &mut state, i);
                    i += 1;
                    calls.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    (calls.load(Ordering::Relaxed) * weight) as f64 / started.elapsed().as_secs_f64()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secs: f64 = std::env::args().nth(1).map_or(Ok(3.0), |s| s.parse())?;
    let dir = std::env::temp_dir().join(format!("koru-delta-baseline-{}", std::process::id()));
    let db = BlockingDb::open_path(&dir)?;
    for start in (0..KEYS).step_by(BATCH as usize) {
        let writes = (start..start + BATCH)
            .map(|i| BatchWrite::Put {
                namespace: "bench".into(),
                key: format!("k{i}"),
                value: value(i),
            })
            .collect();
        db.batch_put(writes)?;
    }
    let put: fn(&BlockingDb, &mut u64, u64) = |db, s, i| {
        db.put("bench", &key(s), &value(i), None)
            .map(drop)
            .unwrap_or_default();
    };
    let get: fn(&BlockingDb, &mut u64, u64) = |db, s, _| {
        db.get("bench", &key(s)).map(drop).unwrap_or_default();
    };
    let rows = [
        ("put, 1 in flight (ops/s)", measure(&db, 1, secs, 1, put)),
        (
            "put, 32 in flight (ops/s)",
            measure(&db, THREADS, secs, 1, put),
        ),
        ("get, 1 in flight (ops/s)", measure(&db, 1, secs, 1, get)),
        (
            "get, 32 in flight (ops/s)",
            measure(&db, THREADS, secs, 1, get),
        ),
        (
            "batch_put of 1000 (values/s)",
            measure(&db, 1, secs, BATCH, |db, s, i| {
                let writes = (0..BATCH)
                    .map(|j| BatchWrite::Put {
                        namespace: "bench".into(),
                        key: key(s),
                        value: value(i + j),
                    })
                    .collect();
                db.batch_put(writes).map(drop).unwrap_or_default();
            }),
        ),
        (
            "batch_get of 1000 (values/s)",
            measure(&db, 1, secs, BATCH, |db, s, _| {
                let keys = (0..BATCH)
                    .map(|_| BatchKey {
                        namespace: "bench".into(),
                        key: key(s),
                        at: None,
                    })
                    .collect();
                db.batch_get(keys).map(drop).unwrap_or_default();
            }),
        ),
    ];
    db.close();
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
    println!("rust (BlockingDb)");
    for (name, rate) in rows {
        println!("  {name:<44} {rate:>12.0}");
    }
    Ok(())
}
