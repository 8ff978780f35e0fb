//! Line charts as SVG, drawn on the server: a cluster's usage against its tier's limit.
//!
//! Hand-written rather than from a charting crate: one kind of chart is needed, and the markup
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
}
