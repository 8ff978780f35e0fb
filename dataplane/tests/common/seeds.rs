//! Which seeds the simulations (`tests/power_loss.rs`, `tests/raft_sim.rs`) run.

/// The seeds a simulation runs: `KORU_SIM_SEED=<n>` alone, else the first `KORU_SIM_SEEDS`
/// (`default` when unset).
pub fn sim_seeds(default: u64) -> Vec<u64> {
    if let Ok(one) = std::env::var("KORU_SIM_SEED") {
        return vec![one.parse().expect("KORU_SIM_SEED is a number")];
    }
    let n = std::env::var("KORU_SIM_SEEDS")
        .ok()
        .map(|n| n.parse().expect("KORU_SIM_SEEDS is a number"))
        .unwrap_or(default);
    (0..n).collect()
}
