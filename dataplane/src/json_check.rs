//! The check every value passes before it is stored: JSON that any reader can parse back.
//!
//! Taking a body as `RawValue` only skims it: numbers out of f64 range, lone UTF-16 surrogates in
//! escapes and nesting deeper than serde_json's limit all pass, and would then break every query
//! over the namespace. Walking the value with `deserialize_any` applies exactly the checks a later
//! parse applies, without building the value.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// A value that was walked in full; deserializing it is the check.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckVisitor)
    }
}

struct CheckVisitor;

impl<'de> Visitor<'de> for CheckVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<Checked, Checked>()?.is_some() {}
        Ok(Checked)
    }
}

/// Checks that JSON text parses back as a value (numbers in range, valid escapes, nesting ≤ 128).
pub fn check(text: &str) -> Result<(), String> {
    serde_json::from_str::<Checked>(text)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_serde_json_reads_back() {
        for ok in [
            "1",
            "-0.5e10",
            "\"a\\u00e9\\ud83d\\ude00\"",
            "[1,{\"a\":[null,true]}]",
            "{}",
            "18446744073709551615",
        ] {
            assert!(check(ok).is_ok(), "{ok}");
            assert!(serde_json::from_str::<serde_json::Value>(ok).is_ok());
        }
    }

    #[test]
    fn refuses_what_would_break_a_later_parse() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for bad in ["1e400", "\"\\ud800\"", deep.as_str(), "{\"a\":1e999}"] {
            assert!(check(bad).is_err(), "{bad}");
            assert!(
                serde_json::from_str::<serde_json::Value>(bad).is_err(),
                "{bad}"
            );
        }
    }
}
