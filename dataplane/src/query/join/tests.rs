//! Unit tests of joins against a real embedded store: inner and left, duplicates, `_key`
//! joins, joins as of a moment, the limits, and the index and hash paths agreeing.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::StoreConfig;
use crate::indexes::IndexType;
use crate::metrics::StoreMetrics;
use crate::store::{Committed, WriteOp};

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(
        StoreConfig::new(dir.path()),
        Arc::new(StoreMetrics::default()),
    )
    .unwrap();
    (dir, store)
}

fn put(store: &Store, ns: &str, key: &str, value: Value) -> Committed {
    let raw = serde_json::value::RawValue::from_string(value.to_string()).unwrap();
    store
        .write_blocking(vec![WriteOp::put(ns, key, raw)])
        .unwrap()
}

fn users(store: &Store) {
    put(store, "users", "u1", json!({"id": 1, "status": "premium"}));
    put(store, "users", "u2", json!({"id": 2, "status": "basic"}));
    put(
        store,
        "users",
        "u3",
        json!({"id": "3", "status": "premium"}),
    );
    put(store, "users", "u4", json!({"status": "none"}));
}

/// (left index, right key) of each row.
fn pairs(rows: &[JoinedRow]) -> Vec<(usize, Option<String>)> {
    rows.iter()
        .map(|r| (r.left, r.right.as_ref().map(|d| d.key.clone())))
        .collect()
}

fn join(store: &Store, left: &[Value], j: &Join, at: Option<i64>) -> Vec<(usize, Option<String>)> {
    pairs(&run(store, left, j, at, &JoinLimits::default()).unwrap())
}

#[test]
fn inner_and_left_joins_match_scalars_by_value() {
    let (_dir, store) = open();
    users(&store);
    let orders = [
        json!({"user_id": 1, "amount": 10}),
        json!({"user_id": 99}),
        json!({"user_id": 2.0}),
        json!({"user_id": null}),
        json!({}),
        json!({"user_id": "3"}),
        json!({"user_id": 3}),
        json!({"user_id": [1]}),
    ];
    let inner = Join::new("users", "user_id", "id");
    assert_eq!(
        join(&store, &orders, &inner, None),
        vec![
            (0, Some("u1".into())),
            (2, Some("u2".into())),
            (5, Some("u3".into()))
        ],
        "2.0 meets 2; \"3\" does not meet 3; null, missing and arrays never match"
    );
    assert_eq!(
        join(&store, &orders, &inner.clone().left_join(), None),
        vec![
            (0, Some("u1".into())),
            (1, None),
            (2, Some("u2".into())),
            (3, None),
            (4, None),
            (5, Some("u3".into())),
            (6, None),
            (7, None),
        ]
    );
    let rows = run(&store, &orders[..1], &inner, None, &JoinLimits::default()).unwrap();
    let right = rows[0].right.as_ref().unwrap();
    assert_eq!(right.value, json!({"id": 1, "status": "premium"}));
    assert!(right.timestamp_micros > 0);
    assert!(join(&store, &orders, &Join::new("nobody", "user_id", "id"), None).is_empty());
    assert!(join(&store, &[], &inner, None).is_empty());
    let nulls = [json!({"user_id": null}), json!({})];
    let (rows, plan) = run_planned(
        &store,
        &nulls,
        &inner.clone().left_join(),
        None,
        &JoinLimits::default(),
        None,
    )
    .unwrap();
    assert_eq!(pairs(&rows), vec![(0, None), (1, None)]);
    assert_eq!(
        (plan.method, plan.right_read),
        (JoinMethod::Nothing, 0),
        "nothing to look up"
    );
}

#[test]
fn several_matches_give_several_rows_in_key_order() {
    let (_dir, store) = open();
    users(&store);
    put(&store, "users", "u0", json!({"id": 1, "status": "twin"}));
    let orders = [
        json!({"user_id": 1}),
        json!({"user_id": 2}),
        json!({"user_id": 1}),
    ];
    assert_eq!(
        join(&store, &orders, &Join::new("users", "user_id", "id"), None),
        vec![
            (0, Some("u0".into())),
            (0, Some("u1".into())),
            (1, Some("u2".into())),
            (2, Some("u0".into())),
            (2, Some("u1".into())),
        ]
    );
}

#[test]
fn key_joins_read_keys_directly() {
    let (_dir, store) = open();
    users(&store);
    put(&store, "users", "42", json!({"status": "numbered"}));
    let orders = [
        json!({"user": "u2"}),
        json!({"user": 42}),
        json!({"user": "u9"}),
        json!({"user": ""}),
        json!({"user": true}),
        json!({"user": "u2"}),
    ];
    let by_key = Join::new("users", "user", KEY_FIELD).left_join();
    let (rows, plan) =
        run_planned(&store, &orders, &by_key, None, &JoinLimits::default(), None).unwrap();
    assert_eq!(
        pairs(&rows),
        vec![
            (0, Some("u2".into())),
            (1, Some("42".into())),
            (2, None),
            (3, None),
            (4, None),
            (5, Some("u2".into())),
        ],
        "an integer meets the key of its digits; an empty string names no key"
    );
    assert_eq!(plan.method, JoinMethod::Key);
    assert_eq!(plan.right_read, 3, "one read per distinct valid key");
    assert_eq!(plan.right_matched, 2);
}

#[test]
fn joins_answer_as_of_a_moment() {
    let (_dir, store) = open();
    users(&store);
    let before = put(&store, "users", "u5", json!({"id": 5, "status": "premium"}));
    put(&store, "users", "u5", json!({"id": 6, "status": "basic"}));
    put(&store, "users", "u1", json!({"id": 1, "status": "basic"}));
    store
        .write_blocking(vec![WriteOp::delete("users", "u2")])
        .unwrap();
    let orders = [
        json!({"user_id": 1}),
        json!({"user_id": 2}),
        json!({"user_id": 5}),
    ];
    let on_id = Join::new("users", "user_id", "id");
    let then = run(
        &store,
        &orders,
        &on_id,
        Some(before.timestamp_micros),
        &JoinLimits::default(),
    )
    .unwrap();
    assert_eq!(
        pairs(&then),
        vec![
            (0, Some("u1".into())),
            (1, Some("u2".into())),
            (2, Some("u5".into()))
        ]
    );
    assert_eq!(then[0].right.as_ref().unwrap().value["status"], "premium");
    let now = run(&store, &orders, &on_id, None, &JoinLimits::default()).unwrap();
    assert_eq!(pairs(&now), vec![(0, Some("u1".into()))]);
    assert_eq!(now[0].right.as_ref().unwrap().value["status"], "basic");

    let keyed = [json!({"u": "u2"}), json!({"u": "u5"})];
    let on_key = Join::new("users", "u", KEY_FIELD);
    assert_eq!(
        join(&store, &keyed, &on_key, Some(before.timestamp_micros)),
        vec![(0, Some("u2".into())), (1, Some("u5".into()))]
    );
    assert_eq!(
        join(&store, &keyed, &on_key, None),
        vec![(1, Some("u5".into()))]
    );
    let first = store.first_timestamp_micros().unwrap();
    assert!(join(&store, &keyed, &on_key, Some(first - 1)).is_empty());
}

#[test]
fn stops_at_its_limits_counting_only_matches() {
    let (_dir, store) = open();
    for i in 0..20 {
        put(
            &store,
            "users",
            &format!("u{i:02}"),
            json!({"id": i % 10, "pad": "x".repeat(100)}),
        );
    }
    let on_id = Join::new("users", "user_id", "id");
    let one = [json!({"user_id": 3})];
    let two_docs = JoinLimits {
        max_right_docs: 2,
        ..JoinLimits::default()
    };
    let (rows, plan) = run_planned(&store, &one, &on_id, None, &two_docs, None).unwrap();
    assert_eq!(
        rows.len(),
        2,
        "18 unmatched documents are read but not held"
    );
    assert_eq!(plan.right_read, 20, "one pass over the joined namespace");
    let three = [json!({"user_id": 3}), json!({"user_id": 4})];
    let err = run(&store, &three, &on_id, None, &two_docs).unwrap_err();
    assert!(
        matches!(err, JoinError::TooLarge { limit: 2, what } if what.contains("max_right_docs")),
        "{err:?}"
    );
    assert!(err.to_string().contains("max_right_docs"));

    let small = JoinLimits {
        max_right_docs: 100,
        max_bytes: 1000,
    };
    assert_eq!(run(&store, &one, &on_id, None, &small).unwrap().len(), 2);
    let repeated: Vec<Value> = (0..5).map(|_| json!({"user_id": 3})).collect();
    let err = run(&store, &repeated, &on_id, None, &small).unwrap_err();
    assert!(
        matches!(err, JoinError::TooLarge { limit: 1000, what } if what.contains("max_bytes")),
        "a document in several rows counts each time: {err:?}"
    );
}

#[test]
fn refuses_malformed_joins() {
    let (_dir, store) = open();
    let invalid = |j: Join| match run(&store, &[], &j, None, &JoinLimits::default()) {
        Err(JoinError::Invalid(m)) => m,
        other => panic!("expected Invalid, got {other:?}"),
    };
    assert!(invalid(Join::new("_koru_views", "a", "b")).contains("reserved"));
    assert!(invalid(Join::new("users", "a..b", "id")).contains("on.left"));
    assert!(invalid(Join::new("users", "a", "")).contains("on.right"));
    let parsed: Join = serde_json::from_value(
        json!({"namespace": "users", "on": {"left": "user_id", "right": "id"}}),
    )
    .unwrap();
    assert_eq!(parsed, Join::new("users", "user_id", "id"));
    assert_eq!(parsed.kind, JoinKind::Inner);
}

/// The hash join alone, for comparing with whatever path `run` takes.
fn hash_only(store: &Store, left: &[Value], j: &Join, at: Option<i64>) -> Vec<JoinedRow> {
    let limits = JoinLimits::default();
    let keys: Vec<Option<ValueKey>> = left
        .iter()
        .map(|v| ValueKey::scalar(field(v, &j.on.left)))
        .collect();
    let mut wanted = HashMap::new();
    for (k, v) in keys.iter().zip(left) {
        if let (Some(k), Some(v)) = (k, field(v, &j.on.left)) {
            wanted.entry(k).or_insert(v);
        }
    }
    let mut right = Matches::new(&limits, None);
    hash_join(store, j, &wanted, at, &mut right).unwrap();
    right.rows(&keys, j.kind).unwrap()
}

/// Indexes `users.id` and waits until the index is ready.
fn index_users_id(store: &Store) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(store.create_index("users", "id", IndexType::NonUnique))
        .expect("defining the index on users.id");
    // Built online: the join ignores it until it is ready.
    let ready = (0..500).any(|_| {
        let ready = store
            .index("users", "id")
            .is_some_and(|i| i.status == IndexStatus::Ready);
        if !ready {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        ready
    });
    assert!(ready, "the index on users.id never became ready");
}

#[test]
fn the_index_path_and_the_hash_path_agree() {
    let (_dir, store) = open();
    users(&store);
    let before = put(&store, "users", "u5", json!({"id": 5}));
    put(&store, "users", "u6", json!({"id": 1.0}));
    put(&store, "users", "u5", json!({"id": 7}));
    index_users_id(&store);
    let orders: Vec<Value> = [1, 2, 5, 7, 99, 1]
        .into_iter()
        .map(|i| json!({"user_id": i}))
        .chain([json!({"user_id": "3"}), json!({"user_id": 2.0})])
        .collect();
    for j in [
        Join::new("users", "user_id", "id"),
        Join::new("users", "user_id", "id").left_join(),
    ] {
        for at in [None, Some(before.timestamp_micros)] {
            let (rows, plan) =
                run_planned(&store, &orders, &j, at, &JoinLimits::default(), None).unwrap();
            assert_eq!(plan.method, JoinMethod::Index("id".into()));
            assert_eq!(rows, hash_only(&store, &orders, &j, at));
        }
    }
    let now = join(&store, &orders, &Join::new("users", "user_id", "id"), None);
    assert_eq!(
        now,
        vec![
            (0, Some("u1".into())),
            (0, Some("u6".into())),
            (1, Some("u2".into())),
            (3, Some("u5".into())),
            (5, Some("u1".into())),
            (5, Some("u6".into())),
            (6, Some("u3".into())),
            (7, Some("u2".into())),
        ]
    );
}

#[test]
fn a_right_filter_drops_documents_before_they_are_held() {
    let (_dir, store) = open();
    for i in 0..6 {
        let status = if i % 2 == 0 { "premium" } else { "basic" };
        put(
            &store,
            "users",
            &format!("u{i}"),
            json!({"id": i / 2, "status": status}),
        );
    }
    let orders = [
        json!({"user_id": 0}),
        json!({"user_id": 1}),
        json!({"user_id": 2}),
    ];
    let premium = |v: &Value| v["status"] == "premium";
    let one_each = JoinLimits {
        max_right_docs: 3,
        ..JoinLimits::default()
    };
    let on_id = Join::new("users", "user_id", "id");
    assert!(
        run(&store, &orders, &on_id, None, &one_each).is_err(),
        "six matches without the filter"
    );
    let (rows, plan) =
        run_planned(&store, &orders, &on_id, None, &one_each, Some(&premium)).unwrap();
    assert_eq!(
        pairs(&rows),
        vec![
            (0, Some("u0".into())),
            (1, Some("u2".into())),
            (2, Some("u4".into()))
        ]
    );
    assert_eq!((plan.right_read, plan.right_matched), (6, 3));
    let by_key = Join::new("users", "k", KEY_FIELD).left_join();
    let keyed = [json!({"k": "u0"}), json!({"k": "u1"})];
    let (rows, _) = run_planned(&store, &keyed, &by_key, None, &one_each, Some(&premium)).unwrap();
    assert_eq!(pairs(&rows), vec![(0, Some("u0".into())), (1, None)]);
}

/// What a join should give, by brute force over a model of the joined namespace.
fn naive(
    model: &std::collections::BTreeMap<String, Value>,
    left: &[Value],
    j: &Join,
) -> Vec<(usize, Option<(String, Value)>)> {
    let scalar_eq = |a: &Value, b: &Value| match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        _ => false,
    };
    let mut out = Vec::new();
    for (i, l) in left.iter().enumerate() {
        let lv = field(l, &j.on.left);
        let mut any = false;
        for (key, value) in model {
            let hit = match lv {
                None => false,
                Some(lv) if j.on.right == KEY_FIELD => match lv {
                    Value::String(s) => s == key,
                    Value::Number(n) => n
                        .as_f64()
                        .is_some_and(|f| f.fract() == 0.0 && format!("{}", f as i64) == *key),
                    _ => false,
                },
                Some(lv) => field(value, &j.on.right).is_some_and(|rv| scalar_eq(lv, rv)),
            };
            if hit {
                any = true;
                out.push((i, Some((key.clone(), value.clone()))));
            }
        }
        if !any && j.kind == JoinKind::Left {
            out.push((i, None));
        }
    }
    out
}

fn id_value(choice: u8) -> Option<Value> {
    match choice {
        0 => Some(json!(1)),
        1 => Some(json!(1.0)),
        2 => Some(json!(2)),
        3 => Some(json!("1")),
        4 => Some(json!("k3")),
        5 => Some(Value::Null),
        6 => Some(json!(true)),
        _ => None,
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// Every join form, now and at a random moment of a random history, equals brute force,
    /// with or without an index created part way (moments before it included).
    #[test]
    fn joins_equal_brute_force_over_any_history(
        ops in proptest::collection::vec((0usize..4, proptest::option::of(0u8..8)), 1..16),
        left_ids in proptest::collection::vec(0u8..8, 0..8),
        moment in 0usize..16,
        index_after in proptest::option::of(0usize..16),
    ) {
        const KEYS: [&str; 4] = ["1", "2", "k3", "k4"];
        let (_dir, store) = open();
        let mut model = std::collections::BTreeMap::new();
        let mut models = Vec::new();
        let mut times = Vec::new();
        for (k, op) in &ops {
            let key = KEYS[*k].to_string();
            let committed = match op {
                Some(c) => {
                    let value = match id_value(*c) {
                        Some(id) => json!({"id": id, "n": c}),
                        None => json!({"n": c}),
                    };
                    model.insert(key.clone(), value.clone());
                    put(&store, "users", &key, value)
                }
                None => {
                    model.remove(&key);
                    store.write_blocking(vec![WriteOp::delete("users", key)]).unwrap()
                }
            };
            models.push(model.clone());
            times.push(committed.timestamp_micros);
            if index_after == Some(models.len() - 1) {
                index_users_id(&store);
            }
        }
        let left: Vec<Value> = left_ids
            .iter()
            .map(|c| match id_value(*c) {
                Some(v) => json!({"ref": v}),
                None => json!({}),
            })
            .collect();
        let at = moment.min(ops.len() - 1);
        for j in [
            Join::new("users", "ref", "id"),
            Join::new("users", "ref", "id").left_join(),
            Join::new("users", "ref", KEY_FIELD),
            Join::new("users", "ref", KEY_FIELD).left_join(),
        ] {
            for (when, model) in [(None, &model), (Some(times[at]), &models[at])] {
                let rows = run(&store, &left, &j, when, &JoinLimits::default()).unwrap();
                let got: Vec<(usize, Option<(String, Value)>)> = rows
                    .into_iter()
                    .map(|r| (r.left, r.right.map(|d| (d.key, d.value))))
                    .collect();
                proptest::prop_assert_eq!(got, naive(model, &left, &j), "{:?} at {:?}", j, when);
            }
        }
    }
}
