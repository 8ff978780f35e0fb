//! In-suite fuzzing: thousands of random inputs through the same checks the cargo-fuzz targets in
//! `dataplane/fuzz` run, so `cargo test` exercises them on stable, without libFuzzer or nightly.
//!
//! Random bytes alone rarely get past a checksum or a JSON parser, so most inputs are built to be
//! nearly right: encoded records with one thing broken, and JSON bodies shaped like each route's.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

#[path = "../fuzz/src/lib.rs"]
mod checks;

use axum::http::StatusCode;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};

use koru_dataplane::wal::record::{self, OpKind, OpRef};

/// Runs `cases` inputs from `strategy` through `check`, failing with the shrunk input.
fn run<S: Strategy>(cases: u32, strategy: S, check: impl Fn(S::Value)) {
    let config = Config {
        cases,
        // A manual runner has no source file to persist failures next to; the panic shows the input.
        failure_persistence: None,
        ..Config::default()
    };
    let result = TestRunner::new(config).run(&strategy, |input| {
        check(input);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Log records.
// ---------------------------------------------------------------------------------------------

/// One operation: (delete?, namespace, key, value bytes).
type RawOp = (bool, String, String, Vec<u8>);

/// How to damage an encoded record before decoding it.
#[derive(Debug, Clone)]
enum Damage {
    None,
    /// XOR a byte at a position (modulo the length) with a non-zero mask.
    Flip(usize, u8),
    /// Keep only a prefix (modulo the length).
    Truncate(usize),
    /// Append bytes.
    Append(Vec<u8>),
    /// Overwrite a little-endian u32 at a position (the length, count, or a size field).
    SetU32(usize, u32),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        Just(Damage::None),
        (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| Damage::Flip(at, mask)),
        any::<usize>().prop_map(Damage::Truncate),
        proptest::collection::vec(any::<u8>(), 1..32).prop_map(Damage::Append),
        (any::<usize>(), any::<u32>()).prop_map(|(at, v)| Damage::SetU32(at, v)),
    ]
}

fn encoded(lsn: u64, ts: i64, ops: &[RawOp]) -> Vec<u8> {
    let refs: Vec<OpRef<'_>> = ops
        .iter()
        .map(|(delete, ns, key, value)| OpRef {
            kind: if *delete { OpKind::Delete } else { OpKind::Put },
            namespace: ns,
            key,
            value,
        })
        .collect();
    let mut out = Vec::new();
    record::encode(&mut out, lsn, ts, &refs, &mut Vec::new());
    out
}

fn apply(mut bytes: Vec<u8>, damage: &Damage) -> Vec<u8> {
    let len = bytes.len();
    match damage {
        Damage::None => {}
        Damage::Flip(at, mask) => bytes[at % len] ^= mask,
        Damage::Truncate(at) => bytes.truncate(at % len),
        Damage::Append(more) => bytes.extend_from_slice(more),
        Damage::SetU32(at, v) => {
            let at = at % (len - 3);
            bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
    }
    bytes
}

fn raw_op() -> impl Strategy<Value = RawOp> {
    (
        any::<bool>(),
        "[a-z_.-]{0,6}",
        "\\PC{0,6}",
        proptest::collection::vec(any::<u8>(), 0..24),
    )
}

#[test]
fn record_decoder_refuses_or_round_trips_random_and_damaged_records() {
    let garbage = proptest::collection::vec(any::<u8>(), 0..256).prop_map(|b| (b, Damage::None));
    let records = (
        any::<u64>(),
        any::<i64>(),
        proptest::collection::vec(raw_op(), 0..5),
        damage(),
    )
        .prop_map(|(lsn, ts, ops, d)| (encoded(lsn, ts, &ops), d));
    run(
        5_000,
        prop_oneof![1 => garbage, 4 => records],
        |(bytes, d)| {
            let bytes = apply(bytes, &d);
            checks::check_record(&bytes);
        },
    );
}

#[test]
fn the_record_check_catches_what_it_claims_to() {
    // A valid record round-trips, and the checksum fix-up makes a damaged one decode again.
    let good = encoded(9, 10, &[(false, "ns".into(), "k".into(), b"[1]".to_vec())]);
    checks::check_record(&good);
    assert!(record::decode(&good).is_ok());
    let mut bad = good.clone();
    bad[20] ^= 0xff;
    assert!(record::decode(&bad).is_err());
    let fixed = checks::with_valid_checksum(&bad).expect("the body fits");
    assert!(record::decode(&fixed).is_ok());
    assert!(checks::with_valid_checksum(&good[..10]).is_none());
}

// ---------------------------------------------------------------------------------------------
// Request bodies.
// ---------------------------------------------------------------------------------------------

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,12}".prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z]{1,4}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Namespace names, valid and not.
fn namespace() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("fz".to_string()),
        2 => "[a-zA-Z0-9_.-]{1,8}",
        1 => prop_oneof![
            Just(String::new()),
            Just("views".to_string()),
            Just("batch".to_string()),
            Just("_koru_views".to_string()),
            Just("a b".to_string()),
            Just("n".repeat(129)),
        ],
        1 => "\\PC{0,8}",
    ]
}

/// Keys, valid and not; valid keys may hold any non-control character.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("k".to_string()),
        2 => "[a-z0-9]{1,6}",
        2 => "\\PC{1,10}",
        1 => prop_oneof![
            Just(String::new()),
            Just("keys".to_string()),
            Just("query".to_string()),
            Just("a\nb".to_string()),
            Just("k/x?y#z%2F".to_string()),
            Just("k".repeat(1025)),
        ],
    ]
}

fn timestamp() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("2026-01-31T12:00:00Z".to_string()),
        Just("1970-01-01T00:00:00.000001+14:00".to_string()),
        Just("+275760-09-13T00:00:00Z".to_string()),
        Just("yesterday".to_string()),
        "\\PC{0,24}",
    ]
}

fn filter() -> impl Strategy<Value = Value> {
    let op = prop_oneof![
        Just("eq"),
        Just("ne"),
        Just("gt"),
        Just("gte"),
        Just("lt"),
        Just("lte"),
        Just("contains"),
        Just("exists"),
        Just("like"),
    ];
    ("[a-z.0-9]{0,8}", op, json_value())
        .prop_map(|(field, op, value)| json!({ "field": field, "op": op, "value": value }))
}

/// Puts `value` under `name` in `object` when it is Some.
fn with(mut object: Value, name: &str, value: Option<Value>) -> Value {
    if let Some(v) = value {
        object[name] = v;
    }
    object
}

/// A body shaped like what `ROUTES[route]` expects, often slightly wrong.
fn shaped(route: usize) -> BoxedStrategy<Value> {
    match route {
        0 => json_value().prop_map(|v| json!({ "value": v })).boxed(),
        1 => {
            let write = (
                namespace(),
                key(),
                proptest::option::of(json_value()),
                any::<bool>(),
            )
                .prop_map(|(ns, k, value, delete)| {
                    let w = json!({ "namespace": ns, "key": k });
                    let w = with(w, "value", value);
                    with(w, "delete", delete.then_some(Value::Bool(true)))
                });
            (
                proptest::collection::vec(write, 0..5),
                prop_oneof![Just("writes"), Just("ops")],
            )
                .prop_map(|(writes, field)| json!({ field: writes }))
                .boxed()
        }
        2 => {
            let k =
                (namespace(), key(), proptest::option::of(timestamp())).prop_map(|(ns, k, at)| {
                    with(
                        json!({ "namespace": ns, "key": k }),
                        "at",
                        at.map(Value::from),
                    )
                });
            proptest::collection::vec(k, 0..5)
                .prop_map(|keys| json!({ "keys": keys }))
                .boxed()
        }
        3 => (
            proptest::option::of(filter()),
            proptest::option::of(("[a-z.0-9]{0,6}", any::<bool>())),
            proptest::option::of(0..20u64),
            proptest::option::of(timestamp()),
        )
            .prop_map(|(filter, sort, limit, at)| {
                let q = with(json!({}), "filter", filter);
                let sort = sort.map(|(field, d)| json!({ "field": field, "descending": d }));
                let q = with(q, "sort", sort);
                let q = with(q, "limit", limit.map(Value::from));
                with(q, "at", at.map(Value::from))
            })
            .boxed(),
        _ => (
            key(),
            namespace(),
            proptest::option::of(filter()),
            proptest::option::of(any::<bool>()),
            proptest::option::of("\\PC{0,12}"),
        )
            .prop_map(|(name, source, filter, auto, description)| {
                let v = json!({ "name": name, "source": source });
                let v = with(v, "filter", filter);
                let v = with(v, "auto_refresh", auto.map(Value::from));
                with(v, "description", description.map(Value::from))
            })
            .boxed(),
    }
}

/// A route and a body: random bytes, any JSON, or a body shaped for the route, sometimes cut short.
fn request() -> impl Strategy<Value = (usize, Vec<u8>)> {
    (0..checks::ROUTES.len()).prop_flat_map(|route| {
        let body = prop_oneof![
            1 => proptest::collection::vec(any::<u8>(), 0..128),
            1 => json_value().prop_map(|v| v.to_string().into_bytes()),
            6 => (shaped(route), proptest::option::of(any::<usize>())).prop_map(|(v, cut)| {
                let mut bytes = v.to_string().into_bytes();
                if let Some(cut) = cut {
                    bytes.truncate(cut % (bytes.len() + 1));
                }
                bytes
            }),
        ];
        (Just(route), body)
    })
}

#[test]
fn random_request_bodies_never_get_a_5xx_or_a_body_that_is_not_json() {
    let api = checks::Api::new();
    run(3_000, request(), |(route, body)| {
        api.check_route(route, &body);
    });
}

#[test]
fn well_formed_bodies_pass_the_request_check_and_really_reach_the_store() {
    let api = checks::Api::new();
    let view = br#"{"name":"adults","source":"fz","filter":{"field":"age","op":"gt","value":17}}"#;
    for (route, body) in [
        (0, &br#"{"value":{"age":30}}"#[..]),
        (
            1,
            br#"{"writes":[{"namespace":"fz","key":"k2","value":[1]}]}"#,
        ),
        (2, br#"{"keys":[{"namespace":"fz","key":"k"}]}"#),
        (3, br#"{"filter":{"field":"age","op":"gte","value":18}}"#),
        (4, view),
        (4, view),
    ] {
        api.check_route(route, body);
    }
    // The first byte picks the route: 0 is the PUT of fz/k.
    let mut input = vec![0];
    input.extend_from_slice(br#"{"value":"via check"}"#);
    api.check(&input);

    let body = |(status, body): (StatusCode, Vec<u8>)| {
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice::<Value>(&body).expect("JSON")
    };
    assert_eq!(
        body(api.request("GET", "/api/v1/fz/k", b""))["value"],
        "via check"
    );
    assert_eq!(
        body(api.request("GET", "/api/v1/fz/k2", b""))["value"],
        json!([1])
    );
    let history = body(api.request("GET", "/api/v1/fz/k/history", b""));
    assert_eq!(history["versions"][0]["value"], json!({ "age": 30 }));
    let views = body(api.request("GET", "/api/v1/views", b""));
    assert_eq!(views["views"][0]["name"], "adults");
    // The second create of the same view was refused with a 409, which the check accepts.
    let (status, _) = api.request("POST", "/api/v1/views", view);
    assert_eq!(status, StatusCode::CONFLICT);
}

#[test]
fn same_json_compares_numbers_exactly_and_values_structurally() {
    assert!(checks::same_json(
        r#"{"a":[1,2.5],"b":null}"#,
        r#" { "b" : null, "a" : [1, 2.5] } "#
    ));
    assert!(checks::same_json("100", "1e2"));
    assert!(checks::same_json("-0", "-0.0"));
    assert!(!checks::same_json(
        "5.263890588913874e+90",
        "5.263890588913873e+90"
    ));
    assert!(!checks::same_json("1e400", "null"));
    assert!(!checks::same_json(
        "18446744073709551616",
        "18446744073709552000"
    ));
    assert!(!checks::same_json(r#"{"a":1}"#, r#"{"a":1,"b":2}"#));
}

// Regressions found by fuzzing: values the store used to accept and then could not read back, and
// floats the change feed used to alter by one unit in the last place.

#[test]
fn a_stored_value_that_serde_json_cannot_read_never_makes_a_read_answer_500() {
    let api = checks::Api::new();
    api.check_route(0, br#"{"value":1e400}"#);
}

#[test]
fn a_deeply_nested_stored_value_never_makes_a_read_answer_500() {
    let api = checks::Api::new();
    let body = format!(r#"{{"value":{}{}}}"#, "[".repeat(200), "]".repeat(200));
    api.check_route(0, body.as_bytes());
}

#[test]
fn a_stored_lone_surrogate_never_makes_a_read_answer_500() {
    let api = checks::Api::new();
    api.check_route(0, br#"{"value":"\ud800"}"#);
}

#[test]
fn the_change_feed_carries_floats_exactly() {
    let api = checks::Api::new();
    api.check_route(0, br#"{"value":5.263890588913874e+90}"#);
}

// ---------------------------------------------------------------------------------------------
// Query bodies (the `query_parse` target).
// ---------------------------------------------------------------------------------------------

fn query_filter() -> impl Strategy<Value = Value> {
    let op = prop_oneof![
        Just("eq"),
        Just("ne"),
        Just("gt"),
        Just("lte"),
        Just("in"),
        Just("prefix"),
        Just("exists"),
        Just("contains"),
        Just("nope"),
    ];
    let field = prop_oneof![
        Just("age".to_string()),
        Just("name".to_string()),
        Just("users:status".to_string()),
        Just("fz:age".to_string()),
        "[a-z.:_]{0,8}",
    ];
    let leaf = (field, op, json_value())
        .prop_map(|(field, op, value)| json!({ "field": field, "op": op, "value": value }));
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|v| json!({ "and": v })),
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|v| json!({ "or": v })),
            inner.clone().prop_map(|v| json!({ "not": v })),
            (inner, json_value()).prop_map(|(v, extra)| json!({ "not": v, "and": extra })),
        ]
    })
}

fn query_body() -> impl Strategy<Value = Value> {
    let sort = ("[a-z_]{0,8}", any::<bool>())
        .prop_map(|(field, d)| json!({ "field": field, "descending": d }));
    let function = prop_oneof![
        Just("sum"),
        Just("avg"),
        Just("count"),
        Just("min"),
        Just("max")
    ];
    let aggregate = proptest::collection::btree_map(
        "[a-z_]{1,6}",
        (
            function,
            prop_oneof![Just("*"), Just("age"), Just("users:status")],
        )
            .prop_map(|(f, field)| json!({ f: field })),
        0..3,
    );
    let join = (
        prop_oneof![Just("users"), Just("fz"), Just("x y")],
        any::<bool>(),
    )
        .prop_map(|(ns, left)| {
            json!({"namespace": ns, "on": {"left": "user_id", "right": "id"},
                   "kind": if left { "left" } else { "inner" }})
        });
    (
        proptest::option::of(query_filter()),
        proptest::option::of(prop_oneof![
            sort.clone(),
            proptest::collection::vec(sort, 0..3).prop_map(Value::from)
        ]),
        proptest::option::of(0..6u64),
        proptest::option::of(timestamp()),
        proptest::option::of(proptest::collection::vec("[a-z]{1,5}", 0..3)),
        proptest::option::of(aggregate),
        proptest::option::of(query_filter()),
        proptest::option::of(join),
        proptest::option::of(("[a-z]{0,5}", "\\PC{0,12}")),
        any::<bool>(),
    )
        .prop_map(
            |(filter, sort, limit, at, group_by, aggregate, having, join, text, explain)| {
                let q = with(json!({}), "filter", filter);
                let q = with(q, "sort", sort);
                let q = with(q, "limit", limit.map(Value::from));
                let q = with(q, "at", at.map(Value::from));
                let q = with(q, "group_by", group_by.map(Value::from));
                let q = with(q, "aggregate", aggregate.map(|a| json!(a)));
                let q = with(q, "having", having);
                let q = with(q, "join", join);
                let text = text.map(|(field, query)| json!({"field": field, "query": query}));
                let q = with(q, "text_search", text);
                with(q, "explain", explain.then_some(Value::Bool(true)))
            },
        )
}

#[test]
fn random_query_bodies_parse_round_trip_and_run_without_a_server_failure() {
    let queries = checks::Queries::new();
    let bodies = prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..64),
        6 => (query_body(), proptest::option::of(any::<usize>())).prop_map(|(v, cut)| {
            let mut bytes = v.to_string().into_bytes();
            if let Some(cut) = cut.filter(|c| c % 4 == 0) {
                bytes.truncate(cut % (bytes.len() + 1));
            }
            bytes
        }),
    ];
    run(3_000, bodies, |body| queries.check(&body));
}

#[test]
fn every_query_parse_seed_passes_the_check_and_most_parse() {
    let queries = checks::Queries::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/query_parse");
    let mut parsed = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        queries.check(&bytes);
        parsed +=
            usize::from(serde_json::from_slice::<koru_dataplane::query::Query>(&bytes).is_ok());
    }
    assert!(parsed >= 7, "the seeds are valid queries ({parsed} parsed)");
}
