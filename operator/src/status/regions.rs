//! The region parts of a cluster's status, from what its data plane reports: each peer region's
//! stream (`status.regions`) and the `RegionsHealthy` condition, with the events of a stream
//! failing and recovering.

use super::{Notice, REGIONS_HEALTHY, condition, set_status};
use koru_crd::{
    Condition, KoruClusterSpec, KoruClusterStatus, RegionLinkStatus, RegionSpec, RegionsStatus,
};
use koru_dataplane_api::region::{LinkState, PeerLink, RegionStatus};

/// Reason of the Warning event published when a peer region's stream starts failing.
pub const LINK_FAILING_EVENT: &str = "RegionLinkFailing";
/// Reason of the Normal event published when every stream follows its peer again.
pub const LINKS_RECOVERED_EVENT: &str = "RegionLinksRecovered";
/// Reason of the Warning event published while `credentialsSecret` cannot be mounted.
pub const CREDENTIALS_INVALID_EVENT: &str = "RegionCredentialsInvalid";
/// RegionsHealthy reason while `credentialsSecret` cannot be mounted.
pub const CREDENTIALS_INVALID: &str = "CredentialsInvalid";
/// RegionsHealthy reason: every stream follows its peer.
const STREAMING: &str = "Streaming";
/// RegionsHealthy reason: a region of one, no peer to stream from.
const NO_PEERS: &str = "NoPeers";
/// RegionsHealthy reason: at least one stream is failing.
const LINK_FAILING: &str = "LinkFailing";
/// RegionsHealthy reason: streams are being set up (new pods, new peers, reconnecting).
const CONNECTING: &str = "Connecting";
/// RegionsHealthy reason: the data plane has not reported its streams yet.
const NOT_YET_CHECKED: &str = "NotYetChecked";

/// The `status.regions` block from one `GET /admin/v1/regions` answer read at `now`.
pub fn regions_status(report: &RegionStatus, now: &str) -> RegionsStatus {
    RegionsStatus {
        region: report.region.clone(),
        links: report.peers.iter().map(link_status).collect(),
        last_checked_time: Some(now.to_string()),
    }
}

/// One stream as the status shows it.
fn link_status(link: &PeerLink) -> RegionLinkStatus {
    RegionLinkStatus {
        name: link.name.clone(),
        state: state_name(link.state).to_string(),
        // An LSN past i64::MAX (never, in practice) shows as the largest the schema holds.
        applied_lsn: i64::try_from(link.applied_lsn).unwrap_or(i64::MAX),
        lag_seconds: link.lag_seconds.filter(|l| l.is_finite()),
        last_error: link.last_error.clone(),
    }
}

/// The wire name of a stream's state, as the status spells it.
fn state_name(state: LinkState) -> &'static str {
    match state {
        LinkState::Connecting => "connecting",
        LinkState::Streaming => "streaming",
        LinkState::Failing => "failing",
    }
}

/// Writes what one read of the cluster's data plane found into its status: the streams, when
/// they were read, and the RegionsHealthy condition.
pub fn apply_regions_report(
    status: &mut KoruClusterStatus,
    spec: &RegionSpec,
    report: &RegionStatus,
    generation: Option<i64>,
    now: &str,
) {
    status.regions = Some(regions_status(report, now));
    let (value, reason, message) = health(spec, report);
    set_status(
        &mut status.conditions,
        REGIONS_HEALTHY,
        value,
        reason,
        message,
        generation,
        now,
    );
}

/// The RegionsHealthy status, reason and message a report gives: False when any stream fails;
/// Unknown while the pods still run another region's settings, a peer of the spec has no
/// stream yet or one is connecting; True when every peer's stream follows it.
fn health(spec: &RegionSpec, report: &RegionStatus) -> (&'static str, &'static str, String) {
    let failing: Vec<String> = report
        .peers
        .iter()
        .filter(|p| p.state == LinkState::Failing)
        .map(|p| match &p.last_error {
            Some(e) => format!("{}: {e}", p.name),
            None => p.name.clone(),
        })
        .collect();
    if !failing.is_empty() {
        let message = format!(
            "the stream from {} failing ({})",
            if failing.len() == 1 {
                "1 peer region is"
            } else {
                "peer regions are"
            },
            failing.join("; ")
        );
        return ("False", LINK_FAILING, message);
    }
    if report.region != spec.name {
        let message = format!(
            "the data plane still runs as region {:?}; its pods are being replaced",
            report.region
        );
        return ("Unknown", CONNECTING, message);
    }
    let waiting: Vec<&str> = spec
        .peers
        .iter()
        .map(|p| p.name.as_str())
        .filter(|name| {
            !report
                .peers
                .iter()
                .any(|l| l.name == *name && l.state == LinkState::Streaming)
        })
        .collect();
    if !waiting.is_empty() {
        let message = format!("connecting to {}", waiting.join(", "));
        return ("Unknown", CONNECTING, message);
    }
    if report.peers.is_empty() {
        return ("True", NO_PEERS, "no peer regions to stream from".into());
    }
    let lags: Vec<String> = report
        .peers
        .iter()
        .map(|p| match p.lag_seconds {
            Some(lag) if lag.is_finite() => format!("{} ({lag:.1} s behind)", p.name),
            _ => p.name.clone(),
        })
        .collect();
    (
        "True",
        STREAMING,
        format!("streaming from {}", lags.join(", ")),
    )
}

/// Keeps the RegionsHealthy condition in line with the spec before the data plane is asked: gone
/// without `spec.region`; Unknown (`NotYetChecked`) until a first report, or once the
/// credentials Secret that was refused is usable again (this runs only after it was checked).
pub(super) fn expect_regions(
    conditions: &mut Vec<Condition>,
    spec: &KoruClusterSpec,
    generation: Option<i64>,
    now: &str,
) {
    if spec.region.is_none() {
        conditions.retain(|c| c.type_ != REGIONS_HEALTHY);
        return;
    }
    let stale = conditions
        .iter()
        .find(|c| c.type_ == REGIONS_HEALTHY)
        .is_none_or(|c| c.reason == CREDENTIALS_INVALID);
    if stale {
        set_status(
            conditions,
            REGIONS_HEALTHY,
            "Unknown",
            NOT_YET_CHECKED,
            "the data plane has not reported its peer regions' streams yet".into(),
            generation,
            now,
        );
    }
}

/// The status while the credentials Secret cannot be used: RegionsHealthy False saying why,
/// the rest as it was (nothing else was looked at).
pub fn credentials_invalid(
    old: Option<&KoruClusterStatus>,
    why: &str,
    generation: Option<i64>,
    now: &str,
) -> KoruClusterStatus {
    let mut status = old.cloned().unwrap_or_default();
    set_status(
        &mut status.conditions,
        REGIONS_HEALTHY,
        "False",
        CREDENTIALS_INVALID,
        why.to_string(),
        generation,
        now,
    );
    status
}

/// A Warning event when a stream starts failing and a Normal one when all follow again: on the
/// transitions only, so a stream failing on does not repeat it.
pub(super) fn link_notice(old: &KoruClusterStatus, new: &KoruClusterStatus) -> Option<Notice> {
    fn failing(s: &KoruClusterStatus) -> Option<&Condition> {
        condition(s, REGIONS_HEALTHY).filter(|c| c.status == "False" && c.reason == LINK_FAILING)
    }
    let healthy =
        |s: &KoruClusterStatus| condition(s, REGIONS_HEALTHY).is_some_and(|c| c.status == "True");
    match (failing(old), failing(new)) {
        (None, Some(c)) => Some(Notice {
            warning: true,
            reason: LINK_FAILING_EVENT,
            note: c.message.clone(),
        }),
        (Some(_), None) if healthy(new) => Some(Notice {
            warning: false,
            reason: LINKS_RECOVERED_EVENT,
            note: condition(new, REGIONS_HEALTHY)
                .map(|c| c.message.clone())
                .unwrap_or_default(),
        }),
        _ => None,
    }
}
