//! Who reaches a cluster's pods on which port: the client port (the API) only from the
//! cluster's own pods and the clients the operator is told of (the gateway, the control plane,
//! the operator itself), or from anyone when the operator runs with `--api-ingress open`; the
//! peer port (the member routes: Raft, forwarded writes, record copies) only from the cluster's
//! own pods. The client Service routes to the client port only; the headless Service, which gives
//! each pod the DNS name its peers use, names both.

use k8s_openapi::api::core::v1::{ContainerPort, ServicePort};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

use super::{HTTP_PORT, Identity, PEER_PORT};

/// The name of the client port.
const HTTP_NAME: &str = "http";
/// The name of the peer port.
const PEER_NAME: &str = "peer";

/// The data-plane container's ports.
pub(super) fn container_ports() -> Vec<ContainerPort> {
    vec![
        ContainerPort {
            name: Some(HTTP_NAME.into()),
            container_port: HTTP_PORT,
            ..ContainerPort::default()
        },
        ContainerPort {
            name: Some(PEER_NAME.into()),
            container_port: PEER_PORT,
            ..ContainerPort::default()
        },
    ]
}

/// A Service's ports: the client port, and for the headless Service also the peer port.
pub(super) fn service_ports(headless: bool) -> Vec<ServicePort> {
    let port = |name: &str, number: i32| ServicePort {
        name: Some(name.into()),
        port: number,
        target_port: Some(IntOrString::Int(number)),
        ..ServicePort::default()
    };
    let mut ports = vec![port(HTTP_NAME, HTTP_PORT)];
    if headless {
        ports.push(port(PEER_NAME, PEER_PORT));
    }
    ports
}

/// Pods allowed to reach a cluster's API port: those with `labels`, in the namespace
/// `namespace` (None: in any namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiClient {
    /// The namespace, matched by its `kubernetes.io/metadata.name` label; None for any.
    pub namespace: Option<String>,
    /// The pods' labels.
    pub labels: BTreeMap<String, String>,
}

/// Who may reach a cluster's API port besides its own pods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiAccess {
    /// Only the listed clients (and the cluster's own pods); false: anyone.
    pub restricted: bool,
    /// The clients allowed when restricted.
    pub clients: Vec<ApiClient>,
}

/// The label every namespace carries with its own name.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The NetworkPolicy `<cluster>` on the cluster's pods: ingress to the client port from the
/// cluster's own pods and `access`'s clients (from anywhere when not restricted), to the peer
/// port from the cluster's own pods only, nothing else. (It binds only where the network plugin
/// enforces NetworkPolicies; the peer port also needs the member credential, and the API a data
/// token.)
pub(super) fn policy(id: &Identity, access: &ApiAccess) -> NetworkPolicy {
    let tcp = |number: i32| NetworkPolicyPort {
        port: Some(IntOrString::Int(number)),
        protocol: Some("TCP".into()),
        ..NetworkPolicyPort::default()
    };
    let own_pods = LabelSelector {
        match_labels: Some(id.selector()),
        ..LabelSelector::default()
    };
    NetworkPolicy {
        metadata: id.meta(id.name.clone()),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(own_pods.clone()),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    from: access.restricted.then(|| api_peers(&own_pods, access)),
                    ports: Some(vec![tcp(HTTP_PORT)]),
                },
                NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer {
                        pod_selector: Some(own_pods),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: Some(vec![tcp(PEER_PORT)]),
                },
            ]),
            ..NetworkPolicySpec::default()
        }),
    }
}

/// The peers allowed on the API port when restricted: the cluster's own pods (followers forward
/// nothing there, but a member's own tools may), then each client.
fn api_peers(own_pods: &LabelSelector, access: &ApiAccess) -> Vec<NetworkPolicyPeer> {
    let mut peers = vec![NetworkPolicyPeer {
        pod_selector: Some(own_pods.clone()),
        ..NetworkPolicyPeer::default()
    }];
    peers.extend(access.clients.iter().map(|c| NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: Some(c.labels.clone()),
            ..LabelSelector::default()
        }),
        // An empty selector is every namespace; without one, only the policy's own.
        namespace_selector:
            Some(
                LabelSelector {
                    match_labels:
                        c.namespace.as_ref().map(|ns| {
                            BTreeMap::from([(NAMESPACE_NAME_LABEL.to_string(), ns.clone())])
                        }),
                    ..LabelSelector::default()
                },
            ),
        ..NetworkPolicyPeer::default()
    }));
    peers
}
