//! The provider's plan-time rules accept exactly what the control plane accepts: both are run
//! on the same inputs, so a rule changed on one side only fails here.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

use koru_controlplane::clusters;
use terraform_provider_koru::rules;

#[test]
fn cluster_names_regions_and_replicas_match_the_control_plane() {
    let long = "a".repeat(40);
    let too_long = "a".repeat(41);
    let long_region = "a".repeat(32);
    let too_long_region = "a".repeat(33);
    let names = [
        "a", "orders", "orders-2", "o-1-2", &long, &too_long, "", "9lives", "Orders", "orders-",
        "-orders", "or_ders", "or.ders", "ordérs", "orders ",
    ];
    for name in names {
        assert_eq!(
            rules::check_cluster_name(name).is_ok(),
            clusters::check_name(name).is_ok(),
            "cluster name {name:?}"
        );
    }
    let regions = [
        "local",
        "eu-west-1",
        "1",
        &long_region,
        &too_long_region,
        "",
        "EU",
        "eu_west",
        "eu west",
    ];
    for region in regions {
        assert_eq!(
            rules::check_region(region).is_ok(),
            clusters::check_region(region).is_ok(),
            "region {region:?}"
        );
    }
    for replicas in 0..=9_u32 {
        assert_eq!(
            rules::check_replicas(i64::from(replicas)).is_ok(),
            clusters::check_replicas(replicas).is_ok(),
            "replicas {replicas}"
        );
    }
}

#[test]
fn token_roles_match_the_control_plane() {
    use koru_controlplane::auth::Role;
    let roles = [Role::Viewer, Role::Member, Role::Admin, Role::Owner];
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    assert_eq!(names, rules::ROLES);
}
