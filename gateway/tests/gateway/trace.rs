//! One trace spans client → gateway → data plane: both export their spans to a real OTLP/HTTP
//! endpoint (a recording collector), under the trace id the client's `traceparent` names.

use koru_testkit::DataPlane;
use koru_testkit::otlp::{Collector, contains_bytes};

use crate::support::{Gateway, http, route, write_routes};

/// The client's trace: id 0af7651916cd43dd8448eb211c80319c, its span b7ad6b7169203331, sampled.
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const TRACE_ID: [u8; 16] = [
    0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c,
];

#[tokio::test]
async fn a_request_is_one_trace_from_gateway_to_data_plane() {
    let dir = tempfile::tempdir().unwrap();
    let gateway_spans = Collector::start();
    let member_spans = Collector::start();
    let mut member = DataPlane::start(
        &dir.path().join("orders"),
        &["--otlp-endpoint", &member_spans.endpoint],
    );
    let routes = dir.path().join("routes.json");
    write_routes(&routes, vec![route("orders", &[&member.url])]);
    let mut gw = Gateway::start(&routes, &["--otlp-endpoint", &gateway_spans.endpoint]);

    let answer = http()
        .get(format!("{}/api/v1/status", gw.cluster("orders")))
        .header("traceparent", TRACEPARENT)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    // A graceful stop flushes the spans still batched.
    assert!(gw.process.stop().success());
    assert!(member.process.stop().success());

    for (who, collector) in [("gateway", &gateway_spans), ("data plane", &member_spans)] {
        let exports = collector.trace_exports();
        assert!(
            exports.iter().any(|body| contains_bytes(body, &TRACE_ID)),
            "the {who} exported no span in the client's trace ({} exports)",
            exports.len()
        );
    }
    // The member's span is a child of the gateway's, not of the client's: the gateway passed its
    // own context on, so the client's span id appears only as the gateway span's parent.
    let client_span = [0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31];
    assert!(
        !member_spans
            .trace_exports()
            .iter()
            .any(|body| contains_bytes(body, &client_span)),
        "the data plane's span hangs off the client's span, skipping the gateway"
    );
}
