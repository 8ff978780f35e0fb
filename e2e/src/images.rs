//! Our images in the nodes' containerd: built from this checkout's binaries, checked by
//! `images/check.sh` and imported once per test process by `scripts/images.sh`, and tagged anew
//! for upgrades.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

use koru_testkit::root;

/// Builds (from the debug binaries the tests use, stripped) and imports every image into each
/// node of the test Kubernetes of `kubeconfig`, once per test process.
pub fn import_images(kubeconfig: &str) {
    static IMPORTED: Once = Once::new();
    IMPORTED.call_once(|| {
        // The archives are built (a no-op when current) and checked before any node runs them.
        let built = Command::new(root().join("scripts/images.sh"))
            .args(["build", "--profile", "dev"])
            .current_dir(root())
            .output()
            .expect("running scripts/images.sh");
        assert!(
            built.status.success(),
            "scripts/images.sh build failed:\n{}",
            String::from_utf8_lossy(&built.stderr)
        );
        let archives: Vec<String> = String::from_utf8_lossy(&built.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(archives.len(), 5, "five image archives: {archives:?}");
        let checked = Command::new(root().join("images/check.sh"))
            .args(&archives)
            .output()
            .expect("running images/check.sh");
        assert!(
            checked.status.success(),
            "images/check.sh refused the images:\n{}{}",
            String::from_utf8_lossy(&checked.stdout),
            String::from_utf8_lossy(&checked.stderr)
        );
        let out = Command::new(root().join("scripts/images.sh"))
            .args(["import", "--profile", "dev"])
            .env("KUBECONFIG", kubeconfig)
            .current_dir(root())
            .output()
            .expect("running scripts/images.sh");
        assert!(
            out.status.success(),
            "scripts/images.sh import failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// The containerd socket of every node of the test Kubernetes of `kubeconfig`.
pub fn node_sockets(kubeconfig: &str) -> Vec<PathBuf> {
    let dir = Path::new(kubeconfig)
        .parent()
        .expect("the kubeconfig sits in the testenv state dir")
        .join("nodes");
    let mut sockets: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|node| node.path().join("containerd/containerd.sock"))
        .filter(|socket| socket.exists())
        .collect();
    sockets.sort();
    assert!(
        !sockets.is_empty(),
        "no node sockets under {}",
        dir.display()
    );
    sockets
}

/// Gives the image `from` the name `to` too, on every node (as pushing a new tag would).
pub fn tag_image(kubeconfig: &str, from: &str, to: &str) {
    for socket in node_sockets(kubeconfig) {
        let socket = socket.display().to_string();
        let out = Command::new("ctr")
            .args([
                "--address",
                &socket,
                "-n",
                "k8s.io",
                "images",
                "tag",
                "--force",
            ])
            .args([from, to])
            .output()
            .expect("running ctr");
        assert!(
            out.status.success(),
            "ctr images tag {from} {to} on {socket}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
