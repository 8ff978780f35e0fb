//! The roadmap's 3.1 snippet (CRDT-based conflict resolution) run as written against the
//! embedded database, in two regions that exchange their states through `crdt::merge`, with
//! the results it promises: counters add up (1, then A +5 and B +3 → 9) and sets unite
//! (["a","b"], A adds "c", B adds "d" → ["a","b","c","d"]).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

use koru_dataplane::WriteOp;
use koru_dataplane::crdt::{self, Counter, Set};
use koru_dataplane::db::{Db, Options};
use serde_json::value::RawValue;
use serde_json::{Value, json};

type Error = Box<dyn std::error::Error>;

/// The roadmap's `db.put("stats/views", value)`: its path is a namespace and a key here.
struct Roadmap(Db);

impl Roadmap {
    async fn put(&self, path: &str, value: Value) -> Result<(), Error> {
        let (ns, key) = path.split_once('/').unwrap();
        self.0.put(ns, key, &value.to_string(), None).await?;
        Ok(())
    }

    async fn get(&self, path: &str) -> Result<Value, Error> {
        let (ns, key) = path.split_once('/').unwrap();
        let entry = self.0.get(ns, key).await?;
        Ok(serde_json::from_str(entry.value.get())?)
    }

    async fn patch(&self, path: &str, ops: Value) -> Result<(), Error> {
        let (ns, key) = path.split_once('/').unwrap();
        self.0.patch(ns, key, &ops.to_string(), None).await?;
        Ok(())
    }

    /// The key's stored state, as a region's stream sends it.
    fn state(&self, path: &str) -> Result<String, Error> {
        let (ns, key) = path.split_once('/').unwrap();
        let store = self.0.blocking().store()?;
        Ok(store.latest_raw(ns, key)?.unwrap().1.unwrap())
    }

    /// Applies another region's state: merged with this one's, written as a new version.
    async fn receive(&self, path: &str, remote: &str) -> Result<(), Error> {
        let (ns, key) = path.split_once('/').unwrap();
        let store = self.0.blocking().store()?;
        let merged = match store.latest_raw(ns, key)?.and_then(|(_, s)| s) {
            Some(local) => crdt::merge(&local, remote)?,
            None => remote.to_owned(),
        };
        let value = RawValue::from_string(merged)?;
        store.write(vec![WriteOp::put(ns, key, value)]).await?;
        Ok(())
    }
}

async fn regions() -> Result<(tempfile::TempDir, Roadmap, Roadmap), Error> {
    let dir = tempfile::tempdir()?;
    let a = Db::open(Options::new(dir.path().join("a")).region("A")).await?;
    let b = Db::open(Options::new(dir.path().join("b")).region("B")).await?;
    Ok((dir, Roadmap(a), Roadmap(b)))
}

#[tokio::test]
async fn counters_auto_merge_additions() -> Result<(), Error> {
    let (_dir, db, b) = regions().await?;

    // Counters (auto-merge additions)
    db.put("stats/views", json!({"count": Counter(1)})).await?;
    // Node A: +5, Node B: +3 → Result: 9 (not 3 or 5)
    b.receive("stats/views", &db.state("stats/views")?).await?;
    db.patch(
        "stats/views",
        json!({"op": "increment", "path": "count", "by": 5}),
    )
    .await?;
    b.patch(
        "stats/views",
        json!({"op": "increment", "path": "count", "by": 3}),
    )
    .await?;
    let (from_a, from_b) = (db.state("stats/views")?, b.state("stats/views")?);
    db.receive("stats/views", &from_b).await?;
    b.receive("stats/views", &from_a).await?;

    assert_eq!(db.get("stats/views").await?, json!({"count": 9}));
    assert_eq!(b.get("stats/views").await?, json!({"count": 9}));
    assert_eq!(db.state("stats/views")?, b.state("stats/views")?);
    Ok(())
}

#[tokio::test]
async fn sets_auto_merge_unions() -> Result<(), Error> {
    let (_dir, db, b) = regions().await?;

    // Sets (auto-merge unions)
    db.put("tags/item", json!({"tags": Set(["a", "b"])}))
        .await?;
    // Node A: add "c", Node B: add "d" → Result: ["a", "b", "c", "d"]
    b.receive("tags/item", &db.state("tags/item")?).await?;
    db.patch(
        "tags/item",
        json!({"op": "add", "path": "tags", "value": "c"}),
    )
    .await?;
    b.patch(
        "tags/item",
        json!({"op": "add", "path": "tags", "value": "d"}),
    )
    .await?;
    let (from_a, from_b) = (db.state("tags/item")?, b.state("tags/item")?);
    db.receive("tags/item", &from_b).await?;
    b.receive("tags/item", &from_a).await?;

    assert_eq!(
        db.get("tags/item").await?,
        json!({"tags": ["a", "b", "c", "d"]})
    );
    assert_eq!(
        b.get("tags/item").await?,
        json!({"tags": ["a", "b", "c", "d"]})
    );
    Ok(())
}

#[test]
fn the_blocking_api_takes_literals_and_operations_and_refuses_the_reserved_field()
-> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let db = koru_dataplane::db::BlockingDb::open_path(dir.path())?;
    let first = db.put("c", "k", &json!({"$counter": 2}).to_string(), None)?;
    let w = db.patch("c", "k", "{\"op\":\"increment\",\"by\":3}", None)?;
    assert_eq!(
        w.previous_version.as_deref(),
        Some(first.version_id.as_str())
    );
    assert_eq!(db.get("c", "k")?.value.get(), "5");
    let stale = db.patch("c", "k", "{\"op\":\"increment\"}", Some(&first.version_id));
    assert_eq!(stale.unwrap_err().code(), "version_mismatch");
    let reserved = db.put("c", "x", "{\"$crdt\":{}}", None);
    assert_eq!(reserved.unwrap_err().code(), "invalid_value");
    db.put("c", "plain", "{\"a\":1}", None)?;
    let plain = db.patch("c", "plain", "{\"op\":\"increment\"}", None);
    assert_eq!(plain.unwrap_err().code(), "not_a_crdt");
    let history = db.history("c", "k", None, None)?;
    let values: Vec<&str> = history.versions.iter().map(|v| v.value.get()).collect();
    assert_eq!(values, ["2", "5"]);
    // The change feed answers values as reads do: the counter's states as numbers.
    let feed = db.changes(0, None)?;
    let counter: Vec<&str> = feed
        .changes
        .iter()
        .flat_map(|c| &c.ops)
        .filter(|op| op.namespace == "c" && op.key == "k")
        .filter_map(|op| op.value.as_ref().map(|v| v.get()))
        .collect();
    assert_eq!(counter, ["2", "5"]);
    Ok(())
}
