//! The smoke test of `koru-bench query`: a whole run at 2,000 documents against a real
//! `koru-dataplane`, asserting no timing, only that SQLite's answers are what the generator
//! implies (counted naively here) and that every answer KoruDelta gives agrees with SQLite's.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::data::{self, Sizes};
use super::figures::same_groups;
use super::table::Measure;
use super::{QueryArgs, measure};

#[test]
fn a_small_run_completes_and_koru_agrees_with_sqlite() {
    let work = tempfile::tempdir().unwrap();
    let args = QueryArgs {
        docs: 2_000,
        secs: 0.1,
        connections: 2,
        server: None,
        work_dir: None,
        json: false,
    };
    let binary = koru_testkit::dataplane_binary();
    let figures = measure(&args, &binary, work.path()).unwrap();
    let sizes = Sizes::new(args.docs);
    let check = |prefix: &str| {
        figures
            .checks
            .iter()
            .find(|c| c.what.starts_with(prefix))
            .unwrap_or_else(|| panic!("no check {prefix}: {:?}", figures.checks))
    };

    // SQLite's answers against the generator.
    let users = |pred: &dyn Fn(&data::User) -> bool| -> Value {
        let mut keys: Vec<String> = (0..sizes.users)
            .map(data::user)
            .filter(|u| pred(u))
            .map(|u| u.key)
            .collect();
        keys.sort();
        json!(keys)
    };
    assert_eq!(
        check("point lookup by email, embedded").sqlite,
        json!(["u42"])
    );
    assert_eq!(check("point lookup by email, HTTP").sqlite, json!(["u42"]));
    assert_eq!(check("selective filter").sqlite, users(&|u| u.cohort == 4));
    let as_of_cohort = data::mix(1, 95) % (sizes.users / 20);
    assert_eq!(
        check("as-of filter").sqlite,
        users(&|u| u.cohort == as_of_cohort)
    );
    let mut groups: BTreeMap<&str, (u64, f64, u64)> = BTreeMap::new();
    for s in (0..sizes.sales).map(data::sale) {
        let g = groups.entry(s.region).or_default();
        g.0 += s.amount;
        g.1 += s.discount;
        g.2 += 1;
    }
    let naive: Vec<Value> = groups
        .iter()
        .map(|(region, (sum, discounts, count))| {
            json!({"region": region, "sum_amount": sum, "avg_discount": discounts / *count as f64, "count": count})
        })
        .collect();
    assert!(same_groups(
        &check("group by region").sqlite,
        &Value::from(naive)
    ));
    let premium_orders = (0..sizes.orders)
        .filter(|&i| {
            let customer = data::order(i, sizes.customers).user_id;
            let n: u64 = customer[1..].parse().unwrap();
            data::customer(n).status == "premium"
        })
        .count() as u64;
    assert!(premium_orders > 0);
    assert_eq!(check("join on _key").sqlite, json!(premium_orders));
    assert_eq!(check("join on id").sqlite, json!(premium_orders));
    let matches = (0..sizes.users)
        .filter(|&i| data::bio_matches(&data::user(i).bio))
        .count() as u64;
    assert_eq!(check("text search: rows").sqlite, json!(matches.min(10)));

    // KoruDelta agrees wherever it answered.
    for c in &figures.checks {
        assert_ne!(
            c.agree,
            Some(false),
            "KoruDelta disagrees with SQLite: {c:?}"
        );
    }
    // Every reference side was measured; the data plane's own GET and scan always exist.
    for row in &figures.rows {
        if let Some(reference) = &row.reference {
            assert!(matches!(reference, Measure::Value(_)), "{row:?}");
        }
    }
    let lookup = figures
        .rows
        .iter()
        .find(|r| r.figure.starts_with("point lookup by email over HTTP"))
        .unwrap();
    assert!(matches!(lookup.reference, Some(Measure::Value(v)) if v > 0.0));
    assert!(figures.koru_load_secs > 0.0 && figures.sqlite_load_secs > 0.0);
}
