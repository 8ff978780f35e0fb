//! `POST /admin/rewind` against real `koru-dataplane` processes: a random workload over two
//! namespaces is rewound under one key prefix to a moment in its middle and checked key by key
//! against an oracle (exact stored text, history kept and extended, nothing else touched), a dry
//! run lists exactly what the real run applies, a second rewind is a no-op, writers racing a
//! rewind lose nothing, bad input, batch/rate/storage limits, a read-only store, and auth.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

#[path = "common/mod.rs"]
mod common;
#[path = "rewind/support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Body;
use common::{Server, client};
use http_body_util::BodyExt;
use koru_dataplane::auth::Scope;
use koru_dataplane::http::{AppState, app};
use koru_dataplane::metrics::Metrics;
use koru_dataplane::wal::faults::Faults;
use koru_dataplane::{FsyncMode, Store, StoreConfig, WriteOp};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{
    Id, Rng, as_listed, assert_error, current_text, delete, expected_changes, history, jwt, listed,
    put, rewind, signer, state, status, workload,
};
use tower::ServiceExt;

#[tokio::test]
async fn a_prefix_rewinds_to_a_middle_moment_as_new_versions_and_nothing_else_moves() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let http = client();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut acked = Vec::new();
    workload(&http, &server, &mut rng, 120, &mut acked).await;
    // Keys the random writes never touch, so every case occurs whatever the seed.
    for (key, text) in [
        ("user:keep", "1"),
        ("user:gone", "[1, 2]"),
        ("user:back", "\"a\""),
    ] {
        acked.push(put(&http, &server, "app", key, text).await);
    }
    let as_of = acked.last().unwrap().time.clone();
    workload(&http, &server, &mut rng, 80, &mut acked).await;
    acked.push(delete(&http, &server, "app", "user:gone").await);
    acked.push(put(&http, &server, "app", "user:back", "1").await);
    acked.push(put(&http, &server, "app", "user:back", "\"a\"").await);
    acked.push(put(&http, &server, "app", "user:fresh", "{}").await);
    acked.push(put(&http, &server, "audit", "user:fresh", "{}").await);
    let (expected, unchanged) = expected_changes(&acked, "app", "user:", &as_of);
    let actions: BTreeSet<&str> = expected.iter().map(|c| c.1.as_str()).collect();
    assert_eq!(
        actions,
        BTreeSet::from(["delete", "recreate", "restore"]),
        "the workload must exercise every action: {expected:?}"
    );
    assert!(unchanged >= 2, "user:keep and user:back are unchanged");
    let ids: BTreeSet<Id> = acked.iter().map(|a| a.id.clone()).collect();
    let mut before = BTreeMap::new();
    for id in &ids {
        before.insert(id.clone(), history(&http, &server, &id.0, &id.1).await);
    }
    let status_before = status(&http, &server).await;

    // The dry run lists the oracle's changes and writes nothing.
    let request = json!({"namespace": "app", "prefix": "user:", "as_of": as_of, "dry_run": true});
    let (code, dry) = rewind(&http, &server, &request, None).await;
    assert_eq!(code, StatusCode::OK, "{dry}");
    assert_eq!(listed(&dry), as_listed(&expected));
    assert_eq!(dry["change_count"], expected.len());
    assert_eq!(dry["unchanged"], unchanged);
    assert_eq!(
        (&dry["truncated"], &dry["applied_lsn"], &dry["dry_run"]),
        (&json!(false), &Value::Null, &json!(true))
    );
    assert_eq!(dry["as_of"], as_of);
    assert_eq!(dry["planned_lsn"], status_before["last_lsn"]);
    let status_after_dry = status(&http, &server).await;
    assert_eq!(
        (
            &status_after_dry["last_lsn"],
            &status_after_dry["total_versions"]
        ),
        (&status_before["last_lsn"], &status_before["total_versions"]),
        "a dry run writes nothing"
    );

    // The real run, bound to the reviewed plan, applies exactly what the dry run listed.
    let mut real = request.clone();
    real["dry_run"] = json!(false);
    real["if_unchanged_since"] = dry["planned_lsn"].clone();
    let (code, done) = rewind(&http, &server, &real, None).await;
    assert_eq!(code, StatusCode::OK, "{done}");
    assert_eq!(done["changes"], dry["changes"]);
    assert_eq!(done["unchanged"], dry["unchanged"]);
    let lsn = done["applied_lsn"].as_u64().expect("applied");
    assert_eq!(
        lsn,
        status_before["last_lsn"].as_u64().unwrap() + 1,
        "one record"
    );
    assert!(done["applied_at"].as_str().unwrap() > as_of.as_str());

    // Every key under the prefix holds its text at the moment, byte for byte; the rest is as it was.
    let then = state(&acked, Some(&as_of));
    let changed: BTreeMap<&str, &str> = expected
        .iter()
        .map(|c| (c.0.as_str(), c.1.as_str()))
        .collect();
    for id in &ids {
        let old = &before[id];
        let new = history(&http, &server, &id.0, &id.1).await;
        let in_range = id.0 == "app" && id.1.starts_with("user:");
        match changed.get(id.1.as_str()).filter(|_| in_range) {
            Some(action) => {
                assert_eq!(new.len(), old.len() + 1, "{id:?}: one new version");
                assert_eq!(&new[..old.len()], &old[..], "{id:?}: old versions kept");
                let last = &new[old.len()];
                assert!(
                    last["version_id"]
                        .as_str()
                        .unwrap()
                        .starts_with(&format!("{lsn}.")),
                    "{last}"
                );
                assert_eq!(
                    last["deleted"] == json!(true),
                    *action == "delete",
                    "{last}"
                );
            }
            None => assert_eq!(&new, old, "{id:?} must be untouched"),
        }
        if in_range {
            let want = then.get(id).cloned().flatten();
            assert_eq!(
                current_text(&http, &server, &id.0, &id.1).await,
                want,
                "{id:?} as of {as_of}"
            );
        }
    }

    // The same rewind again finds nothing to do and writes nothing.
    let mut again = request.clone();
    again["dry_run"] = json!(false);
    let (code, noop) = rewind(&http, &server, &again, None).await;
    assert_eq!(code, StatusCode::OK, "{noop}");
    assert_eq!(
        (
            &noop["change_count"],
            &noop["changes"],
            &noop["applied_lsn"]
        ),
        (&json!(0), &json!([]), &Value::Null)
    );
    assert_eq!(
        noop["unchanged"],
        unchanged + expected.len() - changed.values().filter(|a| **a == "delete").count()
    );
    assert_eq!(status(&http, &server).await["last_lsn"], lsn);
}

#[tokio::test]
async fn bad_requests_get_clear_errors_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let http = client();
    let first = put(&http, &server, "app", "user:1", "1").await;
    put(&http, &server, "app", "user:1", "2").await;
    let t = first.time.clone();
    let ok = json!({"namespace": "app", "prefix": "user:", "as_of": t, "dry_run": true});
    let with = |field: &str, value: Value| {
        let mut body = ok.clone();
        body[field] = value;
        body
    };
    let bad = StatusCode::BAD_REQUEST;
    let cases = [
        (
            with("namespace", json!("bad name")),
            bad,
            "invalid_name",
            "not allowed",
        ),
        (
            with("namespace", json!("_koru_views")),
            bad,
            "invalid_name",
            "reserved",
        ),
        (
            with("namespace", json!("never")),
            StatusCode::NOT_FOUND,
            "not_found",
            "never held a key",
        ),
        (
            with("as_of", json!("yesterday")),
            bad,
            "bad_request",
            "RFC 3339",
        ),
        (
            with("as_of", json!("2999-01-01T00:00:00Z")),
            bad,
            "bad_request",
            "in the future",
        ),
        (
            with("as_of", json!("2001-01-01T00:00:00Z")),
            bad,
            "bad_request",
            "before the first record",
        ),
        (
            with("prefix", json!("a\u{1}")),
            bad,
            "bad_request",
            "control characters",
        ),
        (
            with("prefx", json!("user:")),
            bad,
            "malformed_json",
            "unknown field",
        ),
        (
            with("if_unchanged_since", json!(1_000_000)),
            bad,
            "bad_request",
            "past the last LSN",
        ),
        (
            with("if_unchanged_since", json!(1)),
            StatusCode::CONFLICT,
            "rewind_conflict",
            "run the dry run again",
        ),
        (
            json!({"namespace": "app", "as_of": t}),
            bad,
            "malformed_json",
            "dry_run",
        ),
        (
            json!({"namespace": "app", "dry_run": false}),
            bad,
            "malformed_json",
            "as_of",
        ),
    ];
    for (body, status, code, says) in cases {
        let got = rewind(&http, &server, &body, None).await;
        assert_error(&got, status, code, says);
    }
    let resp = http
        .get(format!("{}/admin/rewind", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        status(&http, &server).await["last_lsn"],
        2,
        "nothing was written"
    );
    let (code, body) = rewind(&http, &server, &ok, None).await;
    assert_eq!(
        (code, &body["change_count"]),
        (StatusCode::OK, &json!(1)),
        "{body}"
    );
}

/// Writes `n` keys after a seed write, stops the server and returns the seed's time.
async fn seeded(dir: &std::path::Path, n: usize) -> String {
    let mut server = Server::start(dir, &[]);
    let http = client();
    let t = put(&http, &server, "app", "seed", "0").await.time;
    for i in 0..n {
        put(&http, &server, "app", &format!("user:{i}"), "{\"v\": 1}").await;
    }
    server.term();
    t
}

#[tokio::test]
async fn batch_rate_and_storage_limits_apply_like_writes() {
    let dir = tempfile::tempdir().unwrap();
    let t = seeded(dir.path(), 5).await;
    let http = client();
    let body = |prefix: &str, dry_run: bool| json!({"namespace": "app", "prefix": prefix, "as_of": t, "dry_run": dry_run});

    // More changes than one batch takes: refused, the dry run too, naming the limit.
    let mut server = Server::start(dir.path(), &["--max-batch-ops", "3"]);
    for dry_run in [true, false] {
        let got = rewind(&http, &server, &body("user:", dry_run), None).await;
        assert_error(
            &got,
            StatusCode::PAYLOAD_TOO_LARGE,
            "rewind_too_large",
            "change 5 keys",
        );
        assert_error(
            &got,
            StatusCode::PAYLOAD_TOO_LARGE,
            "rewind_too_large",
            "narrower key prefix",
        );
    }
    let (code, one) = rewind(&http, &server, &body("user:1", false), None).await;
    assert_eq!(
        (code, &one["change_count"]),
        (StatusCode::OK, &json!(1)),
        "{one}"
    );
    server.term();

    // Four more changes than the per-second limit: 429, nothing written; a dry run costs one.
    let mut server = Server::start(dir.path(), &["--max-ops-per-sec", "2"]);
    let before = status(&http, &server).await["last_lsn"].clone();
    let got = rewind(&http, &server, &body("user:", false), None).await;
    assert_error(
        &got,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "per-second limit",
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (code, dry) = rewind(&http, &server, &body("user:", true), None).await;
    assert_eq!(
        (code, &dry["change_count"]),
        (StatusCode::OK, &json!(4)),
        "{dry}"
    );
    assert_eq!(status(&http, &server).await["last_lsn"], before);
    server.term();

    // No room left under the storage quota (the log's size is that of the data directory).
    let wal = dir.path().join("wal");
    let stored: u64 = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".wal"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    let quota = (stored + 16).to_string();
    let mut server = Server::start(dir.path(), &["--max-stored-bytes", &quota]);
    let stored = status(&http, &server).await["stored_bytes"].clone();
    let got = rewind(&http, &server, &body("user:", false), None).await;
    assert_error(
        &got,
        StatusCode::INSUFFICIENT_STORAGE,
        "storage_quota_exceeded",
        "quota",
    );
    let (code, dry) = rewind(&http, &server, &body("user:", true), None).await;
    assert_eq!(
        (code, &dry["change_count"]),
        (StatusCode::OK, &json!(4)),
        "{dry}"
    );
    assert_eq!(status(&http, &server).await["stored_bytes"], stored);
    server.term();
}

#[tokio::test]
async fn writers_racing_rewinds_lose_nothing_and_each_rewind_lands_whole() {
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(Server::start(dir.path(), &[]));
    let http = client();
    let mut t = String::new();
    for i in 0..20 {
        t = put(
            &http,
            &server,
            "app",
            &format!("user:{i:02}"),
            &format!("{{\"gen\": 0, \"i\": {i}}}"),
        )
        .await
        .time;
    }
    for i in 0..20 {
        put(&http, &server, "app", &format!("user:{i:02}"), "\"later\"").await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..2u64 {
        let (server, stop, http) = (Arc::clone(&server), Arc::clone(&stop), http.clone());
        writers.push(tokio::spawn(async move {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 + w);
            let mut acked = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let key = format!("user:{:02}", rng.below(24));
                acked.push(
                    put(
                        &http,
                        &server,
                        "app",
                        &key,
                        &format!("{{\"writer\": {w}, \"n\": {n}}}"),
                    )
                    .await,
                );
                n += 1;
                tokio::time::sleep(Duration::from_millis(4)).await;
            }
            acked
        }));
    }
    let request = json!({"namespace": "app", "prefix": "user:", "as_of": t, "dry_run": false});
    let mut applied = Vec::new();
    for _ in 0..8 {
        let (code, body) = rewind(&http, &server, &request, None).await;
        match code {
            StatusCode::OK => applied.push(body),
            StatusCode::CONFLICT => assert_eq!(body["error"]["code"], "rewind_conflict", "{body}"),
            _ => panic!("{code}: {body}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    assert!(!applied.is_empty(), "no rewind got through in 8 tries");
    assert!(acked.len() > 10, "the writers wrote during the rewinds");

    // At the moment each rewind committed, every key of the range was exactly as at `t`.
    for done in applied.iter().filter(|d| !d["applied_at"].is_null()) {
        let at = done["applied_at"].as_str().unwrap();
        for i in 0..24 {
            let key = format!("user:{i:02}");
            let resp = http
                .get(server.api(&format!("/app/{key}/at/{at}")))
                .send()
                .await
                .unwrap();
            if i < 20 {
                let body: Value = resp.json().await.unwrap();
                assert_eq!(body["value"], json!({"gen": 0, "i": i}), "{key} at {at}");
            } else {
                assert_eq!(
                    resp.status(),
                    StatusCode::NOT_FOUND,
                    "{key} did not exist at {t}"
                );
            }
        }
    }
    // Every acknowledged write is in its key's history with its value.
    let mut histories = BTreeMap::new();
    for a in &acked {
        if !histories.contains_key(&a.id.1) {
            histories.insert(
                a.id.1.clone(),
                history(&http, &server, "app", &a.id.1).await,
            );
        }
        let found = histories[&a.id.1]
            .iter()
            .find(|v| v["version_id"] == a.version.as_str())
            .unwrap_or_else(|| panic!("{a:?} lost"));
        let sent: Value = serde_json::from_str(a.value.as_deref().unwrap()).unwrap();
        assert_eq!(found["value"], sent);
    }
}

#[tokio::test]
async fn a_read_only_store_refuses_a_rewind_but_answers_a_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let mut config = StoreConfig::new(dir.path());
    config.fsync = FsyncMode::Always;
    config.faults = Some(Arc::clone(&faults));
    let metrics = Arc::new(Metrics::default());
    let (store, _) = Store::open(config, Arc::clone(&metrics.store)).unwrap();
    let value = |t: &str| serde_json::value::RawValue::from_string(t.into()).unwrap();
    let t = store
        .write(vec![WriteOp::put("app", "user:1", value("1"))])
        .await
        .unwrap()
        .timestamp_micros;
    store
        .write(vec![WriteOp::put("app", "user:1", value("2"))])
        .await
        .unwrap();
    faults.fail_next_sync();
    assert!(
        store
            .write(vec![WriteOp::put("app", "x", value("3"))])
            .await
            .is_err()
    );
    let router = app(AppState::new(store.clone(), metrics, None, None));
    let as_of = chrono::DateTime::from_timestamp_micros(t)
        .unwrap()
        .to_rfc3339();
    let send = |dry_run: bool| {
        let body = json!({"namespace": "app", "as_of": as_of, "dry_run": dry_run});
        let request = axum::http::Request::post("/admin/rewind")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let router = router.clone();
        async move {
            let resp = router.oneshot(request).await.unwrap();
            let status = resp.status().as_u16();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap())
        }
    };
    let (status, body) = send(false).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &json!("read_only")),
        "{body}"
    );
    let (status, body) = send(true).await;
    assert_eq!((status, &body["change_count"]), (200, &json!(1)), "{body}");
    store.close();
}

#[tokio::test]
async fn only_admin_tokens_may_rewind_even_as_a_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let (key, signer) = signer(dir.path());
    let server = Server::start(
        &dir.path().join("data"),
        &["--auth-public-key", &key, "--cluster-id", "c-1"],
    );
    let http = client();
    let (writer, reader, admin) = (
        jwt(&signer, Scope::Write),
        jwt(&signer, Scope::Read),
        jwt(&signer, Scope::Admin),
    );
    let resp = http
        .put(server.api("/app/user:1"))
        .bearer_auth(&writer)
        .header("content-type", "application/json")
        .body(r#"{"value": 1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let t: Value = resp.json().await.unwrap();
    let body = json!({"namespace": "app", "as_of": t["timestamp"], "dry_run": true});
    let got = rewind(&http, &server, &body, None).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "unauthorized", "");
    for token in [&reader, &writer] {
        let got = rewind(&http, &server, &body, Some(token)).await;
        assert_error(&got, StatusCode::FORBIDDEN, "forbidden", "");
    }
    let (code, ok) = rewind(&http, &server, &body, Some(&admin)).await;
    assert_eq!(
        (code, &ok["change_count"]),
        (StatusCode::OK, &json!(0)),
        "{ok}"
    );
}
