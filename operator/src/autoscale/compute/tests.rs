//! The compute decision over recorded load series: each test plays a series sample by sample
//! through [`decide`], as the operator would every interval, and checks the changes it made.

use super::*;

const MI: u64 = 1 << 20;
/// Seconds between samples, the operator's default interval.
const EVERY: f64 = 30.0;

fn bounds() -> Bounds {
    Bounds {
        min: Requests {
            cpu_milli: 250,
            memory_bytes: 256 * MI,
        },
        max: Requests {
            cpu_milli: 2000,
            memory_bytes: 2048 * MI,
        },
    }
}

fn start() -> Requests {
    Requests {
        cpu_milli: 500,
        memory_bytes: 512 * MI,
    }
}

/// Plays a series of (CPU cores wanted, resident MiB) through `decide`; a pod never uses more
/// CPU than its limit (it is throttled). Returns the changes: (time, new requests).
fn play(series: &[(f64, f64)]) -> Vec<(f64, Requests)> {
    let mut current = start();
    let mut samples = Vec::new();
    let mut last_change = None;
    let mut changes = Vec::new();
    for (i, &(cpu, memory)) in series.iter().enumerate() {
        let now = 1_000_000.0 + i as f64 * EVERY;
        samples.push(Sample {
            at: now,
            cpu_cores: cpu.min(current.cpu_milli as f64 / 1000.0),
            memory_bytes: memory * MI as f64,
        });
        if let Some(d) = decide(
            current,
            &bounds(),
            &samples,
            last_change,
            now,
            &DEFAULT_POLICY,
        ) {
            assert!(!d.why.is_empty());
            current = d.to;
            last_change = Some(now);
            changes.push((now, d.to));
        }
    }
    changes
}

/// Whether each resource only ever moved one way across the changes (no flapping).
fn monotonic(changes: &[(f64, Requests)]) -> bool {
    let mut cpu = vec![start().cpu_milli];
    let mut memory = vec![start().memory_bytes];
    for (_, r) in changes {
        cpu.push(r.cpu_milli);
        memory.push(r.memory_bytes);
    }
    let one_way =
        |v: &[u64]| v.windows(2).all(|w| w[0] <= w[1]) || v.windows(2).all(|w| w[0] >= w[1]);
    one_way(&cpu) && one_way(&memory)
}

#[test]
fn a_steady_load_inside_the_band_changes_nothing() {
    let series = vec![(0.3, 200.0); 60];
    assert_eq!(play(&series), vec![]);
}

#[test]
fn a_single_spike_changes_nothing() {
    let mut series = vec![(0.3, 200.0); 40];
    series[20] = (1.8, 230.0);
    assert_eq!(play(&series), vec![]);
}

#[test]
fn a_sustained_rise_moves_up_in_steps_a_cooldown_apart_and_stops_at_the_bound() {
    let mut series = vec![(0.3, 200.0); 10];
    series.extend(vec![(3.0, 200.0); 40]);
    let changes = play(&series);
    assert!(changes.len() >= 2, "{changes:?}");
    assert!(monotonic(&changes), "{changes:?}");
    for pair in changes.windows(2) {
        assert!(
            pair[1].0 - pair[0].0 >= DEFAULT_POLICY.up_cooldown,
            "{changes:?}"
        );
    }
    let last = changes.last().unwrap().1;
    assert_eq!(last.cpu_milli, 2000, "capped at maxCpu: {changes:?}");
    assert_eq!(last.memory_bytes, 512 * MI, "memory untouched: {changes:?}");
    // The first move comes as soon as the recent average passes 80 % (two samples throttled at
    // 500m and one at 300m: 433m) and aims at 60 % of it (722m, rounded up to 50m steps).
    assert_eq!(changes[0].1.cpu_milli, 750);
}

#[test]
fn an_oscillating_load_never_flaps() {
    // Busy one sample, idle the next, for an hour.
    let series: Vec<(f64, f64)> = (0..120)
        .map(|i| {
            if i % 2 == 0 {
                (0.9, 300.0)
            } else {
                (0.05, 300.0)
            }
        })
        .collect();
    let changes = play(&series);
    assert!(monotonic(&changes), "{changes:?}");
    assert!(changes.len() <= 2, "{changes:?}");
}

#[test]
fn load_that_falls_away_moves_down_once_after_a_whole_quiet_window() {
    let mut series = vec![(1.2, 600.0); 20];
    series.extend(vec![(0.05, 120.0); 40]);
    let changes = play(&series);
    let downs: Vec<_> = changes.iter().filter(|(_, r)| r.cpu_milli < 500).collect();
    assert_eq!(downs.len(), 1, "{changes:?}");
    let (at, to) = downs[0];
    // The quiet stretch started at sample 20; the move waits for five minutes of it.
    let quiet_from = 1_000_000.0 + 20.0 * EVERY;
    assert!(
        at - quiet_from >= DEFAULT_POLICY.down_window - EVERY,
        "{changes:?}"
    );
    assert_eq!(to.cpu_milli, 250, "down to minCpu: {changes:?}");
    assert_eq!(to.memory_bytes, 256 * MI, "down to minMemory: {changes:?}");
}

#[test]
fn growing_memory_moves_memory_up() {
    let mut series = vec![(0.2, 300.0); 5];
    series.extend(vec![(0.2, 450.0); 5]);
    let changes = play(&series);
    assert_eq!(changes.len(), 1, "{changes:?}");
    // 450 MiB at 60 %: 750 MiB, rounded up to 16 MiB steps.
    assert_eq!(changes[0].1.memory_bytes, 752 * MI);
    assert_eq!(changes[0].1.cpu_milli, 500);
}

#[test]
fn requests_outside_the_bounds_are_brought_in_at_once() {
    let huge = Requests {
        cpu_milli: 4000,
        memory_bytes: 100 * MI,
    };
    let d = decide(huge, &bounds(), &[], Some(0.0), 1.0, &DEFAULT_POLICY).unwrap();
    assert_eq!(
        d.to,
        Requests {
            cpu_milli: 2000,
            memory_bytes: 256 * MI
        }
    );
}

#[test]
fn too_few_samples_decide_nothing() {
    let one = [Sample {
        at: 10.0,
        cpu_cores: 5.0,
        memory_bytes: 1e9,
    }];
    assert_eq!(
        decide(start(), &bounds(), &one, None, 10.0, &DEFAULT_POLICY),
        None
    );
}

#[test]
fn quantities_are_written_as_kubernetes_writes_them() {
    assert_eq!(cpu_quantity(2000), "2");
    assert_eq!(cpu_quantity(850), "850m");
    assert_eq!(memory_quantity(1 << 30), "1Gi");
    assert_eq!(memory_quantity(752 * MI), "752Mi");
    assert_eq!(memory_quantity(1000), "1000");
}
