//! Charts as SVG, drawn on the server: line charts of a cluster's usage against its tier's
//! limit, and bar charts of a query's groups (the data explorer's query console).
//!
//! Hand-written rather than from a charting crate: two small kinds of chart are needed, and the markup
//! has to suit the page's Content-Security-Policy (no inline styles: colours come from classes in
//! `app.css`) and screen readers (a title and a description naming the peak and the limit).

use std::fmt::Write;

/// The drawing's size in SVG units; it scales to the width of its container.
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 200.0;
/// Room for the value labels on the left and the times below.
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// One chart: a series of `(ms since the epoch, value)`, oldest first, and the limit it runs
/// against.
pub struct Chart<'a> {
    /// Names the chart to screen readers, e.g. `Operations per second`.
    pub title: &'a str,
    /// The samples.
    pub points: &'a [(i64, f64)],
    /// The tier's limit, drawn as a dashed line when it is in range.
    pub limit: f64,
    /// Writes a value with its unit, e.g. `1.2 GB` or `40/s`.
    pub format: &'a dyn Fn(f64) -> String,
}

/// The smallest round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten) that is
/// at least `x`.
pub fn nice_ceiling(x: f64) -> f64 {
    if !(x.is_finite() && x > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(x.log10().floor());
    [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|v| *v >= x * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude)
}

/// The top of the value axis: the limit (with headroom) when usage comes within half of it, so
/// the chart shows how close it runs; otherwise a round number above the peak.
pub fn axis_top(peak: f64, limit: f64) -> f64 {
    if limit > 0.0 && peak >= limit / 2.0 {
        nice_ceiling(peak.max(limit) * 1.1)
    } else {
        nice_ceiling(peak * 1.25)
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn clock(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%H:%M").to_string())
        .unwrap_or_default()
}

impl Chart<'_> {
    /// The chart as an `<svg>` element, or `None` without samples. `id` must be unique in the
    /// page (it ties the title and description to the drawing).
    pub fn svg(&self, id: &str) -> Option<String> {
        let first = self.points.first()?;
        let last = self.points.last()?;
        let peak = self.points.iter().map(|p| p.1).fold(0.0, f64::max);
        let top = axis_top(peak, self.limit);
        let (t0, t1) = (first.0, last.0.max(first.0 + 1));
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let x = |t: i64| LEFT + plot_w * (t - t0) as f64 / (t1 - t0) as f64;
        let y = |v: f64| TOP + plot_h * (1.0 - (v / top).clamp(0.0, 1.0));
        let fmt = self.format;
        let mut s = String::new();
        let desc = format!(
            "{} from {} to {} UTC: peak {}, limit {}.",
            self.title,
            clock(t0),
            clock(last.0),
            fmt(peak),
            fmt(self.limit)
        );
        let _ = write!(
            s,
            r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{id}-title {id}-desc"><title id="{id}-title">{}</title><desc id="{id}-desc">{}</desc>"#,
            escape(self.title),
            escape(&desc)
        );
        for i in 0..=2 {
            let v = top * f64::from(i) / 2.0;
            let _ = write!(
                s,
                r#"<line class="chart-grid" x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text class="chart-label" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                WIDTH - RIGHT,
                LEFT - 8.0,
                y(v) + 4.0,
                escape(&fmt(v)),
                y = y(v),
            );
        }
        let coords: Vec<String> = self
            .points
            .iter()
            .map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v)))
            .collect();
        if coords.len() == 1 {
            let _ = write!(
                s,
                r#"<circle class="chart-dot" cx="{:.1}" cy="{:.1}" r="3"/>"#,
                x(first.0),
                y(first.1)
            );
        } else {
            let base = y(0.0);
            let _ = write!(
                s,
                r#"<polygon class="chart-area" points="{:.1},{base:.1} {} {:.1},{base:.1}"/><polyline class="chart-line" points="{}"/>"#,
                x(t0),
                coords.join(" "),
                x(last.0),
                coords.join(" ")
            );
        }
        if self.limit > 0.0 && self.limit <= top {
            let ly = y(self.limit);
            let _ = write!(
                s,
                r#"<line class="chart-limit" x1="{LEFT}" x2="{}" y1="{ly:.1}" y2="{ly:.1}"/><text class="chart-limit-label" x="{}" y="{:.1}" text-anchor="end">limit {}</text>"#,
                WIDTH - RIGHT,
                WIDTH - RIGHT - 4.0,
                ly - 5.0,
                escape(&fmt(self.limit))
            );
        }
        let _ = write!(
            s,
            r#"<text class="chart-label" x="{LEFT}" y="{}">{}</text><text class="chart-label" x="{}" y="{}" text-anchor="end">{}</text></svg>"#,
            HEIGHT - 8.0,
            clock(t0),
            WIDTH - RIGHT,
            HEIGHT - 8.0,
            clock(last.0)
        );
        Some(s)
    }
}

/// Height of one bar's row in a bar chart, in SVG units.
const BAR_ROW: f64 = 26.0;
/// Room for the group labels on the left of the bars.
const BAR_LEFT: f64 = 170.0;
/// Room for the value written after the longest bar.
const BAR_RIGHT: f64 = 70.0;
/// Longest label drawn in full; longer ones are cut (the bar's tooltip has it whole).
const BAR_LABEL_CHARS: usize = 24;

/// A horizontal bar chart: one bar per labelled value, in the order given (a query's groups).
pub struct BarChart<'a> {
    /// Names the chart to screen readers, e.g. `count by status`.
    pub title: &'a str,
    /// The bars: a label and its value.
    pub bars: &'a [(String, f64)],
    /// Writes a value, e.g. `1,520.5`.
    pub format: &'a dyn Fn(f64) -> String,
}

/// `text` cut to `max` characters, with an ellipsis when it was longer.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

impl BarChart<'_> {
    /// The chart as an `<svg>` element, or `None` without bars. `id` must be unique in the page.
    /// Bars grow from zero, to the right for positive values and to the left for negative ones.
    pub fn svg(&self, id: &str) -> Option<String> {
        if self.bars.is_empty() {
            return None;
        }
        let finite = || self.bars.iter().map(|b| b.1).filter(|v| v.is_finite());
        let hi = finite().fold(0.0, f64::max);
        let lo = finite().fold(0.0, f64::min);
        let (hi, lo) = (
            if hi > 0.0 { nice_ceiling(hi) } else { 0.0 },
            if lo < 0.0 { -nice_ceiling(-lo) } else { 0.0 },
        );
        let span = if hi - lo > 0.0 { hi - lo } else { 1.0 };
        let plot_w = WIDTH - BAR_LEFT - BAR_RIGHT;
        let x = |v: f64| BAR_LEFT + plot_w * ((v.clamp(lo, hi) - lo) / span);
        let height = TOP + BAR_ROW * self.bars.len() as f64 + BOTTOM;
        let fmt = self.format;
        let largest = self
            .bars
            .iter()
            .filter(|b| b.1.is_finite())
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let desc = match largest {
            Some((label, value)) => format!(
                "{}: {} bars; the largest is {label} with {}.",
                self.title,
                self.bars.len(),
                fmt(*value)
            ),
            None => format!("{}: {} bars without values.", self.title, self.bars.len()),
        };
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg class="chart bar-chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="{id}-title {id}-desc"><title id="{id}-title">{}</title><desc id="{id}-desc">{}</desc>"#,
            escape(self.title),
            escape(&desc)
        );
        let zero = x(0.0);
        let _ = write!(
            s,
            r#"<line class="chart-grid" x1="{zero:.1}" x2="{zero:.1}" y1="{TOP}" y2="{:.1}"/>"#,
            height - BOTTOM
        );
        for (i, (label, value)) in self.bars.iter().enumerate() {
            let top = TOP + BAR_ROW * i as f64;
            let mid = top + BAR_ROW / 2.0 + 4.0;
            let end = if value.is_finite() { x(*value) } else { zero };
            let (left, width) = if end >= zero {
                (zero, end - zero)
            } else {
                (end, zero - end)
            };
            let _ = write!(
                s,
                r#"<g class="chart-bar-row"><title>{}: {}</title><text class="chart-label" x="{:.1}" y="{mid:.1}" text-anchor="end">{}</text><rect class="chart-bar" x="{left:.1}" y="{:.1}" width="{width:.1}" height="{:.1}"/><text class="chart-label" x="{:.1}" y="{mid:.1}">{}</text></g>"#,
                escape(label),
                escape(&fmt(*value)),
                BAR_LEFT - 8.0,
                escape(&cut(label, BAR_LABEL_CHARS)),
                top + 4.0,
                BAR_ROW - 8.0,
                left.max(end) + 4.0,
                escape(&fmt(*value)),
            );
        }
        let _ = write!(
            s,
            r#"<text class="chart-label" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text class="chart-label" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text></svg>"#,
            x(lo),
            height - 8.0,
            escape(&fmt(lo)),
            x(hi),
            height - 8.0,
            escape(&fmt(hi)),
        );
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn per_sec(v: f64) -> String {
        format!("{v:.0}/s")
    }

    #[test]
    fn axes_end_on_round_numbers_and_show_a_near_limit() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.0), 3.0);
        assert_eq!(nice_ceiling(13.0), 15.0);
        assert_eq!(nice_ceiling(85.0), 100.0);
        assert!((nice_ceiling(0.031) - 0.04).abs() < 1e-12);
        assert_eq!(
            axis_top(4.0, 100.0),
            5.0,
            "far below the limit: scaled to the data"
        );
        assert_eq!(
            axis_top(60.0, 100.0),
            120.0,
            "near the limit: the limit is in view"
        );
        assert_eq!(axis_top(0.0, 100.0), 1.0);
    }

    #[test]
    fn a_series_becomes_a_labelled_line_with_its_limit() {
        let points = [(0, 10.0), (60_000, 70.0), (120_000, 40.0)];
        let chart = Chart {
            title: "Operations per second",
            points: &points,
            limit: 100.0,
            format: &per_sec,
        };
        let svg = chart.svg("ops").unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains(r#"aria-labelledby="ops-title ops-desc""#));
        assert!(svg.contains("peak 70/s, limit 100/s"), "{svg}");
        assert!(
            svg.contains("class=\"chart-limit\""),
            "the limit is in range"
        );
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(
            !svg.contains("style="),
            "no inline styles: the CSP forbids them"
        );
        let low = [(0, 1.0), (60_000, 2.0)];
        let chart = Chart {
            points: &low,
            ..chart
        };
        assert!(!chart.svg("low").unwrap().contains("chart-limit\""));
        let one = [(0, 1.0)];
        assert!(
            Chart {
                points: &one,
                ..chart
            }
            .svg("one")
            .unwrap()
            .contains("<circle")
        );
        assert!(
            Chart {
                points: &[],
                ..chart
            }
            .svg("none")
            .is_none()
        );
    }

    #[test]
    fn groups_become_labelled_bars_from_zero() {
        let bars = vec![
            ("eu".to_string(), 12.0),
            ("us <west>".to_string(), 30.0),
            ("a very long region name that goes on".to_string(), -4.0),
        ];
        let fmt = |v: f64| format!("{v}");
        let chart = BarChart {
            title: "count by region",
            bars: &bars,
            format: &fmt,
        };
        let svg = chart.svg("groups").unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains(r#"aria-labelledby="groups-title groups-desc""#));
        assert_eq!(svg.matches("<rect class=\"chart-bar\"").count(), 3);
        assert!(svg.contains("largest is us &lt;west&gt; with 30"), "{svg}");
        assert!(svg.contains(">eu<"), "labels are drawn: {svg}");
        assert!(
            svg.contains("a very long region name…"),
            "long labels are cut"
        );
        assert!(
            svg.contains("<title>a very long region name that goes on: -4</title>"),
            "the tooltip has it whole"
        );
        assert!(!svg.contains("style="), "no inline styles");
        assert!(BarChart { bars: &[], ..chart }.svg("none").is_none());
        let zeros = vec![("a".to_string(), 0.0), ("b".to_string(), f64::NAN)];
        let svg = BarChart {
            bars: &zeros,
            ..chart
        }
        .svg("zeros")
        .unwrap();
        assert!(!svg.contains("NaN\""), "no NaN coordinates: {svg}");
    }
}
