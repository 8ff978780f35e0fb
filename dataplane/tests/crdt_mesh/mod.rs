//! The CRDT workload of the multi-region tests and its convergence checker: every region's
//! client sends counter increments and decrements, set adds and removes, map field sets and
//! plain puts of its own keys, logging each operation with when it was sent and answered; the
//! checker replays that log against what every region renders, stores and lists.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::region_mesh::eventually;

/// The namespace of the CRDT keys.
pub const NS: &str = "crdt";
/// The namespace of the plain keys (each written by one region only: no conflict is expected).
pub const PLAIN: &str = "plain";
const COUNTERS: u64 = 3;
const SETS: u64 = 2;
const MAPS: u64 = 2;
const ELEMS: u64 = 3;
const PLAIN_KEYS: u64 = 4;

/// What an operation did.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// An increment (`by` > 0) or decrement of a counter key, or of a map's `hits` field.
    Count(i64),
    /// A set add.
    Add(String),
    /// A set remove.
    Remove(String),
    /// A map field set to a plain value (a register field).
    Field(String, Value),
    /// A plain put.
    Put(Value),
}

/// One operation sent to a region.
#[derive(Debug, Clone)]
pub struct Op {
    /// The region it was sent to.
    pub region: String,
    /// Its namespace.
    pub ns: &'static str,
    /// Its key.
    pub key: String,
    /// What it did.
    pub kind: Kind,
    /// When it was sent.
    pub sent: Instant,
    /// When it was acknowledged; None when no answer came (it may have been applied).
    pub acked: Option<Instant>,
    /// The version it wrote, when acknowledged.
    pub version: Option<String>,
}

fn lcg(x: &mut u64) -> u64 {
    *x = x
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *x >> 33
}

/// Sends `n` random operations to `region` one after the other; the log of those acknowledged
/// or unanswered (an operation refused with an error status wrote nothing and is left out).
pub async fn operations(
    http: reqwest::Client,
    url: String,
    region: String,
    n: u64,
    seed: u64,
) -> Vec<Op> {
    let mut log = Vec::new();
    let mut x = seed.wrapping_mul(7919).wrapping_add(17);
    for i in 0..n {
        let seq = seed * 1000 + i;
        let (choice, pick, arg) = (lcg(&mut x) % 10, lcg(&mut x), lcg(&mut x));
        let (ns, key, kind, body) = match choice {
            0..=2 => {
                let by = if arg % 4 == 0 {
                    -(1 + (arg >> 4) as i64 % 3)
                } else {
                    1 + (arg >> 4) as i64 % 5
                };
                let op = if by > 0 { "increment" } else { "decrement" };
                let body = json!({"op": op, "by": by.abs()});
                (NS, format!("c{}", pick % COUNTERS), Kind::Count(by), body)
            }
            3..=5 => {
                // Half the elements are this region's own, half shared by all regions.
                let elem = match (arg >> 3) % 2 {
                    0 => format!("{region}-{}", (arg >> 5) % ELEMS),
                    _ => format!("x-{}", (arg >> 5) % ELEMS),
                };
                let key = format!("s{}", pick % SETS);
                if arg % 5 < 3 {
                    let body = json!({"op": "add", "value": elem});
                    (NS, key, Kind::Add(elem), body)
                } else {
                    let body = json!({"op": "remove", "value": elem});
                    (NS, key, Kind::Remove(elem), body)
                }
            }
            6..=7 => {
                let key = format!("m{}", pick % MAPS);
                match arg % 3 {
                    0 => {
                        let field = format!("by_{region}");
                        let body = json!({"op": "set", "path": field, "value": seq});
                        (NS, key, Kind::Field(field, json!(seq)), body)
                    }
                    1 => {
                        let value = json!(format!("{region}-{seq}"));
                        let body = json!({"op": "set", "path": "shared", "value": value});
                        (NS, key, Kind::Field("shared".into(), value), body)
                    }
                    _ => {
                        let by = 1 + (arg >> 4) as i64 % 3;
                        let body = json!({"op": "increment", "path": "hits", "by": by});
                        (NS, key, Kind::Count(by), body)
                    }
                }
            }
            _ => {
                let value = json!({"r": region, "i": seq});
                let key = format!("p-{region}-{}", pick % PLAIN_KEYS);
                let body = json!({ "value": value });
                (PLAIN, key, Kind::Put(value), body)
            }
        };
        let target = format!("{url}/api/v1/{ns}/{key}");
        let request = match kind {
            Kind::Put(_) => http.put(target),
            _ => http.patch(target),
        };
        let sent = Instant::now();
        let (acked, version) = match request.json(&body).send().await {
            Ok(resp) if resp.status().is_success() => {
                let answer: Value = resp.json().await.unwrap_or_default();
                let version = answer["version_id"].as_str().map(str::to_owned);
                (Some(Instant::now()), version)
            }
            Ok(resp) if !resp.status().is_server_error() => continue,
            _ => (None, None),
        };
        log.push(Op {
            region: region.clone(),
            ns,
            key,
            kind,
            sent,
            acked,
            version,
        });
    }
    log
}

/// A round of operations sent concurrently to `regions` (`(name, URL)`), `n` each.
pub async fn round(regions: &[(String, String)], n: u64, seed: u64) -> Vec<Op> {
    let http = crate::common::client();
    let tasks: Vec<_> = regions
        .iter()
        .enumerate()
        .map(|(i, (r, url))| {
            let seed = seed * 10 + i as u64;
            tokio::spawn(operations(http.clone(), url.clone(), r.clone(), n, seed))
        })
        .collect();
    let mut log = Vec::new();
    for t in tasks {
        log.extend(t.await.unwrap());
    }
    log
}

async fn get_json(http: &reqwest::Client, url: &str) -> Option<Value> {
    let resp = http.get(url).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

/// What a key reads as in a region (null when absent).
pub async fn read(http: &reqwest::Client, url: &str, ns: &str, key: &str) -> Value {
    get_json(http, &format!("{url}/api/v1/{ns}/{key}"))
        .await
        .map_or(Value::Null, |g| g["value"].clone())
}

/// One stored version of a region's raw feed.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Its version id.
    pub version: String,
    /// The value as stored (null for a delete).
    pub value: Value,
}

/// Every version a region stored of each key of `ns`, in order, read from its raw feed.
pub async fn stored_history(
    http: &reqwest::Client,
    url: &str,
    ns: &str,
) -> Result<BTreeMap<String, Vec<Stored>>, String> {
    let mut out: BTreeMap<String, Vec<Stored>> = BTreeMap::new();
    let mut since = 0;
    loop {
        let page = get_json(
            http,
            &format!("{url}/api/v1/changes?since={since}&limit=10000&raw=true"),
        )
        .await
        .ok_or_else(|| format!("{url}: no raw feed"))?;
        for c in page["changes"].as_array().ok_or("no changes")? {
            for op in c["ops"].as_array().ok_or("no ops")? {
                if op["namespace"] != json!(ns) {
                    continue;
                }
                out.entry(op["key"].as_str().unwrap_or_default().to_owned())
                    .or_default()
                    .push(Stored {
                        version: op["version_id"].as_str().unwrap_or_default().to_owned(),
                        value: op.get("value").cloned().unwrap_or(Value::Null),
                    });
            }
        }
        let (next, last) = (page["next_since"].as_u64(), page["last_lsn"].as_u64());
        match (next, last) {
            (Some(n), Some(l)) if n < l => since = n,
            _ => return Ok(out),
        }
    }
}

/// Whether state `big` holds all of `small` (their join is `big`).
fn holds(small: &Value, big: &Value) -> bool {
    koru_dataplane::crdt::merge(&big.to_string(), &small.to_string())
        .ok()
        .and_then(|m| serde_json::from_str::<Value>(&m).ok())
        .is_some_and(|m| &m == big)
}

/// Whether an operation may have been applied before another region's operation read the key:
/// only if it was sent before that one's answer came.
fn may_precede(a: &Op, b: &Op) -> bool {
    b.acked.is_none_or(|ack| a.sent < ack)
}

/// Whether `a` was certainly applied before `b` read the key: both in one region, `b` sent
/// after `a`'s answer.
fn surely_precedes(a: &Op, b: &Op) -> bool {
    a.region == b.region && a.acked.is_some_and(|ack| ack < b.sent)
}

/// The checks on the values all regions agree on; errors name what is wrong.
fn check_values(ops: &[Op], values: &BTreeMap<(String, String), Value>) -> Vec<String> {
    let mut errors = Vec::new();
    let mut by_key: BTreeMap<(String, String), Vec<&Op>> = BTreeMap::new();
    for op in ops {
        by_key
            .entry((op.ns.to_owned(), op.key.clone()))
            .or_default()
            .push(op);
    }
    for ((ns, key), ops) in &by_key {
        let got = &values[&(ns.clone(), key.clone())];
        let unknown = ops.iter().any(|o| o.acked.is_none());
        if ns == PLAIN {
            // The last write of the key's one region.
            let last = ops.iter().max_by_key(|o| o.sent).unwrap();
            if let (Kind::Put(v), false) = (&last.kind, unknown)
                && got != v
            {
                errors.push(format!("{key}: {got}, expected its last write {v}"));
            }
            continue;
        }
        if key.starts_with('c') && !unknown {
            let sum: i64 = ops
                .iter()
                .map(|o| match o.kind {
                    Kind::Count(by) => by,
                    _ => 0,
                })
                .sum();
            if got != &json!(sum) {
                errors.push(format!("{key}: {got}, expected the sum {sum}"));
            }
        }
        if key.starts_with('s') {
            let items: BTreeSet<String> = got
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let elems: BTreeSet<&String> = ops
                .iter()
                .filter_map(|o| match &o.kind {
                    Kind::Add(e) | Kind::Remove(e) => Some(e),
                    _ => None,
                })
                .collect();
            for e in elems {
                let adds: Vec<&&Op> = ops
                    .iter()
                    .filter(|o| o.kind == Kind::Add(e.clone()))
                    .collect();
                let removes: Vec<&&Op> = ops
                    .iter()
                    .filter(|o| o.kind == Kind::Remove(e.clone()))
                    .collect();
                // Add-wins: an acknowledged add no remove can have observed is there.
                let must = adds
                    .iter()
                    .filter(|a| a.acked.is_some())
                    .any(|a| !removes.iter().any(|r| may_precede(a, r)));
                // Observed-remove: every add surely observed by a later acknowledged remove.
                let gone = adds.iter().all(|a| {
                    removes
                        .iter()
                        .any(|r| r.acked.is_some() && surely_precedes(a, r))
                });
                if must && !items.contains(e) {
                    errors.push(format!("{key}: {got} lost {e:?}, added after every remove"));
                }
                if gone && items.contains(e) {
                    errors.push(format!("{key}: {got} holds {e:?}, removed after every add"));
                }
            }
        }
        if key.starts_with('m') {
            let hits: i64 = ops
                .iter()
                .map(|o| match o.kind {
                    Kind::Count(by) => by,
                    _ => 0,
                })
                .sum();
            if !unknown && hits > 0 && got["hits"] != json!(hits) {
                errors.push(format!("{key}: {got}, expected hits {hits}"));
            }
            let mut last: BTreeMap<(&str, &str), &Op> = BTreeMap::new();
            let mut shared: Vec<&Op> = Vec::new();
            for o in ops.iter() {
                if let Kind::Field(f, _) = &o.kind {
                    let e = last.entry((f.as_str(), o.region.as_str())).or_insert(o);
                    if o.sent > e.sent {
                        *e = o;
                    }
                    if f == "shared" {
                        shared.push(o);
                    }
                }
            }
            for ((field, region), o) in &last {
                let Kind::Field(_, v) = &o.kind else { continue };
                if *field != "shared" && !unknown && &got[*field] != v {
                    errors.push(format!(
                        "{key}.{field}: {got}, expected {region}'s last {v}"
                    ));
                }
            }
            // The shared field: some region's last value; the last one written after every
            // other was answered, when there is one (its clock is past theirs).
            if !shared.is_empty() && !unknown {
                let lasts: Vec<&Value> = last
                    .iter()
                    .filter(|((f, _), _)| *f == "shared")
                    .filter_map(|(_, o)| match &o.kind {
                        Kind::Field(_, v) => Some(v),
                        _ => None,
                    })
                    .collect();
                if !lasts.contains(&&got["shared"]) {
                    errors.push(format!("{key}.shared: {got} is no region's last value"));
                }
                let newest = shared.iter().max_by_key(|o| o.sent).unwrap();
                let after_all = shared
                    .iter()
                    .all(|o| std::ptr::eq(*o, *newest) || o.acked.is_some_and(|a| a < newest.sent));
                if let (true, Kind::Field(_, v)) = (after_all, &newest.kind)
                    && &got["shared"] != v
                {
                    errors.push(format!("{key}.shared: {got}, expected the newest {v}"));
                }
            }
        }
    }
    errors
}

/// The convergence checker. Every region in `urls` (`(name, URL)`) must, for every key the
/// log touched, render the same value; counters the sum of the acknowledged increments minus
/// decrements; sets every acknowledged add no remove could have observed and no element every
/// add of which a later remove observed; map fields each region's last value; plain keys their
/// region's last write. Every region's stored history of a CRDT key only grows (each version
/// holds the one before, none repeats it), ends in the same state everywhere, and that state
/// holds the state every acknowledged operation wrote; no key has a conflict listed.
pub async fn assert_converged(
    http: &reqwest::Client,
    urls: &[(String, String)],
    ops: &[Op],
) -> Result<(), String> {
    let keys: BTreeSet<(String, String)> = ops
        .iter()
        .map(|o| (o.ns.to_owned(), o.key.clone()))
        .collect();
    let read_all = |url: String| {
        let keys = &keys;
        async move {
            let mut values = BTreeMap::new();
            for (ns, key) in keys {
                values.insert((ns.clone(), key.clone()), read(http, &url, ns, key).await);
            }
            values
        }
    };
    let last = Mutex::new(BTreeMap::new());
    let agreed = eventually(Duration::from_secs(60), || {
        let (read_all, last) = (&read_all, &last);
        async move {
            let mut all = Vec::new();
            for (_, url) in urls {
                all.push(read_all(url.clone()).await);
            }
            let same = all.windows(2).all(|w| w[0] == w[1]);
            let first = all.swap_remove(0);
            let ok = same && check_values(ops, &first).is_empty();
            *last.lock() = first;
            ok
        }
    })
    .await;
    let last = last.into_inner();
    if !agreed {
        let mut report = String::from("the regions did not converge:\n");
        for (r, url) in urls {
            for ((ns, key), v) in read_all(url.clone()).await {
                report += &format!("{r} {ns}/{key}: {v}\n");
            }
        }
        report += &check_values(ops, &last).join("\n");
        return Err(report);
    }

    // The stored states: each region's final state of a key is the same, eventually.
    let read = Mutex::new(Vec::new());
    let same = eventually(Duration::from_secs(20), || {
        let read = &read;
        async move {
            let mut histories = Vec::new();
            for (_, url) in urls {
                match stored_history(http, url, NS).await {
                    Ok(h) => histories.push(h),
                    Err(_) => return false,
                }
            }
            let same = histories.windows(2).all(|w| {
                w[0].iter()
                    .map(|(k, v)| (k, v.last().map(|s| &s.value)))
                    .eq(w[1].iter().map(|(k, v)| (k, v.last().map(|s| &s.value))))
            });
            *read.lock() = histories;
            same
        }
    })
    .await;
    let histories = read.into_inner();
    if !same {
        return Err("the regions render alike but store different final states".into());
    }
    let own: BTreeMap<&str, usize> = urls
        .iter()
        .enumerate()
        .map(|(i, (r, _))| (r.as_str(), i))
        .collect();
    // A region's own operation may leave a state as it was (a remove of an absent element).
    let own_versions: BTreeSet<(&str, &str)> = ops
        .iter()
        .filter_map(|o| Some((o.region.as_str(), o.version.as_deref()?)))
        .collect();
    for ((region, _), history) in urls.iter().zip(&histories) {
        for (key, versions) in history {
            for w in versions.windows(2) {
                let mine = own_versions.contains(&(region.as_str(), w[1].version.as_str()));
                if w[0].value == w[1].value && !mine {
                    return Err(format!("{region} {key}: {} stored twice", w[1].version));
                }
                if !holds(&w[0].value, &w[1].value) {
                    return Err(format!(
                        "{region} {key}: version {} ({}) lost some of {} ({})",
                        w[1].version, w[1].value, w[0].version, w[0].value
                    ));
                }
            }
        }
    }
    for op in ops.iter().filter(|o| o.ns == NS) {
        let (Some(version), Some(&i)) = (&op.version, own.get(op.region.as_str())) else {
            continue;
        };
        let Some(written) = histories[i]
            .get(&op.key)
            .and_then(|v| v.iter().find(|s| &s.version == version))
        else {
            return Err(format!(
                "{} {}: acknowledged {version} not stored",
                op.region, op.key
            ));
        };
        let last = &histories[0][&op.key].last().unwrap().value;
        if !holds(&written.value, last) {
            return Err(format!(
                "{} {} {version} ({:?}) lost: the final state {last} does not hold {}",
                op.region, op.key, op.kind, written.value
            ));
        }
    }

    // Merges are no conflicts, and no plain key is written in two regions.
    for (ns, key) in &keys {
        for (r, url) in urls {
            let got = get_json(http, &format!("{url}/api/v1/{ns}/{key}/conflicts"))
                .await
                .ok_or("no conflicts list")?;
            if got["conflicts"].as_array().is_none_or(|c| !c.is_empty()) {
                return Err(format!("{r} {ns}/{key}: spurious conflicts {got}"));
            }
        }
    }
    // Nothing applied twice: no plain value appears twice in a key's history.
    for (ns, key) in keys.iter().filter(|(ns, _)| ns == PLAIN) {
        for (r, url) in urls {
            let h = get_json(http, &format!("{url}/api/v1/{ns}/{key}/history"))
                .await
                .ok_or("no history")?;
            let mut seen = BTreeSet::new();
            for v in h["versions"].as_array().ok_or("no versions")? {
                if !seen.insert(v["value"].to_string()) {
                    return Err(format!("{r} {key}: {} applied twice", v["value"]));
                }
            }
        }
    }
    Ok(())
}

/// Counts of the log: (acknowledged, unanswered) operations.
pub fn counts(ops: &[Op]) -> (usize, usize) {
    let acked = ops.iter().filter(|o| o.acked.is_some()).count();
    (acked, ops.len() - acked)
}
