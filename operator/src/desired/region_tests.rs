//! Unit tests of a regional cluster's desired objects (`spec.region`).

use super::tests::cluster;
use super::*;
use koru_crd::{RegionPeer, RegionSpec};

/// `orders` as region `us-east` of a global database with the given peers.
fn regional(peers: &[(&str, &str)]) -> KoruCluster {
    let mut kc = cluster(3);
    kc.spec.region = Some(RegionSpec {
        name: "us-east".into(),
        peers: peers
            .iter()
            .map(|(name, endpoint)| RegionPeer {
                name: (*name).into(),
                endpoint: (*endpoint).into(),
            })
            .collect(),
        credentials_secret: "global-replication".into(),
    });
    kc
}

#[test]
fn a_region_reaches_the_data_plane_as_its_flags_environment() {
    let kc = regional(&[
        ("eu-west", "https://eu-west.db.example.com/"),
        ("ap-south", "http://ap-south.koru.svc:7878"),
    ]);
    let data = desired(&kc).unwrap().config.data.unwrap();
    assert_eq!(data["KORU_REGION"], "us-east");
    // `--region-peer` takes a comma-separated list; a trailing slash is the same URL.
    assert_eq!(
        data["KORU_REGION_PEERS"],
        "eu-west=https://eu-west.db.example.com,ap-south=http://ap-south.koru.svc:7878"
    );
    assert_eq!(data["KORU_REGION_TOKEN_FILE"], "/etc/koru/region/token");

    let plain = desired(&cluster(3)).unwrap().config.data.unwrap();
    for key in ["KORU_REGION", "KORU_REGION_PEERS", "KORU_REGION_TOKEN_FILE"] {
        assert!(!plain.contains_key(key), "{key} without spec.region");
    }
    // A region without peers yet (the first of a global database) runs alone: no peer list
    // at all, since the data plane refuses an empty `--region-peer` and would not start.
    let alone = desired(&regional(&[])).unwrap().config.data.unwrap();
    assert_eq!(alone["KORU_REGION"], "us-east");
    assert!(!alone.contains_key("KORU_REGION_PEERS"), "{alone:?}");
}

#[test]
fn the_replication_secret_is_mounted_read_only_as_the_token_file() {
    let kc = regional(&[("eu-west", "https://eu-west.db.example.com")]);
    let pod = desired(&kc)
        .unwrap()
        .statefulset
        .spec
        .template
        .spec
        .unwrap();
    let volumes = pod.volumes.unwrap();
    let volume = volumes.iter().find(|v| v.name == "region-token").unwrap();
    let secret = volume.secret.as_ref().unwrap();
    assert_eq!(secret.secret_name.as_deref(), Some("global-replication"));
    let items = secret.items.as_ref().unwrap();
    assert_eq!(
        (items.len(), items[0].key.as_str(), items[0].path.as_str()),
        (1, "token", "token"),
        "only the token is mounted"
    );
    assert_eq!(secret.default_mode, Some(0o440));
    let mounts = pod.containers[0].volume_mounts.clone().unwrap();
    let mount = mounts.iter().find(|m| m.name == "region-token").unwrap();
    assert_eq!(
        (mount.mount_path.as_str(), mount.read_only),
        ("/etc/koru/region", Some(true))
    );
    // The admin token stays where it was.
    assert!(volumes.iter().any(|v| v.name == "admin-token"));

    let plain = desired(&cluster(3)).unwrap().statefulset.spec.template.spec;
    let plain = plain.unwrap();
    assert!(
        !plain
            .volumes
            .unwrap()
            .iter()
            .any(|v| v.name == "region-token")
    );
}

#[test]
fn new_or_moved_peers_and_another_secret_roll_the_pods() {
    let hash = |kc: &KoruCluster| {
        let d = desired(kc).unwrap();
        d.statefulset
            .spec
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap()[CONFIG_HASH_ANNOTATION]
            .clone()
    };
    let one = regional(&[("eu-west", "https://eu-west.db.example.com")]);
    let two = regional(&[
        ("eu-west", "https://eu-west.db.example.com"),
        ("ap-south", "https://ap-south.db.example.com"),
    ]);
    let moved = regional(&[("eu-west", "https://eu-west-2.db.example.com")]);
    assert_eq!(hash(&one), hash(&one.clone()), "stable for the same spec");
    assert_ne!(hash(&one), hash(&two), "a new peer restarts the data plane");
    assert_ne!(hash(&one), hash(&moved), "a moved peer restarts it too");
    assert_ne!(
        hash(&one),
        hash(&cluster(3)),
        "joining a global database restarts it"
    );
    // The Secret's name is in the template (its volume), so naming another one rolls too.
    let mut other_secret = one.clone();
    if let Some(r) = other_secret.spec.region.as_mut() {
        r.credentials_secret = "rotated".into();
    }
    let template = |kc: &KoruCluster| desired(kc).unwrap().statefulset.spec.template;
    assert_ne!(template(&one), template(&other_secret));
}
