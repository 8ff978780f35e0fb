//! `koru-bench http` run as a child process: benchmarks that start servers of their own run the
//! load in a separate process (its CPU counted apart from theirs) and read its JSON record.

use std::process::Stdio;

use crate::error::BenchError;
use crate::report::Figures;

/// Runs `koru-bench http --name <name> --json <args>` and reads the record it prints last.
pub async fn run(name: &str, args: &[String]) -> Result<Figures, BenchError> {
    let exe = std::env::current_exe().map_err(BenchError::io("finding this executable"))?;
    let output = tokio::process::Command::new(exe)
        .arg("http")
        .args(["--name", name, "--json"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // Its human line is this run's progress.
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(BenchError::io("running koru-bench http"))?
        // Not `output()`, which would capture stderr too.
        .wait_with_output()
        .await
        .map_err(BenchError::io("running koru-bench http"))?;
    if !output.status.success() {
        return Err(BenchError::Target(format!(
            "the {name} load failed ({})",
            output.status
        )));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Figures>(l).ok())
        .ok_or_else(|| BenchError::Target(format!("the {name} load printed no result: {text}")))
}
