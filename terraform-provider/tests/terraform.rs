//! The provider end to end, with the real Terraform (or OpenTofu) CLI against the real
//! `koru-controlplane dev` running real data planes: apply creates, a second plan is empty,
//! a tier change is in place, a region change replaces, imports plan no change, destroy removes
//! everything, and invalid input fails at plan naming the attribute.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use std::time::Instant;

use common::{ControlPlane, Terraform, resource, terraform_cli};
use serde_json::{Value, json};

/// The allow list the journey's cluster gets with its update to the pro tier.
const ALLOWED: &str = r#"["203.0.113.0/24", "2001:db8::/32"]"#;

/// The configuration of the journey; `tier`, `replicas` and `region` are the cluster's, which
/// has the allow list [`ALLOWED`] on the pro tier (none before).
fn main_tf(tier: &str, replicas: u32, region: Option<&str>, imported: bool) -> String {
    let mut region = region
        .map(|r| format!("  region   = \"{r}\"\n"))
        .unwrap_or_default();
    if tier == "pro" {
        region.push_str(&format!("  allowed_cidrs = {ALLOWED}\n"));
    }
    let mut tf = format!(
        r#"terraform {{
  required_providers {{
    koru = {{ source = "koru/koru" }}
  }}
}}

provider "koru" {{}}

resource "koru_cluster" "main" {{
  name     = "orders"
  tier     = "{tier}"
  replicas = {replicas}
{region}
  timeouts {{
    create = "5m"
  }}
}}

resource "koru_api_token" "ci" {{
  name            = "ci"
  role            = "member"
  expires_in_days = 30
}}

resource "koru_backup" "first" {{
  cluster_id = koru_cluster.main.id
}}

data "koru_tiers" "all" {{}}

data "koru_cluster" "main" {{
  name = koru_cluster.main.name
}}

output "cluster_id" {{ value = koru_cluster.main.id }}
output "endpoint" {{ value = koru_cluster.main.endpoint }}
output "storage" {{ value = koru_cluster.main.storage }}
output "backup_id" {{ value = koru_backup.first.backup_id }}
output "tiers" {{ value = [for t in data.koru_tiers.all.tiers : t.name] }}
output "looked_up_status" {{ value = data.koru_cluster.main.status }}
output "looked_up_cidrs" {{ value = data.koru_cluster.main.allowed_cidrs }}
output "ci_token" {{
  value     = koru_api_token.ci.token
  sensitive = true
}}
"#
    );
    if imported {
        tf.push_str(
            r#"
resource "koru_cluster" "legacy" {
  name     = "legacy"
  tier     = "pro"
  replicas = 3
}

resource "koru_api_token" "legacy" {
  name = "legacy"
  role = "viewer"
}

resource "koru_backup" "legacy" {
  cluster_id = koru_cluster.legacy.id
}
"#,
        );
    }
    tf
}

#[tokio::test]
async fn apply_plan_update_import_and_destroy_against_a_real_control_plane() {
    let Some(cli) = terraform_cli() else {
        return;
    };
    let started = Instant::now();
    let cp = ControlPlane::start();
    let (org, token) = cp.signup_with_api_token("ops@acme.example", "Acme").await;
    let tf = Terraform::new(cli, cp.workdir("journey"), &cp.url, &token, Some(&org));
    let clusters = format!("/api/v1/orgs/{org}/clusters");

    // Apply creates the cluster (Running when apply returns), a token and a backup.
    tf.write(&main_tf("free", 1, None, false));
    tf.ok(&["apply", "-auto-approve", "-no-color"]);
    let outputs = tf.outputs();
    let out = |name: &str| outputs[name]["value"].clone();
    let (status, cluster) = cp
        .call("GET", &format!("{clusters}/orders"), &token, None)
        .await;
    assert_eq!(status, 200, "{cluster}");
    assert_eq!(cluster["phase"], "Running", "{cluster}");
    assert_eq!(cluster["tier"], "free");
    assert_eq!(out("cluster_id"), cluster["id"]);
    assert_eq!(out("endpoint"), cluster["endpoint"]);
    assert_eq!(out("storage"), json!("1GB"));
    assert_eq!(out("looked_up_status"), json!("Running"));
    assert_eq!(out("looked_up_cidrs"), json!([]), "no allow list: everyone");
    assert_eq!(cluster["allowed_cidrs"], json!([]));
    assert_eq!(out("tiers"), json!(["free", "pro", "enterprise"]));
    let cluster_id = cluster["id"].as_str().unwrap().to_string();
    let (_, backups) = cp
        .call(
            "GET",
            &format!("{clusters}/{cluster_id}/backups"),
            &token,
            None,
        )
        .await;
    assert!(
        backups["backups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["id"] == out("backup_id")),
        "the backup is listed: {backups}"
    );
    // The new token works, with its role, and is sensitive in outputs and state.
    assert_eq!(outputs["ci_token"]["sensitive"], json!(true));
    let ci_token = out("ci_token").as_str().expect("a secret").to_string();
    let (status, _) = cp.call("GET", &clusters, &ci_token, None).await;
    assert_eq!(status, 200, "the created token reads clusters");
    let (status, _) = cp
        .call(
            "DELETE",
            &format!("{clusters}/{cluster_id}"),
            &ci_token,
            None,
        )
        .await;
    assert_eq!(status, 403, "a member token may not delete clusters");
    let state = tf.state();
    assert_eq!(
        resource(&state, "koru_api_token.ci")["sensitive_values"]["token"],
        json!(true)
    );

    // A second plan shows no changes.
    let plan = tf.plan();
    assert_eq!(
        plan.code,
        0,
        "a plan right after apply must be empty:\n{}",
        plan.output()
    );

    // Tier and replicas change in place: same cluster, new limits.
    tf.write(&main_tf("pro", 3, None, false));
    let plan = tf.plan();
    assert_eq!(plan.code, 2, "{}", plan.output());
    assert!(
        plan.stdout
            .contains("koru_cluster.main will be updated in-place")
            && plan
                .stdout
                .contains(r#"~ tier             = "free" -> "pro""#)
            && plan
                .stdout
                .contains(r#"~ storage          = "1GB" -> "100GB""#)
            && plan.stdout.contains(r#"+ "203.0.113.0/24","#)
            && !plan.stdout.contains("must be replaced"),
        "{}",
        plan.output()
    );
    tf.ok(&["apply", "-auto-approve", "-no-color"]);
    let (_, updated) = cp
        .call("GET", &format!("{clusters}/orders"), &token, None)
        .await;
    assert_eq!(
        (
            &updated["id"],
            &updated["tier"],
            &updated["replicas"],
            &updated["phase"]
        ),
        (&cluster["id"], &json!("pro"), &json!(3), &json!("Running")),
        "{updated}"
    );
    assert_eq!(
        updated["allowed_cidrs"],
        json!(["203.0.113.0/24", "2001:db8::/32"]),
        "{updated}"
    );
    let plan = tf.plan();
    assert_eq!(
        plan.code,
        0,
        "a plan right after the update must be empty:\n{}",
        plan.output()
    );

    // A new region replaces the cluster (only planned here).
    tf.write(&main_tf("pro", 3, Some("eu-west-1"), false));
    let plan = tf.plan();
    assert_eq!(plan.code, 2, "{}", plan.output());
    assert!(
        plan.stdout.contains("koru_cluster.main must be replaced")
            && plan
                .stdout
                .contains(r#"~ region           = "local" -> "eu-west-1" # forces replacement"#),
        "{}",
        plan.output()
    );

    // Objects made outside Terraform are imported by id, and then plan no change.
    let (status, created) = cp
        .call(
            "POST",
            &clusters,
            &token,
            Some(json!({"name": "legacy", "tier": "pro", "replicas": 3})),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    let legacy = created["cluster"]["id"].as_str().unwrap().to_string();
    let op = cp
        .wait_operation(&token, created["operation"]["id"].as_str().unwrap())
        .await;
    assert_eq!(op["status"], "succeeded", "{op}");
    let (status, legacy_token) = cp
        .call(
            "POST",
            &format!("/api/v1/orgs/{org}/tokens"),
            &token,
            Some(json!({"name": "legacy", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, 201, "{legacy_token}");
    let (status, legacy_backup) = cp
        .call(
            "POST",
            &format!("{clusters}/{legacy}/backups"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 201, "{legacy_backup}");
    tf.write(&main_tf("pro", 3, None, true));
    tf.ok(&["import", "-no-color", "koru_cluster.legacy", &legacy]);
    tf.ok(&[
        "import",
        "-no-color",
        "koru_api_token.legacy",
        legacy_token["id"].as_str().unwrap(),
    ]);
    let backup_id = format!("{legacy}/{}", legacy_backup["id"].as_str().unwrap());
    tf.ok(&["import", "-no-color", "koru_backup.legacy", &backup_id]);
    let plan = tf.plan();
    assert_eq!(
        plan.code,
        0,
        "a plan right after the imports must be empty:\n{}",
        plan.output()
    );
    let state = tf.state();
    assert!(resource(&state, "koru_api_token.legacy")["values"]["token"].is_null());

    // Destroy removes the clusters and revokes the tokens; backups are only forgotten.
    tf.ok(&["destroy", "-auto-approve", "-no-color"]);
    let (_, left) = cp.call("GET", &clusters, &token, None).await;
    assert_eq!(left["items"], json!([]), "no cluster is left");
    let (_, tokens) = cp
        .call("GET", &format!("/api/v1/orgs/{org}/tokens"), &token, None)
        .await;
    let revoked = |name: &str| {
        tokens["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .map(|t| !t["revoked_at"].is_null())
    };
    assert_eq!(
        (revoked("ci"), revoked("legacy"), revoked("terraform")),
        (Some(true), Some(true), Some(false)),
        "{tokens}"
    );
    let listed = tf.ok(&["state", "list"]);
    assert!(
        listed.stdout.trim().is_empty(),
        "the state is empty: {}",
        listed.stdout
    );
    eprintln!(
        "the Terraform journey took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn invalid_input_fails_at_plan_naming_the_attribute() {
    let Some(cli) = terraform_cli() else {
        return;
    };
    let cp = ControlPlane::start();
    let (org, session, token) = cp.signup("ops@typo.example", "Typo").await;
    let tf = Terraform::new(
        cli.clone(),
        cp.workdir("invalid"),
        &cp.url,
        &token,
        Some(&org),
    );
    let provider = "terraform {\n  required_providers {\n    koru = { source = \"koru/koru\" }\n  }\n}\n\nprovider \"koru\" {}\n";

    // Rules that need no API fail when Terraform validates the configuration.
    tf.write(&format!(
        r#"{provider}
resource "koru_cluster" "bad" {{
  name     = "Bad_Name"
  replicas = 2
  allowed_cidrs = ["10.0.0.0/8", "10.1.2.3/8"]
  timeouts {{
    create = "soon"
  }}
}}

resource "koru_api_token" "bad" {{
  name            = "ci"
  role            = "root"
  expires_in_days = 0
}}
"#
    ));
    let plan = tf.plan();
    assert_eq!(plan.code, 1, "{}", plan.output());
    for expected in [
        "Error: Invalid cluster name",
        r#"cluster name "Bad_Name" must be 1 to 40 lower-case letters"#,
        r#"name     = "Bad_Name""#,
        "Error: Invalid replicas",
        "replicas must be 1, 3, 5 or 7, not 2",
        "Error: Invalid allow list",
        r#"allowed_cidrs entry "10.1.2.3/8" must be written as "10.0.0.0/8""#,
        "Error: Invalid timeout",
        r#""soon" is not a duration"#,
        "Error: Invalid role",
        r#"role "root" does not exist; the roles are viewer, member, admin, owner"#,
        "Error: Invalid expiry",
        "expires_in_days must be 1 to 3650, not 0",
    ] {
        assert!(
            plan.stderr.contains(expected),
            "missing {expected:?} in:\n{}",
            plan.output()
        );
    }
    assert!(
        !plan.stderr.contains("RUST_BACKTRACE") && !plan.stderr.contains("tf_provider::"),
        "{}",
        plan.output()
    );

    // Tier rules come from the API's tier table, at plan time.
    tf.write(&format!(
        r#"{provider}
resource "koru_cluster" "unknown_tier" {{
  name = "a"
  tier = "gold"
}}

resource "koru_cluster" "too_many_replicas" {{
  name     = "b"
  tier     = "free"
  replicas = 3
}}
"#
    ));
    let plan = tf.plan();
    assert_eq!(plan.code, 1, "{}", plan.output());
    for expected in [
        "Error: Invalid tier",
        r#"tier = "gold""#,
        r#"tier "gold" does not exist; the tiers are free, pro, enterprise"#,
        "Error: Too many replicas for the tier",
        "replicas = 3",
        "the free tier allows at most 1 replica(s) per cluster; 3 requested",
    ] {
        assert!(
            plan.stderr.contains(expected),
            "missing {expected:?} in:\n{}",
            plan.output()
        );
    }

    // An API token cannot tell its organization: without one configured, the plan says so.
    let no_org_cli = cli.clone();
    let no_org = Terraform::new(cli, cp.workdir("no-org"), &cp.url, &token, None);
    no_org.write(&format!("{provider}\ndata \"koru_tiers\" \"all\" {{}}\n"));
    let plan = no_org.plan();
    assert_eq!(plan.code, 1, "{}", plan.output());
    assert!(
        plan.stderr.contains("Which organization?") && plan.stderr.contains("KORU_ORGANIZATION"),
        "{}",
        plan.output()
    );

    // A user's session token finds its only organization by itself.
    let session_only = Terraform::new(no_org_cli, cp.workdir("session"), &cp.url, &session, None);
    session_only.write(&format!(
        "{provider}\ndata \"koru_tiers\" \"all\" {{}}\noutput \"n\" {{ value = length(data.koru_tiers.all.tiers) }}\n"
    ));
    session_only.ok(&["apply", "-auto-approve", "-no-color"]);
    assert_eq!(session_only.outputs()["n"]["value"], json!(3));

    // Nothing was created.
    let (_, clusters) = cp
        .call("GET", &format!("/api/v1/orgs/{org}/clusters"), &token, None)
        .await;
    assert_eq!(clusters["items"], Value::Array(vec![]));
}

#[tokio::test]
async fn the_example_configuration_applies_plans_no_change_and_destroys() {
    let Some(cli) = terraform_cli() else {
        return;
    };
    let cp = ControlPlane::start();
    let (org, token) = cp
        .signup_with_api_token("ops@example.example", "Example")
        .await;
    let tf = Terraform::new(cli, cp.workdir("example"), &cp.url, &token, Some(&org));
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/terraform/main.tf");
    tf.write(&std::fs::read_to_string(example).expect("examples/terraform/main.tf"));

    tf.ok(&["apply", "-auto-approve", "-no-color"]);
    let outputs = tf.outputs();
    let (_, cluster) = cp
        .call(
            "GET",
            &format!("/api/v1/orgs/{org}/clusters/orders"),
            &token,
            None,
        )
        .await;
    assert_eq!(cluster["phase"], "Running", "{cluster}");
    assert_eq!(outputs["endpoint"]["value"], cluster["endpoint"]);
    assert_eq!(
        outputs["tiers"]["value"]["pro"],
        json!("100GB"),
        "{outputs}"
    );
    assert_eq!(outputs["ci_token"]["sensitive"], json!(true));
    let plan = tf.plan();
    assert_eq!(
        plan.code,
        0,
        "the example plans no change after apply:\n{}",
        plan.output()
    );

    tf.ok(&["destroy", "-auto-approve", "-no-color"]);
    let (_, left) = cp
        .call("GET", &format!("/api/v1/orgs/{org}/clusters"), &token, None)
        .await;
    assert_eq!(left["items"], json!([]));
}
