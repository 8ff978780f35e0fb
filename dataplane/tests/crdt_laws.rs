//! Property tests of the CRDT laws: for every type, random operations made in two or three
//! regions and states delivered between them in random orders, with duplicates, always
//! converge; merge is commutative, associative and idempotent over the states they produce; and
//! no acknowledged operation is lost (a counter's total is the sum of its operations, a set
//! holds every add no remove observed).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

use std::collections::{BTreeMap, BTreeSet};

use koru_dataplane::crdt::{self, Hlc, Operation};
use proptest::prelude::*;
use serde_json::{Value, json};

const REGIONS: [&str; 3] = ["a", "b", "c"];

/// The types under test.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Set,
    Register,
    MvRegister,
    Map,
}

/// One step of a run: an operation in a region, or a state (any one produced so far, so
/// deliveries come late, out of order and twice) merged into a region's.
#[derive(Debug, Clone)]
enum Step {
    Op {
        region: usize,
        choice: u8,
        value: u8,
        now: i64,
    },
    Deliver {
        pick: usize,
        to: usize,
    },
}

fn steps() -> impl Strategy<Value = (usize, Vec<Step>, Vec<(usize, usize)>)> {
    (2usize..=3).prop_flat_map(|regions| {
        let step = prop_oneof![
            (0..regions, any::<u8>(), 0u8..5, 0i64..1_000).prop_map(
                |(region, choice, value, now)| Step::Op {
                    region,
                    choice,
                    value,
                    now
                }
            ),
            (any::<usize>(), 0..regions).prop_map(|(pick, to)| Step::Deliver { pick, to }),
        ];
        (
            Just(regions),
            prop::collection::vec(step, 1..40),
            // The final exchange: (from, to) pairs in a random order, repeated.
            prop::collection::vec((0..regions, 0..regions), 0..12),
        )
    })
}

/// The add-wins set as its specification: each add a token, each remove takes away the tokens
/// of its element its region had observed.
#[derive(Debug, Clone, Default)]
struct SetModel {
    seen: BTreeSet<(u8, usize)>,
    removed: BTreeSet<(u8, usize)>,
}

impl SetModel {
    fn merge(&mut self, other: &SetModel) {
        self.seen.extend(other.seen.iter().copied());
        self.removed.extend(other.removed.iter().copied());
    }

    fn present(&self) -> BTreeSet<u8> {
        self.seen
            .difference(&self.removed)
            .map(|(v, _)| *v)
            .collect()
    }
}

/// The operation a step's choice makes for `kind`.
fn operation(kind: Kind, choice: u8, value: u8) -> Operation {
    let by = i64::from(value) + 1;
    match kind {
        Kind::Counter if choice.is_multiple_of(2) => Operation::Increment { path: None, by },
        Kind::Counter => Operation::Decrement { path: None, by },
        Kind::Set if choice.is_multiple_of(3) => Operation::Remove {
            path: None,
            value: json!(value),
        },
        Kind::Set => Operation::Add {
            path: None,
            value: json!(value),
        },
        Kind::Register | Kind::MvRegister => Operation::Set {
            path: None,
            value: json!({ "v": value }),
        },
        Kind::Map => match choice % 6 {
            0 => Operation::Increment {
                path: Some("n".into()),
                by,
            },
            1 => Operation::Add {
                path: Some("s.items".into()),
                value: json!(value),
            },
            2 => Operation::Remove {
                path: Some("s.items".into()),
                value: json!(value),
            },
            3 => Operation::Set {
                path: Some("r".into()),
                value: json!(value),
            },
            4 => Operation::DeleteField {
                path: if value.is_multiple_of(2) { "r" } else { "s" }.into(),
            },
            _ => Operation::Set {
                path: Some("name".into()),
                value: json!(format!("n{value}")),
            },
        },
    }
}

/// What a run produced: every state, the regions' final states, and what the model expects.
struct Run {
    produced: Vec<String>,
    finals: Vec<String>,
    counter_total: i128,
    set_model: SetModel,
    written: BTreeSet<String>,
}

fn run(kind: Kind, regions: usize, steps: &[Step], exchange: &[(usize, usize)]) -> Run {
    let hlc = |region: usize, now: i64| Hlc {
        micros: now,
        region: REGIONS[region].into(),
    };
    // Every region starts from one state, as a key written once in region a and replicated.
    let seed = match kind {
        Kind::MvRegister => Some(
            crdt::from_user("{\"$mvregister\":null}", &hlc(0, 0))
                .unwrap()
                .unwrap(),
        ),
        _ => None,
    };
    let mut states: Vec<Option<String>> = vec![seed.clone(); regions];
    let mut models: Vec<SetModel> = vec![SetModel::default(); regions];
    let mut produced: Vec<(String, SetModel)> = Vec::new();
    let mut counter_total = 0i128;
    let mut written = BTreeSet::from(["null".to_string()]);
    for (i, step) in steps.iter().enumerate() {
        match *step {
            Step::Op {
                region,
                choice,
                value,
                now,
            } => {
                let op = operation(kind, choice, value);
                let next = crdt::apply(
                    states[region].as_deref(),
                    std::slice::from_ref(&op),
                    &hlc(region, now),
                )
                .unwrap();
                match &op {
                    Operation::Increment { by, .. } => counter_total += i128::from(*by),
                    Operation::Decrement { by, .. } => counter_total -= i128::from(*by),
                    Operation::Add { value, .. } => {
                        models[region]
                            .seen
                            .insert((value.as_u64().unwrap() as u8, i));
                    }
                    Operation::Remove { value, .. } => {
                        let v = value.as_u64().unwrap() as u8;
                        let observed: Vec<_> = models[region]
                            .seen
                            .iter()
                            .filter(|t| t.0 == v)
                            .copied()
                            .collect();
                        models[region].removed.extend(observed);
                    }
                    Operation::Set { value, .. } => {
                        written.insert(value.to_string());
                    }
                    Operation::DeleteField { .. } => {}
                }
                produced.push((next.clone(), models[region].clone()));
                states[region] = Some(next);
            }
            Step::Deliver { pick, to } => {
                if produced.is_empty() {
                    continue;
                }
                let (state, model) = produced[pick % produced.len()].clone();
                deliver(&mut states[to], &state);
                models[to].merge(&model);
            }
        }
    }
    // The links heal: a few random exchanges, then everyone's state to everyone.
    for &(from, to) in exchange {
        if let Some(state) = states[from].clone() {
            deliver(&mut states[to], &state);
        }
    }
    for from in 0..regions {
        for to in 0..regions {
            if let Some(state) = states[from].clone() {
                deliver(&mut states[to], &state);
            }
        }
    }
    let mut set_model = SetModel::default();
    for m in &models {
        set_model.merge(m);
    }
    for (_, m) in &produced {
        set_model.merge(m);
    }
    Run {
        produced: produced.into_iter().map(|(s, _)| s).collect(),
        finals: states.into_iter().flatten().collect(),
        counter_total,
        set_model,
        written,
    }
}

fn deliver(to: &mut Option<String>, state: &str) {
    *to = Some(match to.as_deref() {
        None => state.to_owned(),
        Some(mine) => crdt::merge(mine, state).unwrap(),
    });
}

fn rendered(state: &str) -> Value {
    serde_json::from_str(&crdt::render(state).unwrap()).unwrap()
}

fn check(
    kind: Kind,
    regions: usize,
    steps: &[Step],
    exchange: &[(usize, usize)],
    picks: [usize; 3],
) {
    let run = run(kind, regions, steps, exchange);
    if run.produced.is_empty() {
        return;
    }
    // Convergence: every region that holds the key holds the same state.
    for f in &run.finals {
        assert_eq!(f, &run.finals[0], "regions diverged");
    }
    let last = &run.finals[0];
    // The laws over states the run produced.
    let pick = |i: usize| run.produced[picks[i] % run.produced.len()].as_str();
    let (a, b, c) = (pick(0), pick(1), pick(2));
    assert_eq!(
        crdt::merge(a, b).unwrap(),
        crdt::merge(b, a).unwrap(),
        "commutative"
    );
    assert_eq!(
        crdt::merge(&crdt::merge(a, b).unwrap(), c).unwrap(),
        crdt::merge(a, &crdt::merge(b, c).unwrap()).unwrap(),
        "associative"
    );
    assert_eq!(crdt::merge(a, a).unwrap(), a, "idempotent");
    assert_eq!(
        crdt::merge(last, a).unwrap(),
        *last,
        "the final state holds every state"
    );
    // No acknowledged operation lost.
    let value = rendered(last);
    match kind {
        Kind::Counter => assert_eq!(value, json!(run.counter_total)),
        Kind::Set => {
            let expected: Vec<Value> = run
                .set_model
                .present()
                .into_iter()
                .map(|v| json!(v))
                .collect();
            assert_eq!(value, Value::Array(expected));
        }
        Kind::Register => assert!(run.written.contains(&value.to_string())),
        Kind::MvRegister => {
            let values = value.as_array().unwrap();
            assert!(!values.is_empty());
            for v in values {
                assert!(
                    run.written.contains(&v.to_string()),
                    "{v} was never written"
                );
            }
        }
        Kind::Map => {
            if let Some(n) = value.get("n") {
                assert_eq!(n, &json!(run.counter_total));
            }
            if let Some(items) = value.get("s").and_then(|s| s.get("items")) {
                let present: BTreeMap<String, ()> = items
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| (v.to_string(), ()))
                    .collect();
                for v in run.set_model.present() {
                    assert!(present.contains_key(&v.to_string()), "{v} lost");
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn counters_converge_and_lose_nothing((regions, steps, exchange) in steps(), picks: [usize; 3]) {
        check(Kind::Counter, regions, &steps, &exchange, picks);
    }

    #[test]
    fn sets_converge_and_keep_every_unobserved_add((regions, steps, exchange) in steps(), picks: [usize; 3]) {
        check(Kind::Set, regions, &steps, &exchange, picks);
    }

    #[test]
    fn registers_converge_on_a_written_value((regions, steps, exchange) in steps(), picks: [usize; 3]) {
        check(Kind::Register, regions, &steps, &exchange, picks);
    }

    #[test]
    fn mvregisters_converge_on_written_values((regions, steps, exchange) in steps(), picks: [usize; 3]) {
        check(Kind::MvRegister, regions, &steps, &exchange, picks);
    }

    #[test]
    fn maps_converge_and_their_fields_lose_nothing((regions, steps, exchange) in steps(), picks: [usize; 3]) {
        check(Kind::Map, regions, &steps, &exchange, picks);
    }
}
