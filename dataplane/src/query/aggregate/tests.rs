//! Unit tests of the aggregation pipeline: grouping, each function, exact integers, missing
//! fields and the limits.

use serde_json::json;

use super::*;

fn agg(spec: &Aggregation, docs: &[Value]) -> Vec<Value> {
    run(docs, spec, &AggregateLimits::default())
        .unwrap()
        .into_iter()
        .map(Value::Object)
        .collect()
}

fn sales() -> Vec<Value> {
    vec![
        json!({"region": "eu", "amount": 10, "discount": 0.5, "timestamp": "2026-01-02"}),
        json!({"region": "us", "amount": 7, "discount": 1, "timestamp": "2026-01-01"}),
        json!({"region": "eu", "amount": 5, "timestamp": "2026-01-05"}),
        json!({"amount": 1, "discount": null}),
        json!({"region": "eu", "amount": "n/a", "discount": 1.5, "timestamp": "2026-01-03"}),
    ]
}

#[test]
fn the_roadmap_pipeline_names_its_outputs_and_reads_as_the_issue_json() {
    let spec = Aggregation::pipeline()
        .group_by("region")
        .sum("amount")
        .avg("discount")
        .count()
        .min("timestamp")
        .max("timestamp");
    let from_json: Aggregation = serde_json::from_value(json!({
        "group_by": ["region"],
        "aggregate": {
            "sum_amount": {"sum": "amount"}, "avg_discount": {"avg": "discount"},
            "count": {"count": "*"}, "min_timestamp": {"min": "timestamp"},
            "max_timestamp": {"max": "timestamp"}
        }
    }))
    .unwrap();
    assert_eq!(spec, from_json);
    assert_eq!(
        agg(&spec, &sales()),
        vec![
            json!({"region": null, "sum_amount": 1, "avg_discount": null, "count": 1,
                   "min_timestamp": null, "max_timestamp": null}),
            json!({"region": "eu", "sum_amount": 15, "avg_discount": 1.0, "count": 3,
                   "min_timestamp": "2026-01-02", "max_timestamp": "2026-01-05"}),
            json!({"region": "us", "sum_amount": 7, "avg_discount": 1.0, "count": 1,
                   "min_timestamp": "2026-01-01", "max_timestamp": "2026-01-01"}),
        ],
        "missing region is the null group; non-numbers are skipped by sum and avg"
    );
    let dotted = Aggregation::pipeline().sum("order.total").max("a.b");
    assert!(dotted.aggregate.contains_key("sum_order_total"));
    assert!(dotted.aggregate.contains_key("max_a_b"));
}

#[test]
fn groups_by_several_dotted_fields_and_numbers_by_value() {
    let docs = [
        json!({"addr": {"city": "Oslo"}, "tier": 1, "n": 1}),
        json!({"addr": {"city": "Oslo"}, "tier": 1.0, "n": 2}),
        json!({"addr": {"city": "Oslo"}, "tier": 2, "n": 3}),
        json!({"addr": {"city": "Bergen"}, "tier": 1, "n": 4}),
        json!({"tier": 1, "n": 5}),
    ];
    let spec = Aggregation::pipeline()
        .group_by("addr.city")
        .group_by("tier")
        .sum("n");
    assert_eq!(
        agg(&spec, &docs),
        vec![
            json!({"addr.city": null, "tier": 1, "sum_n": 5}),
            json!({"addr.city": "Bergen", "tier": 1, "sum_n": 4}),
            json!({"addr.city": "Oslo", "tier": 1, "sum_n": 3}),
            json!({"addr.city": "Oslo", "tier": 2, "sum_n": 3}),
        ],
        "1 and 1.0 are one group, shown as first seen"
    );
}

#[test]
fn sums_stay_exact_integers_until_they_cannot() {
    let spec = Aggregation::pipeline().sum("n").avg("n");
    let one = |docs: &[Value]| agg(&spec, docs).remove(0);
    assert_eq!(one(&[json!({"n": 2}), json!({"n": 3})])["sum_n"], json!(5));
    assert!(one(&[json!({"n": 2}), json!({"n": 3})])["sum_n"].is_i64());
    let big = i64::MAX;
    assert_eq!(
        one(&[json!({"n": big}), json!({"n": 1})])["sum_n"],
        json!(big as u64 + 1),
        "past i64 but inside u64 stays an integer"
    );
    let huge = one(&[json!({"n": u64::MAX}), json!({"n": u64::MAX})]);
    assert!(huge["sum_n"].is_f64(), "past 64 bits is a float");
    assert_eq!(
        one(&[
            json!({"n": big}),
            json!({"n": big}),
            json!({"n": -big}),
            json!({"n": -big})
        ])["sum_n"],
        json!(0),
        "intermediate overflow is exact"
    );
    let mixed = one(&[json!({"n": 1}), json!({"n": 0.5})]);
    assert_eq!(mixed["sum_n"], json!(1.5));
    assert_eq!(mixed["avg_n"], json!(0.75));
    let tenths: Vec<Value> = (0..10).map(|_| json!({"n": 0.1})).collect();
    assert_eq!(one(&tenths)["sum_n"], json!(1.0), "compensated float sum");
    let none = one(&[json!({"n": "x"}), json!({})]);
    assert_eq!(none["sum_n"], json!(0), "the sum of no numbers is 0");
    assert_eq!(none["avg_n"], Value::Null, "the mean of no numbers is null");
    assert_eq!(
        one(&[json!({"n": 1}), json!({"n": 2})])["avg_n"],
        json!(1.5)
    );
}

#[test]
fn counts_documents_or_present_fields() {
    let spec = Aggregation::pipeline().count().count_field("email");
    let docs = [
        json!({"email": "a@x"}),
        json!({"email": null}),
        json!({}),
        json!({"email": ""}),
    ];
    assert_eq!(
        agg(&spec, &docs),
        vec![json!({"count": 4, "count_email": 2})]
    );
}

#[test]
fn min_and_max_order_numbers_before_strings_and_skip_the_rest() {
    let spec = Aggregation::pipeline().min("v").max("v");
    let one = |docs: &[Value]| agg(&spec, docs).remove(0);
    let nums = one(&[
        json!({"v": 3}),
        json!({"v": -2}),
        json!({"v": 2.5}),
        json!({"v": true}),
    ]);
    assert_eq!(nums, json!({"min_v": -2, "max_v": 3}));
    assert!(nums["min_v"].is_i64(), "integers come back as integers");
    let mixed = one(&[
        json!({"v": "b"}),
        json!({"v": 10}),
        json!({"v": "a"}),
        json!({"v": null}),
    ]);
    assert_eq!(mixed, json!({"min_v": 10, "max_v": "b"}));
    let nothing = one(&[json!({"v": [1]}), json!({"v": {"a": 1}}), json!({})]);
    assert_eq!(nothing, json!({"min_v": null, "max_v": null}));
}

#[test]
fn without_group_by_there_is_one_group_even_of_nothing() {
    let spec = Aggregation::pipeline().count().sum("n").avg("n").max("n");
    assert_eq!(
        agg(&spec, &[]),
        vec![json!({"count": 0, "sum_n": 0, "avg_n": null, "max_n": null})]
    );
    let grouped = Aggregation::pipeline().group_by("g").count();
    assert!(agg(&grouped, &[]).is_empty());
}

#[test]
fn stops_at_the_group_and_byte_limits() {
    let spec = Aggregation::pipeline().group_by("k").count();
    let docs: Vec<Value> = (0..10).map(|i| json!({"k": i})).collect();
    let limits = AggregateLimits {
        max_groups: 9,
        ..AggregateLimits::default()
    };
    let err = run(&docs, &spec, &limits).unwrap_err();
    assert_eq!(err, AggregateError::TooManyGroups { limit: 9 });
    assert!(err.to_string().contains("max_groups"));
    let exact = AggregateLimits {
        max_groups: 10,
        ..AggregateLimits::default()
    };
    assert_eq!(run(&docs, &spec, &exact).unwrap().len(), 10);

    let wide: Vec<Value> = (0..4)
        .map(|i| json!({"k": format!("{i}{}", "x".repeat(1000))}))
        .collect();
    let small = AggregateLimits {
        max_bytes: 3000,
        ..AggregateLimits::default()
    };
    let err = run(&wide, &spec, &small).unwrap_err();
    assert_eq!(err, AggregateError::TooManyBytes { limit: 3000 });
    assert!(err.to_string().contains("max_bytes"));
    let max = Aggregation::pipeline().max("k");
    let err = run(
        &wide,
        &max,
        &AggregateLimits {
            max_groups: 1,
            max_bytes: 1200,
        },
    );
    assert!(err.is_ok(), "a replaced max releases its bytes: {err:?}");
    let tight = AggregateLimits {
        max_groups: 1,
        max_bytes: 500,
    };
    assert!(matches!(
        run(&wide, &max, &tight),
        Err(AggregateError::TooManyBytes { limit: 500 })
    ));
}

#[test]
fn streams_documents_one_at_a_time() {
    let spec = Aggregation::pipeline().group_by("g").count();
    let mut a = Aggregator::new(&spec, AggregateLimits::default()).unwrap();
    for i in 0..1000 {
        a.add(&json!({"g": i % 3})).unwrap();
    }
    assert_eq!(a.groups(), 3);
    let rows = a.finish();
    assert_eq!(
        rows[0],
        json!({"g": 0, "count": 334}).as_object().unwrap().clone()
    );
    let owned = run(
        (0..5).map(|i| json!({"g": i})),
        &spec,
        &AggregateLimits::default(),
    );
    assert_eq!(owned.unwrap().len(), 5, "owned values from an iterator");
}

#[test]
fn refuses_malformed_aggregations() {
    let invalid = |spec: Aggregation| match spec.validate() {
        Err(AggregateError::Invalid(m)) => m,
        other => panic!("expected Invalid, got {other:?}"),
    };
    assert!(invalid(Aggregation::pipeline()).contains("needs group_by"));
    assert!(invalid(Aggregation::pipeline().group_by("a..b")).contains("dotted path"));
    assert!(invalid(Aggregation::pipeline().group_by("a").group_by("a")).contains("twice"));
    assert!(
        invalid(Aggregation::pipeline().output("*", Aggregate::Sum("*".into())))
            .contains("dotted field path")
    );
    assert!(invalid(Aggregation::pipeline().group_by("count").count()).contains("group_by field"));
    assert!(
        invalid(Aggregation::pipeline().output("", Aggregate::Count("*".into()))).contains("name")
    );
    assert!(Aggregator::new(&Aggregation::pipeline(), AggregateLimits::default()).is_err());
    assert!(Aggregation::pipeline().group_by("g").validate().is_ok());
}

proptest::proptest! {
    /// Grouped counts, sums, means, minima and maxima equal brute force over the same documents.
    #[test]
    fn equals_brute_force(docs in proptest::collection::vec((0u8..5, 0u8..4, -1000i64..1000, "[a-c]{0,2}"), 0..60)) {
        let group = |g: u8| match g {
            0 => Some(json!(0)),
            1 => Some(json!(1)),
            2 => Some(json!("a")),
            3 => Some(Value::Null),
            _ => None,
        };
        let values: Vec<Value> = docs
            .iter()
            .map(|(g, kind, i, s)| {
                let mut doc = Map::new();
                if let Some(g) = group(*g) {
                    doc.insert("g".into(), g);
                }
                match kind {
                    0 => {
                        doc.insert("n".into(), json!(i));
                    }
                    1 => {
                        doc.insert("n".into(), json!(s));
                    }
                    2 => {
                        doc.insert("n".into(), Value::Null);
                    }
                    _ => {}
                }
                Value::Object(doc)
            })
            .collect();
        let spec = Aggregation::pipeline()
            .group_by("g")
            .count()
            .count_field("n")
            .sum("n")
            .avg("n")
            .min("n")
            .max("n");
        let rows = agg(&spec, &values);
        let mut keys: Vec<Value> = Vec::new();
        for v in &values {
            let g = v.get("g").cloned().unwrap_or(Value::Null);
            if !keys.contains(&g) {
                keys.push(g);
            }
        }
        keys.sort_by(values::total_order);
        proptest::prop_assert_eq!(rows.len(), keys.len());
        for (row, key) in rows.iter().zip(&keys) {
            let members: Vec<&Value> = values
                .iter()
                .filter(|v| v.get("g").cloned().unwrap_or(Value::Null) == *key)
                .collect();
            let ns: Vec<&Value> = members.iter().filter_map(|v| v.get("n")).collect();
            let ints: Vec<i64> = ns.iter().filter_map(|n| n.as_i64()).collect();
            let strs: Vec<&str> = ns.iter().filter_map(|n| n.as_str()).collect();
            let sum: i64 = ints.iter().sum();
            let avg = if ints.is_empty() {
                Value::Null
            } else {
                json!(sum as f64 / ints.len() as f64)
            };
            let min = ints
                .iter()
                .min()
                .map(|i| json!(i))
                .or_else(|| strs.iter().min().map(|s| json!(s)))
                .unwrap_or(Value::Null);
            let max = strs
                .iter()
                .max()
                .map(|s| json!(s))
                .or_else(|| ints.iter().max().map(|i| json!(i)))
                .unwrap_or(Value::Null);
            let expected = json!({
                "g": key,
                "count": members.len(),
                "count_n": ns.iter().filter(|n| !n.is_null()).count(),
                "sum_n": sum,
                "avg_n": avg,
                "min_n": min,
                "max_n": max,
            });
            proptest::prop_assert_eq!(row, &expected);
        }
    }
}
