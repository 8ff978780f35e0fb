//! Object names across clusters, with the real `koru-operator` against the real API server: a
//! cluster name ending in a suffix the operator uses for another cluster's objects is refused by
//! the CRD, and a cluster whose object name is taken by another KoruCluster's object applies
//! nothing over it and says so (a `NameConflict` condition and event) until the name is free.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use common::{cluster_yaml, event_reasons, start_operator};
use koru_testkit::{apply, eventually, field, fresh_namespace, install_crds, kubeconfig, kubectl};

const SPEC: &str = "  version: \"0.1.0\"\n  replicas: 1\n  storage:\n    size: 1Gi\n";

#[test]
fn a_cluster_never_applies_over_another_clusters_object() {
    let Some(k) = kubeconfig() else { return };
    install_crds(&k);
    let ns = "names-test";
    fresh_namespace(&k, ns);

    // The suffixes of a cluster's other objects are not cluster names.
    for reserved in ["orders-peers", "orders-config", "orders-admin"] {
        let (ok, out) = kubectl(
            &k,
            &["apply", "-n", ns, "-f", "-"],
            &cluster_yaml(reserved, SPEC),
        );
        assert!(!ok, "{reserved} was accepted: {out}");
        assert!(
            out.contains("must not end in -peers, -config or -admin"),
            "{out}"
        );
    }

    let mut operator = start_operator(&k, ns);
    apply(&k, ns, &cluster_yaml("orders", SPEC));
    let orders_uid = eventually(&mut operator, 60, "the cluster's uid", || {
        field(&k, ns, "kc/orders", "{.metadata.uid}").filter(|u| !u.is_empty())
    });
    eventually(&mut operator, 60, "orders' StatefulSet", || {
        field(&k, ns, "statefulset/orders", "{.metadata.name}")
    });
    assert_eq!(
        field(
            &k,
            ns,
            "networkpolicy/orders",
            "{.spec.ingress[1].ports[0].port}"
        )
        .as_deref(),
        Some("7879"),
        "the peer port's policy"
    );
    // A Service named as billing's client Service would be, controlled by orders (as an object
    // from before the names were reserved would be).
    let squatter = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: billing\n  ownerReferences:\n  - apiVersion: koru.dev/v1alpha1\n    kind: KoruCluster\n    name: orders\n    uid: {orders_uid}\n    controller: true\nspec:\n  selector:\n    app: orders-only\n  ports:\n  - name: web\n    port: 9999\n"
    );
    apply(&k, ns, &squatter);
    apply(&k, ns, &cluster_yaml("billing", SPEC));

    let message = eventually(&mut operator, 60, "a NameConflict condition", || {
        field(
            &k,
            ns,
            "kc/billing",
            "{.status.conditions[?(@.type==\"NameConflict\")].message}",
        )
        .filter(|m| !m.is_empty())
    });
    assert!(
        message.contains("Service billing belongs to KoruCluster orders"),
        "{message}"
    );
    assert_eq!(
        field(&k, ns, "kc/billing", "{.status.phase}").as_deref(),
        Some("NameConflict")
    );
    eventually(&mut operator, 30, "a NameConflict event", || {
        event_reasons(&k, ns, "billing")
            .contains("NameConflict")
            .then_some(())
    });
    // Nothing was applied: the Service is still orders' alone, and billing has no objects.
    assert_eq!(
        field(
            &k,
            ns,
            "service/billing",
            "{.metadata.ownerReferences[*].name}/{.spec.ports[0].port}"
        )
        .as_deref(),
        Some("orders/9999")
    );
    for object in [
        "statefulset/billing",
        "configmap/billing-config",
        "service/billing-peers",
    ] {
        assert_eq!(field(&k, ns, object, "{.metadata.name}"), None, "{object}");
    }

    // Once the name is free the cluster gets its objects and the condition goes.
    let (ok, out) = kubectl(&k, &["delete", "service", "billing", "-n", ns], "");
    assert!(ok, "{out}");
    eventually(&mut operator, 90, "billing's objects", || {
        let owner = field(
            &k,
            ns,
            "service/billing",
            "{.metadata.ownerReferences[0].name}",
        )?;
        let sts = field(&k, ns, "statefulset/billing", "{.metadata.name}")?;
        (owner == "billing" && sts == "billing").then_some(())
    });
    eventually(&mut operator, 60, "the condition gone", || {
        let types = field(&k, ns, "kc/billing", "{.status.conditions[*].type}")?;
        (!types.contains("NameConflict")).then_some(())
    });
}
