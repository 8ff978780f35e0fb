//! The Rust side of bench.py: the same puts and gets (single calls and batches) through
//! `BlockingDb` with JSON text values, so the Python binding's overhead per call can be read off.
//! `cargo run --release -p koru-delta-python --example blocking_loop -- DIR N BATCH`

use std::time::Instant;

use koru_dataplane::db::{BatchKey, BatchWrite, BlockingDb};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: blocking_loop DIR N BATCH")?;
    let n: usize = args.next().unwrap_or_else(|| "20000".into()).parse()?;
    let batch: usize = args.next().unwrap_or_else(|| "1000".into()).parse()?;
    let db = BlockingDb::open_path(&dir)?;
    let value = |i: usize| format!(r#"{{"name":"user{i}","age":{},"tags":["a","b"]}}"#, i % 90);

    let start = Instant::now();
    for i in 0..n {
        db.put("bench", &format!("k{i}"), &value(i), None)?;
    }
    report("put (single)", n, start);

    let start = Instant::now();
    for i in 0..n {
        std::hint::black_box(db.get("bench", &format!("k{i}"))?);
    }
    report("get (single)", n, start);

    let start = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(batch) {
        let writes = chunk
            .iter()
            .map(|&i| BatchWrite::Put {
                namespace: "bench_batch".into(),
                key: format!("k{i}"),
                value: value(i),
            })
            .collect();
        db.batch_put(writes)?;
    }
    report(&format!("put (batches of {batch})"), n, start);

    let start = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(batch) {
        let keys = chunk
            .iter()
            .map(|&i| BatchKey {
                namespace: "bench_batch".into(),
                key: format!("k{i}"),
                at: None,
            })
            .collect();
        std::hint::black_box(db.batch_get(keys)?);
    }
    report(&format!("get (batches of {batch})"), n, start);
    db.close();
    Ok(())
}

fn report(what: &str, n: usize, start: Instant) {
    let secs = start.elapsed().as_secs_f64();
    println!(
        "rust  {what:<26} {:>10.0} ops/s  {:>8.2} us/op",
        n as f64 / secs,
        secs * 1e6 / n as f64
    );
}
