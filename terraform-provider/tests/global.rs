//! A global database (issue 20) with the real Terraform (or OpenTofu) CLI against the real
//! `koru-controlplane dev`: `regions` creates one data plane per region, `region_endpoints` names
//! each, a second plan is empty, a new region list replaces the cluster, and destroy removes it.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap fails the test where it happened

mod common;

use common::{ControlPlane, Terraform, terraform_cli};
use serde_json::json;

/// A pro cluster in `regions`, with its endpoints as outputs.
fn main_tf(regions: &[&str]) -> String {
    format!(
        r#"terraform {{
  required_providers {{
    koru = {{ source = "koru/koru" }}
  }}
}}

provider "koru" {{}}

resource "koru_cluster" "global" {{
  name    = "orders"
  tier    = "pro"
  regions = {}
}}

output "region" {{ value = koru_cluster.global.region }}
output "region_endpoints" {{ value = koru_cluster.global.region_endpoints }}
"#,
        serde_json::to_string(regions).unwrap()
    )
}

#[tokio::test]
async fn a_global_database_is_applied_planned_replaced_and_destroyed() {
    let Some(cli) = terraform_cli() else {
        return;
    };
    let cp = ControlPlane::start();
    let (org, token) = cp
        .signup_with_api_token("ops@global.example", "Global")
        .await;
    let tf = Terraform::new(cli, cp.workdir("global"), &cp.url, &token, Some(&org));
    let path = format!("/api/v1/orgs/{org}/clusters/orders");

    tf.write(&main_tf(&["us-east", "eu-west"]));
    tf.ok(&["apply", "-auto-approve", "-no-color"]);
    let outputs = tf.outputs();
    let (status, cluster) = cp.call("GET", &path, &token, None).await;
    assert_eq!(status, 200, "{cluster}");
    assert_eq!(cluster["phase"], "Running", "{cluster}");
    assert_eq!(outputs["region"]["value"], json!("us-east"));
    let endpoints = &outputs["region_endpoints"]["value"];
    for (i, name) in ["us-east", "eu-west"].iter().enumerate() {
        assert_eq!(cluster["regions"][i]["name"], json!(name));
        assert_eq!(
            endpoints[name], cluster["regions"][i]["endpoint"],
            "{outputs} {cluster}"
        );
    }
    let plan = tf.plan();
    assert_eq!(plan.code, 0, "no change after apply:\n{}", plan.output());

    // Another region list replaces the database.
    tf.write(&main_tf(&["us-east", "ap-southeast"]));
    let plan = tf.plan();
    assert_eq!(plan.code, 2, "{}", plan.output());
    assert!(
        plan.stdout.contains("forces replacement"),
        "{}",
        plan.output()
    );
    tf.ok(&["apply", "-auto-approve", "-no-color"]);
    let (_, replaced) = cp.call("GET", &path, &token, None).await;
    assert_ne!(replaced["id"], cluster["id"]);
    assert_eq!(replaced["regions"][1]["name"], "ap-southeast", "{replaced}");
    assert!(tf.outputs()["region_endpoints"]["value"]["ap-southeast"].is_string());

    tf.ok(&["destroy", "-auto-approve", "-no-color"]);
    let (_, left) = cp
        .call("GET", &format!("/api/v1/orgs/{org}/clusters"), &token, None)
        .await;
    assert_eq!(left["items"], json!([]));
}
