//! The gateway against a control plane (a small stand-in serving the contract of
//! `koru-gateway-api`): the table is synced with the secret, activity is reported, a suspended
//! cluster is woken once however many requests wait for it, and the held requests are answered.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use koru_gateway_api::{RouteState, RouteTable, SyncRequest, WakeResponse};
use koru_testkit::{DataPlane, ProcessSpec};
use parking_lot::Mutex;

use crate::support::{Gateway, gateway_binary, http, route};

const SECRET: &str = "gateway-test-secret";

/// The stand-in control plane's state.
#[derive(Default)]
struct Control {
    table: Mutex<RouteTable>,
    syncs: Mutex<Vec<SyncRequest>>,
    wakes: AtomicU32,
    data_dir: Mutex<Option<std::path::PathBuf>>,
    member: Mutex<Option<DataPlane>>,
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {SECRET}"))
}

async fn sync(
    State(control): State<Arc<Control>>,
    headers: HeaderMap,
    Json(request): Json<SyncRequest>,
) -> Result<Json<RouteTable>, StatusCode> {
    if !authorized(&headers) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    control.syncs.lock().push(request);
    Ok(Json(control.table.lock().clone()))
}

async fn wake(
    State(control): State<Arc<Control>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<WakeResponse>, StatusCode> {
    if !authorized(&headers) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    control.wakes.fetch_add(1, Ordering::SeqCst);
    for cluster in &mut control.table.lock().clusters {
        if cluster.id == id {
            cluster.state = RouteState::Waking;
        }
    }
    // Resume the cluster as a provisioner would: start its member, then say it runs.
    let state = Arc::clone(&control);
    tokio::task::spawn_blocking(move || {
        // A provisioner takes a while; the held requests wait (and count as slow).
        std::thread::sleep(std::time::Duration::from_millis(400));
        let dir = state.data_dir.lock().clone().expect("a data dir");
        let member = DataPlane::start(&dir, &[]);
        let url = member.url.clone();
        *state.member.lock() = Some(member);
        for cluster in &mut state.table.lock().clusters {
            if cluster.id == id {
                cluster.state = RouteState::Running;
                cluster.members = vec![url.clone()];
            }
        }
    });
    Ok(Json(WakeResponse {
        state: RouteState::Waking,
    }))
}

/// Serves `control` as the control plane and starts a gateway syncing with it every
/// `interval`, once it has its first table.
async fn start(control: &Arc<Control>, interval: &str) -> Gateway {
    let app = axum::Router::new()
        .route(koru_gateway_api::SYNC_PATH, axum::routing::post(sync))
        .route(
            "/internal/v1/gateway/clusters/{id}/wake",
            axum::routing::post(wake),
        )
        .with_state(Arc::clone(control));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cp_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let spec = ProcessSpec::new(gateway_binary(), koru_gateway::READY_LINE)
        .clear_koru_env()
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args([
            "--controlplane-url",
            &cp_url,
            "--gateway-id",
            "gw-test",
            "--sync-interval",
            interval,
        ])
        .env(koru_gateway_api::SECRET_ENV, SECRET);
    let gw = Gateway::from_spec(spec);
    koru_testkit::eventually_async(10, "the first table", || async {
        let ready = http()
            .get(format!("{}/readyz", gw.admin))
            .send()
            .await
            .ok()?;
        (ready.status() == 200).then_some(())
    })
    .await;
    gw
}

#[tokio::test]
async fn a_cluster_created_since_the_last_sync_is_found_not_404() {
    let dir = tempfile::tempdir().unwrap();
    let control = Arc::new(Control::default());
    // One sync a minute: the table the gateway holds is the one it started with.
    let gw = start(&control, "60s").await;
    let member = DataPlane::start(&dir.path().join("data"), &[]);
    control
        .table
        .lock()
        .clusters
        .push(route("fresh", &[&member.url]));
    let answer = http()
        .get(format!("{}/api/v1/status", gw.cluster("fresh")))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
    // A name no table holds is still 404, after one sync at most.
    let asked = Instant::now();
    let answer = http()
        .get(format!("{}/api/v1/status", gw.cluster("nobody")))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
}

#[tokio::test]
async fn a_suspended_cluster_is_woken_once_for_many_held_requests_and_activity_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let control = Arc::new(Control::default());
    *control.data_dir.lock() = Some(dir.path().join("data"));
    let mut sleepy = route("sleepy", &[]);
    sleepy.state = RouteState::Suspended;
    *control.table.lock() = RouteTable {
        clusters: vec![sleepy],
        live_gateways: 1,
    };
    let gw = start(&control, "1s").await;

    let start = Instant::now();
    let held: Vec<_> = (0..5)
        .map(|i| {
            let url = format!("{}/api/v1/users/u{i}", gw.cluster("sleepy"));
            tokio::spawn(async move {
                http()
                    .put(url)
                    .json(&serde_json::json!({"value": i}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for request in held {
        assert_eq!(request.await.unwrap(), 200);
    }
    let wake_to_answer = start.elapsed();
    eprintln!(
        "five held requests answered {wake_to_answer:?} after the first arrived (wake included)"
    );
    assert_eq!(
        control.wakes.load(Ordering::SeqCst),
        1,
        "one wake for five requests"
    );
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("koru_gateway_wakes_total{cluster=\"c-sleepy\"} 1"),
        "{metrics}"
    );

    koru_testkit::eventually_async(10, "the activity report", || async {
        let syncs = control.syncs.lock();
        let served: u64 = syncs
            .iter()
            .flat_map(|s| &s.activity)
            .filter(|a| a.cluster_id == "c-sleepy")
            .map(|a| a.requests)
            .sum();
        (served == 5).then_some(())
    })
    .await;
    assert!(
        control
            .syncs
            .lock()
            .iter()
            .all(|s| s.gateway_id == "gw-test")
    );
    // Held for the wake, each counts as slow against the latency objective.
    let slow: u64 = control
        .syncs
        .lock()
        .iter()
        .flat_map(|s| &s.activity)
        .map(|a| a.slow_requests)
        .sum();
    assert_eq!(slow, 5);
}
