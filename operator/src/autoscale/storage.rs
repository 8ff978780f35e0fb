//! Pure: whether a cluster's volumes should grow, from how full its fullest member's is.

/// Each growth adds this share of the current size (then rounded up to a whole MiB).
pub const GROWTH_PERCENT: u64 = 50;
/// The default fill threshold of `storage.autoscale.thresholdPercent`.
pub const DEFAULT_THRESHOLD_PERCENT: i32 = 80;

/// What to do about a cluster's volumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageDecision {
    /// Below the threshold (or not known yet): nothing.
    Fine,
    /// A growth is still being carried out: decide again once the volumes have their new size.
    Wait,
    /// Grow every volume to this many bytes.
    Grow(u64),
    /// Past the threshold with nowhere to grow: warn.
    AtCeiling,
}

/// Given the volumes' size now (`size`, the larger of the spec's and the grown size), how full
/// the fullest member's is (`used_percent`, None while no member reported it), the threshold,
/// the ceiling (`max`), and whether a growth is still in progress (a claim not yet at its
/// requested size, or a member's file system not yet grown).
pub fn decide_storage(
    size: u64,
    used_percent: Option<f64>,
    threshold_percent: i32,
    max: u64,
    growing: bool,
) -> StorageDecision {
    if growing {
        return StorageDecision::Wait;
    }
    let Some(used) = used_percent else {
        return StorageDecision::Fine;
    };
    if used < f64::from(threshold_percent) {
        return StorageDecision::Fine;
    }
    if size >= max {
        return StorageDecision::AtCeiling;
    }
    let step = (size.saturating_mul(GROWTH_PERCENT) / 100).max(1 << 20);
    let grown = size
        .saturating_add(step)
        .div_ceil(1 << 20)
        .saturating_mul(1 << 20);
    StorageDecision::Grow(grown.min(max))
}

/// A size in bytes as a quantity: whole MiB as `Mi`, whole GiB as `Gi`, else bytes.
pub fn size_quantity(bytes: u64) -> String {
    super::compute::memory_quantity(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: u64 = 1 << 20;
    const GI: u64 = 1 << 30;

    #[test]
    fn a_volume_past_the_threshold_grows_by_half_up_to_the_ceiling() {
        assert_eq!(
            decide_storage(10 * GI, Some(85.0), 80, 100 * GI, false),
            StorageDecision::Grow(15 * GI)
        );
        assert_eq!(
            decide_storage(64 * MI, Some(80.0), 80, GI, false),
            StorageDecision::Grow(96 * MI)
        );
        // Never past the ceiling.
        assert_eq!(
            decide_storage(80 * GI, Some(90.0), 80, 100 * GI, false),
            StorageDecision::Grow(100 * GI)
        );
    }

    #[test]
    fn below_the_threshold_or_unknown_nothing_happens() {
        assert_eq!(
            decide_storage(10 * GI, Some(79.9), 80, 100 * GI, false),
            StorageDecision::Fine
        );
        assert_eq!(
            decide_storage(10 * GI, None, 80, 100 * GI, false),
            StorageDecision::Fine
        );
    }

    #[test]
    fn at_the_ceiling_it_warns_and_while_growing_it_waits() {
        assert_eq!(
            decide_storage(100 * GI, Some(95.0), 80, 100 * GI, false),
            StorageDecision::AtCeiling
        );
        assert_eq!(
            decide_storage(10 * GI, Some(95.0), 80, 100 * GI, true),
            StorageDecision::Wait
        );
        assert_eq!(size_quantity(96 * MI), "96Mi");
        assert_eq!(size_quantity(15 * GI), "15Gi");
    }
}
