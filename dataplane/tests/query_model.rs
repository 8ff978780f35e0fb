//! Model-based test of the query engine: random puts, deletes, batches, index creations and
//! restarts on an embedded store, and random filter trees asked now and as of random moments,
//! each answer checked against a naive evaluator over the whole history kept by the test.
//!
//! Index creations land before and between queries, so while indexes are being built (or, in a
//! build without them, never ready) the planner's choice must not change any answer.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use koru_dataplane::indexes::{IndexDef, IndexType};
use koru_dataplane::metrics::Metrics;
use koru_dataplane::query::{Filter, FilterExpr, Query};
use koru_dataplane::{FsyncMode, Store, StoreConfig, WriteOp};
use proptest::prelude::*;
use serde_json::{Value, json};

const NS: &str = "m";
const KEYS: [&str; 10] = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];

#[derive(Debug, Clone)]
enum Step {
    Put(usize, Value),
    Delete(usize),
    Batch(Vec<(usize, Option<Value>)>),
    CreateIndex(&'static str),
    Reopen,
    Ask(FilterExpr, Moment, Option<usize>),
    // Aggregation cases go here: an `Ask`-like step whose answer the naive evaluator computes
    // from `model_at` (group the matched documents), checked like `check` does for rows; joins
    // have their own driver below (`JoinStep`).
}

/// When a query asks about: now, or as of the state after the n-th write (modulo their count).
#[derive(Debug, Clone, Copy)]
enum Moment {
    Now,
    After(usize),
    BeforeFirst,
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0..6i64).prop_map(Value::from),
        Just(json!(2.0)),
        prop_oneof![Just("a"), Just("b"), Just("al"), Just("alice"), Just("bob")]
            .prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
    ]
}

fn doc() -> impl Strategy<Value = Value> {
    (
        proptest::option::of(scalar()),
        proptest::option::of(scalar()),
        proptest::option::of(scalar()),
    )
        .prop_map(|(s, n, name)| {
            let mut m = serde_json::Map::new();
            for (k, v) in [("status", s), ("n", n), ("name", name)] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            Value::Object(m)
        })
}

fn leaf() -> impl Strategy<Value = FilterExpr> {
    leaf_on(&["status", "n", "name", "m:n"])
}

/// A leaf comparing one of `fields`.
fn leaf_on(fields: &'static [&'static str]) -> impl Strategy<Value = FilterExpr> {
    let field = proptest::sample::select(fields);
    let op = prop_oneof![
        Just("eq"),
        Just("ne"),
        Just("gt"),
        Just("gte"),
        Just("lt"),
        Just("lte"),
        Just("exists"),
        Just("in"),
        Just("prefix")
    ];
    (
        field,
        op,
        scalar(),
        proptest::collection::vec(scalar(), 0..3),
    )
        .prop_map(|(field, op, v, list)| {
            let value = match op {
                "in" => Value::Array(list),
                "prefix" => Value::from(v.as_str().unwrap_or("a")),
                _ => v,
            };
            FilterExpr::Leaf(Filter::new(field, op, value))
        })
}

fn filter() -> impl Strategy<Value = FilterExpr> {
    leaf().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(FilterExpr::and),
            proptest::collection::vec(inner.clone(), 0..4).prop_map(FilterExpr::or),
            inner.prop_map(FilterExpr::negate),
        ]
    })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..KEYS.len(), doc()).prop_map(|(k, d)| Step::Put(k, d)),
        2 => (0..KEYS.len()).prop_map(Step::Delete),
        2 => proptest::collection::vec((0..KEYS.len(), proptest::option::of(doc())), 1..4)
            .prop_map(Step::Batch),
        2 => prop_oneof![Just("status"), Just("n"), Just("name")].prop_map(Step::CreateIndex),
        1 => Just(Step::Reopen),
        5 => (
            // Plain leaves and `and`s of them are what indexes serve; trees test the rest.
            prop_oneof![
                3 => leaf(),
                2 => proptest::collection::vec(leaf(), 1..3).prop_map(FilterExpr::and),
                3 => filter(),
            ],
            prop_oneof![
                2 => Just(Moment::Now),
                3 => any::<usize>().prop_map(Moment::After),
                1 => Just(Moment::BeforeFirst),
            ],
            proptest::option::of(0..4usize),
        )
            .prop_map(|(f, m, l)| Step::Ask(f, m, l)),
    ]
}

// ----- The naive evaluator: written apart from the engine's, from the documented semantics. -----

fn path<'a>(doc: &'a Value, field: &str) -> Option<&'a Value> {
    let field = field.strip_prefix("m:").unwrap_or(field);
    field.split('.').try_fold(doc, |d, p| d.as_object()?.get(p))
}

fn ordered(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        (Value::Null, _) => Some(Ordering::Less),
        (_, Value::Null) => Some(Ordering::Greater),
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn naive(f: &FilterExpr, doc: &Value) -> bool {
    naive_by(f, &|name| path(doc, name))
}

/// The naive evaluator with field names read through `lookup`.
fn naive_by<'v>(f: &FilterExpr, lookup: &dyn Fn(&str) -> Option<&'v Value>) -> bool {
    match f {
        FilterExpr::And { and } => and.iter().all(|b| naive_by(b, lookup)),
        FilterExpr::Or { or } => or.iter().any(|b| naive_by(b, lookup)),
        FilterExpr::Not { not } => !naive_by(not, lookup),
        FilterExpr::Leaf(l) => {
            let v = lookup(&l.field);
            let o = v.and_then(|v| ordered(v, &l.value));
            match l.op.as_str() {
                "eq" => v == Some(&l.value),
                "ne" => v != Some(&l.value),
                "gt" => o == Some(Ordering::Greater),
                "gte" => matches!(o, Some(Ordering::Greater | Ordering::Equal)),
                "lt" => o == Some(Ordering::Less),
                "lte" => matches!(o, Some(Ordering::Less | Ordering::Equal)),
                "exists" => v.is_some_and(|v| !v.is_null()),
                "in" => v.is_some_and(|v| l.value.as_array().unwrap().contains(v)),
                "prefix" => {
                    matches!((v, &l.value), (Some(Value::String(s)), Value::String(p)) if s.starts_with(p.as_str()))
                }
                other => panic!("the generator made op {other}"),
            }
        }
    }
}

// ----- The store side. -----

struct Subject {
    dir: tempfile::TempDir,
    store: Store,
    runtime: tokio::runtime::Runtime,
}

fn open(dir: &std::path::Path) -> Store {
    let mut config = StoreConfig::new(dir);
    config.fsync = FsyncMode::Off;
    let metrics = Arc::new(Metrics::default());
    Store::open(config, Arc::clone(&metrics.store)).unwrap().0
}

impl Subject {
    fn new() -> Subject {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Subject {
            dir,
            store,
            runtime,
        }
    }

    fn write(&self, ops: Vec<(usize, Option<Value>)>) -> i64 {
        let ops = ops
            .into_iter()
            .map(|(k, v)| match v {
                Some(v) => WriteOp::put(NS, KEYS[k], serde_json::value::to_raw_value(&v).unwrap()),
                None => WriteOp::delete(NS, KEYS[k]),
            })
            .collect();
        self.store.write_blocking(ops).unwrap().timestamp_micros
    }
}

/// The namespace's documents after each write: (commit time, key → value).
type History = Vec<(i64, BTreeMap<String, Value>)>;

fn model_at(history: &History, at: Option<i64>) -> BTreeMap<String, Value> {
    let upto = match at {
        None => history.len(),
        Some(t) => history.partition_point(|(ts, _)| *ts <= t),
    };
    upto.checked_sub(1)
        .map(|i| history[i].1.clone())
        .unwrap_or_default()
}

fn check(
    subject: &Subject,
    history: &History,
    f: &FilterExpr,
    moment: Moment,
    limit: Option<usize>,
) {
    let at = match moment {
        Moment::Now => None,
        Moment::After(n) if !history.is_empty() => Some(history[n % history.len()].0),
        Moment::After(_) => None,
        Moment::BeforeFirst => history.first().map(|(ts, _)| ts - 1),
    };
    let mut query = Query::new().filter(f.clone()).explain();
    if let Some(t) = at {
        query = query.at(t);
    }
    if let Some(l) = limit {
        query = query.limit(l);
    }
    let answer = subject.store.query_blocking(NS, &query).unwrap();
    let expected: Vec<(String, Value)> = model_at(history, at)
        .into_iter()
        .filter(|(_, d)| naive(f, d))
        .collect();
    let got: Vec<(String, Value)> = answer
        .results
        .as_ref()
        .unwrap()
        .iter()
        .map(|r| (r.row.key.clone(), r.row.parsed.clone()))
        .collect();
    let want: Vec<(String, Value)> = expected
        .iter()
        .take(limit.unwrap_or(usize::MAX))
        .cloned()
        .collect();
    assert_eq!(got, want, "filter {f:?} at {at:?} limit {limit:?}");
    assert_eq!(answer.total, expected.len());
    let plan = answer.plan.unwrap();
    assert!(
        matches!(plan["access"].as_str(), Some("scan" | "index")),
        "{plan}"
    );
    assert_eq!(plan["rows_returned"], json!(want.len()));

    // A count over the same filter agrees with the rows.
    let mut counted = Query::new()
        .filter(f.clone())
        .aggregate(koru_dataplane::query::aggregate::Aggregation::pipeline().count());
    counted.at = query.at.clone();
    let groups = subject
        .store
        .query_blocking(NS, &counted)
        .unwrap()
        .groups
        .unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(
        groups[0]["count"],
        json!(expected.len()),
        "count of {f:?} at {at:?}"
    );
}

fn run(steps: Vec<Step>) {
    let mut subject = Subject::new();
    let mut history: History = Vec::new();
    let mut current: BTreeMap<String, Value> = BTreeMap::new();
    for step in steps {
        let ops = match step {
            Step::Put(k, v) => vec![(k, Some(v))],
            Step::Delete(k) => vec![(k, None)],
            Step::Batch(ops) => ops,
            Step::CreateIndex(field) => {
                let def = IndexDef::new(NS, field, IndexType::NonUnique);
                // A build without indexes refuses; one with them builds online. Either way the
                // answers below must not change.
                let _ = subject
                    .runtime
                    .block_on(subject.store.create_index_def(def));
                continue;
            }
            Step::Reopen => {
                subject.store.close();
                let Subject {
                    dir,
                    store,
                    runtime,
                } = subject;
                // The directory's lock goes with the last handle.
                drop(store);
                subject = Subject {
                    store: open(dir.path()),
                    dir,
                    runtime,
                };
                continue;
            }
            Step::Ask(f, moment, limit) => {
                check(&subject, &history, &f, moment, limit);
                continue;
            }
        };
        // A batch writing one key twice keeps the last.
        for (k, v) in &ops {
            match v {
                Some(v) => current.insert(KEYS[*k].to_string(), v.clone()),
                None => current.remove(KEYS[*k]),
            };
        }
        let ts = subject.write(ops);
        history.push((ts, current.clone()));
    }
    // Finally every moment of the history, through every filter shape once.
    for n in 0..history.len() {
        check(
            &subject,
            &history,
            &FilterExpr::and([]),
            Moment::After(n),
            None,
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_answer_matches_a_naive_evaluator_over_the_history(
        steps in proptest::collection::vec(step(), 1..60)
    ) {
        run(steps);
    }
}

#[test]
fn a_filter_on_a_joined_or_prefixed_name_of_the_queried_namespace_reads_it() {
    run(vec![
        Step::Put(0, json!({"n": 3})),
        Step::Put(1, json!({"n": 5})),
        Step::Ask(FilterExpr::Leaf(Filter::gt("m:n", 4)), Moment::Now, None),
        Step::Reopen,
        Step::Ask(FilterExpr::Leaf(Filter::gt("n", 4)), Moment::After(0), None),
    ]);
}

#[test]
fn a_ready_index_serves_selective_filters_and_unions_with_the_scans_answers() {
    let subject = Subject::new();
    let mut halfway = 0;
    for i in 0..40 {
        let status = if i % 10 == 0 { "rare" } else { "common" };
        let value = serde_json::value::to_raw_value(&json!({"status": status, "n": i})).unwrap();
        let ts = subject
            .store
            .write_blocking(vec![WriteOp::put(NS, format!("k{i:02}"), value)])
            .unwrap()
            .timestamp_micros;
        if i == 19 {
            halfway = ts;
        }
    }
    for field in ["status", "n"] {
        let def = IndexDef::new(NS, field, IndexType::NonUnique);
        subject
            .runtime
            .block_on(subject.store.create_index_def(def))
            .expect("defining a value index");
    }
    let ready = |name: &str| {
        subject
            .store
            .index(NS, name)
            .is_some_and(|i| i.status == koru_dataplane::indexes::IndexStatus::Ready)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !(ready("status") && ready("n")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the indexes never became ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let ask = |query: Query| {
        let answer = subject.store.query_blocking(NS, &query.explain()).unwrap();
        let keys: Vec<String> = answer
            .results
            .unwrap()
            .into_iter()
            .map(|r| r.row.key)
            .collect();
        (keys, answer.plan.unwrap())
    };
    let (keys, plan) = ask(Query::new().filter(Filter::eq("status", "rare")));
    assert_eq!(keys, ["k00", "k10", "k20", "k30"]);
    assert_eq!(plan["access"], "index", "{plan}");
    assert_eq!(plan["index"], "status");
    assert_eq!(plan["probe"], json!({"eq": "rare"}));
    assert_eq!(
        plan["rows_scanned"], 4,
        "only the candidates were read: {plan}"
    );

    let (keys, plan) = ask(Query::new()
        .filter(Filter::eq("status", "rare"))
        .at(halfway));
    assert_eq!(keys, ["k00", "k10"], "as of the 20th write");
    assert_eq!(plan["access"], "index", "{plan}");

    let (keys, plan) = ask(Query::new().filter(FilterExpr::or([
        Filter::eq("status", "rare").into(),
        Filter::gte("n", 38).into(),
    ])));
    assert_eq!(keys, ["k00", "k10", "k20", "k30", "k38", "k39"]);
    assert_eq!(plan["access"], "index", "{plan}");
    assert_eq!(plan["union"].as_array().map(Vec::len), Some(2), "{plan}");

    let (keys, plan) = ask(Query::new()
        .filter(Filter::gte("n", 5))
        .filter(Filter::lt("n", 8))
        .filter(Filter::eq("status", "common")));
    assert_eq!(keys, ["k05", "k06", "k07"]);
    assert_eq!(
        plan["index"], "n",
        "the range is the most selective: {plan}"
    );
    assert_eq!(plan["probe"], json!({"range": {"gte": 5, "lt": 8}}));

    let (keys, plan) = ask(Query::new().filter(Filter::ne("status", "common")));
    assert_eq!(keys, ["k00", "k10", "k20", "k30"]);
    assert_eq!(
        plan["access"], "scan",
        "ne is never served by an index: {plan}"
    );
}

// ----- Joins: orders `o` (with `ref`, a user's key) joined to users `u` on `_key`. -----

#[derive(Debug, Clone)]
enum JoinStep {
    Order(usize, Option<Value>),
    User(usize, Option<Value>),
    Ask(FilterExpr, Moment, bool),
}

fn join_step() -> impl Strategy<Value = JoinStep> {
    let order = (
        proptest::option::of(0..KEYS.len() + 1),
        proptest::option::of(scalar()),
    )
        .prop_map(|(r, n)| {
            let mut m = serde_json::Map::new();
            // KEYS.len() names a user that never exists.
            if let Some(r) = r {
                m.insert("ref".into(), json!(KEYS.get(r).copied().unwrap_or("ghost")));
            }
            if let Some(n) = n {
                m.insert("n".into(), n);
            }
            Value::Object(m)
        });
    let user = proptest::option::of(scalar()).prop_map(|s| match s {
        Some(s) => json!({"status": s}),
        None => json!({}),
    });
    let filter = leaf_on(&["n", "o:n", "u:status", "u:n"]).prop_recursive(2, 6, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(FilterExpr::and),
            proptest::collection::vec(inner.clone(), 0..3).prop_map(FilterExpr::or),
            inner.prop_map(FilterExpr::negate),
        ]
    });
    prop_oneof![
        4 => (0..KEYS.len(), proptest::option::of(order)).prop_map(|(k, v)| JoinStep::Order(k, v)),
        3 => (0..KEYS.len(), proptest::option::of(user)).prop_map(|(k, v)| JoinStep::User(k, v)),
        3 => (
            filter,
            prop_oneof![Just(Moment::Now), any::<usize>().prop_map(Moment::After)],
            any::<bool>(),
        )
            .prop_map(|(f, m, left)| JoinStep::Ask(f, m, left)),
    ]
}

/// Orders and users after each write.
type JoinHistory = Vec<(i64, BTreeMap<String, Value>, BTreeMap<String, Value>)>;

fn run_joins(steps: Vec<JoinStep>) {
    let subject = Subject::new();
    let mut history: JoinHistory = Vec::new();
    let (mut orders, mut users) = (BTreeMap::new(), BTreeMap::new());
    for step in steps {
        let (ns, k, v) = match step {
            JoinStep::Order(k, v) => ("o", k, v),
            JoinStep::User(k, v) => ("u", k, v),
            JoinStep::Ask(f, moment, left) => {
                check_join(&subject, &history, &f, moment, left);
                continue;
            }
        };
        let model = if ns == "o" { &mut orders } else { &mut users };
        let op = match &v {
            Some(v) => {
                model.insert(KEYS[k].to_string(), v.clone());
                WriteOp::put(ns, KEYS[k], serde_json::value::to_raw_value(v).unwrap())
            }
            None => {
                model.remove(KEYS[k]);
                WriteOp::delete(ns, KEYS[k])
            }
        };
        let ts = subject
            .store
            .write_blocking(vec![op])
            .unwrap()
            .timestamp_micros;
        history.push((ts, orders.clone(), users.clone()));
    }
}

fn check_join(
    subject: &Subject,
    history: &JoinHistory,
    f: &FilterExpr,
    moment: Moment,
    left: bool,
) {
    let at = match moment {
        Moment::After(n) if !history.is_empty() => Some(history[n % history.len()].0),
        _ => None,
    };
    let (orders, users) = match at {
        None => history.last().map(|(_, o, u)| (o.clone(), u.clone())),
        Some(t) => history[..history.partition_point(|(ts, ..)| *ts <= t)]
            .last()
            .map(|(_, o, u)| (o.clone(), u.clone())),
    }
    .unwrap_or_default();
    let mut expected = Vec::new();
    for (key, order) in &orders {
        let user_key = order.get("ref").and_then(Value::as_str);
        let user = user_key.and_then(|k| users.get(k));
        if user.is_none() && !left {
            continue;
        }
        let lookup = |name: &str| match name.split_once(':') {
            Some(("u", p)) => user.and_then(|u| u.get(p)),
            Some(("o", p)) => order.get(p),
            _ => order.get(name),
        };
        if naive_by(f, &lookup) {
            expected.push((key.clone(), user.and(user_key).map(str::to_string)));
        }
    }
    let mut query = Query::new().filter(f.clone()).join("o", "ref", "u", "_key");
    if left {
        query = query.left_join();
    }
    if let Some(t) = at {
        query = query.at(t);
    }
    let answer = subject.store.query_blocking("o", &query).unwrap();
    let got: Vec<(String, Option<String>)> = answer
        .results
        .unwrap()
        .into_iter()
        .map(|r| {
            let joined = r.joined.expect("a joined row says what it joined");
            (r.row.key, joined.1.map(|d| d.key))
        })
        .collect();
    assert_eq!(
        got, expected,
        "join (left: {left}) filtered by {f:?} at {at:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_join_matches_a_naive_join_over_the_history(
        steps in proptest::collection::vec(join_step(), 1..40)
    ) {
        run_joins(steps);
    }
}
