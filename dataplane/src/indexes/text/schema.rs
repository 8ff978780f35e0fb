//! The tantivy schema of a text index (one document per version of a key), the text a value
//! contributes, and the query syntax we accept on top of tantivy's parser.

use serde_json::Value;
use tantivy::schema::{FAST, Field, INDEXED, STORED, STRING, Schema, TEXT};

use crate::store::VersionId;

/// Lifetime of a version that no later version has closed yet.
pub(crate) const LIVE_UNTIL: i64 = i64::MAX;

/// The fields of every text index.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    /// The document's key (stored: hits are reported by key).
    pub key: Field,
    /// The version's id as `<lsn>.<op>`: the term a closing version deletes the document by.
    pub vid: Field,
    /// Commit time (µs) of the version: it is live from then on…
    pub from: Field,
    /// …until the commit time of the next version of its key ([`LIVE_UNTIL`] while current).
    pub until: Field,
    /// The indexed text (not stored: highlights re-read it from the log).
    pub text: Field,
}

/// Name of the text field, as the query parser knows it.
pub(crate) const TEXT_FIELD: &str = "text";

/// The schema and its fields.
pub(crate) fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let fields = Fields {
        key: b.add_text_field("key", STRING | STORED),
        vid: b.add_text_field("vid", STRING | STORED),
        from: b.add_i64_field("from", INDEXED | FAST),
        until: b.add_i64_field("until", INDEXED | FAST),
        text: b.add_text_field(TEXT_FIELD, TEXT),
    };
    (b.build(), fields)
}

/// The term naming a version's document.
pub(crate) fn vid_text(id: VersionId) -> String {
    id.to_string()
}

/// The text a JSON value gives the field at `path`: a string as it is, the strings of an array
/// joined by newlines; nothing for other values (numbers, objects, booleans are not indexed).
pub(crate) fn text_of(value: &Value, path: &str) -> Option<String> {
    match crate::query::field(value, path)? {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => {
            let parts: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            (!parts.is_empty()).then(|| parts.join("\n"))
        }
        _ => None,
    }
}

/// Rewrites a user's query for tantivy's parser: a bare word ending in `*` (`perf*`, `+perf*`,
/// `-perf*`) becomes a prefix match (tantivy's parser only knows prefixes at the end of a
/// phrase, `"big bad wo"*`), and `/` becomes a space so users cannot send regular expressions
/// (the default tokenizer splits words on `/` anyway, so no match changes).
pub(crate) fn rewrite_query(query: &str) -> String {
    let mut out = String::with_capacity(query.len() + 16);
    let mut in_quotes = false;
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        out.push_str(&prefix_term(word).unwrap_or_else(|| word.clone()));
        word.clear();
    };
    for c in query.chars() {
        let c = if c == '/' { ' ' } else { c };
        if in_quotes {
            out.push(c);
            if c == '"' {
                in_quotes = false;
            }
        } else if c == '"' {
            flush(&mut word, &mut out);
            out.push(c);
            in_quotes = true;
        } else if c.is_whitespace() || c == '(' || c == ')' {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// `perf*` → `text:/perf.*/` (keeping a leading `+` or `-`), for words of letters and digits.
fn prefix_term(word: &str) -> Option<String> {
    let (sign, rest) = match word.chars().next()? {
        c @ ('+' | '-') => (Some(c), &word[1..]),
        _ => (None, word),
    };
    let stem = rest.strip_suffix('*')?;
    if stem.is_empty() || !stem.chars().all(char::is_alphanumeric) {
        return None;
    }
    // The default tokenizer lowercases what it indexes; letters and digits need no escaping.
    let stem = stem.to_lowercase();
    Some(format!(
        "{}{TEXT_FIELD}:/{stem}.*/",
        sign.map(String::from).unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_and_arrays_of_strings_are_text_other_values_are_not() {
        let doc = json!({"bio": "Rust", "tags": ["a", 1, "b"], "n": 3, "o": {"p": "deep"}});
        assert_eq!(text_of(&doc, "bio").as_deref(), Some("Rust"));
        assert_eq!(text_of(&doc, "tags").as_deref(), Some("a\nb"));
        assert_eq!(text_of(&doc, "o.p").as_deref(), Some("deep"));
        assert_eq!(text_of(&doc, "n"), None);
        assert_eq!(text_of(&doc, "o"), None);
        assert_eq!(text_of(&doc, "missing"), None);
        assert_eq!(text_of(&json!({"t": [1, 2]}), "t"), None);
    }

    #[test]
    fn bare_words_ending_in_a_star_become_prefixes_phrases_do_not() {
        assert_eq!(
            rewrite_query("Perf* +data* -slo* \"big wo\"* x"),
            "text:/perf.*/ +text:/data.*/ -text:/slo.*/ \"big wo\"* x"
        );
        assert_eq!(rewrite_query("(a* OR b)"), "(text:/a.*/ OR b)");
        assert_eq!(rewrite_query("a/b.*/ *"), "a b.*  *");
        assert_eq!(rewrite_query("\"a* b\""), "\"a* b\"");
    }
}
