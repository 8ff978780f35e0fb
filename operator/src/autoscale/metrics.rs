//! Pure: the figures the autoscalers need, read from a member's `/metrics` text.

/// What one member reported.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MemberFigures {
    /// `koru_volume_used_bytes`.
    pub volume_used_bytes: Option<f64>,
    /// `koru_volume_capacity_bytes`.
    pub volume_capacity_bytes: Option<f64>,
    /// `koru_process_cpu_seconds_total`.
    pub cpu_seconds: Option<f64>,
    /// `koru_process_resident_memory_bytes`.
    pub resident_memory_bytes: Option<f64>,
}

impl MemberFigures {
    /// How full the member's volume is, in percent; None when it did not say.
    pub fn used_percent(&self) -> Option<f64> {
        match (self.volume_used_bytes, self.volume_capacity_bytes) {
            (Some(used), Some(capacity)) if capacity > 0.0 => Some(used / capacity * 100.0),
            _ => None,
        }
    }
}

/// Reads the figures from Prometheus or OpenMetrics text (unlabelled samples only).
pub fn parse(text: &str) -> MemberFigures {
    let mut figures = MemberFigures::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut parts = line.split_whitespace();
        let (Some(name), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let slot = match name {
            "koru_volume_used_bytes" => &mut figures.volume_used_bytes,
            "koru_volume_capacity_bytes" => &mut figures.volume_capacity_bytes,
            "koru_process_cpu_seconds_total" => &mut figures.cpu_seconds,
            "koru_process_resident_memory_bytes" => &mut figures.resident_memory_bytes,
            _ => continue,
        };
        *slot = Some(value);
    }
    figures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_planes_figures_are_read_and_others_ignored() {
        let text = "# HELP koru_volume_used_bytes Bytes used\n# TYPE koru_volume_used_bytes gauge\nkoru_volume_used_bytes 800\nkoru_volume_capacity_bytes 1000\n# TYPE koru_process_cpu_seconds counter\nkoru_process_cpu_seconds_total 12.5\nkoru_process_resident_memory_bytes 4096\nkoru_http_requests_total{route=\"/x\"} 3\n# EOF\n";
        let f = parse(text);
        assert_eq!(f.volume_used_bytes, Some(800.0));
        assert_eq!(f.cpu_seconds, Some(12.5));
        assert_eq!(f.resident_memory_bytes, Some(4096.0));
        assert_eq!(f.used_percent(), Some(80.0));
        assert_eq!(parse("garbage\n").used_percent(), None);
    }
}
