//! Pure helpers of the key page: JSON text laid out for reading, a JSON-aware diff of two
//! versions as a list of changed paths, and the moments people type turned into RFC 3339.

use serde_json::Value;

/// The longest rendering of one value in a diff line or a timeline preview, in characters.
pub const PREVIEW_CHARS: usize = 160;

/// `raw` (valid JSON text) indented by two spaces per level, keeping the text of every string,
/// number and key exactly and their order as written (a parsed `Value` would sort keys and may
/// round big numbers).
pub fn pretty(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + raw.len() / 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = raw.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', depth * 2));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                while chars.peek().is_some_and(|n| n.is_whitespace()) {
                    chars.next();
                }
                let close = if c == '{' { '}' } else { ']' };
                // An empty object or array stays on its line.
                if chars.peek() == Some(&close) {
                    chars.next();
                    out.push(close);
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

/// `value` on one line, cut to [`PREVIEW_CHARS`] with an ellipsis.
pub fn preview(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= PREVIEW_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(PREVIEW_CHARS).collect();
    cut.push('…');
    cut
}

/// What happened at one path between two versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The path holds a value only in the newer version.
    Added,
    /// The path holds a value only in the older version.
    Removed,
    /// The path holds different values.
    Changed,
}

impl Change {
    /// Its name on the page (and CSS class).
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Changed => "changed",
        }
    }
}

/// One changed path of a diff, with its values before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffLine {
    /// The path as a JSON pointer (`/address/city`), or `(whole value)` for the root.
    pub path: String,
    /// Added, removed or changed.
    pub change: Change,
    /// The value at the path in the older version (previewed).
    pub old: Option<String>,
    /// The value at the path in the newer version (previewed).
    pub new: Option<String>,
}

/// The paths where `new` differs from `old`, from json-patch's RFC 6902 diff: objects and
/// arrays are compared member by member, so a changed nested field is one line, not the
/// whole value.
pub fn diff(old: &Value, new: &Value) -> Vec<DiffLine> {
    let patch = json_patch::diff(old, new);
    let mut lines = Vec::with_capacity(patch.0.len());
    // json-patch removes an array's trailing elements one after another at the same index
    // (each removal shifts the next one down); the page names each at its original index.
    let mut removed_run: Option<(String, usize)> = None;
    for op in &patch.0 {
        let (pointer, change, new_value) = match op {
            json_patch::PatchOperation::Add(a) => {
                (a.path.to_string(), Change::Added, Some(&a.value))
            }
            json_patch::PatchOperation::Remove(r) => (r.path.to_string(), Change::Removed, None),
            json_patch::PatchOperation::Replace(r) => {
                (r.path.to_string(), Change::Changed, Some(&r.value))
            }
            // The diff writes only the three above.
            _ => continue,
        };
        let pointer = if change == Change::Removed {
            match &mut removed_run {
                Some((path, n)) if *path == pointer => {
                    *n += 1;
                    shift_index(&pointer, *n)
                }
                _ => {
                    removed_run = Some((pointer.clone(), 0));
                    pointer
                }
            }
        } else {
            removed_run = None;
            pointer
        };
        lines.push(DiffLine {
            old: (change != Change::Added)
                .then(|| old.pointer(&pointer).map(preview))
                .flatten(),
            new: new_value.map(preview),
            path: if pointer.is_empty() {
                "(whole value)".into()
            } else {
                pointer
            },
            change,
        });
    }
    lines
}

/// `pointer` whose last token, an array index, is moved on by `by`.
fn shift_index(pointer: &str, by: usize) -> String {
    match pointer.rsplit_once('/') {
        Some((parent, last)) => match last.parse::<usize>() {
            Ok(i) => format!("{parent}/{}", i + by),
            Err(_) => pointer.to_string(),
        },
        None => pointer.to_string(),
    }
}

/// An RFC 3339 time as a `datetime-local` input's value (UTC, to the second), so the as-of
/// form shows the moment it read.
pub fn local_input(rfc3339: &str) -> String {
    koru_dataplane_api::rfc3339::parse(rfc3339)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pretty_keeps_order_numbers_and_strings() {
        assert_eq!(
            pretty(r#"{"b":1,"a":[1, 2,{}],"s":"x, {y}: \"z\"","n":12345678901234567890123}"#),
            "{\n  \"b\": 1,\n  \"a\": [\n    1,\n    2,\n    {}\n  ],\n  \"s\": \"x, {y}: \\\"z\\\"\",\n  \"n\": 12345678901234567890123\n}"
        );
        assert_eq!(pretty("[ ]"), "[]");
        assert_eq!(pretty("\"a\\\\\""), "\"a\\\\\"");
        assert_eq!(pretty("42"), "42");
    }

    #[test]
    fn a_changed_nested_field_is_one_line() {
        let old =
            json!({"name": "Ada", "address": {"city": "London", "zip": "N1"}, "tags": [1, 2, 3]});
        let new = json!({"name": "Ada", "address": {"city": "Paris", "zip": "N1"}, "tags": [1], "vip": true});
        let lines = diff(&old, &new);
        assert_eq!(
            lines,
            vec![
                DiffLine {
                    path: "/address/city".into(),
                    change: Change::Changed,
                    old: Some("\"London\"".into()),
                    new: Some("\"Paris\"".into()),
                },
                DiffLine {
                    path: "/tags/1".into(),
                    change: Change::Removed,
                    old: Some("2".into()),
                    new: None,
                },
                DiffLine {
                    path: "/tags/2".into(),
                    change: Change::Removed,
                    old: Some("3".into()),
                    new: None,
                },
                DiffLine {
                    path: "/vip".into(),
                    change: Change::Added,
                    old: None,
                    new: Some("true".into()),
                },
            ]
        );
        assert!(diff(&old, &old).is_empty());
        let whole = diff(&json!(1), &json!("one"));
        assert_eq!(whole[0].path, "(whole value)");
        assert_eq!(whole[0].old.as_deref(), Some("1"));
    }

    #[test]
    fn previews_are_cut() {
        let long = json!("x".repeat(500));
        let p = preview(&long);
        assert_eq!(p.chars().count(), PREVIEW_CHARS + 1);
        assert!(p.ends_with('…'));
    }

    #[test]
    fn local_inputs_show_the_moment_in_utc() {
        assert_eq!(
            local_input("2026-12-07T09:30:15.123456Z"),
            "2026-12-07T09:30:15"
        );
    }
}
