//! Unit tests of the states, literals and operations.

use super::*;

fn hlc(micros: i64, region: &str) -> Hlc {
    Hlc {
        micros,
        region: region.into(),
    }
}

fn raw(s: &str) -> Box<RawValue> {
    RawValue::from_string(s.into()).unwrap()
}

fn ops(json: &str) -> Vec<Operation> {
    parse_ops(json).unwrap()
}

#[test]
fn a_register_renders_its_value_and_the_later_clock_wins_either_way_round() {
    let early = register(&raw("1"), &hlc(5, "b"));
    let late = register(&raw("{\"a\":2}"), &hlc(6, "a"));
    assert!(is_crdt(&early) && !is_crdt("{\"a\":1}"));
    assert_eq!(render(&late).unwrap(), "{\"a\":2}");
    assert_eq!(merge(&early, &late).unwrap(), late);
    assert_eq!(merge(&late, &early).unwrap(), late);
    assert_eq!(merge(&late, &late).unwrap(), late);
    assert_eq!(register_hlc(&late).unwrap().micros, 6);
}

#[test]
fn literals_become_states_and_plain_values_stay_plain() {
    let h = hlc(10, "a");
    assert_eq!(from_user("{\"a\":1}", &h).unwrap(), None);
    assert_eq!(from_user("{\"a\":\"$x\"}", &h).unwrap(), None);
    let escaped = from_user("{\"\\u0024counter\":2}", &h).unwrap().unwrap();
    assert_eq!(render(&escaped).unwrap(), "2");
    let reserved = from_user("{\"\\u0024crdt\":{}}", &h).unwrap_err();
    assert_eq!(reserved.code(), "invalid_value");
    let c = from_user("{\"$counter\":3}", &h).unwrap().unwrap();
    assert_eq!(render(&c).unwrap(), "3");
    let s = from_user("{\"$set\":[\"b\",\"a\",\"b\"]}", &h)
        .unwrap()
        .unwrap();
    assert_eq!(render(&s).unwrap(), "[\"a\",\"b\"]");
    let m = from_user(
        "{\"n\":{\"$counter\":1},\"name\":\"x\",\"in\":{\"s\":{\"$set\":[]}}}",
        &h,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        render(&m).unwrap(),
        "{\"in\":{\"s\":[]},\"n\":1,\"name\":\"x\"}"
    );
    let json = serde_json::json!({"count": Counter(1), "tags": Set(["x"])}).to_string();
    let m = from_user(&json, &h).unwrap().unwrap();
    assert_eq!(render(&m).unwrap(), "{\"count\":1,\"tags\":[\"x\"]}");
    for bad in [
        "{\"$crdt\":{}}",
        "{\"$counter\":1.5}",
        "{\"$set\":3}",
        "{\"$counter\":1,\"x\":2}",
    ] {
        let e = from_user(bad, &h).unwrap_err();
        assert_eq!(e.code(), "invalid_value", "{bad}");
    }
}

#[test]
fn operations_change_each_type_and_refuse_the_wrong_one() {
    let h = hlc(10, "a");
    let c = apply(
        None,
        &ops("[{\"op\":\"increment\",\"by\":5},{\"op\":\"decrement\"}]"),
        &h,
    );
    assert_eq!(render(&c.unwrap()).unwrap(), "4");
    let s = apply(
        None,
        &ops("[{\"op\":\"add\",\"value\":1},{\"op\":\"add\",\"value\":2},{\"op\":\"remove\",\"value\":1}]"),
        &h,
    )
    .unwrap();
    assert_eq!(render(&s).unwrap(), "[2]");
    let e = apply(Some(&s), &ops("{\"op\":\"increment\"}"), &h).unwrap_err();
    assert_eq!(e.code(), "crdt_type_mismatch");
    let e = apply(Some("{\"a\":1}"), &ops("{\"op\":\"increment\"}"), &h).unwrap_err();
    assert_eq!(e.code(), "not_a_crdt");
    let m = apply(
        None,
        &ops(concat!(
            "[{\"op\":\"set\",\"path\":\"a.b\",\"value\":{\"$counter\":2}},",
            "{\"op\":\"increment\",\"path\":\"a.b\"},",
            "{\"op\":\"set\",\"path\":\"name\",\"value\":\"x\"},",
            "{\"op\":\"set\",\"path\":\"gone\",\"value\":1},",
            "{\"op\":\"delete_field\",\"path\":\"gone\"}]"
        )),
        &h,
    )
    .unwrap();
    assert_eq!(render(&m).unwrap(), "{\"a\":{\"b\":3},\"name\":\"x\"}");
    let mv = apply(
        None,
        &ops("{\"op\":\"set\",\"value\":{\"$mvregister\":1}}"),
        &h,
    )
    .unwrap();
    let mv = apply(Some(&mv), &ops("{\"op\":\"set\",\"value\":2}"), &h).unwrap();
    assert_eq!(render(&mv).unwrap(), "[2]");
    assert_eq!(parse_ops("[]").unwrap_err().code(), "bad_request");
    assert_eq!(
        parse_ops("{\"op\":\"explode\"}").unwrap_err().code(),
        "bad_request"
    );
}

#[test]
fn concurrent_mvregister_writes_are_all_kept_until_one_observes_them() {
    let base = apply(
        None,
        &ops("{\"op\":\"set\",\"value\":{\"$mvregister\":0}}"),
        &hlc(1, "a"),
    )
    .unwrap();
    let a = apply(
        Some(&base),
        &ops("{\"op\":\"set\",\"value\":\"a\"}"),
        &hlc(5, "a"),
    )
    .unwrap();
    let b = apply(
        Some(&base),
        &ops("{\"op\":\"set\",\"value\":\"b\"}"),
        &hlc(5, "b"),
    )
    .unwrap();
    let both = merge(&a, &b).unwrap();
    assert_eq!(render(&both).unwrap(), "[\"a\",\"b\"]");
    let c = apply(
        Some(&both),
        &ops("{\"op\":\"set\",\"value\":\"c\"}"),
        &hlc(6, "a"),
    )
    .unwrap();
    assert_eq!(render(&merge(&c, &b).unwrap()).unwrap(), "[\"c\"]");
}

/// The stored text of each type is a format (documented in FORMAT.md, exchanged between
/// regions): these are byte for byte what a store holds.
#[test]
fn stored_states_keep_their_documented_format() {
    let h = hlc(10, "A");
    let stored = |literal: &str| from_user(literal, &h).unwrap().unwrap();
    assert_eq!(
        stored("{\"$counter\":-2}"),
        "{\"$crdt\":{\"counter\":{\"A\":{\"p\":0,\"n\":2}}}}"
    );
    assert_eq!(
        stored("{\"$set\":[\"b\",\"a\"]}"),
        "{\"$crdt\":{\"set\":{\"e\":[{\"v\":\"a\",\"d\":[[\"A\",11]]},{\"v\":\"b\",\"d\":[[\"A\",10]]}],\"c\":{\"A\":11}}}}"
    );
    assert_eq!(
        stored("{\"$register\":[1]}"),
        "{\"$crdt\":{\"register\":{\"hlc\":{\"t\":10,\"r\":\"A\"},\"value\":[1]}}}"
    );
    assert_eq!(
        stored("{\"$mvregister\":1}"),
        "{\"$crdt\":{\"mvregister\":{\"e\":[{\"d\":[\"A\",10],\"v\":1}],\"c\":{\"A\":10}}}}"
    );
    let map = stored("{\"n\":{\"$counter\":1},\"x\":true}");
    assert_eq!(
        map,
        concat!(
            "{\"$crdt\":{\"map\":{\"f\":{",
            "\"n\":{\"at\":{\"t\":10,\"r\":\"A\"},\"s\":{\"counter\":{\"A\":{\"p\":1,\"n\":0}}}},",
            "\"x\":{\"at\":{\"t\":10,\"r\":\"A\"},\"s\":{\"register\":{\"hlc\":{\"t\":10,\"r\":\"A\"},\"value\":true}}}",
            "}}}}"
        )
    );
    let deleted = apply(
        Some(&map),
        &ops("{\"op\":\"delete_field\",\"path\":\"x\"}"),
        &hlc(5, "B"),
    )
    .unwrap();
    assert!(
        deleted.ends_with(",\"x\":{\"x\":{\"t\":11,\"r\":\"B\"}}}}}"),
        "{deleted}"
    );
}
