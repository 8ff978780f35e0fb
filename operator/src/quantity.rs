//! Kubernetes quantities (`10Gi`, `1500M`, `1.5e9`) as numbers, so the controller compares sizes
//! by value: the API server may rewrite `1024Mi` as `1Gi`, and a string comparison would then see
//! a resize that nobody asked for.

/// The value of a quantity in its base unit (bytes for storage), or None when it is malformed.
pub fn value(quantity: &str) -> Option<f64> {
    let q = quantity.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        exponent if exponent.starts_with(['e', 'E']) => 10f64.powi(exponent[1..].parse().ok()?),
        _ => return None,
    };
    Some(number * scale).filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::value;

    #[test]
    fn binary_decimal_and_exponent_forms_compare_by_value() {
        assert_eq!(value("1Gi"), value("1024Mi"));
        assert_eq!(value("1Gi"), Some(1073741824.0));
        assert_eq!(value("1G"), Some(1e9));
        assert_eq!(value("1.5Gi"), Some(1.5 * 1073741824.0));
        assert_eq!(value("2e9"), Some(2e9));
        assert_eq!(value("500m"), Some(0.5));
        assert_eq!(value("12345"), Some(12345.0));
        assert!(value("2Gi").unwrap() > value("1500Mi").unwrap());
    }

    #[test]
    fn malformed_quantities_are_none() {
        for q in ["", "Gi", "1Gb", "1 Gi x", "abc", "1e"] {
            assert_eq!(value(q), None, "{q:?}");
        }
    }
}
