//! The operator as users install it: `helm install` of `charts/koru-operator` with its real image.

use koru_testkit::{chart_path, get, helm_on, wait_until};

/// A Helm release of the operator chart watching one namespace, uninstalled when dropped.
pub struct OperatorRelease {
    kubeconfig: String,
    /// The release's namespace, which it also watches.
    pub namespace: String,
    /// The release name.
    pub release: String,
}

impl OperatorRelease {
    /// Installs the chart into `namespace` (release `<namespace>`, so its cluster-scoped objects
    /// are this test's own) and waits until its pods run and one holds the Lease.
    pub fn install(kubeconfig: &str, namespace: &str, replicas: u32) -> OperatorRelease {
        Self::install_with(kubeconfig, namespace, replicas, namespace)
    }

    /// Installs one pod of the chart into `namespace` watching the namespace `watch` (which may
    /// not exist yet: the control plane makes one per organization), or every one when empty.
    pub fn install_watching(kubeconfig: &str, namespace: &str, watch: &str) -> OperatorRelease {
        Self::install_with(kubeconfig, namespace, 1, watch)
    }

    /// Installs one pod of the chart into `namespace`, watching it, with extra chart values
    /// (`key=value`, as `helm --set` takes them).
    pub fn install_setting(kubeconfig: &str, namespace: &str, values: &[&str]) -> OperatorRelease {
        Self::install_with_values(kubeconfig, namespace, 1, namespace, values)
    }

    fn install_with(
        kubeconfig: &str,
        namespace: &str,
        replicas: u32,
        watch: &str,
    ) -> OperatorRelease {
        Self::install_with_values(kubeconfig, namespace, replicas, watch, &[])
    }

    fn install_with_values(
        kubeconfig: &str,
        namespace: &str,
        replicas: u32,
        watch: &str,
        values: &[&str],
    ) -> OperatorRelease {
        let release = namespace.to_string();
        let watch = format!("watchNamespace={watch}");
        let replica_count = format!("replicaCount={replicas}");
        let chart = chart_path("koru-operator");
        let mut args = vec![
            "install",
            &release,
            &chart,
            "-n",
            namespace,
            "--set",
            "image.pullPolicy=Never",
            "--set",
            &watch,
            "--set",
            &replica_count,
            "--set",
            "logging.format=text",
            "--wait",
            "--timeout",
            "180s",
        ];
        for value in values {
            args.extend(["--set", value]);
        }
        let (ok, out, err) = helm_on(Some(kubeconfig), &args);
        let operator = OperatorRelease {
            kubeconfig: kubeconfig.to_string(),
            namespace: namespace.to_string(),
            release,
        };
        assert!(ok, "helm install of the operator failed:\n{out}{err}");
        operator.wait_leader(120);
        operator
    }

    /// The operator's pods (by the chart's labels).
    pub fn pods(&self) -> Vec<(String, String)> {
        let selector = format!("app.kubernetes.io/instance={}", self.release);
        get(
            &self.kubeconfig,
            &[
                "get",
                "pods",
                "-n",
                &self.namespace,
                "-l",
                &selector,
                "-o",
                "jsonpath={range .items[*]}{.metadata.name} {.status.phase}{\"\\n\"}{end}",
            ],
        )
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(name, phase)| (name.to_string(), phase.to_string()))
        .collect()
    }

    /// The pod holding the leader Lease, once one does (waits up to `secs`).
    pub fn wait_leader(&self, secs: u64) -> String {
        let mut holder = String::new();
        wait_until(secs, "an operator pod to hold the Lease", || {
            holder = get(
                &self.kubeconfig,
                &[
                    "get",
                    "lease",
                    &format!("{}-koru-operator", self.release),
                    "-n",
                    &self.namespace,
                    "-o",
                    "jsonpath={.spec.holderIdentity}",
                ],
            )
            .unwrap_or_default();
            !holder.is_empty()
        });
        holder
    }
}

impl Drop for OperatorRelease {
    fn drop(&mut self) {
        let _ = helm_on(
            Some(&self.kubeconfig),
            &["uninstall", &self.release, "-n", &self.namespace, "--wait"],
        );
    }
}
