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
fn allow_lists_match_the_control_plane() {
    use koru_controlplane::allow_lists;
    assert_eq!(rules::MAX_ALLOWED_CIDRS, allow_lists::MAX_ALLOWED_CIDRS);
    let lists: Vec<Vec<&str>> = vec![
        vec![],
        vec![
            "10.0.0.0/8",
            "2001:db8::/32",
            "203.0.113.7/32",
            "::1/128",
            "0.0.0.0/0",
        ],
        vec!["10.0.0.0/33"],
        vec!["office"],
        vec!["10.1.2.3/8"],
        vec!["10.0.0.0/8", "10.0.0.0/8"],
    ];
    for list in lists {
        let list: Vec<String> = list.into_iter().map(str::to_string).collect();
        assert_eq!(
            rules::check_allowed_cidrs(&list).is_ok(),
            allow_lists::normalize(&list).is_ok(),
            "{list:?}"
        );
    }
    // What the provider accepts, the control plane stores unchanged: no diff after apply.
    let canonical: Vec<String> = ["192.0.2.0/24", "2001:db8:1::/48"].map(String::from).into();
    assert!(rules::check_allowed_cidrs(&canonical).is_ok());
    assert_eq!(allow_lists::normalize(&canonical).unwrap(), canonical);
    // Forms the control plane would rewrite are refused at plan time with the form to write.
    for (written, stored) in [
        ("203.0.113.7", "203.0.113.7/32"),
        ("2001:DB8::/32", "2001:db8::/32"),
    ] {
        let e = rules::check_allowed_cidrs(&[written.to_string()]).unwrap_err();
        assert!(e.contains(&format!("{stored:?}")), "{e}");
        assert_eq!(allow_lists::normalize_one(written).unwrap(), stored);
    }
    let many: Vec<String> = (0..=100).map(|i| format!("10.0.{i}.0/24")).collect();
    assert!(rules::check_allowed_cidrs(&many).is_err() && allow_lists::normalize(&many).is_err());
}

#[test]
fn token_roles_match_the_control_plane() {
    use koru_controlplane::auth::Role;
    let roles = [Role::Viewer, Role::Member, Role::Admin, Role::Owner];
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    assert_eq!(names, rules::ROLES);
}
