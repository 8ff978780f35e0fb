//! Restore drills against a real server process: the newest base backup is restored into a scratch
//! directory and checked on demand (`POST /admin/backups/verify`); the outcome shows in
//! `GET /admin/backups` and `/metrics`, a damaged archive fails the drill naming the object, no
//! scratch copy is left behind either way, and the last outcome survives a restart.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use common::{Server, client, put_text};
use serde_json::Value;

async fn post(http: &reqwest::Client, url: String) -> (reqwest::StatusCode, Value) {
    let resp = http.post(url).send().await.expect("POST");
    let status = resp.status();
    (status, resp.json().await.expect("a JSON body"))
}

async fn metrics(http: &reqwest::Client, server: &Server) -> String {
    let url = server.api("/x").replace("/api/v1/x", "/metrics");
    http.get(url).send().await.unwrap().text().await.unwrap()
}

fn scratch_copies(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(".koru-verify-"))
        .collect()
}

#[tokio::test]
async fn restore_drills_check_the_newest_backup_and_report_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let store_dir = tmp.path().join("archive");
    let store_url = format!("file://{}", store_dir.display());
    let server = Server::start(
        &data,
        &["--segment-size", "4096", "--backup-store", &store_url],
    );
    let http = client();
    let admin = |path: &str| server.api("/x").replace("/api/v1/x", path);

    // Nothing to restore yet: the drill fails and says why.
    let (status, v) = post(&http, admin("/admin/backups/verify")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["ok"], false, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("no base backup"),
        "{v}"
    );

    for i in 0..200 {
        put_text(
            &http,
            &server,
            "drill",
            &format!("k{}", i % 50),
            &format!("{{\"n\":{i}}}"),
        )
        .await;
    }
    let (status, manifest) = post(&http, admin("/admin/backups")).await;
    assert_eq!(status, 201, "{manifest}");

    let (status, v) = post(&http, admin("/admin/backups/verify")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["backup_id"], manifest["id"], "{v}");
    assert_eq!(v["last_lsn"], manifest["last_lsn"], "{v}");
    assert_eq!(v["versions"], 200, "{v}");
    assert!(
        scratch_copies(tmp.path()).is_empty(),
        "a drill left its copy"
    );
    let listed: Value = http
        .get(admin("/admin/backups"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["verification"], v, "{listed}");
    let m = metrics(&http, &server).await;
    assert!(
        m.contains("koru_backup_verifications_total{result=\"ok\"} 1"),
        "{m}"
    );
    let verified = m
        .lines()
        .find_map(|l| l.strip_prefix("koru_backup_verified_timestamp_seconds "))
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or_else(|| panic!("no verified timestamp in {m}"));
    assert!(verified > 1_700_000_000, "{verified}");

    // A damaged archived segment fails the next drill, naming it; the server keeps serving.
    let segment = std::fs::read_dir(store_dir.join("wal"))
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .min()
        .expect("an archived segment");
    let mut bytes = std::fs::read(&segment).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0xff;
    std::fs::write(&segment, bytes).unwrap();
    let (status, v) = post(&http, admin("/admin/backups/verify")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["ok"], false, "{v}");
    let name = segment.file_name().unwrap().to_str().unwrap();
    assert!(v["message"].as_str().unwrap().contains(name), "{v}");
    assert!(
        scratch_copies(tmp.path()).is_empty(),
        "a failed drill left its copy"
    );
    let m = metrics(&http, &server).await;
    assert!(
        m.contains("koru_backup_verifications_total{result=\"error\"} 2"),
        "{m}"
    );
    put_text(&http, &server, "drill", "after", "1").await;

    // The outcome is kept in the store (`verify/last.json`), so a restarted server still reports
    // it; the restart keeps the failed drill, the latest one.
    let mut server = server;
    server.term();
    drop(server);
    let server = Server::start(
        &data,
        &["--segment-size", "4096", "--backup-store", &store_url],
    );
    let admin = |path: &str| server.api("/x").replace("/api/v1/x", path);
    let recorded: Value =
        serde_json::from_slice(&std::fs::read(store_dir.join("verify/last.json")).unwrap())
            .unwrap();
    assert_eq!(recorded, v, "the store's record is the last drill");
    let mut listed = Value::Null;
    for _ in 0..100 {
        listed = http
            .get(admin("/admin/backups"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !listed["verification"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(listed["verification"], v, "{listed}");
}

#[test]
fn a_drill_schedule_needs_a_store_and_a_valid_cron() {
    let tmp = tempfile::tempdir().unwrap();
    let e = Server::try_start(&tmp.path().join("d"), &["--verify-schedule", "@daily"])
        .err()
        .expect("refused");
    assert!(
        e.stderr.contains("--verify-schedule needs --backup-store"),
        "{}",
        e.stderr
    );
    let url = format!("file://{}", tmp.path().join("a").display());
    let e = Server::try_start(
        &tmp.path().join("d"),
        &["--backup-store", &url, "--verify-schedule", "every day"],
    )
    .err()
    .expect("refused");
    assert!(e.stderr.contains("--verify-schedule"), "{}", e.stderr);
}
