//! CPU per acknowledged write: the CPU time each server process used during a load's measured
//! window (read by the load generator from `/proc/<pid>/stat`), divided by the requests and the
//! writes acknowledged in that window. The load generator's own CPU is not counted: it is a
//! process of its own.

use serde::Serialize;

use crate::error::BenchError;
use crate::report::Figures;

/// CPU microseconds per acknowledged request or write, per process and for the whole cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpuSplit {
    /// The single node.
    pub single_us: f64,
    /// The cluster's leader (where the load went).
    pub leader_us: f64,
    /// Each follower, in the order of [`CpuFigure::follower_ids`].
    pub followers_us: Vec<f64>,
    /// Leader and followers together.
    pub cluster_us: f64,
}

/// One load's CPU figures, the single node's beside the cluster's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpuFigure {
    /// Which load: `always_put`, `always_batch`, `interval_put` or `interval_batch`.
    pub load: String,
    /// Writes per request: 1 for PUTs, the batch size for batches.
    pub writes_per_request: usize,
    /// The followers' member ids.
    pub follower_ids: Vec<u64>,
    /// Per acknowledged request (a PUT, or a whole batch).
    pub per_request: CpuSplit,
    /// Per acknowledged write (a PUT, or one entry of a batch).
    pub per_write: CpuSplit,
    /// `per_write.cluster_us / per_write.single_us` (the same per request).
    pub cluster_ratio: f64,
}

/// The CPU figures of one load pair: `single` against one node, `cluster` against the leader,
/// whose `server_cpu_us` lists the leader then the followers (`follower_ids`).
pub fn cpu_figure(
    load: &str,
    single: &Figures,
    cluster: &Figures,
    writes_per_request: usize,
    follower_ids: &[u64],
) -> Result<CpuFigure, BenchError> {
    let missing = |what: &str| {
        BenchError::Target(format!(
            "the {what} load of {load} reported no server CPU time"
        ))
    };
    let &[single_cpu] = &single.server_cpu_us[..] else {
        return Err(missing("single-node"));
    };
    let Some((&leader_cpu, followers_cpu)) = cluster.server_cpu_us.split_first() else {
        return Err(missing("cluster"));
    };
    if followers_cpu.len() != follower_ids.len() {
        return Err(missing("cluster"));
    }
    let total: u64 = cluster.server_cpu_us.iter().sum();
    let per = |cpu: u64, ops: u64| {
        if ops > 0 {
            cpu as f64 / ops as f64
        } else {
            0.0
        }
    };
    let split = |single_ops: u64, cluster_ops: u64| CpuSplit {
        single_us: per(single_cpu, single_ops),
        leader_us: per(leader_cpu, cluster_ops),
        followers_us: followers_cpu.iter().map(|&c| per(c, cluster_ops)).collect(),
        cluster_us: per(total, cluster_ops),
    };
    let writes = writes_per_request.max(1) as u64;
    let per_request = split(single.requests, cluster.requests);
    let per_write = split(single.requests * writes, cluster.requests * writes);
    let cluster_ratio = if per_write.single_us > 0.0 {
        per_write.cluster_us / per_write.single_us
    } else {
        0.0
    };
    Ok(CpuFigure {
        load: load.into(),
        writes_per_request,
        follower_ids: follower_ids.to_vec(),
        per_request,
        per_write,
        cluster_ratio,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::Histogram;

    fn figures(requests: u64, cpu: &[u64]) -> Figures {
        let mut f = Figures::new("x".into(), &Histogram::default(), 0, 0, 1.0);
        f.requests = requests;
        f.server_cpu_us = cpu.to_vec();
        f
    }

    #[test]
    fn cpu_is_divided_by_requests_and_by_batch_entries() {
        let single = figures(1000, &[20_000]);
        let cluster = figures(500, &[30_000, 10_000, 10_000]);
        let f = cpu_figure("always_batch", &single, &cluster, 10, &[2, 3]).unwrap();
        assert_eq!(f.per_request.single_us, 20.0);
        assert_eq!(f.per_request.leader_us, 60.0);
        assert_eq!(f.per_request.followers_us, vec![20.0, 20.0]);
        assert_eq!(f.per_request.cluster_us, 100.0);
        assert_eq!(f.per_write.single_us, 2.0);
        assert_eq!(f.per_write.cluster_us, 10.0);
        assert_eq!(f.cluster_ratio, 5.0);
        assert_eq!(f.follower_ids, vec![2, 3]);
    }

    #[test]
    fn a_load_without_server_cpu_is_an_error() {
        let single = figures(1000, &[]);
        let cluster = figures(500, &[1, 2, 3]);
        assert!(matches!(
            cpu_figure("always_put", &single, &cluster, 1, &[2, 3]),
            Err(BenchError::Target(_))
        ));
        let single = figures(1000, &[5]);
        assert!(matches!(
            cpu_figure("always_put", &single, &cluster, 1, &[2]),
            Err(BenchError::Target(_))
        ));
    }
}
