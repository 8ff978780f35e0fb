//! Pure: the CPU and memory a cluster's pods should have, from a recorded series of load samples.
//!
//! Hysteresis keeps it from flapping: a pod's requests move up only when recent usage passes a
//! high mark of what it has (CPU averaged over the last few samples, so one spike moves nothing),
//! and down only when usage stayed under a low mark for a whole long window; in between nothing
//! changes. A move aims at a target utilization in the middle of the band, so the next sample
//! after a change lands inside it. Cool-downs after each change (short before a move up, long
//! before a move down) stop a series of changes from chasing noise.

/// One load sample of a cluster: its busiest pod (they all get the same requests, and the
/// leader, which takes every write, works hardest).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// When it was taken, seconds since the Unix epoch.
    pub at: f64,
    /// CPU cores used (the rate of `koru_process_cpu_seconds_total` since the previous sample).
    pub cpu_cores: f64,
    /// Resident memory in bytes (`koru_process_resident_memory_bytes`).
    pub memory_bytes: f64,
}

/// What each pod is given: CPU in millicores and memory in bytes (requests equal limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requests {
    /// CPU, millicores.
    pub cpu_milli: u64,
    /// Memory, bytes.
    pub memory_bytes: u64,
}

/// The bounds of `spec.resources.autoscale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The least and most each pod is given.
    pub min: Requests,
    /// The most each pod is given.
    pub max: Requests,
}

impl Bounds {
    /// `r` within the bounds.
    pub fn clamp(&self, r: Requests) -> Requests {
        Requests {
            cpu_milli: r.cpu_milli.clamp(
                self.min.cpu_milli,
                self.max.cpu_milli.max(self.min.cpu_milli),
            ),
            memory_bytes: r.memory_bytes.clamp(
                self.min.memory_bytes,
                self.max.memory_bytes.max(self.min.memory_bytes),
            ),
        }
    }
}

/// The tuning of [`decide`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Utilization (usage / request) past which a resource moves up.
    pub high: f64,
    /// Utilization under which (over the whole long window) a resource moves down.
    pub low: f64,
    /// Utilization a move aims at.
    pub target: f64,
    /// Samples averaged for a move up (CPU; memory takes their maximum).
    pub recent: usize,
    /// Seconds of samples that must all stay low for a move down.
    pub down_window: f64,
    /// Seconds after a change before another move up.
    pub up_cooldown: f64,
    /// Seconds after a change before a move down.
    pub down_cooldown: f64,
}

/// The default band: up past 80 %, down under 35 % for five minutes, aiming at 60 %; a minute's
/// cool-down before a move up, five before a move down.
pub const DEFAULT_POLICY: Policy = Policy {
    high: 0.8,
    low: 0.35,
    target: 0.6,
    recent: 3,
    down_window: 300.0,
    up_cooldown: 60.0,
    down_cooldown: 300.0,
};

/// CPU moves in steps of this many millicores.
pub const CPU_STEP_MILLI: u64 = 50;
/// Memory moves in steps of this many bytes (16 MiB).
pub const MEMORY_STEP_BYTES: u64 = 16 << 20;

/// A change of requests and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The new requests.
    pub to: Requests,
    /// A sentence for the event.
    pub why: String,
}

/// Which way one resource should move.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Move {
    Up(f64),
    Down(f64),
    Stay,
}

/// The requests the pods should have now, given what they have (`current`), when that last
/// changed (`last_change`, seconds since the epoch), and the samples, oldest first. None: keep
/// them.
pub fn decide(
    current: Requests,
    bounds: &Bounds,
    samples: &[Sample],
    last_change: Option<f64>,
    now: f64,
    policy: &Policy,
) -> Option<Decision> {
    // Outside the bounds (they changed, or the spec's starting point was outside): into them.
    let clamped = bounds.clamp(current);
    if clamped != current {
        return Some(Decision {
            to: clamped,
            why: "brought within the autoscaling bounds".into(),
        });
    }
    if samples.len() < policy.recent.max(1) {
        return None;
    }
    let since_change = last_change.map_or(f64::INFINITY, |t| now - t);
    let recent = &samples[samples.len() - policy.recent.max(1)..];
    let cpu_recent = recent.iter().map(|s| s.cpu_cores).sum::<f64>() / recent.len() as f64;
    let memory_recent = recent.iter().map(|s| s.memory_bytes).fold(0.0, f64::max);
    // A move down needs a whole window of samples, all low.
    let window: Vec<&Sample> = samples
        .iter()
        .filter(|s| now - s.at <= policy.down_window)
        .collect();
    let covers_window = samples
        .first()
        .is_some_and(|first| now - first.at >= policy.down_window * 0.9);
    let cpu_peak = window.iter().map(|s| s.cpu_cores).fold(0.0, f64::max);
    let memory_peak = window.iter().map(|s| s.memory_bytes).fold(0.0, f64::max);
    let cpu_have = current.cpu_milli as f64 / 1000.0;
    let memory_have = current.memory_bytes as f64;
    let movement = |recent: f64, peak: f64, have: f64| {
        if recent > have * policy.high {
            Move::Up(recent / policy.target)
        } else if covers_window && peak < have * policy.low {
            Move::Down(peak / policy.target)
        } else {
            Move::Stay
        }
    };
    let cpu = movement(cpu_recent, cpu_peak, cpu_have);
    let memory = movement(memory_recent, memory_peak, memory_have);
    let up = matches!(cpu, Move::Up(_)) || matches!(memory, Move::Up(_));
    // Memory never moves down while CPU moves up, and the other way round: one change at a time
    // in one direction, so a move never undoes the one before it.
    let (cpu, memory) = if up {
        (
            if let Move::Up(_) = cpu {
                cpu
            } else {
                Move::Stay
            },
            if let Move::Up(_) = memory {
                memory
            } else {
                Move::Stay
            },
        )
    } else {
        (cpu, memory)
    };
    let cooldown = if up {
        policy.up_cooldown
    } else {
        policy.down_cooldown
    };
    if since_change < cooldown {
        return None;
    }
    let mut to = current;
    let mut reasons = Vec::new();
    match cpu {
        Move::Up(cores) | Move::Down(cores) => {
            to.cpu_milli = round_up((cores * 1000.0).ceil() as u64, CPU_STEP_MILLI);
            reasons.push(format!(
                "CPU used {:.0}m (recent average), peak {:.0}m",
                cpu_recent * 1000.0,
                cpu_peak * 1000.0
            ));
        }
        Move::Stay => {}
    }
    match memory {
        Move::Up(bytes) | Move::Down(bytes) => {
            to.memory_bytes = round_up(bytes.ceil() as u64, MEMORY_STEP_BYTES);
            reasons.push(format!(
                "resident memory {} MiB (recent), peak {} MiB",
                (memory_recent / 1048576.0).round(),
                (memory_peak / 1048576.0).round()
            ));
        }
        Move::Stay => {}
    }
    let to = bounds.clamp(to);
    (to != current).then(|| Decision {
        to,
        why: reasons.join("; "),
    })
}

/// `n` rounded up to a multiple of `step`.
fn round_up(n: u64, step: u64) -> u64 {
    n.div_ceil(step).saturating_mul(step)
}

/// A CPU quantity in millicores, as Kubernetes writes it (`2`, `750m`).
pub fn cpu_quantity(milli: u64) -> String {
    if milli.is_multiple_of(1000) {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

/// A memory quantity in bytes, in the largest binary unit that divides it (`1Gi`, `272Mi`).
pub fn memory_quantity(bytes: u64) -> String {
    for (unit, size) in [("Gi", 1u64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests;
