//! Finding and killing processes by their command line: what a test's child left running on
//! purpose (data planes outlive a killed control plane, by design) or by mistake.

use std::path::Path;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The pids of running processes whose arguments (`argv`, the binary first) satisfy `matches`.
/// A zombie has no arguments left, so it never matches.
pub fn pids_where(matches: impl Fn(&[String]) -> bool) -> Vec<u32> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for entry in procs.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if !args.is_empty() && matches(&args) {
            pids.push(pid);
        }
    }
    pids
}

/// SIGKILLs every `koru-dataplane` process whose command line names a path under `dir`: the
/// data planes a control plane started there, which keep serving after it is killed.
pub fn kill_dataplanes_under(dir: &Path) {
    let dir = dir.display().to_string();
    let pids = pids_where(|args| {
        args[0].ends_with("koru-dataplane") && args.iter().any(|a| a.contains(&dir))
    });
    for pid in pids {
        if let Ok(pid) = i32::try_from(pid) {
            // Gone already is fine: the point is that it does not run.
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}
