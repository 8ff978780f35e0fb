//! The figures of `koru-bench query`, one method each: a probe request whose answer is checked
//! against SQLite's (and decides whether the feature is there), then the timed runs of both sides.

use std::sync::Arc;

use bytes::Bytes;
use hyper::Method;
use serde_json::{Value, json};

use super::data::{self, Sizes};
use super::driver::{self, Load, MakeCall, Target};
use super::embedded::{Embedded, probe_user};
use super::server::{Answer, Server};
use super::sqlite::{JOIN_ON_ID_SQL, JOIN_ON_KEY_SQL, Reference};
use super::table::{Check, Goal, Measure, Row};
use super::{QueryArgs, filter_body, group_body, join_body, text_body};
use crate::error::BenchError;
use crate::report::thousands;

/// What loading the server set up: whether each index could be created and became ready, and
/// the moment halfway through the users' history.
pub struct Setup {
    /// Unique index on users.email.
    pub email_index: Result<(), String>,
    /// Value index on users.cohort.
    pub cohort_index: Result<(), String>,
    /// Text index on users.bio.
    pub bio_index: Result<(), String>,
    /// Value index on customers.id.
    pub id_index: Result<(), String>,
    /// The commit time of a write made after the first half of the users.
    pub mid: Result<String, String>,
}

/// User `i` as a key and JSON text, for the batch loader.
fn user_doc(i: u64, _: u64) -> (String, String) {
    let u = data::user(i);
    (u.key.clone(), data::json(&u))
}

fn sale_doc(i: u64, _: u64) -> (String, String) {
    let s = data::sale(i);
    (s.key.clone(), data::json(&s))
}

fn customer_doc(i: u64, _: u64) -> (String, String) {
    let c = data::customer(i);
    (c.key.clone(), data::json(&c))
}

fn order_doc(i: u64, customers: u64) -> (String, String) {
    let o = data::order(i, customers);
    (o.key.clone(), data::json(&o))
}

/// `Ok(())` for a 2xx answer, else its error.
fn ok(answer: Answer) -> Result<(), String> {
    answer.map(|_| ())
}

/// Creates the indexes (before the data, so the load maintains them), loads every document, and
/// waits for the indexes to be ready.
pub async fn load_server(server: &Arc<Server>, sizes: Sizes) -> Result<Setup, BenchError> {
    let email = ok(server
        .create_index("users", json!({"field": "email", "unique": true}))
        .await);
    let cohort = ok(server
        .create_index("users", json!({"field": "cohort"}))
        .await);
    let bio = ok(server
        .create_index("users", json!({"field": "bio", "kind": "text"}))
        .await);
    let id = ok(server
        .create_index("customers", json!({"field": "id"}))
        .await);
    let half = sizes.users / 2;
    server.load("users", 0..half, user_doc, 0).await?;
    let mid = server
        .put("marks", "mid", json!({"users_written": half}))
        .await
        .and_then(|a| {
            a["timestamp"]
                .as_str()
                .map(String::from)
                .ok_or_else(|| format!("a PUT answer without a timestamp: {a}"))
        });
    server.load("users", half..sizes.users, user_doc, 0).await?;
    server.load("sales", 0..sizes.sales, sale_doc, 0).await?;
    server
        .load("customers", 0..sizes.customers, customer_doc, 0)
        .await?;
    server
        .load("orders", 0..sizes.orders, order_doc, sizes.customers)
        .await?;
    let users_ready = if email.is_ok() || cohort.is_ok() || bio.is_ok() {
        server.wait_ready("users").await
    } else {
        Ok(())
    };
    let customers_ready = if id.is_ok() {
        server.wait_ready("customers").await
    } else {
        Ok(())
    };
    let and = |created: Result<(), String>, ready: &Result<(), String>| {
        created.and_then(|()| ready.clone())
    };
    Ok(Setup {
        email_index: and(email, &users_ready),
        cohort_index: and(cohort, &users_ready),
        bio_index: and(bio, &users_ready),
        id_index: and(id, &customers_ready),
        mid,
    })
}

/// The embedded point lookup against SQLite's, and their answers compared.
pub fn embedded_lookup(
    args: &QueryArgs,
    sizes: Sizes,
    reference: &Reference,
    embedded: Embedded,
    rows: &mut Vec<Row>,
    checks: &mut Vec<Check>,
) -> Result<(), BenchError> {
    let probe = data::email(probe_user(sizes.users));
    let found = reference.user_by_email(&probe)?;
    checks.push(Check::equal(
        "point lookup by email, embedded: keys found",
        json!(found.into_iter().collect::<Vec<_>>()),
        embedded.probe.map(|keys| json!(keys)),
    ));
    let sqlite = driver::repeat(args.secs, 10, |n| {
        reference
            .user_by_email(&data::email(data::mix(n, 99) % sizes.users))
            .map(|_| ())
    })?;
    let koru = match &embedded.load {
        Ok(load) => load.rate(),
        Err(why) => Measure::Unavailable(why.clone()),
    };
    let koru_detail = embedded
        .load
        .as_ref()
        .map_or_else(|_| "-".into(), Load::detail);
    rows.push(
        Row::compare(
            "point lookup by unique email, embedded",
            "lookups/s",
            koru,
            "SQLite",
            sqlite.rate(),
            Goal::AtLeast(0.5),
        )
        .with_detail(format!(
            "Store::get_by_index_at: {koru_detail}; SQLite: {}",
            sqlite.detail()
        )),
    );
    Ok(())
}

/// The keys of a query answer's `results`, sorted.
fn result_keys(answer: &Value) -> Vec<String> {
    let mut keys: Vec<String> = answer["results"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| r["key"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    keys.sort();
    keys
}

/// A request with a fixed JSON body.
fn post(path: String, body: &Value) -> MakeCall {
    let bytes = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
    Arc::new(move |_| (Method::POST, path.clone(), bytes.clone()))
}

/// A query request whose body depends on the request number.
fn post_each(namespace: &str, body: impl Fn(u64) -> Value + Send + Sync + 'static) -> MakeCall {
    let path = format!("/api/v1/{namespace}/query");
    Arc::new(move |n| {
        let bytes = Bytes::from(serde_json::to_vec(&body(n)).unwrap_or_default());
        (Method::POST, path.clone(), bytes)
    })
}

/// Both groupings agree: the same regions, exact sums and counts, averages to 1e-9.
pub(super) fn same_groups(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_array(), b.as_array()) else {
        return false;
    };
    let close = |x: &Value, y: &Value, tolerance: f64| match (x.as_f64(), y.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= tolerance * x.abs().max(1.0),
        _ => false,
    };
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x["region"] == y["region"]
                && close(&x["sum_amount"], &y["sum_amount"], 0.0)
                && close(&x["count"], &y["count"], 0.0)
                && close(&x["avg_discount"], &y["avg_discount"], 1e-9)
        })
}

/// The figures that talk to the server.
pub struct Ctx<'a> {
    /// The command's arguments.
    pub args: &'a QueryArgs,
    /// Documents of each kind.
    pub sizes: Sizes,
    /// SQLite, loaded.
    pub reference: &'a Reference,
    /// The server, loaded.
    pub server: &'a Arc<Server>,
    /// The runtime the HTTP side runs on.
    pub runtime: &'a tokio::runtime::Runtime,
    /// What loading set up.
    pub setup: &'a Setup,
}

impl Ctx<'_> {
    fn target(&self) -> Result<Target, BenchError> {
        let (addr, host) = crate::load::loopback_target(self.server.url())?;
        Ok(Target { addr, host })
    }

    /// Runs the driver for `--secs` on `connections` connections.
    fn drive(&self, connections: usize, min_each: u64, make: MakeCall) -> Result<Load, BenchError> {
        let target = self.target()?;
        self.runtime.block_on(driver::drive(
            &target,
            connections,
            self.args.secs,
            min_each,
            make,
        ))
    }

    fn query(&self, namespace: &str, body: &Value) -> Answer {
        self.runtime.block_on(self.server.query(namespace, body))
    }

    /// `GET /api/v1/users/by/email/<v>` against `GET /api/v1/users/<key>`.
    pub fn http_lookup(
        &self,
        rows: &mut Vec<Row>,
        checks: &mut Vec<Check>,
    ) -> Result<(), BenchError> {
        let users = self.sizes.users;
        let probe = probe_user(users);
        let path = format!("/api/v1/users/by/email/{}", data::email(probe));
        let answer = self
            .runtime
            .block_on(self.server.call(Method::GET, &path, None));
        let found = self.reference.user_by_email(&data::email(probe))?;
        checks.push(Check::equal(
            "point lookup by email, HTTP: keys found",
            json!(found.into_iter().collect::<Vec<_>>()),
            answer
                .as_ref()
                .map(|a| json!(result_keys(a)))
                .map_err(Clone::clone),
        ));
        let get = Arc::new(move |n: u64| {
            let path = format!("/api/v1/users/u{}", data::mix(n, 98) % users);
            (Method::GET, path, Bytes::new())
        });
        let by_key = self.drive(self.args.connections, 10, get)?;
        let by_index = match (&answer, &self.setup.email_index) {
            (Ok(_), Ok(())) => {
                let make = Arc::new(move |n: u64| {
                    let email = data::email(data::mix(n, 97) % users);
                    (
                        Method::GET,
                        format!("/api/v1/users/by/email/{email}"),
                        Bytes::new(),
                    )
                });
                Some(self.drive(self.args.connections, 10, make)?)
            }
            _ => None,
        };
        let koru = match (&by_index, &answer, &self.setup.email_index) {
            (Some(load), _, _) => load.rate(),
            (None, Err(e), _) | (None, Ok(_), Err(e)) => Measure::Unavailable(e.clone()),
            (None, Ok(_), Ok(())) => Measure::Unavailable("not run".into()),
        };
        let detail = by_index.as_ref().map_or_else(|| "-".into(), Load::detail);
        rows.push(
            Row::compare(
                "point lookup by email over HTTP vs GET by key",
                "req/s",
                koru,
                "GET by key",
                by_key.rate(),
                Goal::AtLeast(0.7),
            )
            .with_detail(format!("by email: {detail}; by key: {}", by_key.detail())),
        );
        Ok(())
    }

    /// A filter on the indexed `cohort` against the same on the unindexed `cohort_copy`.
    pub fn selective_filter(
        &self,
        rows: &mut Vec<Row>,
        checks: &mut Vec<Check>,
    ) -> Result<(), BenchError> {
        let cohorts = self.sizes.users.div_ceil(10);
        let probe = data::user(probe_user(self.sizes.users)).cohort;
        let mut expected = self.reference.users_in_cohort("cohort", probe)?;
        expected.sort();
        let answer = self.query("users", &filter_body("cohort", probe, None));
        checks.push(Check::equal(
            "selective filter (cohort = c): keys",
            json!(expected),
            answer
                .as_ref()
                .map(|a| json!(result_keys(a)))
                .map_err(Clone::clone),
        ));
        let pick = move |n: u64| data::mix(n, 96) % cohorts;
        let scan = self.drive(
            1,
            2,
            post_each("users", move |n| filter_body("cohort_copy", pick(n), None)),
        )?;
        let indexed = match (&answer, &self.setup.cohort_index) {
            (Ok(_), Ok(())) => {
                let load = self.drive(
                    1,
                    5,
                    post_each("users", move |n| filter_body("cohort", pick(n), None)),
                )?;
                Ok(load)
            }
            (Err(e), _) => Err(e.clone()),
            (_, Err(e)) => Err(format!("no index on cohort: {e}")),
        };
        let sqlite_indexed = driver::repeat(self.args.secs, 5, |n| {
            self.reference
                .users_in_cohort("cohort", pick(n))
                .map(|_| ())
        })?;
        let sqlite_scan = driver::repeat(self.args.secs, 2, |n| {
            self.reference
                .users_in_cohort("cohort_copy", pick(n))
                .map(|_| ())
        })?;
        // A planner may refuse the scan of a large namespace (400 with a suggestion): then
        // there is no speed-up to report, only the indexed figure in the detail.
        let koru = match (&indexed, scan.p50()) {
            (Err(e), _) => Measure::Unavailable(e.clone()),
            (Ok(_), Measure::Unavailable(e)) => Measure::Unavailable(format!("the scan: {e}")),
            (Ok(load), Measure::Value(_)) => match load.p50() {
                Measure::Value(p50) => Measure::Value(scan.p50_ms / p50.max(1e-6)),
                missing => missing,
            },
        };
        let indexed_detail = indexed.as_ref().map_or_else(|_| "-".into(), Load::detail);
        rows.push(
            Row::compare(
                "selective filter: speed-up of the index over a scan",
                "x",
                koru,
                "SQLite",
                Measure::Value(sqlite_scan.p50_ms / sqlite_indexed.p50_ms.max(1e-6)),
                Goal::Report,
            )
            .with_detail(format!(
                "KoruDelta indexed: {indexed_detail}; scan: {}; SQLite indexed p50 {:.3} ms, scan p50 {:.3} ms",
                scan.detail(),
                sqlite_indexed.p50_ms,
                sqlite_scan.p50_ms
            )),
        );
        Ok(())
    }

    /// `group_by region` with sum, avg and count over the sales.
    pub fn group_by(&self, rows: &mut Vec<Row>, checks: &mut Vec<Check>) -> Result<(), BenchError> {
        let expected = Value::from(self.reference.groups()?);
        let answer = self.query("sales", &group_body()).and_then(|a| {
            let Some(groups) = a["groups"].as_array() else {
                return Err("the answer has no groups (group_by is not evaluated)".into());
            };
            let mut groups: Vec<Value> = groups
                .iter()
                .map(|g| {
                    json!({
                        "region": g["region"],
                        "sum_amount": g["sum_amount"],
                        "avg_discount": g["avg_discount"],
                        "count": g["count"],
                    })
                })
                .collect();
            groups.sort_by(|x, y| x["region"].as_str().cmp(&y["region"].as_str()));
            Ok(Value::from(groups))
        });
        checks.push(Check::new(
            "group by region: sums, averages, counts",
            expected,
            answer.clone(),
            same_groups,
        ));
        let koru = match &answer {
            Ok(_) => {
                let load = self.drive(1, 3, post("/api/v1/sales/query".into(), &group_body()))?;
                Ok(load)
            }
            Err(e) => Err(e.clone()),
        };
        let sqlite = driver::repeat(self.args.secs, 3, |_| self.reference.groups().map(|_| ()))?;
        rows.push(time_row(
            format!(
                "group_by region, sum/avg/count, {} sales",
                thousands(self.sizes.sales as f64)
            ),
            koru,
            "SQLite",
            &sqlite,
        ));
        Ok(())
    }

    /// The join of orders to premium customers, on their keys and on their indexed `id`.
    pub fn join(&self, rows: &mut Vec<Row>, checks: &mut Vec<Check>) -> Result<(), BenchError> {
        for (right, sql) in [("_key", JOIN_ON_KEY_SQL), ("id", JOIN_ON_ID_SQL)] {
            let expected = self.reference.join(sql)?.len() as u64;
            let answer = self.query("orders", &join_body(right)).and_then(|a| {
                let count = a["total"]
                    .as_u64()
                    .unwrap_or_else(|| a["results"].as_array().map_or(0, |r| r.len() as u64));
                if count == 0 && expected > 0 {
                    return Err("the answer has no rows (the join is not evaluated)".into());
                }
                Ok(Value::from(count))
            });
            checks.push(Check::equal(
                &format!("join on {right}: row count"),
                Value::from(expected),
                answer.clone(),
            ));
            let koru = match &answer {
                Ok(_) => {
                    Ok(self.drive(1, 3, post("/api/v1/orders/query".into(), &join_body(right)))?)
                }
                Err(e) => Err(e.clone()),
            };
            let sqlite =
                driver::repeat(self.args.secs, 3, |_| self.reference.join(sql).map(|_| ()))?;
            let mut row = time_row(
                format!(
                    "join {} orders to {} customers (premium), on {right}",
                    thousands(self.sizes.orders as f64),
                    thousands(self.sizes.customers as f64)
                ),
                koru,
                "SQLite",
                &sqlite,
            );
            if right == "id"
                && let Err(e) = &self.setup.id_index
            {
                row.detail
                    .push_str(&format!("; index on customers.id: {e}"));
            }
            rows.push(row);
        }
        Ok(())
    }

    /// `database +performance -slow` over the bios against FTS5's `performance NOT slow`.
    pub fn text(&self, rows: &mut Vec<Row>, checks: &mut Vec<Check>) -> Result<(), BenchError> {
        let matches = self.reference.text_matches()?;
        let top = self.reference.text_search()?.len() as u64;
        let answer = self.query("users", &text_body()).and_then(|a| {
            let results = a["results"].as_array().cloned().unwrap_or_default();
            let off = results.iter().find(|r| {
                let bio = r["value"]["bio"].as_str().unwrap_or("");
                !data::bio_matches(bio)
            });
            if let Some(row) = off {
                return Err(format!(
                    "a result does not match the query (text_search is not evaluated): {}",
                    row["key"]
                ));
            }
            if results.is_empty() && matches > 0 {
                return Err("the answer has no rows".into());
            }
            Ok(a)
        });
        let answer = match (&self.setup.bio_index, answer) {
            (Err(e), _) => Err(format!("no text index on bio: {e}")),
            (Ok(()), a) => a,
        };
        checks.push(Check::equal(
            "text search: rows of the top 10",
            Value::from(top),
            answer
                .as_ref()
                .map(|a| Value::from(a["results"].as_array().map_or(0, Vec::len)))
                .map_err(Clone::clone),
        ));
        if let Ok(total) = answer.as_ref().map(|a| a["total"].clone())
            && total.is_u64()
        {
            checks.push(Check::equal(
                "text search: matching documents",
                Value::from(matches),
                Ok(total),
            ));
        }
        let koru = match &answer {
            Ok(_) => Ok(self.drive(
                self.args.connections,
                10,
                post("/api/v1/users/query".into(), &text_body()),
            )?),
            Err(e) => Err(e.clone()),
        };
        let sqlite = driver::repeat(self.args.secs, 10, |_| {
            self.reference.text_search().map(|_| ())
        })?;
        let (measure, detail) = match &koru {
            Ok(load) => (load.rate(), load.detail()),
            Err(e) => (Measure::Unavailable(e.clone()), "-".into()),
        };
        rows.push(
            Row::compare(
                format!(
                    "full text, {} bios, top 10",
                    thousands(self.sizes.users as f64)
                ),
                "queries/s",
                measure,
                "SQLite FTS5",
                sqlite.rate(),
                Goal::AtLeast(1.0),
            )
            .with_detail(format!(
                "KoruDelta: {detail}; SQLite FTS5 (one thread, {matches} matches): {}",
                sqlite.detail()
            )),
        );
        Ok(())
    }

    /// The cohort filter as of the moment half the users were written, against now.
    pub fn as_of(&self, rows: &mut Vec<Row>, checks: &mut Vec<Check>) -> Result<(), BenchError> {
        // Cohorts wholly in the first half of the users: the same answer then and now.
        let cohorts = (self.sizes.users / 20).max(1);
        let label = match &self.setup.cohort_index {
            Ok(()) => "indexed filter",
            Err(_) => "scan: no cohort index",
        };
        let figure = format!("as-of query 50% back vs now, {label}");
        let mid = match &self.setup.mid {
            Ok(mid) => mid.clone(),
            Err(e) => {
                rows.push(Row::single(figure, "ms", Measure::Unavailable(e.clone())));
                return Ok(());
            }
        };
        let probe = data::mix(1, 95) % cohorts;
        let mut expected = self.reference.users_in_cohort("cohort", probe)?;
        expected.sort();
        let answer = self.query("users", &filter_body("cohort", probe, Some(mid.as_str())));
        checks.push(Check::equal(
            "as-of filter at 50% of history: keys",
            json!(expected),
            answer
                .as_ref()
                .map(|a| json!(result_keys(a)))
                .map_err(Clone::clone),
        ));
        let pick = move |n: u64| data::mix(n, 94) % cohorts;
        let now = self.drive(
            1,
            5,
            post_each("users", move |n| filter_body("cohort", pick(n), None)),
        )?;
        let then = match &answer {
            Ok(_) => {
                let mid = mid.clone();
                Ok(self.drive(
                    1,
                    5,
                    post_each("users", move |n| {
                        filter_body("cohort", pick(n), Some(mid.as_str()))
                    }),
                )?)
            }
            Err(e) => Err(e.clone()),
        };
        rows.push(time_row(figure, then, "now", &now));
        Ok(())
    }

    /// PUT throughput into a namespace with two value indexes and a text index against one
    /// without.
    pub fn write_cost(&self, rows: &mut Vec<Row>) -> Result<(), BenchError> {
        let created: Result<(), String> = self.runtime.block_on(async {
            for def in [
                json!({"field": "email", "unique": true}),
                json!({"field": "cohort"}),
                json!({"field": "bio", "kind": "text"}),
            ] {
                ok(self.server.create_index("windexed", def).await)?;
            }
            self.server.wait_ready("windexed").await
        });
        let put = |namespace: &'static str| -> MakeCall {
            Arc::new(move |n: u64| {
                let user = data::user(n);
                let body = format!("{{\"value\":{}}}", data::json(&user));
                (
                    Method::PUT,
                    format!("/api/v1/{namespace}/w{n}"),
                    Bytes::from(body),
                )
            })
        };
        let plain = self.drive(self.args.connections, 10, put("wplain"))?;
        let indexed = match created {
            Ok(()) => Ok(self.drive(self.args.connections, 10, put("windexed"))?),
            Err(e) => Err(format!("creating the indexes: {e}")),
        };
        let (measure, detail) = match &indexed {
            Ok(load) => (load.rate(), load.detail()),
            Err(e) => (Measure::Unavailable(e.clone()), "-".into()),
        };
        rows.push(
            Row::compare(
                "PUT with 2 value + 1 text index vs none",
                "PUT/s",
                measure,
                "no index",
                plain.rate(),
                Goal::AtLeast(0.6),
            )
            .with_detail(format!("indexed: {detail}; no index: {}", plain.detail())),
        );
        Ok(())
    }

    /// The server's RSS growth while a value index on `users.name` is built, per entry.
    pub fn index_memory(&self, rows: &mut Vec<Row>) -> Result<(), BenchError> {
        let before = self.server.rss_bytes();
        let built: Result<(), String> = self.runtime.block_on(async {
            ok(self
                .server
                .create_index("users", json!({"field": "name"}))
                .await)?;
            self.server.wait_ready("users").await
        });
        let after = self.server.rss_bytes();
        let entries = self.sizes.users;
        let figure = "memory per value-index entry (server RSS growth)";
        let row = match (built, before, after) {
            (Ok(()), Some(before), Some(after)) => {
                let grown = after.saturating_sub(before);
                Row::single(
                    figure,
                    "bytes",
                    Measure::Value(grown as f64 / entries as f64),
                )
                .with_detail(format!(
                    "VmRSS {:.1} -> {:.1} MiB for {} entries (index on users.name)",
                    before as f64 / 1048576.0,
                    after as f64 / 1048576.0,
                    thousands(entries as f64)
                ))
            }
            (Err(e), _, _) => Row::single(figure, "bytes", Measure::Unavailable(e)),
            _ => Row::single(
                figure,
                "bytes",
                Measure::Unavailable("VmRSS is not readable".into()),
            ),
        };
        rows.push(row);
        Ok(())
    }
}

/// A row comparing latencies (p50, ms): KoruDelta's run or why there is none against a reference.
fn time_row(figure: String, koru: Result<Load, String>, name: &str, reference: &Load) -> Row {
    let (measure, detail) = match &koru {
        Ok(load) => (load.p50(), load.detail()),
        Err(e) => (Measure::Unavailable(e.clone()), "-".into()),
    };
    Row::compare(
        figure,
        "ms",
        measure,
        name,
        reference.p50(),
        Goal::AtMost(2.0),
    )
    .with_detail(format!(
        "KoruDelta: {detail}; {name}: {}",
        reference.detail()
    ))
}
