//! Printing results: the API's JSON as it is (`-o json`), the same as YAML (`-o yaml`), or
//! aligned columns for people (`-o table`, the default on a terminal).

use std::io::IsTerminal;

use serde_json::Value;

use crate::args::Format;
use crate::error::{CliError, Result};

/// A column of a table: its header and the field (dotted path) it shows.
pub type Column = (&'static str, &'static str);

/// The format to print in: the flag, else the profile's, else table on a terminal and JSON
/// otherwise (so scripts get JSON without asking).
pub fn choose(flag: Option<Format>, profile: Option<Format>) -> Format {
    flag.or(profile).unwrap_or_else(|| {
        if std::io::stdout().is_terminal() {
            Format::Table
        } else {
            Format::Json
        }
    })
}

/// Renders `value`; a table shows `columns` of each item of a list, or every field of an object
/// when `columns` is empty.
pub fn render(value: &Value, format: Format, columns: &[Column]) -> Result<String> {
    match format {
        Format::Json => serde_json::to_string_pretty(value)
            .map(|s| s + "\n")
            .map_err(|e| CliError::Local(format!("cannot print JSON: {e}"))),
        Format::Yaml => serde_saphyr::to_string(value)
            .map_err(|e| CliError::Local(format!("cannot print YAML: {e}"))),
        Format::Table => Ok(table(value, columns)),
    }
}

/// Prints `value` to standard output.
pub fn print(value: &Value, format: Format, columns: &[Column]) -> Result<()> {
    print!("{}", render(value, format, columns)?);
    Ok(())
}

/// The field at a dotted path.
fn field<'a>(value: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .try_fold(value, |v, key| v.get(key))
        .unwrap_or(&Value::Null)
}

/// A cell: strings bare, nothing as `-`, times in ms since the epoch as they are.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn aligned(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// A table of `value`.
pub fn table(value: &Value, columns: &[Column]) -> String {
    match value {
        Value::Array(items) if !columns.is_empty() => {
            let mut rows = vec![columns.iter().map(|(h, _)| h.to_string()).collect()];
            rows.extend(
                items
                    .iter()
                    .map(|item| columns.iter().map(|(_, p)| cell(field(item, p))).collect()),
            );
            aligned(&rows)
        }
        Value::Object(map) => {
            let rows: Vec<Vec<String>> = if columns.is_empty() {
                map.iter()
                    .map(|(k, v)| {
                        let shown = match v {
                            Value::Object(_) => v.to_string(),
                            other => cell(other),
                        };
                        vec![k.clone(), shown]
                    })
                    .collect()
            } else {
                columns
                    .iter()
                    .map(|(h, p)| vec![h.to_string(), cell(field(value, p))])
                    .collect()
            };
            aligned(&rows)
        }
        other => format!("{}\n", cell(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_columns_and_show_missing_fields_as_dashes() {
        let list = json!([
            {"name": "orders", "phase": "Running", "op": {"id": "o1"}},
            {"name": "a", "phase": null},
        ]);
        let shown = table(
            &list,
            &[("NAME", "name"), ("PHASE", "phase"), ("OP", "op.id")],
        );
        assert_eq!(
            shown,
            "NAME    PHASE    OP\norders  Running  o1\na       -        -\n"
        );
        let one = table(&json!({"id": "x", "n": 2}), &[]);
        assert_eq!(one, "id  x\nn   2\n");
    }

    #[test]
    fn json_and_yaml_print_the_value() {
        let v = json!({"name": "orders", "replicas": 3});
        let j = render(&v, Format::Json, &[]).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&j).unwrap(), v);
        let y = render(&v, Format::Yaml, &[]).unwrap();
        assert!(
            y.contains("name: orders") && y.contains("replicas: 3"),
            "{y}"
        );
    }
}
