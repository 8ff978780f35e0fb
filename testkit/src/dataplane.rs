//! The real `koru-dataplane` binary as a child process of a test (for the operator's tests, which
//! run a data plane on loopback where a cluster's pods would run).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

/// The line prefix the data plane prints on stdout once it accepts connections.
const READY_PREFIX: &str = "koru-dataplane listening on ";
/// How long a data plane may take to print its URL.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A data plane process serving on a free loopback port, killed when dropped.
pub struct DataPlane {
    /// Its base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    child: Child,
}

impl DataPlane {
    /// Starts `koru-dataplane --data-dir <data_dir> --listen 127.0.0.1:0 <args>`, with no
    /// `KORU_*` variables from the test's environment, and waits until it serves. Its logs go to
    /// the test's stderr.
    pub fn start(data_dir: &Path, args: &[&str]) -> DataPlane {
        DataPlane::start_at(data_dir, "127.0.0.1:0", args)
    }

    /// [`DataPlane::start`] listening on `listen` (a cluster member whose peers know its address).
    pub fn start_at(data_dir: &Path, listen: &str, args: &[&str]) -> DataPlane {
        DataPlane::start_with_env(data_dir, listen, &[], args)
    }

    /// [`DataPlane::start_at`] with `env` set, e.g. the `KORU_*` variables of a ConfigMap the
    /// operator renders (the command line's `--data-dir` and `--listen` win over theirs).
    pub fn start_with_env(
        data_dir: &Path,
        listen: &str,
        env: &[(String, String)],
        args: &[&str],
    ) -> DataPlane {
        let mut command = Command::new(dataplane_binary());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("KORU_") {
                command.env_remove(name);
            }
        }
        command.envs(env.iter().map(|(k, v)| (k, v)));
        let mut child = command
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", listen])
            .args(args)
            .env("KORU_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting koru-dataplane");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (url_tx, url_rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Keeps draining stdout after the URL so the server never blocks on a full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix(READY_PREFIX) {
                    let _ = url_tx.send(url.trim().to_string());
                }
            }
        });
        match url_rx.recv_timeout(START_TIMEOUT) {
            Ok(url) => DataPlane { url, child },
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().expect("waiting for koru-dataplane");
                panic!("koru-dataplane did not start ({status}); its log is above");
            }
        }
    }
}

impl Drop for DataPlane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `koru-dataplane` binary beside the running test's target directory, built once per test
/// process: cargo is asked every time (a no-op when it is fresh), so a test never runs a data
/// plane older than its sources. (A `cargo test -p` of another crate does not build it.)
pub fn dataplane_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test's path");
        // <target>/debug/deps/<test> -> <target>/debug/koru-dataplane
        let profile = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test runs from <target>/<profile>/deps");
        let target = profile.parent().expect("<target>/<profile>");
        let status = crate::cargo()
            .args(["build", "-p", "koru-dataplane", "--bin", "koru-dataplane"])
            .env("CARGO_TARGET_DIR", target)
            .status()
            .expect("running cargo build");
        assert!(status.success(), "building koru-dataplane failed");
        let bin = profile.join("koru-dataplane");
        assert!(bin.is_file(), "no koru-dataplane at {}", bin.display());
        bin
    })
    .clone()
}
