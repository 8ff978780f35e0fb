//! What the process and its volume use, read at each scrape of `/metrics`: the volume's used and
//! total bytes (statvfs of the data directory) and the process's CPU seconds and resident memory
//! (`/proc/self/stat` and `/proc/self/statm`). The operator reads them from every member to grow a
//! cluster's volumes and set its pods' CPU and memory.

use std::path::Path;

/// A volume's size and how much of it is used, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeUsage {
    /// Bytes in use (total less free, blocks reserved for root counted as used).
    pub used_bytes: u64,
    /// The file system's size.
    pub capacity_bytes: u64,
}

/// The usage of the file system holding `path`; None where it cannot be read.
// The block counts are u64 on 64-bit Linux but narrower elsewhere.
#[allow(clippy::useless_conversion)]
pub fn volume(path: &Path) -> Option<VolumeUsage> {
    let stat = nix::sys::statvfs::statvfs(path).ok()?;
    let block = u64::from(stat.fragment_size());
    let capacity_bytes = u64::from(stat.blocks()).saturating_mul(block);
    // What an unprivileged writer can still use: the root reserve is as good as full to it.
    let available = u64::from(stat.blocks_available()).saturating_mul(block);
    Some(VolumeUsage {
        used_bytes: capacity_bytes.saturating_sub(available),
        capacity_bytes,
    })
}

/// This process's CPU time and resident memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessUsage {
    /// CPU seconds used since start, user and system.
    pub cpu_seconds: f64,
    /// Resident set size in bytes.
    pub resident_bytes: u64,
}

/// This process's usage from `/proc`; None off Linux or where it cannot be read.
pub fn process() -> Option<ProcessUsage> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()?;
    parse_process(&stat, &statm, ticks as f64, u64::try_from(page).ok()?)
}

/// Reads `/proc/self/stat` (utime and stime, in clock ticks) and `/proc/self/statm` (resident
/// pages) given the clock ticks per second and the page size.
pub fn parse_process(stat: &str, statm: &str, ticks: f64, page: u64) -> Option<ProcessUsage> {
    // The command name may hold spaces and parentheses: fields are counted after its last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the line (utime, stime) are the 12th and 13th after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    if ticks <= 0.0 {
        return None;
    }
    Some(ProcessUsage {
        cpu_seconds: (utime + stime) / ticks,
        resident_bytes: resident_pages.saturating_mul(page),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_usage_is_read_after_the_command_name() {
        let stat = "4242 (koru (data) plane) S 1 4242 4242 0 -1 4194560 5000 0 0 0 250 50 0 0 20 0 9 0 100 123456789 3000 18446744073709551615";
        let usage = parse_process(stat, "30000 2560 700 300 0 5000 0\n", 100.0, 4096).unwrap();
        assert_eq!(usage.cpu_seconds, 3.0);
        assert_eq!(usage.resident_bytes, 2560 * 4096);
        assert_eq!(parse_process("garbage", "1 2", 100.0, 4096), None);
    }

    #[test]
    fn this_process_and_its_directory_report_usage() {
        let p = process().unwrap();
        assert!(p.resident_bytes > 0 && p.cpu_seconds >= 0.0, "{p:?}");
        let v = volume(Path::new(".")).unwrap();
        assert!(
            v.capacity_bytes > 0 && v.used_bytes <= v.capacity_bytes,
            "{v:?}"
        );
    }
}
