//! The gateway's side of the control plane, on SQLite and PostgreSQL with real local data planes:
//! the internal sync and wake calls (refused without the shared secret), the route table over a
//! real socket, rate shares from several replicas' reports, scale to zero (suspend, concurrent
//! wakes joining one resume, the wake time), the idle check, and the SLO figures.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{Api, backends, http};
use koru_controlplane::gateway::{GatewayConfig, Routing};
use serde_json::{Value, json};

const SECRET: &str = "a-gateway-secret-for-tests";

/// `api` with the gateway secret set (and clusters shown behind `routing`).
fn with_gateway(api: &mut Api, routing: Routing) {
    api.state.gateway = Arc::new(GatewayConfig {
        secret: Some(SECRET.into()),
        routing,
    });
}

/// Creates cluster `name` in `org`, waits until it runs; returns its detail.
async fn running_cluster(api: &Api, owner: &str, org: &str, name: &str) -> Value {
    let clusters = format!("/api/v1/orgs/{org}/clusters");
    let (status, created) = api
        .call("POST", &clusters, Some(owner), Some(json!({"name": name})))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "[{}] {created}", api.backend);
    let op = api
        .wait_operation(owner, created["operation"]["id"].as_str().unwrap())
        .await;
    assert_eq!(op["status"], "succeeded", "[{}] {op}", api.backend);
    let (_, cluster) = api
        .call("GET", &format!("{clusters}/{name}"), Some(owner), None)
        .await;
    assert_eq!(cluster["phase"], "Running", "{cluster}");
    cluster
}

/// The cluster's phase once it is `want`, or its last phase after 30 s of polling.
async fn phase_within_30s(api: &Api, owner: &str, org: &str, id: &str, want: &str) -> Value {
    let mut phase = Value::Null;
    for _ in 0..300 {
        let (_, c) = api
            .call(
                "GET",
                &format!("/api/v1/orgs/{org}/clusters/{id}"),
                Some(owner),
                None,
            )
            .await;
        phase = c["phase"].clone();
        if phase == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    phase
}

/// A sync through the router with `auth` as the Authorization header.
async fn sync_as(api: &Api, auth: Option<&str>, body: Value) -> (StatusCode, Value) {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
    api.call_with_headers(
        "POST",
        "/internal/v1/gateway/sync",
        None,
        Some(body),
        &headers,
    )
    .await
}

async fn sync(api: &Api, body: Value) -> Value {
    let (status, table) = sync_as(api, Some(&format!("Bearer {SECRET}")), body).await;
    assert_eq!(status, StatusCode::OK, "[{}] {table}", api.backend);
    table
}

async fn wake(api: &Api, id: &str) -> (StatusCode, Value) {
    let auth = format!("Bearer {SECRET}");
    api.call_with_headers(
        "POST",
        &format!("/internal/v1/gateway/clusters/{id}/wake"),
        None,
        None,
        &[("authorization", &auth)],
    )
    .await
}

fn route<'a>(table: &'a Value, id: &str) -> &'a Value {
    table["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("cluster {id} is not in the route table {table}"))
}

#[tokio::test]
async fn the_internal_api_refuses_callers_without_the_gateway_secret() {
    for backend in backends().await {
        let mut api = Api::new(&backend).await;
        let b = api.backend;
        let (owner, _, _) = api.signup("gw@attack.example", "Gw Attack").await;
        let body = json!({"gateway_id": "g1"});
        // No secret configured: the internal API does not exist.
        let (status, _) = sync_as(&api, Some("Bearer anything"), body.clone()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "[{b}]");
        with_gateway(&mut api, Routing::Direct);
        let user = format!("Bearer {owner}");
        let near = format!("Bearer {}", &SECRET[..SECRET.len() - 1]);
        let longer = format!("Bearer {SECRET}x");
        let basic = format!("Basic {SECRET}");
        for auth in [
            None,
            Some(""),
            Some("Bearer "),
            Some(user.as_str()),
            Some(near.as_str()),
            Some(longer.as_str()),
            Some(basic.as_str()),
            Some(SECRET),
        ] {
            let (status, answer) = sync_as(&api, auth, body.clone()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "[{b}] {auth:?}: {answer}");
            assert!(answer.get("clusters").is_none(), "[{b}] {answer}");
        }
        // A user's session opens neither call.
        let (status, _) = api
            .call(
                "POST",
                "/internal/v1/gateway/clusters/x/wake",
                Some(&owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "[{b}]");
        let (status, _) = wake(&api, "no-such-cluster").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "[{b}]");
        for id in [
            "",
            "../../etc",
            &"g".repeat(300),
            "g'; DROP TABLE clusters; --",
        ] {
            let (status, answer) = sync_as(
                &api,
                Some(&format!("Bearer {SECRET}")),
                json!({"gateway_id": id}),
            )
            .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "[{b}] {id:?}: {answer}");
        }
        let table = sync(&api, body).await;
        assert_eq!(table["live_gateways"], 1, "[{b}] {table}");
        // Refused calls are in the audit log; the successful sync, once a second, is not.
        let count = |outcome: &'static str| {
            let db = api.state.db.clone();
            async move {
                use sqlx::Row;
                sqlx::query(
                    "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'POST /internal/v1/gateway/sync' AND outcome = $1",
                )
                .bind(outcome)
                .fetch_one(&db)
                .await
                .unwrap()
                .try_get::<i64, _>("n")
                .unwrap()
            }
        };
        assert_eq!(count("success").await, 0, "[{b}]");
        assert_eq!(count("failure:401").await, 8, "[{b}]");
    }
}

#[tokio::test]
async fn the_route_table_is_served_over_http_with_shares_from_every_replica() {
    for backend in backends().await {
        let mut api = Api::new(&backend).await;
        with_gateway(&mut api, Routing::Path("http://127.0.0.1:8081".into()));
        let b = api.backend;
        let (owner, org, _) = api.signup("gw@routes.example", "Routes").await;
        let cluster = running_cluster(&api, &owner, &org, "orders").await;
        let id = cluster["id"].as_str().unwrap().to_string();
        // Users are shown the gateway's address, by path.
        assert_eq!(
            cluster["endpoint"], "http://127.0.0.1:8081/c/routes/orders",
            "[{b}]"
        );
        assert!(
            cluster["connection"]["curl"]
                .as_str()
                .unwrap()
                .contains("/c/routes/orders")
        );
        let tokens = format!("/api/v1/orgs/{org}/clusters/{id}/data-tokens");
        let (_, token) = api
            .call(
                "POST",
                &tokens,
                Some(&owner),
                Some(json!({"scope": "read"})),
            )
            .await;
        let jti = token["id"].as_str().unwrap().to_string();
        let (status, _) = api
            .call("DELETE", &format!("{tokens}/{jti}"), Some(&owner), None)
            .await;
        assert_eq!(status, StatusCode::OK);

        // The real router on a real socket, called as the gateway calls it.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = koru_controlplane::http::app(api.state.clone());
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let client = http();
        let call = |gateway: &'static str, activity: Value| {
            client
                .post(format!("{base}{}", koru_gateway_api::SYNC_PATH))
                .bearer_auth(SECRET)
                .json(&json!({"gateway_id": gateway, "activity": activity}))
                .send()
        };
        let answer = call("gw-a", json!([])).await.unwrap();
        assert_eq!(answer.status().as_u16(), 200, "[{b}]");
        let table: koru_gateway_api::RouteTable = answer.json().await.unwrap();
        let r = table.clusters.iter().find(|c| c.id == id).unwrap();
        assert_eq!(
            r.state,
            koru_gateway_api::RouteState::Running,
            "[{b}] {r:?}"
        );
        assert_eq!((r.name.as_str(), r.org_slug.as_str()), ("orders", "routes"));
        // Members are the data plane's own address, never the gateway's.
        let direct = api
            .state
            .provisioner
            .state(&koru_controlplane::provisioner::ClusterSpec {
                id: id.clone(),
                name: "orders".into(),
                org_id: org.clone(),
                org_slug: "routes".into(),
                version: String::new(),
                replicas: 1,
                storage_bytes: 0,
                max_ops_per_sec: 0,
                max_stored_bytes: 0,
                token_public_key_pem: String::new(),
                revocations_url: None,
                backup_retention_days: 0,
                restore: None,
                suspended: false,
                regions: Vec::new(),
                region: None,
            })
            .await
            .unwrap()
            .endpoint
            .unwrap();
        assert_eq!(r.members, vec![direct.clone()], "[{b}]");
        let health = client
            .get(format!("{direct}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status().as_u16(), 200);
        let key = koru_controlplane::cluster_keys::find(&api.state.db, &id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            r.token_public_key_pem, key.public_pem,
            "[{b}] the cluster's own key"
        );
        assert_eq!(r.revoked_token_ids, vec![jti.clone()], "[{b}]");
        assert!(r.allowed_cidrs.is_empty());
        assert_eq!(
            (r.max_ops_per_sec, r.max_request_bytes),
            (100, 1024 * 1024),
            "[{b}] free tier"
        );
        assert!(
            r.ops_share > 0.999 && r.ops_share <= 1.0,
            "[{b}] alone: {}",
            r.ops_share
        );
        assert_eq!(table.live_gateways, 1);

        // A second replica serving most of the traffic gets most of the rate; the idle one keeps
        // its floor; together they never exceed the cluster's rate.
        let busy = json!([{"cluster_id": id, "requests": 90, "server_errors": 1, "slow_requests": 2, "throttled": 10}]);
        let table_b: koru_gateway_api::RouteTable =
            call("gw-b", busy).await.unwrap().json().await.unwrap();
        assert_eq!(table_b.live_gateways, 2, "[{b}]");
        let table_a: koru_gateway_api::RouteTable =
            call("gw-a", json!([])).await.unwrap().json().await.unwrap();
        let share = |t: &koru_gateway_api::RouteTable| {
            t.clusters.iter().find(|c| c.id == id).unwrap().ops_share
        };
        let (a, b_share) = (share(&table_a), share(&table_b));
        assert!(
            b_share > 0.85 && (0.0999..0.11).contains(&a),
            "[{b}] a {a}, b {b_share}"
        );
        assert!(a + share(&call("gw-b", json!([])).await.unwrap().json().await.unwrap()) <= 1.0);
        // Activity from a cluster that does not exist is ignored, not an error.
        let ghost = json!([{"cluster_id": "ghost", "requests": 5, "server_errors": 0, "slow_requests": 0, "throttled": 0}]);
        assert_eq!(call("gw-a", ghost).await.unwrap().status().as_u16(), 200);

        // The SLOs count what the gateway reported.
        let (status, slo) = api
            .call(
                "GET",
                &format!("/api/v1/orgs/{org}/clusters/{id}/slo"),
                Some(&owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "[{b}] {slo}");
        let day = &slo["windows"][0];
        assert_eq!(
            (day["window"].as_str(), day["requests"].as_u64()),
            (Some("24h"), Some(90)),
            "[{b}] {slo}"
        );
        assert_eq!(
            (day["server_errors"].as_u64(), day["slow_requests"].as_u64()),
            (Some(1), Some(2))
        );
        assert_eq!(
            day["availability_met"], false,
            "1 error in 90 misses 99.9 %"
        );
        assert_eq!(day["latency_met"], false, "2 slow in 90 misses 99 %");
        assert_eq!(slo["availability_target"], 0.999);
        // Another organization cannot read them.
        let (other, _, _) = api.signup("gw@other.example", "Other").await;
        let (status, _) = api
            .call(
                "GET",
                &format!("/api/v1/orgs/{org}/clusters/{id}/slo"),
                Some(&other),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "[{b}]");
        server.abort();
    }
}

/// Counts the cluster's operations of `kind`.
async fn operations_of(api: &Api, id: &str, kind: &str) -> i64 {
    use sqlx::Row;
    sqlx::query("SELECT COUNT(*) AS n FROM operations WHERE cluster_id = $1 AND kind = $2")
        .bind(id)
        .bind(kind)
        .fetch_one(&api.state.db)
        .await
        .unwrap()
        .try_get("n")
        .unwrap()
}

#[tokio::test]
async fn a_suspended_cluster_keeps_its_data_and_concurrent_wakes_start_one_resume() {
    for backend in backends().await {
        let mut api = Api::new(&backend).await;
        with_gateway(&mut api, Routing::Direct);
        let b = api.backend;
        let (owner, org, _) = api.signup("gw@sleep.example", "Sleep").await;
        let cluster = running_cluster(&api, &owner, &org, "orders").await;
        let id = cluster["id"].as_str().unwrap().to_string();
        let endpoint = cluster["endpoint"].as_str().unwrap().to_string();
        let base = format!("/api/v1/orgs/{org}/clusters/{id}");
        let (_, token) = api
            .call(
                "POST",
                &format!("{base}/data-tokens"),
                Some(&owner),
                Some(json!({"scope": "write"})),
            )
            .await;
        let token = token["token"].as_str().unwrap().to_string();
        let client = http();
        let key = format!("{endpoint}/api/v1/shop/cart");
        let put = client
            .put(&key)
            .bearer_auth(&token)
            .json(&json!({"value": 7}))
            .send()
            .await
            .unwrap();
        assert!(put.status().is_success());

        // A viewer may not suspend; a member may.
        let viewer = api.api_token(&owner, &org, "ro", "viewer").await;
        let (status, _) = api
            .call("POST", &format!("{base}/suspend"), Some(&viewer), None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "[{b}]");
        let (status, suspended) = api
            .call("POST", &format!("{base}/suspend"), Some(&owner), None)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "[{b}] {suspended}");
        assert_eq!(suspended["operation"]["kind"], "suspend");
        assert_eq!(suspended["cluster"]["suspended"], true);
        let op = api
            .wait_operation(&owner, suspended["operation"]["id"].as_str().unwrap())
            .await;
        assert_eq!(op["status"], "succeeded", "[{b}] {op}");
        let (_, c) = api.call("GET", &base, Some(&owner), None).await;
        assert_eq!(
            (c["phase"].as_str(), c["suspended"].as_bool()),
            (Some("Suspended"), Some(true)),
            "[{b}] {c}"
        );
        let (_, list) = api
            .call(
                "GET",
                &format!("/api/v1/orgs/{org}/clusters"),
                Some(&owner),
                None,
            )
            .await;
        assert_eq!(list["items"][0]["phase"], "Suspended", "[{b}] {list}");
        assert!(
            client
                .get(format!("{endpoint}/healthz"))
                .send()
                .await
                .is_err(),
            "[{b}] no process"
        );
        let (status, again) = api
            .call("POST", &format!("{base}/suspend"), Some(&owner), None)
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "[{b}] {again}");
        // Backups say why they cannot run, and that nothing was lost.
        let (status, backup) = api
            .call("POST", &format!("{base}/backups"), Some(&owner), None)
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "[{b}] {backup}");
        let message = backup["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("suspended") && message.contains("recovery point is unchanged"),
            "{message}"
        );
        // The usage sampler skips it without an error.
        koru_controlplane::usage::collect_once(&api.state)
            .await
            .unwrap();
        let table = sync(&api, json!({"gateway_id": "gw"})).await;
        let r = route(&table, &id);
        assert_eq!(
            (r["state"].as_str(), r["members"].as_array().map(Vec::len)),
            (Some("suspended"), Some(0)),
            "[{b}]"
        );

        // Three gateway replicas wake it at once: one resume operation.
        let started = Instant::now();
        let (w1, w2, w3) = tokio::join!(wake(&api, &id), wake(&api, &id), wake(&api, &id));
        for (status, answer) in [w1, w2, w3] {
            assert_eq!(status, StatusCode::OK, "[{b}] {answer}");
            assert!(
                answer["state"] == "waking" || answer["state"] == "running",
                "[{b}] {answer}"
            );
        }
        assert_eq!(
            operations_of(&api, &id, "resume").await,
            1,
            "[{b}] concurrent wakes join one resume"
        );
        // The gateway holds the request until the table says running, then forwards it.
        let member = loop {
            let table = sync(&api, json!({"gateway_id": "gw"})).await;
            let r = route(&table, &id);
            if r["state"] == "running" {
                break r["members"][0].as_str().unwrap().to_string();
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "[{b}] still {r}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let got: Value = client
            .get(format!("{member}/api/v1/shop/cart"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let wake_time = started.elapsed();
        assert_eq!(got["value"], 7, "[{b}] the data survived: {got}");
        println!(
            "[{b}] wake time (local provisioner): wake call to first request answered: {wake_time:?}"
        );
        assert!(wake_time < Duration::from_secs(30), "[{b}] {wake_time:?}");
        let (status, _) = wake(&api, &id).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            operations_of(&api, &id, "resume").await,
            1,
            "[{b}] a running cluster needs no resume"
        );
        let (status, _) = api
            .call("POST", &format!("{base}/resume"), Some(&owner), None)
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "[{b}] not suspended");
        // Suspend and resume through the user API too.
        let (_, s) = api
            .call("POST", &format!("{base}/suspend"), Some(&owner), None)
            .await;
        api.wait_operation(&owner, s["operation"]["id"].as_str().unwrap())
            .await;
        let (status, r) = api
            .call("POST", &format!("{base}/resume"), Some(&owner), None)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "[{b}] {r}");
        let op = api
            .wait_operation(&owner, r["operation"]["id"].as_str().unwrap())
            .await;
        assert_eq!(op["status"], "succeeded", "[{b}] {op}");
        let (_, audit) = api
            .call(
                "GET",
                &format!("/api/v1/orgs/{org}/audit"),
                Some(&owner),
                None,
            )
            .await;
        let woken_by_gateway = audit["events"].as_array().unwrap().iter().any(|e| {
            e["action"] == "POST /internal/v1/gateway/clusters/{id}/wake" && e["actor"] == "gateway"
        });
        assert!(
            woken_by_gateway,
            "[{b}] the gateway's wake is audited in the organization: {audit}"
        );
        let actions: Vec<&str> = audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["action"].as_str())
            .collect();
        assert!(
            actions.iter().any(|a| a.ends_with("/suspend"))
                && actions.iter().any(|a| a.ends_with("/resume")),
            "[{b}] {actions:?}"
        );
    }
}

#[tokio::test]
async fn idle_clusters_are_suspended_unless_a_gateway_reported_requests() {
    for backend in backends().await {
        let mut api = Api::new(&backend).await;
        with_gateway(&mut api, Routing::Direct);
        let b = api.backend;
        let (owner, org, _) = api.signup("gw@idle.example", "Idle").await;
        let cluster = running_cluster(&api, &owner, &org, "orders").await;
        let id = cluster["id"].as_str().unwrap().to_string();
        let short = koru_controlplane::lifecycle::SuspendPolicy::with_overrides(&[
            koru_controlplane::lifecycle::policy::parse_suspend_after("free=2s").unwrap(),
        ]);
        let off = koru_controlplane::lifecycle::SuspendPolicy::with_overrides(&[
            koru_controlplane::lifecycle::policy::parse_suspend_after("free=off").unwrap(),
        ]);
        let now = koru_controlplane::db::now_ms();
        let idle =
            |policy, at| koru_controlplane::lifecycle::suspend_idle_once(&api.state, policy, at);
        assert!(
            idle(&off, now + 3_600_000).await.unwrap().is_empty(),
            "[{b}] off: never"
        );
        assert!(
            idle(&short, now).await.unwrap().is_empty(),
            "[{b}] just created"
        );
        // A request through a gateway two seconds later keeps it up until two seconds after that.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let busy = json!({"gateway_id": "gw", "activity": [{"cluster_id": id, "requests": 1, "server_errors": 0, "slow_requests": 0, "throttled": 0}]});
        sync(&api, busy).await;
        let now = koru_controlplane::db::now_ms();
        assert!(
            idle(&short, now + 1_000).await.unwrap().is_empty(),
            "[{b}] active a second ago"
        );
        assert_eq!(
            idle(&short, now + 2_500).await.unwrap(),
            vec![id.clone()],
            "[{b}]"
        );
        let (_, c) = api
            .call(
                "GET",
                &format!("/api/v1/orgs/{org}/clusters/{id}"),
                Some(&owner),
                None,
            )
            .await;
        assert_eq!(c["suspended"], true, "[{b}] {c}");
        let (_, audit) = api
            .call(
                "GET",
                &format!("/api/v1/orgs/{org}/audit"),
                Some(&owner),
                None,
            )
            .await;
        let by_us = audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == "suspend idle cluster");
        assert_eq!(
            by_us.map(|e| e["actor"].clone()),
            Some(json!("controlplane")),
            "[{b}] {audit}"
        );
        // Waiting for the suspend to finish leaves the cluster Suspended.
        let phase = phase_within_30s(&api, &owner, &org, &id, "Suspended").await;
        assert_eq!(
            phase, "Suspended",
            "[{b}] the idle cluster never reached Suspended"
        );
        // A resume that ended without bringing it back (the wish says running, the phase
        // Suspended, nothing running): the next wake tries again instead of holding requests.
        sqlx::query("UPDATE clusters SET suspended = 0 WHERE id = $1")
            .bind(&id)
            .execute(&api.state.db)
            .await
            .unwrap();
        let (status, woken) = wake(&api, &id).await;
        assert_eq!(
            (status, &woken["state"]),
            (StatusCode::OK, &json!("waking")),
            "[{b}] {woken}"
        );
        assert_eq!(operations_of(&api, &id, "resume").await, 1, "[{b}]");
        let phase = phase_within_30s(&api, &owner, &org, &id, "Running").await;
        assert_eq!(
            phase, "Running",
            "[{b}] the retried resume did not bring it back"
        );
    }
}
