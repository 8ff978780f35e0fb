//! Who reaches a cluster's pods on which port: the client port (the API) for anyone, as before;
//! the peer port (the member routes: Raft, forwarded writes, record copies) only for the
//! cluster's own pods. The client Service routes to the client port only; the headless Service,
//! which gives each pod the DNS name its peers use, names both.

use k8s_openapi::api::core::v1::{ContainerPort, ServicePort};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

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

/// The NetworkPolicy `<cluster>` on the cluster's pods: ingress to the client port from
/// anywhere, to the peer port from the cluster's own pods only, nothing else. (It binds only
/// where the network plugin enforces NetworkPolicies; the peer port also needs the member
/// credential.)
pub(super) fn policy(id: &Identity) -> NetworkPolicy {
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
                    from: None,
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
