-- Staff administration (`koru-controlplane admin`): an organization's suspension, and the custom
-- limits staff set for an enterprise organization (NULL keeps the enterprise tier's value).
ALTER TABLE organizations ADD COLUMN suspended_at BIGINT;
ALTER TABLE organizations ADD COLUMN suspended_reason TEXT;
ALTER TABLE organizations ADD COLUMN limit_max_storage_bytes BIGINT;
ALTER TABLE organizations ADD COLUMN limit_max_ops_per_sec BIGINT;
ALTER TABLE organizations ADD COLUMN limit_max_clusters BIGINT;
ALTER TABLE organizations ADD COLUMN limit_max_replicas BIGINT;
ALTER TABLE organizations ADD COLUMN limit_backup_retention_days BIGINT;
