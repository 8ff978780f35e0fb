//! Unit tests of the region parts of the status.

use super::tests::{cluster, sts};
use super::*;
use koru_crd::{RegionPeer, RegionSpec, RegionsStatus};
use koru_dataplane_api::region::{LinkState, PeerLink, RegionStatus};

fn region(peers: &[&str]) -> RegionSpec {
    RegionSpec {
        name: "us-east".into(),
        peers: peers
            .iter()
            .map(|p| RegionPeer {
                name: (*p).into(),
                endpoint: format!("https://{p}.example.com"),
            })
            .collect(),
        credentials_secret: "replication".into(),
    }
}

fn regional(status: Option<KoruClusterStatus>) -> KoruCluster {
    let mut kc = cluster(3, "1.0", status);
    kc.spec.region = Some(region(&["eu-west", "ap-south"]));
    kc
}

fn link(name: &str, state: LinkState, lag: Option<f64>, error: Option<&str>) -> PeerLink {
    PeerLink {
        name: name.into(),
        url: format!("https://{name}.example.com"),
        state,
        applied_lsn: 42,
        applied_time: Some("2026-12-06T20:00:00Z".into()),
        lag_seconds: lag,
        records_applied: 7,
        last_error: error.map(Into::into),
    }
}

fn report(links: Vec<PeerLink>) -> RegionStatus {
    RegionStatus {
        region: "us-east".into(),
        peers: links,
    }
}

/// One reconcile of a serving regional cluster: the status from its pods, then the data
/// plane's report when it answered.
fn reconciled(kc: &KoruCluster, answer: Option<&RegionStatus>, now: &str) -> KoruClusterStatus {
    let mut status = next_status(kc, &sts(3, 3, 3, true), now);
    if let (Some(answer), Some(spec)) = (answer, &kc.spec.region) {
        apply_regions_report(&mut status, spec, answer, kc.metadata.generation, now);
    }
    status
}

fn healthy(status: &KoruClusterStatus) -> (String, String, String) {
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == REGIONS_HEALTHY)
        .unwrap();
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

#[test]
fn the_streams_are_written_with_their_state_lsn_lag_and_error() {
    let answer = report(vec![
        link("eu-west", LinkState::Streaming, Some(0.25), None),
        link(
            "ap-south",
            LinkState::Failing,
            None,
            Some("connection refused"),
        ),
    ]);
    let status = reconciled(&regional(None), Some(&answer), "t1");
    assert_eq!(
        status.regions,
        Some(RegionsStatus {
            region: "us-east".into(),
            links: vec![
                koru_crd::RegionLinkStatus {
                    name: "eu-west".into(),
                    state: "streaming".into(),
                    applied_lsn: 42,
                    lag_seconds: Some(0.25),
                    last_error: None,
                },
                koru_crd::RegionLinkStatus {
                    name: "ap-south".into(),
                    state: "failing".into(),
                    applied_lsn: 42,
                    lag_seconds: None,
                    last_error: Some("connection refused".into()),
                },
            ],
            last_checked_time: Some("t1".into()),
        })
    );
    // A lag that is no number never reaches the API server (JSON cannot hold it).
    let odd = regions_status(
        &report(vec![link(
            "eu-west",
            LinkState::Streaming,
            Some(f64::NAN),
            None,
        )]),
        "t1",
    );
    assert_eq!(odd.links[0].lag_seconds, None);
}

#[test]
fn regions_healthy_goes_unknown_true_false_and_back_and_warns_once() {
    // Before the data plane first answers: Unknown.
    let first = reconciled(&regional(None), None, "t1");
    assert_eq!(healthy(&first).0, "Unknown");
    assert_eq!(healthy(&first).1, "NotYetChecked");
    assert_eq!(first.regions, None);

    // One peer still connecting: Unknown, naming it.
    let kc = regional(Some(first.clone()));
    let connecting = reconciled(
        &kc,
        Some(&report(vec![
            link("eu-west", LinkState::Streaming, Some(0.5), None),
            link("ap-south", LinkState::Connecting, None, None),
        ])),
        "t2",
    );
    assert_eq!(
        healthy(&connecting),
        (
            "Unknown".into(),
            "Connecting".into(),
            "connecting to ap-south".into()
        )
    );
    assert!(notices(&first, &connecting).is_empty());

    // Both streaming: True, with each lag.
    let kc = regional(Some(connecting.clone()));
    let streaming = reconciled(
        &kc,
        Some(&report(vec![
            link("eu-west", LinkState::Streaming, Some(0.5), None),
            link("ap-south", LinkState::Streaming, Some(1.25), None),
        ])),
        "t3",
    );
    assert_eq!(
        healthy(&streaming),
        (
            "True".into(),
            "Streaming".into(),
            "streaming from eu-west (0.5 s behind), ap-south (1.2 s behind)".into()
        )
    );

    // One failing: False with its error, and one Warning event.
    let kc = regional(Some(streaming.clone()));
    let failing_report = report(vec![
        link("eu-west", LinkState::Streaming, Some(0.5), None),
        link(
            "ap-south",
            LinkState::Failing,
            None,
            Some("401 unauthorized"),
        ),
    ]);
    let failing = reconciled(&kc, Some(&failing_report), "t4");
    let (value, reason, message) = healthy(&failing);
    assert_eq!((value.as_str(), reason.as_str()), ("False", "LinkFailing"));
    assert!(message.contains("ap-south: 401 unauthorized"), "{message}");
    let warned = notices(&streaming, &failing);
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].warning && warned[0].reason == LINK_FAILING_EVENT);
    let since = failing
        .conditions
        .iter()
        .find(|c| c.type_ == REGIONS_HEALTHY)
        .unwrap()
        .last_transition_time
        .clone();
    assert_eq!(since, "t4");

    // Still failing: no new event, the transition time kept.
    let kc = regional(Some(failing.clone()));
    let still = reconciled(&kc, Some(&failing_report), "t5");
    assert!(notices(&failing, &still).is_empty());
    let kept = still
        .conditions
        .iter()
        .find(|c| c.type_ == REGIONS_HEALTHY)
        .unwrap();
    assert_eq!(kept.last_transition_time, "t4");

    // Unreachable: the last streams and condition stay as they were.
    let kc = regional(Some(still.clone()));
    let unreachable = reconciled(&kc, None, "t6");
    assert_eq!(unreachable.regions, still.regions);
    assert_eq!(healthy(&unreachable), healthy(&still));

    // Recovered: True again, and a Normal event saying so.
    let kc = regional(Some(unreachable.clone()));
    let recovered = reconciled(
        &kc,
        Some(&report(vec![
            link("eu-west", LinkState::Streaming, Some(0.5), None),
            link("ap-south", LinkState::Streaming, Some(3.0), None),
        ])),
        "t7",
    );
    assert_eq!(healthy(&recovered).0, "True");
    let told = notices(&unreachable, &recovered);
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(!told[0].warning && told[0].reason == LINKS_RECOVERED_EVENT);
}

#[test]
fn pods_on_another_regions_settings_or_a_region_of_one_are_said_so() {
    let kc = regional(None);
    let old_pods = RegionStatus {
        region: "local".into(),
        peers: vec![],
    };
    let status = reconciled(&kc, Some(&old_pods), "t1");
    let (value, reason, message) = healthy(&status);
    assert_eq!((value.as_str(), reason.as_str()), ("Unknown", "Connecting"));
    assert!(message.contains("\"local\""), "{message}");

    let mut alone = cluster(1, "1.0", None);
    alone.spec.region = Some(region(&[]));
    let status = reconciled(&alone, Some(&report(vec![])), "t1");
    assert_eq!(
        (healthy(&status).0.as_str(), healthy(&status).1.as_str()),
        ("True", "NoPeers")
    );
}

#[test]
fn a_refused_secret_is_false_until_it_is_fixed_and_leaving_drops_it_all() {
    let before = reconciled(
        &regional(None),
        Some(&report(vec![
            link("eu-west", LinkState::Streaming, None, None),
            link("ap-south", LinkState::Streaming, None, None),
        ])),
        "t1",
    );
    let refused = credentials_invalid(
        Some(&before),
        "Secret replication is missing",
        Some(4),
        "t2",
    );
    assert_eq!(
        healthy(&refused),
        (
            "False".into(),
            CREDENTIALS_INVALID.into(),
            "Secret replication is missing".into()
        )
    );
    assert_eq!(refused.phase, before.phase, "nothing else was looked at");
    assert!(
        notices(&before, &refused).is_empty(),
        "the reconcile publishes its own event for a refused Secret"
    );
    // The Secret is back: Unknown until the data plane answers again.
    let fixed = reconciled(&regional(Some(refused.clone())), None, "t3");
    assert_eq!(healthy(&fixed).1, "NotYetChecked");
    assert_eq!(fixed.regions, before.regions, "the last streams stay");

    // spec.region removed: the streams and the condition go.
    let mut left = regional(Some(fixed));
    left.spec.region = None;
    let status = next_status(&left, &sts(3, 3, 3, true), "t4");
    assert_eq!(status.regions, None);
    assert!(status.conditions.iter().all(|c| c.type_ != REGIONS_HEALTHY));
}
