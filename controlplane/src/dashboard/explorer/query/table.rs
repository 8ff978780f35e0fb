//! A query's answer as tables: rows with their key, version, time and the union of their
//! values' top-level fields; groups with their fields and outputs; and the groups' numeric
//! outputs as bars.

use serde_json::Value;

/// Most value fields shown as columns; the rest stay in the `value` column's JSON.
pub const MAX_FIELDS: usize = 24;
/// Most rows a table shows.
pub const MAX_ROWS: usize = 1_000;
/// Longest cell text, in characters.
const MAX_CELL_CHARS: usize = 1_000;

/// A table of the page.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Its headers, in order.
    pub columns: Vec<String>,
    /// The value fields among them (the union of the rows' top-level fields).
    pub fields: Vec<String>,
    /// Its rows.
    pub rows: Vec<TableRow>,
    /// Whether rows were left out (more than [`MAX_ROWS`]).
    pub truncated: bool,
}

/// One row.
#[derive(Debug, Clone)]
pub struct TableRow {
    /// The row's key (results only).
    pub key: Option<String>,
    /// Its cells, one per column.
    pub cells: Vec<Cell>,
}

/// One cell: its text and how it is shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The text: a string as it is, other JSON as JSON.
    pub text: String,
    /// `text` (a string), `scalar` (number, boolean, null), `json` (array or object, pretty),
    /// `missing`, or `highlight` (see `marks`).
    pub kind: &'static str,
    /// A highlight's pieces, each marked as a match or not.
    pub marks: Vec<(String, bool)>,
}

/// The value fields of result rows as columns: the union of their values' top-level fields in
/// the order first met, at most [`MAX_FIELDS`], and `value` when some value is not an object or
/// has fields beyond those.
pub fn columns(rows: &[Value]) -> Vec<String> {
    let mut fields: Vec<String> = Vec::new();
    let mut whole = false;
    for row in rows {
        match row.get("value") {
            Some(Value::Object(m)) => {
                for k in m.keys() {
                    if !fields.iter().any(|f| f == k) {
                        if fields.len() < MAX_FIELDS {
                            fields.push(k.clone());
                        } else {
                            whole = true;
                        }
                    }
                }
            }
            Some(_) => whole = true,
            None => {}
        }
    }
    if whole {
        fields.push("value".into());
    }
    fields
}

/// A JSON value as a cell.
pub fn cell(value: Option<&Value>) -> Cell {
    let plain = |text: String, kind| Cell {
        text: cut(text),
        kind,
        marks: Vec::new(),
    };
    match value {
        None => plain(String::new(), "missing"),
        Some(Value::String(s)) => plain(s.clone(), "text"),
        Some(v @ (Value::Array(_) | Value::Object(_))) => {
            plain(serde_json::to_string_pretty(v).unwrap_or_default(), "json")
        }
        Some(v) => plain(v.to_string(), "scalar"),
    }
}

fn cut(text: String) -> String {
    if text.chars().count() <= MAX_CELL_CHARS {
        return text;
    }
    let mut out: String = text.chars().take(MAX_CELL_CHARS).collect();
    out.push_str(" …");
    out
}

/// A text search's highlight (HTML-escaped text with matches in `<b>…</b>`) as pieces of plain
/// text, each marked as a match or not, so the page escapes them itself and never renders
/// markup from the data plane.
pub fn marks(highlight: &str) -> Vec<(String, bool)> {
    let unescape = |s: &str| {
        s.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&#x27;", "'")
            .replace("&amp;", "&")
    };
    let mut out = Vec::new();
    for (i, part) in highlight.split("<b>").enumerate() {
        let (matched, rest) = match (i, part.split_once("</b>")) {
            (0, _) | (_, None) => ("", part),
            (_, Some((m, rest))) => (m, rest),
        };
        if !matched.is_empty() {
            out.push((unescape(matched), true));
        }
        if !rest.is_empty() {
            out.push((unescape(rest), false));
        }
    }
    out
}

/// Result rows (`{"key", "value", "version_id", "timestamp", "_relevance"?, "highlight"?,
/// "joined"?}`) as a table.
pub fn table(rows: &[Value]) -> Table {
    let fields = columns(rows);
    let has = |name: &str| rows.iter().any(|r| r.get(name).is_some());
    let extras: Vec<&str> = ["_relevance", "highlight", "joined"]
        .into_iter()
        .filter(|e| has(e))
        .collect();
    let mut columns: Vec<String> = vec!["key".into(), "version".into(), "timestamp".into()];
    columns.extend(fields.iter().cloned());
    columns.extend(extras.iter().map(|e| e.to_string()));
    let body = rows
        .iter()
        .take(MAX_ROWS)
        .map(|r| {
            let value = r.get("value");
            let mut cells = vec![cell(r.get("version_id")), cell(r.get("timestamp"))];
            for f in &fields {
                cells.push(match (f.as_str(), value) {
                    ("value", Some(v)) if !v.is_object() => cell(Some(v)),
                    ("value", Some(Value::Object(m))) => {
                        // The fields beyond the columns, so nothing is hidden.
                        let rest: serde_json::Map<String, Value> = m
                            .iter()
                            .filter(|(k, _)| !fields.contains(k))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        if rest.is_empty() {
                            cell(None)
                        } else {
                            cell(Some(&Value::Object(rest)))
                        }
                    }
                    (f, Some(Value::Object(m))) => cell(m.get(f)),
                    _ => cell(None),
                });
            }
            for e in &extras {
                cells.push(match (*e, r.get(*e)) {
                    ("highlight", Some(Value::String(h))) => Cell {
                        text: String::new(),
                        kind: "highlight",
                        marks: marks(h),
                    },
                    (_, v) => cell(v),
                });
            }
            TableRow {
                key: Some(
                    r.get("key")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                ),
                cells,
            }
        })
        .collect();
    Table {
        columns,
        fields,
        rows: body,
        truncated: rows.len() > MAX_ROWS,
    }
}

/// Group rows as a table: the `group_by` fields first, then the outputs in the order met.
pub fn groups(rows: &[Value], by: &[String]) -> Table {
    let mut columns: Vec<String> = by.to_vec();
    for row in rows {
        if let Value::Object(m) = row {
            for k in m.keys() {
                if !columns.contains(k) {
                    columns.push(k.clone());
                }
            }
        }
    }
    let body = rows
        .iter()
        .take(MAX_ROWS)
        .map(|r| TableRow {
            key: None,
            cells: columns.iter().map(|c| cell(r.get(c))).collect(),
        })
        .collect();
    Table {
        fields: columns.clone(),
        columns,
        rows: body,
        truncated: rows.len() > MAX_ROWS,
    }
}

/// A group's label: its `group_by` values joined by ` · ` (`all` without `group_by`).
pub fn group_label(row: &Value, by: &[String]) -> String {
    if by.is_empty() {
        return "all".into();
    }
    by.iter()
        .map(|f| match row.get(f) {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => "(none)".into(),
            Some(v) => v.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

/// The bars of each numeric output of `rows` (an output every group holds as a number or
/// `null`, and at least one as a number), in the order the outputs are met: `(output, bars)`.
pub fn group_bars(rows: &[Value], by: &[String]) -> Vec<(String, Vec<(String, f64)>)> {
    let mut names: Vec<String> = Vec::new();
    for row in rows {
        if let Value::Object(m) = row {
            for k in m.keys() {
                if !by.contains(k) && !names.contains(k) {
                    names.push(k.clone());
                }
            }
        }
    }
    names
        .into_iter()
        .filter(|n| {
            rows.iter()
                .all(|r| matches!(r.get(n), None | Some(Value::Null | Value::Number(_))))
                && rows.iter().any(|r| r.get(n).is_some_and(Value::is_number))
        })
        .map(|n| {
            let bars = rows
                .iter()
                .map(|r| {
                    (
                        group_label(r, by),
                        r.get(&n).and_then(Value::as_f64).unwrap_or(0.0),
                    )
                })
                .collect();
            (n, bars)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_are_the_union_of_top_level_fields() {
        let rows = [
            json!({"key": "a", "value": {"status": "paid", "amount": 3}}),
            json!({"key": "b", "value": {"status": "new", "note": "x"}}),
        ];
        assert_eq!(columns(&rows), vec!["amount", "status", "note"]);
        let mixed = [
            json!({"key": "a", "value": {"x": 1}}),
            json!({"key": "b", "value": 7}),
        ];
        assert_eq!(columns(&mixed), vec!["x", "value"]);
        let t = table(&mixed);
        assert_eq!(t.columns, vec!["key", "version", "timestamp", "x", "value"]);
        assert_eq!(t.rows[0].cells[2].text, "1");
        assert_eq!(t.rows[0].cells[3].kind, "missing");
        assert_eq!(t.rows[1].cells[3].text, "7");
        assert_eq!(t.rows[1].key.as_deref(), Some("b"));
    }

    #[test]
    fn cells_show_strings_plainly_and_json_formatted() {
        assert_eq!(cell(Some(&json!("paid"))).text, "paid");
        assert_eq!(cell(Some(&json!(1.5))).kind, "scalar");
        let c = cell(Some(&json!({"a": [1]})));
        assert_eq!((c.kind, c.text.contains('\n')), ("json", true));
        assert_eq!(cell(None).kind, "missing");
    }

    #[test]
    fn highlights_become_marked_text_without_markup() {
        assert_eq!(
            marks("fast &lt;b&gt; <b>database</b> and <b>db</b>"),
            vec![
                ("fast <b> ".to_string(), false),
                ("database".to_string(), true),
                (" and ".to_string(), false),
                ("db".to_string(), true),
            ]
        );
        let rows = [
            json!({"key": "a", "value": {"bio": "x"}, "_relevance": 1.2, "highlight": "<b>x</b>"}),
        ];
        let t = table(&rows);
        assert_eq!(t.columns.last().map(String::as_str), Some("highlight"));
        assert_eq!(t.rows[0].cells.last().unwrap().kind, "highlight");
    }

    #[test]
    fn groups_are_tabled_and_charted_by_their_numeric_outputs() {
        let rows = [
            json!({"region": "eu", "count": 3, "sum_amount": 10.5, "first": "a"}),
            json!({"region": null, "count": 1, "sum_amount": null, "first": "b"}),
        ];
        let by = vec!["region".to_string()];
        let t = groups(&rows, &by);
        assert_eq!(t.columns[0], "region");
        assert_eq!(t.rows.len(), 2);
        let bars = group_bars(&rows, &by);
        let names: Vec<&str> = bars.iter().map(|b| b.0.as_str()).collect();
        assert_eq!(
            names,
            vec!["count", "sum_amount"],
            "strings are not charted"
        );
        assert_eq!(
            bars[0].1,
            vec![("eu".to_string(), 3.0), ("(none)".to_string(), 1.0)]
        );
        assert_eq!(group_label(&json!({"count": 2}), &[]), "all");
    }
}
