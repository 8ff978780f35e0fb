//! The record of `koru-bench query`: each figure beside its reference and goal, the correctness
//! cross-checks against SQLite, and the human table.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use crate::report::thousands;

/// A figure, or why it could not be taken (an endpoint still missing answers an error).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Measured.
    Value(f64),
    /// Not measured; the reason (an HTTP status and body, a store error).
    Unavailable(String),
}

impl Measure {
    /// The value, if measured.
    pub fn value(&self) -> Option<f64> {
        match self {
            Measure::Value(v) => Some(*v),
            Measure::Unavailable(_) => None,
        }
    }

    /// The value with its unit, or `unavailable` (the reasons are listed under the table).
    fn shown(&self, unit: &str) -> String {
        match self {
            Measure::Value(v) if *v >= 100.0 => format!("{} {unit}", thousands(*v)),
            Measure::Value(v) => format!("{v:.3} {unit}"),
            Measure::Unavailable(_) => "unavailable".into(),
        }
    }
}

/// How a row's ratio (KoruDelta over the reference) is judged.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    /// The ratio must be at least this (rates).
    AtLeast(f64),
    /// The ratio must be at most this (times).
    AtMost(f64),
    /// Reported only.
    Report,
}

impl Goal {
    fn text(self) -> String {
        match self {
            Goal::AtLeast(g) => format!(">= {g}x"),
            Goal::AtMost(g) => format!("<= {g}x"),
            Goal::Report => "report".into(),
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What was measured.
    pub figure: String,
    /// Unit of both measures.
    pub unit: String,
    /// KoruDelta's figure.
    pub koru: Measure,
    /// What it is compared with (`SQLite`, `GET by key`, ...), if anything.
    pub reference_name: String,
    /// The reference figure.
    pub reference: Option<Measure>,
    /// `koru / reference` when both were measured.
    pub ratio: Option<f64>,
    /// The goal on the ratio.
    pub goal: Goal,
    /// Whether the goal is met; None when reported only or unavailable.
    pub met: Option<bool>,
    /// Latency percentiles or counts behind the figures.
    pub detail: String,
}

impl Row {
    /// A row comparing `koru` with `reference`.
    pub fn compare(
        figure: impl Into<String>,
        unit: &str,
        koru: Measure,
        reference_name: &str,
        reference: Measure,
        goal: Goal,
    ) -> Row {
        let ratio = match (koru.value(), reference.value()) {
            (Some(k), Some(r)) if r > 0.0 => Some(k / r),
            _ => None,
        };
        let met = ratio.and_then(|r| match goal {
            Goal::AtLeast(g) => Some(r >= g),
            Goal::AtMost(g) => Some(r <= g),
            Goal::Report => None,
        });
        Row {
            figure: figure.into(),
            unit: unit.into(),
            koru,
            reference_name: reference_name.into(),
            reference: Some(reference),
            ratio,
            goal,
            met,
            detail: String::new(),
        }
    }

    /// A row with no reference, reported only.
    pub fn single(figure: impl Into<String>, unit: &str, koru: Measure) -> Row {
        Row {
            figure: figure.into(),
            unit: unit.into(),
            koru,
            reference_name: String::new(),
            reference: None,
            ratio: None,
            goal: Goal::Report,
            met: None,
            detail: String::new(),
        }
    }

    /// The same row with `detail` set.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Row {
        self.detail = detail.into();
        self
    }
}

/// KoruDelta's side of a check.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Answered {
    /// Its answer.
    Answer(Value),
    /// Why there is none.
    Unavailable(String),
}

/// One correctness cross-check: SQLite's answer, KoruDelta's (where it answered), and whether
/// they agree.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Which answer, e.g. `join row count`.
    pub what: String,
    /// SQLite's answer.
    pub sqlite: Value,
    /// KoruDelta's answer, or why there is none.
    pub koru: Answered,
    /// Whether they agree; None when KoruDelta gave no answer.
    pub agree: Option<bool>,
}

impl Check {
    /// A check of two answers compared with `same`.
    pub fn new(
        what: &str,
        sqlite: Value,
        koru: Result<Value, String>,
        same: impl Fn(&Value, &Value) -> bool,
    ) -> Check {
        let agree = koru.as_ref().ok().map(|k| same(&sqlite, k));
        Check {
            what: what.into(),
            sqlite,
            koru: match koru {
                Ok(v) => Answered::Answer(v),
                Err(why) => Answered::Unavailable(why),
            },
            agree,
        }
    }

    /// A check of two answers that must be equal as JSON.
    pub fn equal(what: &str, sqlite: Value, koru: Result<Value, String>) -> Check {
        Check::new(what, sqlite, koru, |a, b| a == b)
    }
}

/// The human table.
pub fn human(title: &str, rows: &[Row], checks: &[Check]) -> String {
    let mut out = format!("\n{title}\n");
    let _ = writeln!(
        out,
        "{:<58} {:>22} {:>30} {:>7} {:>8} {:>6}",
        "figure", "KoruDelta", "reference", "ratio", "goal", "result"
    );
    for row in rows {
        let reference = row.reference.as_ref().map_or_else(String::new, |r| {
            format!("{}: {}", row.reference_name, r.shown(&row.unit))
        });
        let ratio = row.ratio.map_or_else(|| "-".into(), |r| format!("{r:.2}x"));
        let result = match (row.met, &row.koru, &row.reference) {
            (Some(true), _, _) => "PASS",
            (Some(false), _, _) => "FAIL",
            (None, Measure::Unavailable(_), _) | (None, _, Some(Measure::Unavailable(_))) => "N/A",
            (None, _, _) => "INFO",
        };
        let _ = writeln!(
            out,
            "{:<58} {:>22} {:>30} {:>7} {:>8} {:>6}",
            row.figure,
            short(&row.koru.shown(&row.unit)),
            short(&reference),
            ratio,
            row.goal.text(),
            result
        );
        if !row.detail.is_empty() {
            let _ = writeln!(out, "    {}", row.detail);
        }
    }
    let unavailable: Vec<&Row> = rows
        .iter()
        .filter(|r| matches!(r.koru, Measure::Unavailable(_)))
        .collect();
    if !unavailable.is_empty() {
        let _ = writeln!(out, "unavailable:");
        for row in unavailable {
            if let Measure::Unavailable(why) = &row.koru {
                let _ = writeln!(out, "  {}: {why}", row.figure);
            }
        }
    }
    let _ = writeln!(out, "cross-checks against SQLite:");
    for c in checks {
        let verdict = match c.agree {
            Some(true) => "agree".to_string(),
            Some(false) => format!("DISAGREE (KoruDelta: {})", value_text(&c.koru)),
            None => format!("not checked ({})", value_text(&c.koru)),
        };
        let _ = writeln!(
            out,
            "  {}: SQLite {}; {verdict}",
            c.what,
            short(&c.sqlite.to_string())
        );
    }
    out
}

/// KoruDelta's side of a check, shortened.
fn value_text(v: &Answered) -> String {
    match v {
        Answered::Answer(v) => short(&v.to_string()),
        Answered::Unavailable(why) => short(why),
    }
}

/// At most 60 characters of a cell, so an error body cannot wreck the table.
fn short(s: &str) -> String {
    if s.chars().count() <= 60 {
        return s.to_string();
    }
    let head: String = s.chars().take(57).collect();
    format!("{head}...")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_judge_ratios_and_show_what_is_missing() {
        let row = Row::compare(
            "lookup",
            "lookups/s",
            Measure::Value(60.0),
            "SQLite",
            Measure::Value(100.0),
            Goal::AtLeast(0.5),
        );
        assert_eq!(row.met, Some(true));
        assert!((row.ratio.unwrap() - 0.6).abs() < 1e-9);
        let slow = Row::compare(
            "group",
            "ms",
            Measure::Value(300.0),
            "SQLite",
            Measure::Value(100.0),
            Goal::AtMost(2.0),
        );
        assert_eq!(slow.met, Some(false));
        let missing = Row::compare(
            "join",
            "ms",
            Measure::Unavailable("404 Not Found".into()),
            "SQLite",
            Measure::Value(1.0),
            Goal::AtMost(2.0),
        );
        assert_eq!((missing.ratio, missing.met), (None, None));
        let check = Check::equal("count", Value::from(3), Ok(Value::from(4)));
        assert_eq!(check.agree, Some(false));
        let text = human("t", &[row, slow, missing], &[check]);
        assert!(text.contains("PASS") && text.contains("FAIL") && text.contains("N/A"));
        assert!(text.contains("join: 404 Not Found"));
        assert!(text.contains("DISAGREE"));
        let json = serde_json::to_value(Measure::Unavailable("x".into())).unwrap();
        assert_eq!(json, serde_json::json!({"unavailable": "x"}));
    }
}
