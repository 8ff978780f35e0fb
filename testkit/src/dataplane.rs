//! The real `koru-dataplane` binary as a child process of a test (for the operator's and control
//! plane's tests, which run a data plane on loopback where a cluster's pods would run).

use std::path::Path;

use crate::binaries::dataplane_binary;
use crate::process::{Process, ProcessSpec};

/// A data plane process serving on a free loopback port, killed when dropped.
pub struct DataPlane {
    /// Its base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The process, with its output.
    pub process: Process,
}

impl DataPlane {
    /// Starts `koru-dataplane --data-dir <data_dir> --listen 127.0.0.1:0 <args>`, with no
    /// `KORU_*` variables from the test's environment, and waits until it serves. Its logs are
    /// kept ([`Process::stderr`]) and shown if the test fails.
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
        let spec = ProcessSpec::dataplane(dataplane_binary())
            .clear_koru_env()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", listen])
            .args(args)
            .env("KORU_LOG", "info");
        let process = Process::start(spec);
        DataPlane {
            url: process.url().to_string(),
            process,
        }
    }
}
