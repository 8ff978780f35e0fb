//! Read budgets through the real `koru-dataplane` process: a key's history and the change feed far
//! over `--max-read-bytes` come back in pages, each within the budget, whose union is everything in
//! order; a history that fits keeps the KoruDelta v1 shape exactly.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use common::{Server, client, put_text};
use koru_dataplane::store::DEFAULT_MAX_READ_BYTES;
use reqwest::StatusCode;
use serde_json::Value;

/// Bytes of a page beyond its budget: the answer's own fields around the entries.
const PAGE_SLACK: usize = 1024;

/// Writes `count` versions of `app/big`, each a JSON string of `value_len` bytes naming its number;
/// the stored texts in order.
async fn write_versions(
    http: &reqwest::Client,
    server: &Server,
    count: usize,
    value_len: usize,
) -> Vec<String> {
    let mut texts = Vec::with_capacity(count);
    for i in 0..count {
        let head = format!("v{i}-");
        let text = format!("\"{head}{}\"", "x".repeat(value_len - head.len()));
        put_text(http, server, "app", "big", &text).await;
        texts.push(text);
    }
    texts
}

/// GETs `url` and returns the status, the raw body, the JSON answer and the `Link` header.
async fn fetch(http: &reqwest::Client, url: &str) -> (StatusCode, usize, Value, Option<String>) {
    let response = http.get(url).send().await.expect("GET");
    let status = response.status();
    let link = response
        .headers()
        .get("link")
        .map(|l| l.to_str().unwrap().to_string());
    let bytes = response.bytes().await.expect("body");
    let json = serde_json::from_slice(&bytes).expect("a JSON answer");
    (status, bytes.len(), json, link)
}

/// Pages through the history of `app/big` from `first`, checking each page against `budget`;
/// the stored texts of every version, in order, and the number of pages.
async fn all_history_pages(
    http: &reqwest::Client,
    server: &Server,
    first: &str,
    budget: usize,
) -> (Vec<String>, usize) {
    let mut url = format!("{}{first}", server.url);
    let (mut texts, mut pages) = (Vec::new(), 0);
    loop {
        let (status, len, page, link) = fetch(http, &url).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(len <= budget + PAGE_SLACK, "a page of {len} bytes");
        pages += 1;
        for v in page["versions"].as_array().unwrap() {
            texts.push(v["value"].to_string());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                let link = link.expect("a Link header beside next_cursor");
                assert!(
                    link.contains(&format!("cursor={cursor}")) && link.ends_with("rel=\"next\""),
                    "{link}"
                );
                let next = link
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap()
                    .to_string();
                url = format!("{}{next}", server.url);
            }
            None => {
                assert!(link.is_none(), "no Link on the last page");
                return (texts, pages);
            }
        }
    }
}

#[tokio::test]
async fn a_history_over_the_default_budget_comes_back_in_pages() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let http = client();
    // 24 versions of 512 KiB: 12 MiB, half again the default budget of 8 MiB.
    let written = write_versions(&http, &server, 24, 512 * 1024).await;
    let (texts, pages) = all_history_pages(
        &http,
        &server,
        "/api/v1/app/big/history",
        DEFAULT_MAX_READ_BYTES,
    )
    .await;
    assert_eq!(pages, 2);
    assert!(
        texts == written,
        "the pages hold every version once, in order"
    );
}

#[tokio::test]
async fn a_small_budget_pages_finely_and_limit_pages_by_count() {
    let dir = tempfile::tempdir().unwrap();
    let budget = 64 * 1024;
    let server = Server::start(dir.path(), &["--max-read-bytes", &budget.to_string()]);
    let http = client();
    let written = write_versions(&http, &server, 40, 8 * 1024).await;
    let (texts, pages) = all_history_pages(&http, &server, "/api/v1/app/big/history", budget).await;
    assert!(texts == written);
    assert!(pages >= 5, "{pages} pages of 64 KiB for 320 KiB");
    let (texts, pages) =
        all_history_pages(&http, &server, "/api/v1/app/big/history?limit=7", budget).await;
    assert!(texts == written);
    assert_eq!(pages, 6, "40 versions, 7 a page");

    // A value larger than the budget still comes back, one to a page.
    let huge = format!("\"{}\"", "y".repeat(100 * 1024));
    put_text(&http, &server, "app", "huge", &huge).await;
    put_text(&http, &server, "app", "huge", &huge).await;
    let (status, _, page, _) = fetch(&http, &server.api("/app/huge/history")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["versions"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, _, last, _) = fetch(
        &http,
        &server.api(&format!("/app/huge/history?cursor={cursor}")),
    )
    .await;
    assert_eq!(last["versions"].as_array().unwrap().len(), 1);
    assert!(last.get("next_cursor").is_none(), "{}", last["next_cursor"]);

    for bad in ["cursor=yesterday", "limit=0", "limit=100001"] {
        let (status, _, answer, _) =
            fetch(&http, &server.api(&format!("/app/big/history?{bad}"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {answer}");
        assert_eq!(answer["error"]["code"], "bad_request");
    }
}

#[tokio::test]
async fn a_history_that_fits_keeps_the_v1_shape() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let http = client();
    put_text(&http, &server, "app", "k", "1").await;
    put_text(&http, &server, "app", "k", "2").await;
    let (status, _, body, link) = fetch(&http, &server.api("/app/k/history")).await;
    assert_eq!(status, StatusCode::OK);
    let mut fields: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    fields.sort();
    assert_eq!(fields, ["key", "namespace", "versions"]);
    assert!(link.is_none());
    let versions = body["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    let mut entry: Vec<_> = versions[0].as_object().unwrap().keys().cloned().collect();
    entry.sort();
    assert_eq!(entry, ["timestamp", "value", "versionId", "version_id"]);
    assert_eq!(
        (versions[0]["value"].clone(), versions[1]["value"].clone()),
        (1.into(), 2.into())
    );
}

#[tokio::test]
async fn a_value_heavy_change_feed_comes_back_in_pages_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let http = client();
    // 24 records of 512 KiB: 12 MiB, within the count limit of one page (1,000) but not its bytes.
    let written = write_versions(&http, &server, 24, 512 * 1024).await;
    let (mut since, mut values, mut lsns, mut pages) = (0u64, Vec::new(), Vec::new(), 0);
    loop {
        let url = server.api(&format!("/changes?since={since}&limit=1000"));
        let (status, len, page, _) = fetch(&http, &url).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(
            len <= DEFAULT_MAX_READ_BYTES + PAGE_SLACK,
            "a page of {len} bytes"
        );
        pages += 1;
        for change in page["changes"].as_array().unwrap() {
            lsns.push(change["lsn"].as_u64().unwrap());
            values.push(change["ops"][0]["value"].to_string());
        }
        since = page["next_since"].as_u64().unwrap();
        if since == page["last_lsn"].as_u64().unwrap() {
            break;
        }
    }
    assert_eq!(pages, 2);
    assert!(
        values == written,
        "the pages hold every record once, in order"
    );
    assert_eq!(lsns, (1..=24).collect::<Vec<u64>>());
}
