# KoruDelta Cloud with Terraform or OpenTofu: a cluster, an API token for CI, and a backup.
#
# The provider reads its settings from the environment:
#   KORU_ENDPOINT      the control plane, e.g. http://127.0.0.1:8080 (`make run`)
#   KORU_TOKEN         an API token of your organization (koru_...), role admin or owner
#   KORU_ORGANIZATION  the organization's slug or id (API tokens cannot tell it)
# Until the provider is published, point Terraform at a local build with a dev override:
# see terraform-provider/README.md. terraform-provider/tests/terraform.rs applies this file.

terraform {
  required_providers {
    koru = {
      source = "koru/koru"
    }
  }
}

provider "koru" {}

variable "tier" {
  description = "The cluster's tier: free, pro or enterprise, at most the organization's plan."
  type        = string
  default     = "free"
}

variable "replicas" {
  description = "Replicas: 1, 3, 5 or 7, within the tier (free: 1, pro: 5, enterprise: 7)."
  type        = number
  default     = 1
}

data "koru_tiers" "all" {}

resource "koru_cluster" "orders" {
  name     = "orders"
  tier     = var.tier
  replicas = var.replicas

  timeouts {
    create = "10m"
  }
}

# A token for a CI pipeline; its secret is in the (sensitive) output below.
resource "koru_api_token" "ci" {
  name            = "ci-deploy"
  role            = "member"
  expires_in_days = 90
}

# A base backup taken once the cluster runs (`terraform apply -replace=koru_backup.initial`
# takes another).
resource "koru_backup" "initial" {
  cluster_id = koru_cluster.orders.id
}

output "endpoint" {
  description = "Where the cluster's data plane answers."
  value       = koru_cluster.orders.endpoint
}

output "storage" {
  description = "The cluster's storage, fixed by its tier."
  value       = koru_cluster.orders.storage
}

output "backup" {
  description = "The initial backup and the moment it reaches."
  value       = "${koru_backup.initial.backup_id} (up to ${coalesce(koru_backup.initial.last_time, "an empty log")})"
}

output "tiers" {
  description = "Every tier with its storage."
  value       = { for t in data.koru_tiers.all.tiers : t.name => t.storage }
}

output "ci_token" {
  description = "The CI token's secret: `terraform output -raw ci_token`."
  value       = koru_api_token.ci.token
  sensitive   = true
}
