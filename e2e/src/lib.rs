//! The harness of the end-to-end journeys: the test Kubernetes with real nodes
//! (`scripts/testenv.sh up --nodes`, exported as `KORU_NODES_KUBECONFIG`), our images in its
//! nodes' containerd (`scripts/images.sh import`), the operator installed by its Helm chart, and
//! the data plane reached the way users reach it, through its client Service.
//!
//! Test-only code: it panics (fails the test) with a clear message instead of returning errors.

mod cluster;
mod controlplane;
mod http;
mod images;
mod operator;
mod s3;
mod tokens;
mod writes;

pub use cluster::{
    apply, client_url, cluster_field, cluster_yaml, delete_pod, leader_pod, operator_logs,
    patch_cluster, pod_names, pod_uid, wait_cluster, wait_pod_replaced, wait_pods_gone,
};
pub use controlplane::{CLIENT_IP, ControlPlane, NODES_HOST_IP};
pub use http::{get_value, put_value};
pub use images::{import_images, node_sockets, tag_image};
pub use operator::OperatorRelease;
pub use s3::ObjectStore;
pub use tokens::TokenKey;
pub use writes::{WriteLog, Writer};

use std::path::Path;

use koru_testkit::{NamespaceGuard, fresh_namespace, unique};

/// The network namespace of the test Kubernetes where the cluster's DNS names resolve, as in a
/// pod (`scripts/testenv-nodes.sh`): `ip netns exec koru-client <command>`.
pub const CLIENT_NETNS: &str = "koru-client";

/// A namespace of the test's own, `<stem>-<8 hex digits>`, made afresh and deleted (with all in
/// it) when the guard drops.
pub fn namespace(kubeconfig: &str, stem: &str) -> NamespaceGuard {
    let name = unique(stem);
    fresh_namespace(kubeconfig, &name);
    NamespaceGuard {
        kubeconfig: kubeconfig.to_string(),
        name,
    }
}

/// The kubeconfig of the test Kubernetes with nodes, its images imported; None (after saying so
/// loudly) outside CI when none runs. Under `CI=true` a missing one fails the test.
pub fn nodes() -> Option<String> {
    // reqwest is built without a TLS provider of its own (the workspace's features): ring's, as
    // every binary of ours installs it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match std::env::var("KORU_NODES_KUBECONFIG") {
        Ok(k) if Path::new(&k).is_file() => {
            import_images(&k);
            Some(k)
        }
        _ => {
            let message = "no KORU_NODES_KUBECONFIG: start a test Kubernetes with nodes with `eval \"$(scripts/testenv.sh up --nodes=2)\"` (as root) and export its KUBECONFIG as KORU_NODES_KUBECONFIG (make test does)";
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
            eprintln!("\n!!! SKIPPING the end-to-end journey: {message} !!!\n");
            None
        }
    }
}
