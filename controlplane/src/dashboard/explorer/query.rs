//! The query console: a v2 query (filters, sort, limit, aggregation, joins, text search,
//! EXPLAIN, `at`) run with `POST /api/v1/{ns}/query`, its rows as a table, its groups as a table
//! and bar charts, its plan as JSON, and the data plane's refusals inline with their codes.
//!
//! It is a GET form (queries only read, with a read token), so a query is a link one can share.
//! A small builder turns a field, an operator and a value into the body's `filter` (on the
//! server without JavaScript; in the page with it).

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use koru_dataplane_api::auth::Scope;
use koru_dataplane_api::data::Namespaces;
use koru_dataplane_api::rfc3339;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::dashboard::chart::BarChart;
use crate::dashboard::session::SignedIn;
use crate::dashboard::view::Layout;
use crate::dashboard::{PageError, PageResult, render};
use crate::state::AppState;

use super::client::{DataError, DataPlane, segment};
use super::{Explorer, Nav};

mod table;

use table::{Table, group_bars, table};

/// The limit added to a query of rows that gives none, so a page never asks for a whole
/// namespace.
pub const DEFAULT_LIMIT: u64 = 100;
/// The largest limit the console asks for; larger ones are lowered to it.
pub const MAX_LIMIT: u64 = 1_000;
/// Most bar charts drawn for one grouped answer (one per numeric output).
const MAX_CHARTS: usize = 4;
/// Most bars in one chart.
const MAX_BARS: usize = 50;
/// The filter builder's operators, as the data plane names them.
pub const OPERATORS: [&str; 11] = [
    "eq", "ne", "gt", "gte", "lt", "lte", "contains", "exists", "in", "prefix", "text",
];

/// This page's routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/orgs/{org}/clusters/{id}/data/query", get(page))
}

/// The console's form.
#[derive(Debug, Default, Deserialize)]
pub struct ConsoleForm {
    /// The namespace queried; absent: the form is shown without running anything.
    #[serde(default)]
    pub ns: Option<String>,
    /// The query body (JSON).
    #[serde(default)]
    pub q: Option<String>,
    /// The moment to answer as of (overrides the body's `at`).
    #[serde(default)]
    pub at: Option<String>,
    /// The builder's field.
    #[serde(default)]
    pub field: Option<String>,
    /// The builder's operator.
    #[serde(default)]
    pub op: Option<String>,
    /// The builder's value (JSON, or text taken as a string).
    #[serde(default)]
    pub value: Option<String>,
    /// Set by the builder's button: put its filter into the body.
    #[serde(default)]
    pub build: Option<String>,
}

/// Why the console did not send a query.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// The body is not a JSON object.
    #[error("the query is not a JSON object: {0}")]
    NotJson(String),
    /// The `at` moment cannot be read.
    #[error(transparent)]
    BadMoment(#[from] super::moment::BadMoment),
    /// The builder's filter is incomplete.
    #[error("{0}")]
    Builder(String),
}

impl FormError {
    /// The code shown with it, in the data plane's style.
    pub fn code(&self) -> &'static str {
        match self {
            FormError::NotJson(_) => "malformed_json",
            FormError::BadMoment(_) => "invalid_time",
            FormError::Builder(_) => "bad_request",
        }
    }
}

/// The builder's operand: JSON when it reads as JSON (`42`, `true`, `"x"`, `["a","b"]`), else the
/// text as a string; for `in`, a list separated by commas; nothing for `exists`.
pub fn operand(op: &str, text: &str) -> Value {
    let one =
        |t: &str| serde_json::from_str(t.trim()).unwrap_or_else(|_| Value::String(t.trim().into()));
    match op {
        "exists" => Value::Null,
        "in" => match one(text) {
            Value::Array(items) => Value::Array(items),
            _ => Value::Array(text.split(',').map(one).collect()),
        },
        _ => one(text),
    }
}

/// The body the console sends: `q` read as a JSON object (empty: `{}`), the builder's filter
/// when asked for, `at`, and a bounded `limit`. Notes say what it changed.
pub fn body(form: &ConsoleForm) -> Result<(Map<String, Value>, Vec<String>), FormError> {
    let text = form.q.as_deref().unwrap_or("").trim();
    let mut body = if text.is_empty() {
        Map::new()
    } else {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            Ok(other) => {
                return Err(FormError::NotJson(format!(
                    "it is {}",
                    match other {
                        Value::Array(_) => "an array",
                        Value::String(_) => "a string",
                        Value::Number(_) => "a number",
                        _ => "not an object",
                    }
                )));
            }
            Err(e) => return Err(FormError::NotJson(e.to_string())),
        }
    };
    let mut notes = Vec::new();
    if form.build.is_some() {
        let field = form.field.as_deref().unwrap_or("").trim();
        let op = form.op.as_deref().unwrap_or("eq");
        if field.is_empty() {
            return Err(FormError::Builder(
                "The filter builder needs a field, such as status or address.city.".into(),
            ));
        }
        if op == "text" {
            body.insert(
                "text_search".into(),
                json!({"field": field, "query": form.value.as_deref().unwrap_or("").trim(), "highlight": true}),
            );
        } else {
            body.insert(
                "filter".into(),
                json!({"field": field, "op": op, "value": operand(op, form.value.as_deref().unwrap_or(""))}),
            );
        }
    }
    if let Some(at) = form.at.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        body.insert(
            "at".into(),
            Value::String(rfc3339::format_micros(super::moment::parse(at)?)),
        );
    }
    let grouped = body.contains_key("group_by") || body.contains_key("aggregate");
    match body.get("limit").and_then(Value::as_u64) {
        Some(l) if l > MAX_LIMIT => {
            body.insert("limit".into(), json!(MAX_LIMIT));
            notes.push(format!(
                "The limit {l} was lowered to {MAX_LIMIT}, the most this page shows."
            ));
        }
        None if !grouped && !body.contains_key("limit") => {
            body.insert("limit".into(), json!(DEFAULT_LIMIT));
            notes.push(format!(
                "No limit was given: the first {DEFAULT_LIMIT} rows are asked for (add \"limit\" for up to {MAX_LIMIT})."
            ));
        }
        _ => {}
    }
    Ok((body, notes))
}

/// An example query the page links to.
struct Example {
    label: &'static str,
    id: &'static str,
    href: String,
    body: String,
}

/// A refusal of the query, the console's or the data plane's.
struct Refusal {
    /// Its code (`no_plan`, `malformed_json`, …).
    code: String,
    /// The status it came with.
    status: u16,
    /// What it says.
    message: String,
}

/// An option of a select.
struct Choice {
    name: String,
    label: String,
    selected: bool,
}

/// The options of `names`, `current` selected; `text` reads as "text search".
fn choices<'a>(names: impl IntoIterator<Item = &'a str>, current: &str) -> Vec<Choice> {
    names
        .into_iter()
        .map(|n| Choice {
            name: n.to_string(),
            label: if n == "text" {
                "text search".into()
            } else {
                n.to_string()
            },
            selected: n == current,
        })
        .collect()
}

/// A chart of a grouped answer.
struct ChartView {
    title: String,
    svg: String,
}

#[derive(Template)]
#[template(path = "explorer_query.html")]
struct QueryPage {
    layout: Layout,
    nav: Nav,
    action: String,
    /// The namespaces (from the data plane) as the select shows them.
    namespaces: Vec<Choice>,
    listed: Vec<String>,
    ns: String,
    q: String,
    at: String,
    field: String,
    value: String,
    operators: Vec<Choice>,
    examples: Vec<Example>,
    unavailable: Option<String>,
    error: Option<Refusal>,
    notes: Vec<String>,
    ran: bool,
    total: Option<u64>,
    results: Option<Table>,
    groups: Option<Table>,
    charts: Vec<ChartView>,
    plan: Option<String>,
    slider_href: Option<String>,
}

/// `GET /orgs/{org}/clusters/{id}/data/query?ns=&q=&at=`.
async fn page(
    State(state): State<AppState>,
    user: SignedIn,
    Path((org, id)): Path<(String, String)>,
    Query(form): Query<ConsoleForm>,
) -> PageResult {
    let ex = Explorer::load(&state, &user, &org, &id, "Query", "query").await?;
    let dp = ex.data(&state, Scope::Read).await;
    let Explorer { ctx, base, nav, .. } = ex;
    let ns = form.ns.as_deref().unwrap_or("").trim().to_string();
    let mut page = QueryPage {
        action: format!("{base}/query"),
        namespaces: Vec::new(),
        listed: Vec::new(),
        q: form.q.clone().unwrap_or_default(),
        at: form.at.clone().unwrap_or_default(),
        field: form.field.clone().unwrap_or_default(),
        value: form.value.clone().unwrap_or_default(),
        operators: choices(OPERATORS, form.op.as_deref().unwrap_or("eq")),
        examples: Vec::new(),
        unavailable: None,
        error: None,
        notes: Vec::new(),
        ran: false,
        total: None,
        results: None,
        groups: None,
        charts: Vec::new(),
        plan: None,
        slider_href: (!ns.is_empty()).then(|| format!("{base}/ns/{}/slider", segment(&ns))),
        ns,
        layout: ctx.layout,
        nav,
    };
    let dp = match dp {
        Ok(dp) => dp,
        Err(e) => return unavailable(page, e),
    };
    let status = match run(&dp, &form, &mut page).await {
        Ok(status) => status,
        Err(e) => return unavailable(page, e),
    };
    page.namespaces = choices(page.listed.iter().map(String::as_str), &page.ns);
    page.examples = examples(&page);
    Ok(render(status, &page))
}

/// The page saying why the data cannot be read; the control plane's refusals are error pages.
fn unavailable(mut page: QueryPage, e: DataError) -> PageResult {
    match e {
        DataError::ControlPlane(e) => Err(PageError::from(e)),
        other => {
            page.unavailable = Some(other.to_string());
            page.examples = examples(&page);
            Ok(render(StatusCode::SERVICE_UNAVAILABLE, &page))
        }
    }
}

/// Lists the namespaces and, when a namespace was chosen, runs the query; the page's status.
/// A refusal of the query is shown on the page; other failures are the caller's.
async fn run(
    dp: &DataPlane,
    form: &ConsoleForm,
    page: &mut QueryPage,
) -> Result<StatusCode, DataError> {
    let listed: Namespaces =
        serde_json::from_value(dp.get("/api/v1/namespaces").await?).map_err(|e| {
            tracing::warn!(error = %e, "unexpected namespaces answer in the query console");
            DataError::Unavailable(
                "The cluster answered in a way this page does not understand.".into(),
            )
        })?;
    page.listed = listed.namespaces;
    if !page.ns.is_empty() && !page.listed.contains(&page.ns) {
        page.listed.insert(0, page.ns.clone());
    }
    if form.ns.is_none() {
        if page.ns.is_empty() {
            page.ns = page.listed.first().cloned().unwrap_or_default();
        }
        return Ok(StatusCode::OK);
    }
    if page.ns.is_empty() {
        page.error = Some(Refusal {
            code: "bad_request".into(),
            status: 400,
            message: "Choose a namespace to query.".into(),
        });
        return Ok(StatusCode::BAD_REQUEST);
    }
    let (body, notes) = match body(form) {
        Ok(b) => b,
        Err(e) => {
            page.error = Some(Refusal {
                code: e.code().into(),
                status: 400,
                message: super::super::view::sentence(&e.to_string()),
            });
            return Ok(StatusCode::BAD_REQUEST);
        }
    };
    page.notes = notes;
    if form.build.is_some() {
        page.q = serde_json::to_string_pretty(&body).unwrap_or_default();
    }
    let answer = dp
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/{}/query", segment(&page.ns)),
            &[],
            Some(&Value::Object(body.clone())),
        )
        .await;
    let answer = match answer {
        Ok(a) => a.body,
        Err(DataError::Refused {
            status,
            code,
            message,
        }) => {
            page.error = Some(Refusal {
                code,
                status,
                message,
            });
            return Ok(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY));
        }
        Err(e) => return Err(e),
    };
    page.ran = true;
    page.total = answer.get("total").and_then(Value::as_u64);
    page.plan = answer
        .get("plan")
        .map(|p| serde_json::to_string_pretty(p).unwrap_or_default());
    if let Some(groups) = answer.get("groups").and_then(Value::as_array) {
        let by = group_fields(body.get("group_by"));
        let t = table::groups(groups, &by);
        page.charts = group_bars(groups, &by)
            .into_iter()
            .take(MAX_CHARTS)
            .enumerate()
            .filter_map(|(i, (measure, bars))| {
                let shown = &bars[..bars.len().min(MAX_BARS)];
                let title = if by.is_empty() {
                    measure.clone()
                } else {
                    format!("{measure} by {}", by.join(", "))
                };
                let svg = BarChart {
                    title: &title,
                    bars: shown,
                    format: &number,
                }
                .svg(&format!("query-chart-{i}"))?;
                Some(ChartView { title, svg })
            })
            .collect();
        if groups.len() > MAX_BARS && !page.charts.is_empty() {
            page.notes.push(format!(
                "The charts show the first {MAX_BARS} of {} groups.",
                groups.len()
            ));
        }
        page.groups = Some(t);
    } else if let Some(rows) = answer.get("results").and_then(Value::as_array) {
        page.results = Some(table(rows));
    }
    Ok(StatusCode::OK)
}

/// The `group_by` of a body as a list of fields.
fn group_fields(group_by: Option<&Value>) -> Vec<String> {
    match group_by {
        Some(Value::String(f)) => vec![f.clone()],
        Some(Value::Array(fs)) => fs
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// A chart's number: integers with separators, others to 3 significant decimals.
fn number(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        let n = super::super::view::number(v.abs() as u64);
        return if v < 0.0 { format!("-{n}") } else { n };
    }
    let text = format!("{v:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The "try: …" links: a filter, an aggregation, a join, a text search and EXPLAIN over the
/// chosen namespace, naming a field of its rows when the page has some.
fn examples(page: &QueryPage) -> Vec<Example> {
    let field = page
        .results
        .as_ref()
        .and_then(|t| {
            t.fields
                .iter()
                .find(|c| !c.starts_with('_') && c.as_str() != "value")
        })
        .cloned()
        .unwrap_or_else(|| "status".into());
    let ns = if page.ns.is_empty() {
        "orders"
    } else {
        page.ns.as_str()
    };
    let other = page
        .listed
        .iter()
        .find(|n| n.as_str() != ns)
        .cloned()
        .unwrap_or_else(|| "users".into());
    let make = |label, id, body: Value| {
        let body = body.to_string();
        Example {
            label,
            id,
            href: format!(
                "{}?{}",
                page.action,
                form_urlencoded::Serializer::new(String::new())
                    .append_pair("ns", ns)
                    .append_pair("q", &body)
                    .finish()
            ),
            body,
        }
    };
    vec![
        make(
            "a filter",
            "try-filter",
            json!({"filter": {"field": field, "op": "exists"}, "sort": {"field": field}, "limit": 20}),
        ),
        make(
            "an aggregation",
            "try-aggregation",
            json!({"group_by": field, "aggregate": {"count": {"count": "*"}}}),
        ),
        make(
            "a join",
            "try-join",
            json!({"join": {"namespace": other, "on": {"left": field, "right": "_key"}, "kind": "left"}, "limit": 20}),
        ),
        make(
            "a text search",
            "try-text",
            json!({"text_search": {"field": field, "query": "word", "highlight": true}, "limit": 20}),
        ),
        make(
            "EXPLAIN",
            "try-explain",
            json!({"filter": {"field": field, "op": "eq", "value": "x"}, "explain": true}),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(q: &str) -> ConsoleForm {
        ConsoleForm {
            ns: Some("orders".into()),
            q: Some(q.into()),
            ..ConsoleForm::default()
        }
    }

    #[test]
    fn operands_read_as_json_or_text() {
        assert_eq!(operand("eq", "42"), json!(42));
        assert_eq!(operand("eq", "paid"), json!("paid"));
        assert_eq!(operand("eq", "\"42\""), json!("42"));
        assert_eq!(operand("in", "a, 2"), json!(["a", 2]));
        assert_eq!(operand("in", "[1,2]"), json!([1, 2]));
        assert_eq!(operand("exists", "anything"), Value::Null);
    }

    #[test]
    fn bodies_get_a_bounded_limit_the_builders_filter_and_the_moment() {
        let (b, notes) = body(&form("")).unwrap();
        assert_eq!(Value::Object(b), json!({"limit": DEFAULT_LIMIT}));
        assert_eq!(notes.len(), 1);
        let (b, notes) = body(&form(r#"{"limit": 5000}"#)).unwrap();
        assert_eq!(b["limit"], json!(MAX_LIMIT));
        assert!(notes[0].contains("lowered"));
        let (b, notes) = body(&form(r#"{"group_by": "region"}"#)).unwrap();
        assert!(
            !b.contains_key("limit") && notes.is_empty(),
            "groups are not limited"
        );
        let built = ConsoleForm {
            field: Some("amount".into()),
            op: Some("gt".into()),
            value: Some("100".into()),
            build: Some("1".into()),
            at: Some("2026-12-07T10:30".into()),
            ..form(r#"{"limit": 3, "filter": {"field": "old", "op": "eq", "value": 1}}"#)
        };
        let (b, _) = body(&built).unwrap();
        assert_eq!(
            Value::Object(b),
            json!({"limit": 3, "filter": {"field": "amount", "op": "gt", "value": 100}, "at": "2026-12-07T10:30:00.000000Z"})
        );
        let text = ConsoleForm {
            field: Some("bio".into()),
            op: Some("text".into()),
            value: Some("fast -slow".into()),
            build: Some("1".into()),
            ..form("")
        };
        assert_eq!(
            body(&text).unwrap().0["text_search"]["query"],
            json!("fast -slow")
        );
    }

    #[test]
    fn bad_bodies_and_moments_are_refused_with_codes() {
        let e = body(&form("{nope")).unwrap_err();
        assert_eq!(e.code(), "malformed_json");
        assert_eq!(body(&form("[1]")).unwrap_err().code(), "malformed_json");
        let bad_at = ConsoleForm {
            at: Some("soon".into()),
            ..form("{}")
        };
        assert_eq!(body(&bad_at).unwrap_err().code(), "invalid_time");
        let no_field = ConsoleForm {
            build: Some("1".into()),
            ..form("{}")
        };
        assert_eq!(body(&no_field).unwrap_err().code(), "bad_request");
    }

    #[test]
    fn chart_numbers_read_well() {
        assert_eq!(number(1520.0), "1,520");
        assert_eq!(number(-3.0), "-3");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(2.0 / 3.0), "0.667");
        assert_eq!(group_fields(Some(&json!("a"))), vec!["a"]);
        assert_eq!(group_fields(Some(&json!(["a", "b"]))), vec!["a", "b"]);
        assert!(group_fields(None).is_empty());
    }
}
