//! Runs a query: plans the way in, reads candidates as of the moment asked, rechecks the whole
//! filter on every document, then joins, aggregates, sorts and limits within the query's budget.
//! Synchronous: the HTTP layer and [`Store::query`] run it on the blocking pool.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::aggregate::{AggregateError, AggregateLimits, Aggregator, Group};
use super::error::{Limit, QueryError};
use super::filter::{FilterExpr, Sort, Sources, compare, field, resolve, row_field, split_name};
use super::join::{self, JoinError, JoinKind, JoinLimits, JoinMethod};
use super::limits::{Budget, QueryLimits};
use super::plan::{self, Access, Catalog, Plan, Usable};
use super::row::{ResultRow, Row};
use super::spec::{Query, RELEVANCE};
use crate::indexes::{IndexKind, IndexStatus};
use crate::names;
use crate::store::{Fetched, Store};

/// A query's answer; serializes to exactly the HTTP body: `{"results": [...], "total",
/// "namespace", "plan"?}` or `{"groups": [...], "total", "namespace", "plan"?}`.
#[derive(Debug, Serialize)]
pub struct QueryAnswer {
    /// The documents, for a query without aggregation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<ResultRow>>,
    /// The group rows, for an aggregation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<Group>>,
    /// Rows (or groups) matched, before the limit.
    pub total: usize,
    /// The namespace queried (a view's name, for a view).
    pub namespace: String,
    /// The plan and what it read, when `explain` was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Value>,
}

impl Store {
    /// Answers `query` over `namespace` on the blocking pool (the roadmap's `db.query("sales",
    /// Query::new()...).await`).
    #[cfg(feature = "server")]
    pub async fn query(&self, namespace: &str, query: Query) -> Result<QueryAnswer, QueryError> {
        let (store, namespace) = (self.clone(), namespace.to_string());
        tokio::task::spawn_blocking(move || store.query_blocking(&namespace, &query))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "a query panicked or was cancelled");
                QueryError::Interrupted
            })?
    }

    /// Answers `query` over `namespace` on this thread, within the store's query limits.
    pub fn query_blocking(
        &self,
        namespace: &str,
        query: &Query,
    ) -> Result<QueryAnswer, QueryError> {
        execute(self, namespace, query, &self.config().query)
    }
}

/// Most hits one text search reads, whatever the scan budget.
pub const MAX_TEXT_HITS: usize = 100_000;

/// One document that passed the (left side of the) filter. Its answer row is built only once
/// it is known to be answered: aggregations and joins drop most documents they read.
struct Matched {
    key: String,
    /// The version read (its value moved to `text`).
    fetched: Fetched,
    text: String,
    parsed: Value,
    relevance: Option<f32>,
    highlight: Option<String>,
}

impl Matched {
    /// Bytes it holds while it waits, roughly (the budgets' unit).
    fn bytes(&self) -> usize {
        self.text.len() + self.key.len() + 96
    }

    /// The answer's row, with `parsed` as the document.
    fn into_row(self, parsed: Value) -> Result<ResultRow, QueryError> {
        Ok(ResultRow {
            row: Row::of(self.key, &self.fetched, self.text, parsed)?,
            relevance: self.relevance,
            highlight: self.highlight,
            joined: None,
        })
    }

    /// A second answer row of the same document (it matched several joined documents).
    fn to_row(&self, parsed: &Value) -> Result<ResultRow, QueryError> {
        Ok(ResultRow {
            row: Row::of(
                self.key.clone(),
                &self.fetched,
                self.text.clone(),
                parsed.clone(),
            )?,
            relevance: self.relevance,
            highlight: self.highlight.clone(),
            joined: None,
        })
    }
}

/// Runs `q` over `namespace` within `limits`.
pub fn execute(
    store: &Store,
    namespace: &str,
    q: &Query,
    limits: &QueryLimits,
) -> Result<QueryAnswer, QueryError> {
    names::validate_namespace(namespace).map_err(|e| QueryError::Invalid(e.to_string()))?;
    q.validate(namespace)?;
    let at = q.at_micros()?;
    let joined_ns = q.join.as_ref().map(|j| j.namespace.as_str());
    let mut budget = Budget::new(*limits);
    // Before a join only the conditions on the queried side can be checked; the whole filter is
    // checked again on each joined row.
    let left_filter = match joined_ns {
        None => q.filter.clone(),
        Some(j) => left_only(q.filter.as_ref(), namespace, j),
    };
    let mut explain = Explain::default();
    // A join holds every document of its left side until the join has run; growing the vector
    // from empty copied them over and over (page faults and memmove were a fifth of a join's
    // time). The room is address space only until rows arrive.
    let mut matched = match joined_ns {
        Some(_) => Vec::with_capacity(store.live_keys(namespace).min(limits.max_scan)),
        None => Vec::new(),
    };
    // Without a join, documents go straight into the aggregation; with one, after it.
    let spec = (q.is_aggregation() && q.join.is_none()).then(|| q.aggregation());
    let mut agg = spec
        .as_ref()
        .map(|s| Aggregator::new(s, aggregate_limits(limits)))
        .transpose()
        .map_err(aggregate_error)?;
    let mut rows = RowSink::new(q, namespace, joined_ns);
    let mut sink = |mut m: Matched, budget: &mut Budget| -> Result<(), QueryError> {
        if let Some(agg) = &mut agg {
            return agg.add(&m.parsed).map_err(aggregate_error);
        }
        if joined_ns.is_some() {
            budget.hold(m.bytes())?;
            matched.push(m);
            Ok(())
        } else {
            let parsed = std::mem::take(&mut m.parsed);
            rows.push(m.into_row(parsed)?, budget)
        }
    };
    gather(
        store,
        namespace,
        q,
        at,
        left_filter.as_ref(),
        joined_ns,
        &mut budget,
        &mut explain,
        &mut sink,
    )?;
    let (total, results, groups) = if let Some(j) = &q.join {
        // The parsed documents move to the join's input and back into the rows answered, so
        // each is held once.
        let mut left: Vec<Value> = matched
            .iter_mut()
            .map(|m| std::mem::take(&mut m.parsed))
            .collect();
        let join_limits = JoinLimits {
            max_right_docs: limits.max_scan,
            max_bytes: limits.max_memory_bytes.saturating_sub(budget.held),
        };
        // An inner join may drop joined documents failing the conditions on their side alone
        // (a left join may not: a dropped match would become a row joined to nothing).
        let right_filter = match j.kind {
            JoinKind::Inner => right_only(q.filter.as_ref(), namespace, &j.namespace),
            JoinKind::Left => None,
        };
        let keep = |doc: &Value| {
            right_filter.as_ref().is_none_or(|f| {
                f.matches_by(
                    &|name| match split_name(name, namespace, Some(&j.namespace)) {
                        (Some(_), path) => field(doc, path),
                        (None, _) => None,
                    },
                )
            })
        };
        let keep: join::RightFilter<'_> = &keep;
        let (joined, how) =
            join::run_planned(store, &left, j, at, &join_limits, Some(keep)).map_err(join_error)?;
        let (method, index) = match &how.method {
            JoinMethod::Nothing => ("nothing", None),
            JoinMethod::Key => ("key", None),
            JoinMethod::Index(name) => ("index", Some(name.as_str())),
            JoinMethod::Hash => ("hash", None),
        };
        explain.join = Some(json!({
            "namespace": j.namespace,
            "method": method,
            "index": index,
            "right_read": how.right_read,
            "right_matched": how.right_matched,
            "rows": joined.len(),
        }));
        // The rows answered are counted again as they are pushed.
        budget.release(matched.iter().map(Matched::bytes).sum());
        let mut slots: Vec<Option<Matched>> = matched.into_iter().map(Some).collect();
        let spec = q.is_aggregation().then(|| q.aggregation());
        let mut agg = spec
            .as_ref()
            .map(|s| Aggregator::new(s, aggregate_limits(limits)))
            .transpose()
            .map_err(aggregate_error)?;
        let mut joined = joined.into_iter().peekable();
        while let Some(jr) = joined.next() {
            let (Some(Some(base)), Some(doc)) = (slots.get(jr.left), left.get(jr.left)) else {
                continue;
            };
            let sources = Sources {
                namespace,
                doc,
                joined: Some((&j.namespace, jr.right.as_ref().map(|d| &d.value))),
            };
            if !q.filter.as_ref().is_none_or(|f| f.matches_in(&sources)) {
                continue;
            }
            if let (Some(agg), Some(spec)) = (&mut agg, &spec) {
                agg.add(&project(spec, &sources)).map_err(aggregate_error)?;
                continue;
            }
            // The last joined row of a left document takes it; earlier ones copy it.
            let last = joined.peek().is_none_or(|next| next.left != jr.left);
            let row = if last {
                let parsed = left.get_mut(jr.left).map(std::mem::take);
                match slots.get_mut(jr.left).and_then(Option::take) {
                    Some(m) => Some(m.into_row(parsed.unwrap_or_default())?),
                    None => None,
                }
            } else {
                Some(base.to_row(doc)?)
            };
            if let Some(mut row) = row {
                row.joined = Some((j.namespace.clone(), jr.right));
                rows.push(row, &mut budget)?;
            }
        }
        match agg {
            Some(agg) => finish_groups(q, agg.finish(), &budget)?,
            None => {
                let (total, results) = rows.finish(&mut budget)?;
                (total, Some(results), None)
            }
        }
    } else if let Some(agg) = agg {
        finish_groups(q, agg.finish(), &budget)?
    } else {
        let (read, results) = rows.finish(&mut budget)?;
        (explain.text_total.unwrap_or(read), Some(results), None)
    };
    let returned = results
        .as_ref()
        .map_or_else(|| groups.as_ref().map_or(0, Vec::len), Vec::len);
    Ok(QueryAnswer {
        results,
        groups,
        total,
        namespace: namespace.to_string(),
        plan: q.explain.then(|| explain.to_json(budget.scanned, returned)),
    })
}

/// The EXPLAIN of a run.
#[derive(Default)]
struct Explain {
    plan: Option<Plan>,
    text_index: Option<String>,
    /// Documents a top-k text search matched in all (only the first `limit` were read).
    text_total: Option<usize>,
    fell_back: Option<String>,
    join: Option<Value>,
    scan_warning: Option<String>,
}

impl Explain {
    fn to_json(&self, scanned: usize, returned: usize) -> Value {
        let mut out = Map::new();
        let access = match (&self.text_index, self.plan.as_ref().map(|p| &p.access)) {
            (Some(_), _) => "text",
            (None, Some(Access::Index(_))) if self.fell_back.is_none() => "index",
            _ => "scan",
        };
        out.insert("access".into(), json!(access));
        if let Some(i) = &self.text_index {
            out.insert("index".into(), json!(i));
        }
        if let Some(n) = self.text_total {
            // Only the first `limit` hits were read; the rest were counted by the search.
            out.insert("top_k".into(), json!(true));
            out.insert("text_matches".into(), json!(n));
        }
        if let Some(p) = &self.plan {
            if let (Access::Index(probes), None) = (&p.access, &self.fell_back) {
                if let [one] = probes.as_slice() {
                    out.insert("index".into(), json!(one.index));
                    out.insert("probe".into(), plan::probe_json(&one.probe));
                } else {
                    let union: Vec<Value> = probes
                        .iter()
                        .map(|p| json!({"index": p.index, "probe": plan::probe_json(&p.probe)}))
                        .collect();
                    out.insert("union".into(), Value::Array(union));
                }
            }
            out.insert("estimated_rows".into(), json!(p.estimated_rows));
            out.insert("rejected".into(), json!(p.rejected));
        }
        out.insert("rows_scanned".into(), json!(scanned));
        out.insert("rows_returned".into(), json!(returned));
        if let Some(why) = &self.fell_back {
            out.insert("fell_back".into(), json!(why));
        }
        if let Some(j) = &self.join {
            out.insert("join".into(), j.clone());
        }
        if let Some(w) = &self.scan_warning {
            out.insert("warning".into(), json!(w));
        }
        Value::Object(out)
    }
}

/// The conjuncts of `filter` naming only the queried namespace's fields.
fn left_only(filter: Option<&FilterExpr>, namespace: &str, joined: &str) -> Option<FilterExpr> {
    conjuncts(filter, &|name| {
        split_name(name, namespace, Some(joined)).0.is_none()
    })
}

/// The conjuncts of `filter` naming only the joined namespace's fields.
fn right_only(filter: Option<&FilterExpr>, namespace: &str, joined: &str) -> Option<FilterExpr> {
    conjuncts(filter, &|name| {
        split_name(name, namespace, Some(joined)).0.is_some()
    })
}

/// The conjuncts of `filter` (the filter itself, when not an `and`) whose every field name
/// passes `side`.
fn conjuncts(filter: Option<&FilterExpr>, side: &dyn Fn(&str) -> bool) -> Option<FilterExpr> {
    let on_side = |f: &FilterExpr| {
        let mut all = true;
        f.for_each_leaf(&mut |leaf| all &= side(&leaf.field));
        all
    };
    match filter? {
        FilterExpr::And { and } => {
            let kept: Vec<FilterExpr> = and.iter().filter(|b| on_side(b)).cloned().collect();
            (!kept.is_empty()).then(|| FilterExpr::and(kept))
        }
        f => on_side(f).then(|| f.clone()),
    }
}

/// Reads the documents the access path yields as of `at`, rechecks `filter` on each, and hands
/// the passing ones to `sink`.
#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
fn gather(
    store: &Store,
    namespace: &str,
    q: &Query,
    at: Option<i64>,
    filter: Option<&FilterExpr>,
    joined_ns: Option<&str>,
    budget: &mut Budget,
    explain: &mut Explain,
    sink: &mut impl FnMut(Matched, &mut Budget) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    let passes = |parsed: &Value| {
        filter.is_none_or(|f| {
            f.matches_in(&Sources {
                namespace,
                doc: parsed,
                joined: joined_ns.map(|j| (j, None)),
            })
        })
    };
    let max_candidates = budget.limits.max_scan;
    if let Some(ts) = &q.text_search {
        let index = text_index(store, namespace, &ts.field)?;
        // A search engine's top-k collector may reserve room for all it is asked for, so the
        // hits asked for are capped apart from the scan budget.
        let cap = max_candidates.min(MAX_TEXT_HITS);
        // Ranked by relevance alone, with nothing else to check: only the first `limit` hits are
        // read, and the engine counts the rest in the same pass.
        let top_k = q
            .limit
            .filter(|_| filter.is_none() && joined_ns.is_none() && !q.is_aggregation())
            .filter(|_| {
                q.sort.is_empty()
                    || (q.sort.len() == 1 && q.sort[0].field == RELEVANCE && q.sort[0].descending)
            })
            .map(|k| k.min(cap));
        let asked = top_k.unwrap_or(cap.saturating_add(1));
        let (hits, total) = store
            .text_search_counted(namespace, &index, &ts.query, at, asked, ts.highlight)?
            .ok_or_else(|| no_text_index(namespace, &ts.field, "is not ready"))?;
        if top_k.is_none() && hits.len() > cap {
            return Err(QueryError::limit(
                Limit::Scan,
                format!("the text search matches more than {cap} documents"),
                "make the search more specific (+required words, phrases) or filter it",
            ));
        }
        if top_k.is_some() {
            explain.text_total = Some(total);
        }
        explain.text_index = Some(index);
        for hit in hits {
            budget.read_one()?;
            let Some(mut fetched) = fetch_at(store, namespace, &hit.key, at)? else {
                continue;
            };
            let (text, parsed) = parse(&hit.key, &mut fetched)?;
            if passes(&parsed) {
                let mut m = matched(hit.key, fetched, text, parsed);
                m.relevance = Some(hit.score);
                m.highlight = hit.highlight;
                sink(m, budget)?;
            }
        }
        return Ok(());
    }
    let usable: Vec<Usable> = store
        .indexes(namespace)
        .into_iter()
        .filter(|i| i.def.kind == IndexKind::Value && i.status == IndexStatus::Ready)
        .map(|i| Usable {
            name: i.def.name,
            field: i.def.field,
        })
        .collect();
    let estimate =
        |name: &str, probe: &crate::indexes::Probe| store.index_estimate(namespace, name, probe);
    let catalog = Catalog {
        namespace,
        joined: joined_ns,
        indexes: &usable,
        live: store.live_keys(namespace) as u64,
        estimate: &estimate,
    };
    let chosen = plan::choose(filter, &catalog);
    let mut keys: Option<BTreeSet<String>> = None;
    if let Access::Index(probes) = &chosen.access {
        let mut union = BTreeSet::new();
        for p in probes {
            match store.index_lookup(
                namespace,
                &p.index,
                &p.probe,
                at,
                max_candidates.saturating_add(1),
            )? {
                Some(found) => union.extend(found),
                None => {
                    explain.fell_back = Some(format!(
                        "index {:?} was not ready when read; scanned instead",
                        p.index
                    ));
                    break;
                }
            }
        }
        if explain.fell_back.is_none() {
            keys = Some(union);
        }
    }
    let suggest = chosen.suggest.clone();
    explain.plan = Some(chosen);
    match keys {
        Some(keys) => {
            for key in keys {
                budget.read_one()?;
                let Some(mut fetched) = fetch_at(store, namespace, &key, at)? else {
                    continue;
                };
                let (text, parsed) = parse(&key, &mut fetched)?;
                if passes(&parsed) {
                    sink(matched(key, fetched, text, parsed), budget)?;
                }
            }
        }
        None => {
            let snapshot = store.snapshot(namespace, at);
            if snapshot.len() > budget.limits.max_scan {
                return Err(no_plan(
                    namespace,
                    snapshot.len(),
                    budget.limits.max_scan,
                    suggest.as_deref(),
                ));
            }
            if snapshot.len() as u64 > plan::SCAN_WARNING_ROWS {
                explain.scan_warning = Some(match &suggest {
                    Some(f) => {
                        format!("scans {} documents; create an index on {f}", snapshot.len())
                    }
                    None => format!(
                        "scans {} documents; filter on an indexed field",
                        snapshot.len()
                    ),
                });
            }
            for (key, version) in snapshot {
                budget.read_one()?;
                let mut fetched = store.fetch(version, None)?;
                let (text, parsed) = parse(&key, &mut fetched)?;
                if passes(&parsed) {
                    sink(matched(key, fetched, text, parsed), budget)?;
                }
            }
        }
    }
    Ok(())
}

fn matched(key: String, fetched: Fetched, text: String, parsed: Value) -> Matched {
    Matched {
        key,
        fetched,
        text,
        parsed,
        relevance: None,
        highlight: None,
    }
}

/// A key's version as of `at` (now when None), if live then.
fn fetch_at(
    store: &Store,
    ns: &str,
    key: &str,
    at: Option<i64>,
) -> Result<Option<Fetched>, QueryError> {
    Ok(match at {
        Some(t) => store.get_at(ns, key, t)?,
        None => store.get(ns, key)?,
    })
}

/// A fetched value's text and parsed form.
fn parse(key: &str, fetched: &mut Fetched) -> Result<(String, Value), QueryError> {
    let text = fetched.value.take().unwrap_or_else(|| "null".into());
    let parsed =
        serde_json::from_str(&text).map_err(|_| QueryError::Unreadable(key.to_string()))?;
    Ok((text, parsed))
}

/// The ready text index over `field`, or the error suggesting one.
fn text_index(store: &Store, namespace: &str, field: &str) -> Result<String, QueryError> {
    let mut state = "does not exist";
    for i in store.indexes(namespace) {
        if i.def.kind == IndexKind::Text && i.def.field == field {
            if i.status == IndexStatus::Ready {
                return Ok(i.def.name);
            }
            state = "is still building";
        }
    }
    Err(no_text_index(namespace, field, state))
}

fn no_text_index(namespace: &str, field: &str, state: &str) -> QueryError {
    QueryError::NoTextIndex(format!(
        "a text search of {field:?} needs a ready text index on it, and one {state}; create one \
         with POST /api/v1/{namespace}/indexes {{\"field\": {field:?}, \"kind\": \"text\"}}"
    ))
}

fn no_plan(namespace: &str, rows: usize, max: usize, field: Option<&str>) -> QueryError {
    let advice = match field {
        Some(f) => format!(
            "create an index on {f} (POST /api/v1/{namespace}/indexes {{\"field\": {f:?}}}) and filter with eq, in, prefix or a range"
        ),
        None => "filter on an indexed field".to_string(),
    };
    QueryError::NoPlan(format!(
        "no plan answers this query within --query-max-scan ({max} documents): no ready index \
         serves the filter and a scan reads {rows}; {advice}"
    ))
}

fn aggregate_limits(limits: &QueryLimits) -> AggregateLimits {
    AggregateLimits {
        max_groups: limits.max_groups,
        max_bytes: limits.max_memory_bytes,
    }
}

fn aggregate_error(e: AggregateError) -> QueryError {
    match e {
        AggregateError::Invalid(m) => QueryError::Invalid(m),
        AggregateError::TooManyGroups { limit } => QueryError::limit(
            Limit::Groups,
            format!("the aggregation makes more than {limit} groups"),
            "group by fewer or coarser fields, or filter first",
        ),
        AggregateError::TooManyBytes { limit } => QueryError::limit(
            Limit::Memory,
            format!("the aggregation's groups hold more than {limit} bytes"),
            "group by fewer or smaller values, or filter first",
        ),
    }
}

fn join_error(e: JoinError) -> QueryError {
    match e {
        JoinError::Invalid(m) => QueryError::Invalid(m),
        JoinError::Store(e) => QueryError::Store(e),
        e @ JoinError::TooLarge { .. } => QueryError::limit(
            Limit::Scan,
            e,
            "filter the queried side more narrowly, or index the joined field",
        ),
    }
}

/// A joined row as one object holding exactly the fields an aggregation names, under those names
/// (dotted names nest), so the aggregator's path lookups read `users:region` as written.
fn project(spec: &super::aggregate::Aggregation, sources: &Sources<'_>) -> Value {
    let mut out = Value::Object(Map::new());
    let names = spec
        .group_by
        .iter()
        .map(String::as_str)
        .chain(spec.aggregate.values().map(|a| match a {
            super::aggregate::Aggregate::Sum(f)
            | super::aggregate::Aggregate::Avg(f)
            | super::aggregate::Aggregate::Count(f)
            | super::aggregate::Aggregate::Min(f)
            | super::aggregate::Aggregate::Max(f) => f.as_str(),
        }));
    for name in names {
        if name == "*" {
            continue;
        }
        let Some(v) = resolve(sources, name) else {
            continue;
        };
        let mut parts: Vec<&str> = name.split('.').collect();
        let Some(last) = parts.pop() else { continue };
        let mut at = &mut out;
        for p in parts {
            let Value::Object(map) = at else { break };
            at = map.entry(p).or_insert_with(|| Value::Object(Map::new()));
        }
        if let Value::Object(map) = at {
            map.insert(last.to_string(), v.clone());
        }
    }
    out
}

/// Orders by one key as v1 did: present values in order, missing ones last; `descending`
/// reverses the whole order.
fn order(a: Option<&Value>, b: Option<&Value>, by: &Sort) -> Ordering {
    let ord = match (a, b) {
        (Some(x), Some(y)) => compare(x, y).unwrap_or(Ordering::Equal),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    if by.descending { ord.reverse() } else { ord }
}

/// Collects result rows, keeping at most what the sort and limit need.
struct RowSink<'q> {
    rows: Vec<ResultRow>,
    /// Bytes of the rows kept.
    bytes: usize,
    total: usize,
    limit: Option<usize>,
    sort: Vec<Sort>,
    namespace: &'q str,
    joined: Option<&'q str>,
}

impl<'q> RowSink<'q> {
    fn new(q: &'q Query, namespace: &'q str, joined: Option<&'q str>) -> RowSink<'q> {
        let mut sort = q.sort.clone();
        if sort.is_empty() && q.text_search.is_some() {
            sort.push(Sort {
                field: RELEVANCE.into(),
                descending: true,
            });
        }
        RowSink {
            rows: Vec::new(),
            bytes: 0,
            total: 0,
            limit: q.limit,
            sort,
            namespace,
            joined,
        }
    }

    fn push(&mut self, row: ResultRow, budget: &mut Budget) -> Result<(), QueryError> {
        self.total += 1;
        if self.sort.is_empty() && self.limit.is_some_and(|l| self.rows.len() >= l) {
            return Ok(());
        }
        let bytes = row.bytes();
        budget.hold(bytes)?;
        self.bytes += bytes;
        self.rows.push(row);
        // Unless a sort and a limit will drop rows, every row kept is answered: past the answer's
        // budget, say so now (413) rather than reading on until memory runs out (422).
        if self.sort.is_empty() || self.limit.is_none() {
            check_result_size(self.bytes, budget)?;
        }
        if let Some(limit) = self.limit
            && !self.sort.is_empty()
            && self.rows.len() >= limit.saturating_mul(2).max(1024)
        {
            self.compact(budget);
        }
        Ok(())
    }

    /// Sorts and keeps the first `limit`: a stable sort over rows arriving in key order keeps
    /// ties in key order, so the answer is the same as sorting everything.
    fn compact(&mut self, budget: &mut Budget) {
        self.sort_rows();
        if let Some(limit) = self.limit {
            for dropped in self.rows.drain(limit.min(self.rows.len())..) {
                let bytes = dropped.bytes();
                budget.release(bytes);
                self.bytes -= bytes;
            }
        }
    }

    fn sort_rows(&mut self) {
        if self.sort.is_empty() {
            return;
        }
        let (sort, namespace, joined) = (&self.sort, self.namespace, self.joined);
        let value = |r: &ResultRow, field: &str| -> Option<Value> {
            if field == RELEVANCE {
                return r.relevance.map(|s| json!(s));
            }
            let joined_doc = r.joined.as_ref().map(|(_, d)| d.as_ref().map(|d| &d.value));
            let sources = Sources {
                namespace,
                doc: &r.row.parsed,
                joined: joined.zip(joined_doc.flatten().map(Some).or(Some(None))),
            };
            resolve(&sources, field).cloned()
        };
        self.rows.sort_by(|a, b| {
            sort.iter()
                .map(|by| {
                    order(
                        value(a, &by.field).as_ref(),
                        value(b, &by.field).as_ref(),
                        by,
                    )
                })
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        });
    }

    fn finish(mut self, budget: &mut Budget) -> Result<(usize, Vec<ResultRow>), QueryError> {
        self.compact(budget);
        check_result_size(self.bytes, budget)?;
        Ok((self.total, self.rows))
    }
}

fn check_result_size(bytes: usize, budget: &Budget) -> Result<(), QueryError> {
    if bytes > budget.limits.max_result_bytes {
        return Err(QueryError::limit(
            Limit::ResultBytes,
            format!(
                "the answer would hold about {bytes} bytes, more than {}",
                budget.limits.max_result_bytes
            ),
            "add a limit or a narrower filter",
        ));
    }
    Ok(())
}

/// Total matched, and the rows or the groups answered.
type Answered = (usize, Option<Vec<ResultRow>>, Option<Vec<Group>>);

/// Applies `having`, the sort and the limit to the groups.
fn finish_groups(q: &Query, groups: Vec<Group>, budget: &Budget) -> Result<Answered, QueryError> {
    let mut groups: Vec<Group> = match &q.having {
        Some(h) => groups.into_iter().filter(|g| h.matches_row(g)).collect(),
        None => groups,
    };
    let total = groups.len();
    if !q.sort.is_empty() {
        groups.sort_by(|a, b| {
            q.sort
                .iter()
                .map(|by| order(row_field(a, &by.field), row_field(b, &by.field), by))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        });
    }
    if let Some(limit) = q.limit {
        groups.truncate(limit);
    }
    let bytes = groups
        .iter()
        .map(|g| Value::Object(g.clone()).to_string().len())
        .sum();
    check_result_size(bytes, budget)?;
    Ok((total, None, Some(groups)))
}
