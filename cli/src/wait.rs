//! Waiting for an asynchronous operation (create, change, delete, restore), with a spinner on
//! a terminal and nothing on stderr otherwise, so scripts see only the result.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use crate::client::Client;
use crate::error::{CliError, Result};

/// The first pause between two polls; it doubles up to [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_millis(250);
/// The longest pause between two polls.
const POLL_MAX: Duration = Duration::from_secs(2);

/// Polls operation `id` until it ends; returns it when it succeeded.
pub async fn operation(
    client: &mut Client,
    id: &str,
    what: &str,
    timeout: Duration,
) -> Result<Value> {
    let spinner = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(format!("{what} (operation {id})"));
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    let started = Instant::now();
    let mut pause = POLL_FIRST;
    let result = loop {
        let op = match client
            .call(Method::GET, &format!("/api/v1/operations/{id}"), None)
            .await
        {
            Ok(op) => op,
            Err(e) => break Err(e),
        };
        match op["status"].as_str() {
            Some("succeeded") => break Ok(op),
            Some("failed") => {
                break Err(CliError::OperationFailed {
                    id: id.to_string(),
                    message: op["error"]
                        .as_str()
                        .unwrap_or("no reason given")
                        .to_string(),
                });
            }
            _ => {}
        }
        if started.elapsed() + pause > timeout {
            break Err(CliError::Timeout(format!(
                "gave up after {} s waiting for operation {id} ({what}); it goes on: `koru` \
                 commands show its result later",
                started.elapsed().as_secs()
            )));
        }
        if let Some(bar) = &spinner {
            bar.set_message(format!(
                "{what} (operation {id}, {} s)",
                started.elapsed().as_secs()
            ));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(POLL_MAX);
    };
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    result
}
