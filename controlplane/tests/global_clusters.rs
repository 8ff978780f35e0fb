//! Global databases (issue 20) end to end over the real router and a real database (SQLite and
//! PostgreSQL), with the local provisioner: the tier and catalogue rules, and a 2-region database
//! whose regions run as their own `koru-dataplane` processes with `--region`, each other as
//! `--region-peer` and one shared replication token file; deleting it removes every region.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use axum::http::StatusCode;
use common::{Api, backends};
use serde_json::json;

/// The command line of the process serving `data` (found through `/proc`), if any.
fn serving(data: &Path) -> Option<Vec<String>> {
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args
            .windows(2)
            .any(|w| w[0] == "--data-dir" && Path::new(&w[1]) == data)
        {
            return Some(args);
        }
    }
    None
}

/// The values of every `flag` in `args`.
fn values<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
    args.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].as_str())
        .collect()
}

#[tokio::test]
async fn a_global_database_runs_each_region_with_its_peers_and_is_deleted_whole() {
    // GET asks each region's data plane for its streams over reqwest with rustls, whose crypto
    // provider the binary installs at start-up.
    let _ = rustls::crypto::ring::default_provider().install_default();
    for backend in backends().await {
        let api = Api::new(&backend).await;
        let b = api.backend;
        let (owner, org, _) = api.signup("dev@global.example", "Global Co").await;
        let org_path = format!("/api/v1/orgs/{org}");
        let clusters = format!("{org_path}/clusters");
        let (status, catalogue) = api.call("GET", "/api/v1/regions", None, None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(catalogue.as_array().unwrap().contains(&json!("eu-west")));

        // Free: one region only, refused as any tier refusal is.
        let two = json!({"name": "orders", "regions": ["us-east", "eu-west"]});
        let (status, e) = api
            .call("POST", &clusters, Some(&owner), Some(two.clone()))
            .await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "[{b}] {e}");
        assert_eq!(e["error"]["code"], "upgrade_required", "[{b}] {e}");

        let (status, e) = api
            .call(
                "PATCH",
                &org_path,
                Some(&owner),
                Some(json!({"tier": "pro"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {e}");
        for (body, want) in [
            (
                json!({"name": "x", "tier": "pro", "regions": ["us-east", "eu-west", "us-west", "ap-southeast"]}),
                StatusCode::FORBIDDEN,
            ),
            (
                json!({"name": "x", "tier": "pro", "regions": ["us-east", "mars"]}),
                StatusCode::BAD_REQUEST,
            ),
            (
                json!({"name": "x", "tier": "pro", "regions": ["us-east", "us-east"]}),
                StatusCode::BAD_REQUEST,
            ),
            (
                json!({"name": "x", "tier": "free", "regions": ["us-east", "eu-west"]}),
                StatusCode::PAYMENT_REQUIRED,
            ),
        ] {
            let (status, e) = api
                .call("POST", &clusters, Some(&owner), Some(body.clone()))
                .await;
            assert_eq!(status, want, "[{b}] {body}: {e}");
        }

        let (status, created) = api.call("POST", &clusters, Some(&owner), Some(two)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "[{b}] {created}");
        assert_eq!(created["cluster"]["region"], "us-east");
        assert_eq!(created["cluster"]["regions"][1]["name"], "eu-west");
        let id = created["cluster"]["id"].as_str().unwrap().to_string();
        let op = api
            .wait_operation(&owner, created["operation"]["id"].as_str().unwrap())
            .await;
        assert_eq!(op["status"], "succeeded", "[{b}] {op}");

        let (status, cluster) = api
            .call("GET", &format!("{clusters}/orders"), Some(&owner), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(cluster["phase"], "Running", "[{b}] {cluster}");
        let regions = cluster["regions"].as_array().unwrap();
        assert_eq!(regions.len(), 2, "[{b}] {cluster}");
        let endpoint = |i: usize| regions[i]["endpoint"].as_str().unwrap().to_string();
        let (us, eu) = (endpoint(0), endpoint(1));
        assert_ne!(us, eu);
        assert_eq!(
            cluster["endpoint"],
            us.as_str(),
            "the primary is the first region"
        );
        for r in regions {
            assert_eq!(r["phase"], "Running", "[{b}] {r}");
        }
        let (_, list) = api.call("GET", &clusters, Some(&owner), None).await;
        assert_eq!(
            list["items"][0]["regions"][1]["endpoint"],
            eu.as_str(),
            "[{b}] {list}"
        );

        // Each region is its own process, started with its region, the other as its peer, and
        // the one shared, owner-only token file.
        let root: PathBuf = api.dir.join("clusters/clusters");
        let us_args = serving(&root.join(format!("{id}.us-east/data"))).expect("us-east runs");
        let eu_args = serving(&root.join(format!("{id}.eu-west/data"))).expect("eu-west runs");
        assert_eq!(values(&us_args, "--region"), ["us-east"]);
        assert_eq!(values(&eu_args, "--region"), ["eu-west"]);
        assert_eq!(values(&us_args, "--region-peer"), [format!("eu-west={eu}")]);
        assert_eq!(values(&eu_args, "--region-peer"), [format!("us-east={us}")]);
        assert_eq!(values(&us_args, "--cluster-id"), [id.as_str()]);
        assert_eq!(values(&eu_args, "--cluster-id"), [id.as_str()]);
        let token = values(&us_args, "--region-token-file");
        assert_eq!(token, values(&eu_args, "--region-token-file"));
        let token = PathBuf::from(token[0]);
        assert!(std::fs::read_to_string(&token).unwrap().len() >= 32);
        let mode = std::fs::metadata(&token).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "[{b}] token file mode {mode:o}");

        // The regions stream to each other: a write in one is read in the other (one data token
        // opens every region of the database: they share its id and key), and the control plane
        // reports both links streaming.
        let (status, data_token) = api
            .call(
                "POST",
                &format!("{clusters}/{id}/data-tokens"),
                Some(&owner),
                Some(json!({"scope": "write"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "[{b}] {data_token}");
        let data_token = data_token["token"].as_str().unwrap();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap();
        let put = http
            .put(format!("{us}/api/v1/shop/cart-1"))
            .bearer_auth(data_token)
            .json(&json!({"value": {"items": 3}}))
            .send()
            .await
            .unwrap();
        assert!(put.status().is_success(), "[{b}] PUT: {}", put.status());
        let mut seen = None;
        for _ in 0..150 {
            let got = http
                .get(format!("{eu}/api/v1/shop/cart-1"))
                .bearer_auth(data_token)
                .send()
                .await
                .unwrap();
            if got.status().is_success() {
                seen = Some(got.json::<serde_json::Value>().await.unwrap());
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let seen = seen.unwrap_or_else(|| panic!("[{b}] eu-west never got us-east's write"));
        assert_eq!(seen["value"], json!({"items": 3}), "[{b}] {seen}");
        let mut streaming = false;
        for _ in 0..100 {
            let (_, cluster) = api
                .call("GET", &format!("{clusters}/orders"), Some(&owner), None)
                .await;
            let links: Vec<&serde_json::Value> = cluster["regions"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r["status"].as_array().into_iter().flatten())
                .collect();
            if links.len() == 2 && links.iter().all(|l| l["state"] == "streaming") {
                streaming = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(streaming, "[{b}] the regions' links never showed streaming");

        // Deleting the database removes every region and the token.
        let (status, op) = api
            .call("DELETE", &format!("{clusters}/{id}"), Some(&owner), None)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "[{b}] {op}");
        let op = api.wait_operation(&owner, op["id"].as_str().unwrap()).await;
        assert_eq!(op["status"], "succeeded", "[{b}] {op}");
        assert!(serving(&root.join(format!("{id}.us-east/data"))).is_none());
        assert!(serving(&root.join(format!("{id}.eu-west/data"))).is_none());
        assert!(!token.exists(), "[{b}] the token file is removed");
        assert!(!root.join(format!("{id}.eu-west")).exists());

        // The creates, refused ones included, and the delete are audited like any cluster's.
        let (_, page) = api
            .call(
                "GET",
                &format!("{org_path}/audit?limit=100"),
                Some(&owner),
                None,
            )
            .await;
        let outcomes = |action: &str| -> Vec<String> {
            page["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["action"] == action)
                .map(|e| e["outcome"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            outcomes("POST /api/v1/orgs/{org}/clusters"),
            [
                "success",
                "failure:402",
                "failure:400",
                "failure:400",
                "failure:403",
                "failure:402"
            ],
            "[{b}] newest first: {page}"
        );
        assert_eq!(
            outcomes("DELETE /api/v1/orgs/{org}/clusters/{id}"),
            ["success"]
        );
    }
}
