//! An S3 store the pods reach: MinIO (`scripts/s3env.sh`) on the nodes' host address.

use std::collections::BTreeMap;
use std::process::Command;

use koru_testkit::root;

use crate::NODES_HOST_IP;

/// A MinIO with one bucket on `10.244.0.1`, stopped when dropped.
pub struct ObjectStore {
    dir: tempfile::TempDir,
    /// The variables `scripts/s3env.sh up` printed (`AWS_ENDPOINT_URL`, `KORU_TEST_S3_BUCKET`, ...).
    pub env: BTreeMap<String, String>,
}

impl ObjectStore {
    /// Starts one.
    pub fn start() -> ObjectStore {
        let dir = tempfile::tempdir().expect("a scratch directory");
        let out = Command::new(root().join("scripts/s3env.sh"))
            .arg("up")
            .arg(dir.path())
            .env("KORU_S3ENV_ADDRESS", NODES_HOST_IP)
            .output()
            .expect("running scripts/s3env.sh");
        assert!(
            out.status.success(),
            "scripts/s3env.sh up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ObjectStore { dir, env }
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.env["KORU_TEST_S3_BUCKET"]
    }

    /// A Secret named `name` with the `AWS_*` variables a data plane needs for this store.
    pub fn credentials_secret(&self, name: &str) -> String {
        let mut yaml = format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: Opaque\nstringData:\n"
        );
        for key in [
            "AWS_ENDPOINT_URL",
            "AWS_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ALLOW_HTTP",
        ] {
            yaml.push_str(&format!("  {key}: \"{}\"\n", self.env[key]));
        }
        yaml
    }
}

impl Drop for ObjectStore {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/s3env.sh"))
            .arg("down")
            .arg(self.dir.path())
            .output();
    }
}
