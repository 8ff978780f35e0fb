//! The embedded point lookup: the users in a `Store` in this process, a unique index on `email`,
//! and `Store::get_by_index_at` timed like SQLite's indexed lookup.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use koru_dataplane::indexes::{IndexStatus, IndexType};
use koru_dataplane::metrics::Metrics;
use koru_dataplane::{Store, StoreConfig, WriteOp};
use serde_json::Value;
use serde_json::value::RawValue;

use super::data;
use super::driver::{self, Load};
use crate::error::BenchError;

/// Puts per write call while loading.
const LOAD_BATCH: u64 = 10_000;
/// How long the index may take to become ready.
const READY_LIMIT: Duration = Duration::from_secs(600);

/// What the embedded side found: the lookup rate, or why there is none, and the key the lookup
/// of user 42's email (or the last user's) found.
pub struct Embedded {
    /// Lookups per second.
    pub load: Result<Load, String>,
    /// The keys found for the probe email.
    pub probe: Result<Vec<String>, String>,
}

/// Loads `users` users into a new store under `dir` with a unique index on `email` created
/// first, then times lookups for `secs`; an error of the index (the stub answers one) becomes
/// the figure's reason.
pub fn point_lookups(dir: &Path, users: u64, secs: f64) -> Result<Embedded, BenchError> {
    let metrics = Metrics::default();
    let (store, _) = Store::open(StoreConfig::new(dir), Arc::clone(&metrics.store))?;
    let result = measure(&store, users, secs);
    store.close();
    result
}

fn measure(store: &Store, users: u64, secs: f64) -> Result<Embedded, BenchError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BenchError::io("starting the runtime"))?;
    let unavailable = |why: String| Embedded {
        load: Err(why.clone()),
        probe: Err(why),
    };
    if let Err(e) = runtime.block_on(store.create_index("users", "email", IndexType::Unique)) {
        return Ok(unavailable(format!("create_index: {e}")));
    }
    let mut first = 0;
    while first < users {
        let mut ops = Vec::with_capacity(LOAD_BATCH as usize);
        for i in first..(first + LOAD_BATCH).min(users) {
            let user = data::user(i);
            let value =
                RawValue::from_string(data::json(&user)).map_err(|source| BenchError::Json {
                    context: "a user document".into(),
                    source,
                })?;
            ops.push(WriteOp::put("users", user.key, value));
        }
        store.write_blocking(ops)?;
        first += LOAD_BATCH;
    }
    let started = Instant::now();
    loop {
        match store.index("users", "email").map(|i| i.status) {
            Some(IndexStatus::Ready) => break,
            Some(IndexStatus::Failed { reason }) => {
                return Ok(unavailable(format!("the email index failed: {reason}")));
            }
            status if started.elapsed() > READY_LIMIT => {
                return Ok(unavailable(format!(
                    "the email index is not ready: {status:?}"
                )));
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let lookup = |i: u64| -> Result<Vec<String>, String> {
        let email = Value::from(data::email(i));
        store
            .get_by_index_at("users", "email", &email, None)
            .map(|docs| docs.into_iter().map(|d| d.key).collect())
            .map_err(|e| format!("get_by_index_at: {e}"))
    };
    let probe = lookup(probe_user(users));
    if let Err(why) = &probe {
        return Ok(Embedded {
            load: Err(why.clone()),
            probe,
        });
    }
    let load = driver::repeat(secs, 10, |n| {
        lookup(data::mix(n, 99) % users)
            .map(|_| ())
            .map_err(BenchError::Target)
    })
    .map_err(|e| e.to_string());
    Ok(Embedded { load, probe })
}

/// The user whose email every side looks up once for the cross-check.
pub fn probe_user(users: u64) -> u64 {
    42.min(users.saturating_sub(1))
}
